//! Test outcomes, assertion macros and small host helpers.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a test did not pass.
#[derive(Debug)]
pub enum Outcome {
    /// The runtime behaved wrongly (or the test could not do its work).
    Fail(String),
    /// The test cannot run on this host or against this runtime.
    Skip(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Fail(m) | Outcome::Skip(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for Outcome {
    fn from(e: std::io::Error) -> Self {
        Outcome::Fail(format!("I/O error: {e}"))
    }
}

impl From<serde_json::Error> for Outcome {
    fn from(e: serde_json::Error) -> Self {
        Outcome::Fail(format!("JSON error: {e}"))
    }
}

pub type TestResult = Result<(), Outcome>;

/// Return a failure from the enclosing test unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::Outcome::Fail(format!($($arg)+)));
        }
    };
}

/// Return a failure from the enclosing test.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::Outcome::Fail(format!($($arg)+)))
    };
}

/// Return a skip from the enclosing test.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)+) => {
        return Err($crate::Outcome::Skip(format!($($arg)+)))
    };
}

/// A hang guard's limit, times `HULL_RT_GUARD_SCALE` (default 1): under an
/// emulator (the cgroup-v2 lane's qemu TCG) everything is many times slower,
/// and a guard sized for a real machine would fail a test that is only slow.
pub fn guard(limit: Duration) -> Duration {
    let scale = std::env::var("HULL_RT_GUARD_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    limit * scale
}

/// Poll `cond` every 10 ms until it holds; after `limit` (scaled by [`guard`]) give up
/// with a failure naming `what`. This is a hang guard, never a timing assertion.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), Outcome> {
    let limit = guard(limit);
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(());
        }
        if start.elapsed() > limit {
            return Err(Outcome::Fail(format!(
                "gave up after {limit:?} waiting for {what}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Wait until the file at `path` contains `needle` (hang guard 10 s).
pub fn wait_file_contains(path: &Path, needle: &str) -> Result<(), Outcome> {
    wait_until(
        &format!("{} to contain {needle:?}", path.display()),
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(path)
                .map(|s| s.contains(needle))
                .unwrap_or(false)
        },
    )
}

/// Pids of host processes whose environment contains exactly the entry `entry` (`K=V`).
pub fn procs_with_env(entry: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(ent.path().join("environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|e| e == entry.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state field follows the parenthesised command name.
            let state = s
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// Lines of the host's /proc/self/mountinfo that mention `needle`.
pub fn host_mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Send a signal to a host process.
pub fn signal(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Cgroup directories whose name starts with `rt-` (the suite's container ids) and
/// contains `marker`, up to 3 levels below the suite's own cgroups, in every hierarchy.
pub fn cgroups_matching(marker: &str) -> Vec<String> {
    let own: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_owned))
        .collect();
    let mut found = Vec::new();
    fn walk(dir: &std::path::Path, depth: u32, marker: &str, found: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with("rt-") && name.contains(marker) {
                let p = path.to_string_lossy().into_owned();
                if !found.contains(&p) {
                    found.push(p);
                }
            } else if depth > 0 {
                walk(&path, depth - 1, marker, found);
            }
        }
    }
    // A cgroup2-only host: /sys/fs/cgroup is the hierarchy itself.
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        for own_path in &own {
            let base =
                std::path::Path::new("/sys/fs/cgroup").join(own_path.trim_start_matches('/'));
            walk(&base, 2, marker, &mut found);
        }
    }
    let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") else {
        return found;
    };
    for h in hier.flatten() {
        for own_path in &own {
            let base = h.path().join(own_path.trim_start_matches('/'));
            walk(&base, 2, marker, &mut found);
        }
    }
    found
}

/// Run a host tool to completion; its stdout, or a failure naming the
/// command and what it printed on stderr.
pub fn sh(cmd: &str, args: &[&str]) -> Result<String, Outcome> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(Outcome::Fail(format!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
