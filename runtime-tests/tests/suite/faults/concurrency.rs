//! Concurrency: many containers at once, one id raced, delete racing kill.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use runtime_tests::fixture::Ctx;
use runtime_tests::runtime::{Runtime, Spawned, COMMAND_LIMIT};
use runtime_tests::util::{cgroups_matching, pid_alive, procs_with_env, wait_until};
use runtime_tests::{ensure, Outcome, Output, TestResult};

use super::marked;

/// Container ids and a bundle whose processes carry a marker of their own.
fn batch(c: &Ctx, n: usize, args: &[&str]) -> Result<(Vec<String>, PathBuf, String), Outcome> {
    let marker = format!(
        "HULL_RT_FAULT={}-{}-{}",
        c.name,
        std::process::id(),
        c.suite.next()
    );
    let b = c.bundle(&marked(args, &marker))?;
    Ok(((0..n).map(|_| c.id()).collect(), b, marker))
}

/// Container `id` is gone: no state, no cgroup.
fn gone(c: &Ctx, id: &str) -> TestResult {
    ensure!(c.rt.is_gone(id), "{id} still exists");
    ensure!(!c.rt.root.join(id).exists(), "state dir of {id} left");
    let cg: Vec<String> = cgroups_matching(id)
        .into_iter()
        .filter(|d| d.ends_with(&format!("/{id}")))
        .collect();
    ensure!(cg.is_empty(), "cgroups of {id} left: {}", cg.join(", "));
    Ok(())
}

fn no_processes(marker: &str) -> TestResult {
    wait_until(
        "container processes to exit",
        Duration::from_secs(10),
        || procs_with_env(marker).is_empty(),
    )
}

/// Hang guard for each command of the 50-container burst. On 2 vCPUs under
/// stress-ng the burst can keep the kernel itself busy for minutes, runc's
/// burst as much as hull's: creating a network namespace waits for RTNL,
/// which the teardown of the dead ones holds while it waits for an RCU grace
/// period, and the killed inits wait for grace periods in their exit (seen:
/// 261 s for the whole burst). That is slow, not hung; a hang still ends here.
const BURST_LIMIT: Duration = Duration::from_secs(600);

/// `delete --force` of one container of the burst. runc gives up on an init
/// that has not gone 10 s after its SIGKILL ("container init still running")
/// and must be asked again; hull waits for a dying process itself, so for
/// hull the first answer counts.
fn delete_force_burst(rt: &Runtime, id: &str) -> Output {
    let give_up = Instant::now() + BURST_LIMIT;
    loop {
        let del = rt.exec_within(&["delete", "--force", id], None, BURST_LIMIT);
        let runc_gave_up = !rt.is_hull() && del.stderr.contains("container init still running");
        if del.code == 0 || !runc_gave_up || Instant::now() >= give_up {
            return del;
        }
    }
}

/// 50 `run -d` + `delete --force` of distinct ids at once: each succeeds,
/// nothing is left.
pub fn run_delete_50(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 50, &["sleep", "30"])?;
    let rt = c.rt;
    let b = b.to_string_lossy().into_owned();
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let b = b.as_str();
                s.spawn(move || -> Result<(), String> {
                    let run = rt.exec_within(&["run", "-d", "--bundle", b, id], None, BURST_LIMIT);
                    let del = delete_force_burst(rt, id);
                    if run.code != 0 || del.code != 0 {
                        return Err(format!(
                            "{id}: run -d exited {} ({}), delete --force {} ({})",
                            run.code,
                            run.stderr.trim(),
                            del.code,
                            del.stderr.trim()
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("thread panicked".into()))
                    .err()
            })
            .collect()
    });
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    for id in &ids {
        gone(c, id)?;
    }
    no_processes(&marker)
}

/// 20 concurrent creates of one id: exactly one wins, every other fails
/// with runc's "already exists", and the winner is whole. HullOnly: runc
/// 1.1.5 loses this race (see create_concurrent_same_id in suite.rs).
pub fn create_same_id_20(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 1, &["sleep", "30"])?;
    let id = ids[0].as_str();
    let b = b.to_string_lossy().into_owned();
    let spawned: Vec<Spawned> = (0..20)
        .map(|_| c.rt.spawn(&["create", "--bundle", &b, id]))
        .collect::<Result<_, _>>()?;
    let outs: Vec<Output> = spawned.into_iter().map(|s| s.wait(COMMAND_LIMIT)).collect();
    let winners = outs.iter().filter(|o| o.code == 0).count();
    ensure!(
        winners == 1,
        "{winners} of 20 creates of {id} succeeded: {:?}",
        outs.iter().map(|o| o.stderr.trim()).collect::<Vec<_>>()
    );
    for o in outs.iter().filter(|o| o.code != 0) {
        ensure!(
            o.code == 1 && o.stderr.contains("already exists"),
            "a losing create exited {}: {}",
            o.code,
            o.stderr.trim()
        );
    }
    let st = c.rt.state(id)?;
    ensure!(st["status"] == "created", "the winner is not created: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    ensure!(
        pid > 0 && pid_alive(pid),
        "the winner's init is not alive: {st}"
    );
    c.rt.start(id).ok()?;
    ensure!(c.rt.status(id)? == "running", "the winner does not start");
    c.rt.delete_force(id).ok()?;
    gone(c, id)?;
    no_processes(&marker)
}

/// `delete --force` racing `kill`: delete succeeds, kill succeeds or says
/// the container is not running or gone; nothing hangs or is left.
pub fn delete_force_vs_kill(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 10, &["sleep", "30"])?;
    for id in &ids {
        c.rt.create(id, &b).ok()?;
        c.rt.start(id).ok()?;
        let kill = c.rt.spawn(&["kill", id, "KILL"])?;
        let del = c.rt.spawn(&["delete", "--force", id])?;
        let (kill, del) = (kill.wait(COMMAND_LIMIT), del.wait(COMMAND_LIMIT));
        ensure!(
            del.code == 0,
            "delete --force {id} exited {}: {}",
            del.code,
            del.stderr.trim()
        );
        let benign = ["not running", "does not exist"];
        ensure!(
            kill.code == 0 || (kill.code == 1 && benign.iter().any(|b| kill.stderr.contains(b))),
            "kill {id} exited {}: {}",
            kill.code,
            kill.stderr.trim()
        );
        gone(c, id)?;
    }
    no_processes(&marker)
}
