//! A tiny parallel test runner (the suite uses `harness = false`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fixture::{runtime_bin, suite, Ctx, SUITE_ENV};
use crate::util::{host_mounts_mentioning, procs_with_env, wait_until, Outcome, TestResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Must pass on every runc-compatible runtime.
    Oci,
    /// Runs only when the runtime binary is named `hull`.
    HullOnly,
}

/// Build a test entry (usable in `const` lists).
pub const fn t(name: &'static str, kind: Kind, f: fn(&Ctx) -> TestResult) -> Test {
    Test { name, kind, f }
}

pub struct Test {
    pub name: &'static str,
    pub kind: Kind,
    pub f: fn(&Ctx) -> TestResult,
}

const THREADS: usize = 4;

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Tally {
    fn report(&mut self, name: &str, res: &TestResult, took: Duration) {
        // With HULL_RT_TIMES set, each ok line says how long the test took
        // (the cgroup-v2 lane uses it to show what dominates under emulation).
        let took = if std::env::var_os("HULL_RT_TIMES").is_some() {
            format!(" ({:.1}s)", took.as_secs_f64())
        } else {
            String::new()
        };
        match res {
            Ok(()) => {
                self.passed += 1;
                println!("ok {name}{took}");
            }
            Err(Outcome::Fail(m)) => {
                self.failed += 1;
                println!("FAIL {name}: {}", one_line(m));
            }
            Err(Outcome::Skip(m)) => {
                self.skipped += 1;
                println!("skipped {name}: {}", one_line(m));
            }
        }
    }
}

/// Keep each report on one line (runtime stderr and JSON often span several).
fn one_line(m: &str) -> String {
    m.trim().replace('\n', " | ")
}

fn run_one(t: &Test) -> TestResult {
    let ctx = Ctx::new(t.name);
    let res = catch_unwind(AssertUnwindSafe(|| (t.f)(&ctx)));
    // Cleanup (delete --force of every id, bundle removal) happens here, even after a panic.
    let cleanup = catch_unwind(AssertUnwindSafe(move || drop(ctx)));
    match (res, cleanup) {
        (Ok(r), Ok(())) => r,
        (Err(p), _) => Err(Outcome::Fail(format!("panicked: {}", panic_msg(&*p)))),
        (Ok(_), Err(p)) => Err(Outcome::Fail(format!(
            "cleanup panicked: {}",
            panic_msg(&*p)
        ))),
    }
}

fn panic_msg(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// The final check: nothing the suite made is left behind.
fn leak_check() -> TestResult {
    let s = suite();
    let env = format!("{SUITE_ENV}={}", s.id);
    let root = s.runtime.root.to_string_lossy().into_owned();
    let tmp = s.tmp.to_string_lossy().into_owned();
    let mut problems = Vec::new();
    // Processes may still be dying right after a forced delete: bounded wait.
    let _ = wait_until("leaked processes to exit", Duration::from_secs(5), || {
        procs_with_env(&env).is_empty()
    });
    let procs = procs_with_env(&env);
    if !procs.is_empty() {
        let desc: Vec<String> = procs
            .iter()
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                format!("{p} ({})", cmd.trim())
            })
            .collect();
        for p in &procs {
            let _ = crate::util::signal(*p, libc::SIGKILL);
        }
        problems.push(format!(
            "processes with {env} still running (now killed): {}",
            desc.join(", ")
        ));
    }
    // Runtime helpers that never exec'd the container process (e.g. an orphaned
    // `runc init` waiting on its exec fifo) carry the suite root in argv or environment.
    let helpers: Vec<i32> = procs_mentioning(&root)
        .into_iter()
        .filter(|p| !procs.contains(p))
        .collect();
    if !helpers.is_empty() {
        let desc: Vec<String> = helpers
            .iter()
            .map(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                format!(
                    "{p} ({})",
                    String::from_utf8_lossy(&cmd).replace('\0', " ").trim()
                )
            })
            .collect();
        for p in &helpers {
            let _ = crate::util::signal(*p, libc::SIGKILL);
        }
        problems.push(format!(
            "processes mentioning {root} still running (now killed): {}",
            desc.join(", ")
        ));
    }
    match std::fs::read_dir(&s.runtime.root) {
        Ok(rd) => {
            let left: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !left.is_empty() {
                problems.push(format!("entries left in {root}: {}", left.join(", ")));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => problems.push(format!("cannot read {root}: {e}")),
    }
    let cgroups = crate::util::cgroups_matching(&format!("-{}-", std::process::id()));
    if !cgroups.is_empty() {
        // Empty leftovers are removed so they do not pile up between runs.
        // (killed leftovers above may need a moment to exit; bounded)
        let _ = wait_until(
            "leaked cgroups to be removable",
            Duration::from_secs(3),
            || {
                cgroups
                    .iter()
                    .all(|d| std::fs::remove_dir(d).is_ok() || !std::path::Path::new(d).exists())
            },
        );
        problems.push(format!("cgroups left behind: {}", cgroups.join(", ")));
    }
    // Network namespaces of the network tests (`hrt<pid>-*`), removed now.
    let netns_prefix = format!("hrt{}-", std::process::id());
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&netns_prefix))
        .collect();
    for n in &netns {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", n])
            .status();
    }
    if !netns.is_empty() {
        problems.push(format!("network namespaces left: {}", netns.join(", ")));
    }
    for needle in [&root, &tmp] {
        let lines = host_mounts_mentioning(needle);
        if !lines.is_empty() {
            problems.push(format!(
                "host mounts mention {needle}: {}",
                lines.join(" | ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Outcome::Fail(problems.join("; ")))
    }
}

/// Pids (other than ours) whose cmdline or environment contains `needle`.
fn procs_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let hit = ["cmdline", "environ"].iter().any(|f| {
            std::fs::read(e.path().join(f))
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        });
        if hit {
            found.push(pid);
        }
    }
    found
}

/// Run `tests` (filtered by the first non-flag argument) on 4 threads, then the leak
/// check; print the summary and exit non-zero if anything failed.
pub fn main(tests: &[&Test]) -> ! {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Err(e) = runtime_bin() {
        println!("FAIL setup: {e} (set RUNTIME to a runtime binary)");
        println!("0 passed, 1 failed, 0 skipped");
        std::process::exit(1);
    }
    let s = suite();
    let hull = s.runtime.is_hull();
    println!(
        "runtime {} (suite {}, root {})",
        s.runtime.bin.display(),
        s.id,
        s.runtime.root.display()
    );
    // Print panics ourselves (as FAIL lines), not via the default hook.
    std::panic::set_hook(Box::new(|_| {}));

    let selected: Vec<&Test> = tests
        .iter()
        .copied()
        .filter(|t| filter.as_deref().is_none_or(|f| t.name.contains(f)))
        .collect();
    let tally = Mutex::new(Tally::default());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(t) = selected.get(i) else { break };
                let start = Instant::now();
                let res = if t.kind == Kind::HullOnly && !hull {
                    Err(Outcome::Skip("hull-only".into()))
                } else {
                    run_one(t)
                };
                tally.lock().unwrap().report(t.name, &res, start.elapsed());
            });
        }
    });
    let mut tally = tally.into_inner().unwrap();
    let start = Instant::now();
    let res = leak_check();
    tally.report("leak_check", &res, start.elapsed());
    // Never recurse into a temp dir that still has something mounted inside it.
    if host_mounts_mentioning(&s.tmp.to_string_lossy()).is_empty() {
        s.cleanup();
    }
    println!(
        "{} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.skipped
    );
    std::process::exit(if tally.failed == 0 { 0 } else { 1 });
}
