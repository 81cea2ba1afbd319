//! Black-box OCI runtime suite. Run with
//! `RUNTIME=runc cargo test -p runtime-tests --test suite [-- FILTER]`.
//!
//! Every `Oci` test encodes what runc 1.1.5 does; where runc differs from a wish list, the
//! test follows runc and says so in a comment.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{self, t, Kind, Test};
use runtime_tests::util::{pid_alive, procs_with_env, signal, wait_file_contains, wait_until};
use runtime_tests::{ensure, fail, skip, Outcome, TestResult};
use serde_json::{json, Value};

/// Init script that exits 7 on TERM and prints "ready" once the trap is installed
/// (init is pid 1 in its pid namespace: an untrapped TERM would be ignored).
const TRAPPER: &str = "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done";

const TESTS: &[Test] = &[
    // lifecycle and process model
    t("run_exit_codes", Kind::Oci, run_exit_codes),
    t("run_killed_exit_code", Kind::Oci, run_killed_exit_code),
    t("run_stdio", Kind::Oci, run_stdio),
    t("run_leaves_nothing", Kind::Oci, run_leaves_nothing),
    t("lifecycle", Kind::Oci, lifecycle),
    t("ns_pid1", Kind::Oci, ns_pid1),
    t("ns_hostname", Kind::Oci, ns_hostname),
    t("ns_proc_isolated", Kind::Oci, ns_proc_isolated),
    t("ns_mounts_isolated", Kind::Oci, ns_mounts_isolated),
    t("domainname", Kind::HullOnly, domainname),
    t("process_args_env_cwd", Kind::Oci, process_args_env_cwd),
    t("process_user", Kind::Oci, process_user),
    t("process_umask", Kind::Oci, process_umask),
    t("process_rlimits", Kind::Oci, process_rlimits),
    t("run_detached", Kind::Oci, run_detached),
    t("run_forwards_sigterm", Kind::Oci, run_forwards_sigterm),
    // kill / delete / start / create
    t("kill_signal_forms", Kind::Oci, kill_signal_forms),
    t("kill_all", Kind::Oci, kill_all),
    t("kill_bad_signal", Kind::Oci, kill_bad_signal),
    t("kill_stopped", Kind::Oci, kill_stopped),
    t("delete_running_refused", Kind::Oci, delete_running_refused),
    t("delete_force_running", Kind::Oci, delete_force_running),
    t("delete_created", Kind::Oci, delete_created),
    t("delete_unknown", Kind::Oci, delete_unknown),
    t("unknown_id_errors", Kind::Oci, unknown_id_errors),
    t("start_twice", Kind::Oci, start_twice),
    t("start_stopped", Kind::Oci, start_stopped),
    t("create_duplicate_id", Kind::Oci, create_duplicate_id),
    t(
        "create_concurrent_same_id",
        Kind::HullOnly,
        create_concurrent_same_id,
    ),
    // list / state / spec
    t("list_table", Kind::Oci, list_table),
    t("list_quiet", Kind::Oci, list_quiet),
    t("list_json", Kind::Oci, list_json),
    t("state_json", Kind::Oci, state_json),
    t("spec_command", Kind::Oci, spec_command),
    t("features_command", Kind::Oci, features_command),
    // bad inputs
    t("bad_missing_bundle", Kind::Oci, bad_missing_bundle),
    t("bad_invalid_json", Kind::Oci, bad_invalid_json),
    t("bad_wrong_type", Kind::Oci, bad_wrong_type),
    t("bad_missing_process", Kind::Oci, bad_missing_process),
    t("bad_missing_rootfs", Kind::Oci, bad_missing_rootfs),
    // rootfs and mounts
    t("rootfs_readonly", Kind::Oci, rootfs_readonly),
    t("mount_bind_ro", Kind::Oci, mount_bind_ro),
    t("mount_tmpfs", Kind::Oci, mount_tmpfs),
    t("masked_paths", Kind::Oci, masked_paths),
    t("readonly_paths", Kind::Oci, readonly_paths),
    t("default_devices", Kind::Oci, default_devices),
    t("linux_devices", Kind::Oci, linux_devices),
    t("symlink_escape", Kind::Oci, symlink_escape),
    // namespaces
    t("ns_user", Kind::Oci, ns_user),
    t("ns_time", Kind::Oci, ns_time),
    t("ns_join_net", Kind::Oci, ns_join_net),
    t("ns_join_pid", Kind::Oci, ns_join_pid),
    // hull only
    t("crash_safety_create", Kind::HullOnly, crash_safety_create),
    t("log_json_errors", Kind::HullOnly, log_json_errors),
];

// Each area keeps its tests in its own file under tests/suite/.
#[path = "suite/cgroups.rs"]
mod cgroups;
#[path = "suite/check.rs"]
mod check;
#[path = "suite/docker_ps.rs"]
mod docker_ps;
#[path = "suite/docker_run.rs"]
mod docker_run;
#[path = "suite/exec.rs"]
mod exec;
#[path = "suite/failclosed.rs"]
mod failclosed;
#[path = "suite/faults.rs"]
mod faults;
#[path = "suite/images.rs"]
mod images;
#[path = "suite/images_commit.rs"]
mod images_commit;
#[path = "suite/images_registry.rs"]
mod images_registry;
#[path = "suite/monitor.rs"]
mod monitor;
#[path = "suite/network.rs"]
mod network;
#[path = "suite/network_modes.rs"]
mod network_modes;
#[path = "suite/network_named.rs"]
mod network_named;
#[path = "suite/network_ports.rs"]
mod network_ports;
#[path = "suite/network_scale.rs"]
mod network_scale;
#[path = "suite/parity_cgroups.rs"]
mod parity_cgroups;
#[path = "suite/parity_cli.rs"]
mod parity_cli;
#[path = "suite/parity_mounts.rs"]
mod parity_mounts;
#[path = "suite/parity_process.rs"]
mod parity_process;
#[path = "suite/security.rs"]
mod security;
#[path = "suite/storage.rs"]
mod storage;

fn main() {
    let all: Vec<&Test> = [
        TESTS,
        cgroups::TESTS,
        check::TESTS,
        docker_ps::TESTS,
        exec::TESTS,
        failclosed::TESTS,
        faults::TESTS,
        monitor::TESTS,
        network::TESTS,
        network_ports::TESTS,
        network_modes::TESTS,
        network_named::TESTS,
        network_scale::TESTS,
        parity_process::TESTS,
        parity_cgroups::TESTS,
        parity_mounts::TESTS,
        parity_cli::TESTS,
        security::TESTS,
        storage::TESTS,
        images::TESTS,
        images_commit::TESTS,
        images_registry::TESTS,
        docker_run::TESTS,
    ]
    .into_iter()
    .flatten()
    .collect();
    harness::main(&all)
}

// ---------------------------------------------------------------------------------------
// helpers

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Remove the namespace of type `ty` from the config.
fn remove_ns(cfg: &mut Value, ty: &str) {
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != ty);
}

/// Add (or replace) a namespace entry.
fn set_ns(cfg: &mut Value, ns: Value) {
    let ty = ns["type"].as_str().expect("type").to_owned();
    remove_ns(cfg, &ty);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(ns);
}

fn push(cfg: &mut Value, ptr: &str, v: Value) {
    cfg.pointer_mut(ptr)
        .and_then(Value::as_array_mut)
        .unwrap_or_else(|| panic!("{ptr} is not an array"))
        .push(v);
}

/// The container is unknown to the runtime and has no state dir under the root.
fn nothing_left(c: &Ctx, id: &str) -> TestResult {
    ensure!(
        c.rt.is_gone(id),
        "container {id} still exists: {}",
        c.rt.exec(&["state", id]).stdout
    );
    let dir = c.rt.root.join(id);
    ensure!(!dir.exists(), "state dir {} left behind", dir.display());
    Ok(())
}

/// Create + start a long-running `sleep 600` container (force-deleted at the
/// end of the test; under an emulator a test can outlast 30 s).
fn start_sleeper(c: &Ctx) -> Result<String, Outcome> {
    Ok(c.start_cfg(&config(&["sleep", "600"]))?.0)
}

/// Create + start a TERM-trapping container and wait until its trap is installed.
fn start_trapper(c: &Ctx) -> Result<String, Outcome> {
    let (id, out) = c.start_cfg(&sh_config(TRAPPER))?;
    wait_file_contains(&out.stdout_path, "ready")?;
    Ok(id)
}

/// Hull's error output must be one line.
fn hull_one_line(c: &Ctx, stderr: &str) -> TestResult {
    if c.rt.is_hull() {
        ensure!(
            stderr.trim().lines().count() == 1,
            "hull stderr is not one line: {stderr:?}"
        );
    }
    Ok(())
}

/// `create` with `cfg` must exit 1 and leave nothing; returns stderr.
fn create_fails_cleanly(c: &Ctx, bundle: &Path) -> Result<String, Outcome> {
    let id = c.id();
    let out = c.rt.create(&id, bundle).code(1)?;
    nothing_left(c, &id)?;
    hull_one_line(c, &out.stderr)?;
    Ok(out.stderr)
}

// ---------------------------------------------------------------------------------------
// lifecycle and process model

fn run_exit_codes(c: &Ctx) -> TestResult {
    c.run_cfg(&sh_config("exit 3"))?.code(3)?;
    c.run_cfg(&config(&["true"]))?.code(0)?;
    // With a pid namespace sh is pid 1, and the kernel ignores a SIGKILL sent to pid 1
    // from inside its own namespace: `kill -9 $$` does nothing there (runc then exits 0).
    // Without a pid namespace the shell dies by signal 9: the runtime reports 128+9.
    let mut cfg = sh_config("kill -9 $$; echo survived");
    remove_ns(&mut cfg, "pid");
    c.run_cfg(&cfg)?.code(137)?;
    Ok(())
}

fn run_killed_exit_code(c: &Ctx) -> TestResult {
    // Foreground run whose init is killed from outside (KILL from the host ns works on
    // pid 1): the runtime exits 128+9.
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    let child = c.rt.spawn(&["run", "--bundle", &p(&b), &id])?;
    c.rt.wait_status(&id, "running")?;
    c.rt.kill(&id, "KILL").ok()?;
    child.wait(Duration::from_secs(30)).code(137)?;
    Ok(())
}

fn run_stdio(c: &Ctx) -> TestResult {
    let out = c.run_cfg(&sh_config("echo hello; echo oops >&2"))?.ok()?;
    ensure!(out.stdout == "hello\n", "stdout {:?}", out.stdout);
    ensure!(out.stderr.contains("oops"), "stderr {:?}", out.stderr);
    Ok(())
}

fn run_leaves_nothing(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["echo", "hello"]))?;
    let id = c.id();
    let out = c.rt.run(&id, &b).ok()?;
    ensure!(out.stdout == "hello\n", "stdout {:?}", out.stdout);
    let st = c.rt.exec(&["state", &id]).failed()?;
    ensure!(
        st.stderr.contains("does not exist"),
        "state after run: {}",
        st.stderr
    );
    nothing_left(c, &id)
}

fn lifecycle(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    let pid_file = b.join("init.pid");
    c.rt.exec(&[
        "create",
        "--bundle",
        &p(&b),
        "--pid-file",
        &p(&pid_file),
        &id,
    ])
    .ok()?;
    let st = c.rt.state(&id)?;
    ensure!(st["status"] == "created", "status after create: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    ensure!(pid > 0, "pid after create: {st}");
    ensure!(pid_alive(pid), "init pid {pid} not alive after create");
    let written = std::fs::read_to_string(&pid_file)
        .map_err(|e| Outcome::Fail(format!("pid file {}: {e}", pid_file.display())))?;
    ensure!(
        written.trim() == pid.to_string(),
        "pid file says {written:?}, state says {pid}"
    );
    c.rt.start(&id).ok()?;
    let st = c.rt.state(&id)?;
    ensure!(st["status"] == "running", "status after start: {st}");
    ensure!(st["pid"] == pid, "pid changed by start: {st}");
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    nothing_left(c, &id)?;
    wait_until("init to disappear", Duration::from_secs(10), || {
        !pid_alive(pid)
    })
}

fn ns_pid1(c: &Ctx) -> TestResult {
    let out = c.sh("echo $$")?;
    ensure!(out.trim() == "1", "pid inside: {out:?}");
    Ok(())
}

fn ns_hostname(c: &Ctx) -> TestResult {
    let out = c.run_cfg(&config(&["hostname"]))?.ok()?.stdout;
    ensure!(out.trim() == "hull-test", "hostname: {out:?}");
    Ok(())
}

fn ns_proc_isolated(c: &Ctx) -> TestResult {
    let out = c.sh("ls /proc | grep -c '^[0-9]'")?;
    let n: u32 = out.trim().parse().unwrap_or(999);
    ensure!(n <= 3, "container sees {n} processes in /proc");
    Ok(())
}

fn ns_mounts_isolated(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["cat", "/proc/self/mountinfo"]))?;
    let out = c.rt.run(&c.id(), &b).ok()?.stdout;
    ensure!(
        !out.contains(&p(&b)),
        "container mountinfo mentions the bundle: {out}"
    );
    ensure!(!out.contains(" /work"), "host /work visible: {out}");
    // Every mount point must be the root or below /proc, /dev or /sys.
    for line in out.lines() {
        let mp = line.split(' ').nth(4).unwrap_or("");
        let ok = mp == "/"
            || ["/proc", "/dev", "/sys"]
                .iter()
                .any(|d| mp == *d || mp.starts_with(&format!("{d}/")));
        ensure!(ok, "unexpected mount point {mp:?} in container: {line}");
    }
    Ok(())
}

fn domainname(c: &Ctx) -> TestResult {
    // HullOnly: runc 1.1.5 ignores `domainname` (support arrived in runc 1.2); the OCI
    // spec says the runtime sets it in the container's UTS namespace.
    let mut cfg = config(&["cat", "/proc/sys/kernel/domainname"]);
    cfg["domainname"] = json!("hull.example");
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.trim() == "hull.example", "domainname: {out:?}");
    Ok(())
}

fn process_args_env_cwd(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sh", "-c", "echo \"$0|$1|$FOO|$(pwd)\"", "zero", "one two"]);
    push(&mut cfg, "/process/env", json!("FOO=bar baz"));
    cfg["process"]["cwd"] = json!("/tmp");
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.trim() == "zero|one two|bar baz|/tmp",
        "args/env/cwd: {out:?}"
    );
    Ok(())
}

fn process_user(c: &Ctx) -> TestResult {
    let mut cfg = config(&["id"]);
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("uid=1000") && out.contains("gid=1000"),
        "id: {out:?}"
    );
    let groups = out.split("groups=").nth(1).unwrap_or("");
    ensure!(
        groups
            .split(',')
            .any(|g| g.trim().starts_with("10") && !g.trim().starts_with("100")),
        "groups lack 10: {out:?}"
    );
    Ok(())
}

fn process_umask(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("umask");
    cfg["process"]["user"]["umask"] = json!(0o077);
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.trim() == "0077", "umask: {out:?}");
    Ok(())
}

fn process_rlimits(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("ulimit -n; ulimit -Hn");
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 512}]);
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "512\n512\n", "NOFILE 512/512: {out:?}");
    let mut cfg = sh_config("ulimit -Sn; ulimit -Hn");
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 4096}]);
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "256\n4096\n", "NOFILE 256/4096: {out:?}");
    Ok(())
}

fn run_detached(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    c.rt.exec(&["run", "-d", "--bundle", &p(&b), &id]).ok()?;
    let st = c.rt.state(&id)?;
    ensure!(st["status"] == "running", "after run -d: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    ensure!(pid > 0 && pid_alive(pid), "init not alive: {st}");
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    nothing_left(c, &id)
}

fn run_forwards_sigterm(c: &Ctx) -> TestResult {
    let b = c.bundle(&sh_config(TRAPPER))?;
    let id = c.id();
    let child = c.rt.spawn(&["run", "--bundle", &p(&b), &id])?;
    c.rt.wait_status(&id, "running")?;
    wait_file_contains(&child.stdout_path, "ready")?;
    signal(child.pid(), libc::SIGTERM)?;
    child.wait(Duration::from_secs(30)).code(7)?;
    nothing_left(c, &id)
}

// ---------------------------------------------------------------------------------------
// kill / delete / start / create

fn kill_signal_forms(c: &Ctx) -> TestResult {
    for sig in [Some("TERM"), Some("SIGTERM"), Some("15"), None] {
        let id = start_trapper(c)?;
        let out = match sig {
            Some(s) => c.rt.kill(&id, s),
            None => c.rt.exec(&["kill", &id]),
        };
        out.ok()?;
        c.rt.wait_status(&id, "stopped")
            .map_err(|e| Outcome::Fail(format!("kill {sig:?}: {e}")))?;
        c.rt.delete(&id).ok()?;
    }
    Ok(())
}

fn kill_all(c: &Ctx) -> TestResult {
    let id = start_sleeper(c)?;
    c.rt.exec(&["kill", "-a", &id, "KILL"]).ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.exec(&["kill", "--all", &id, "KILL"]);
    c.rt.delete(&id).ok()?;
    Ok(())
}

fn kill_bad_signal(c: &Ctx) -> TestResult {
    let id = start_sleeper(c)?;
    // runc: `unknown signal "FOO"`
    let out = c.rt.kill(&id, "FOO").code(1)?.stderr_has("FOO")?;
    hull_one_line(c, &out.stderr)?;
    ensure!(
        c.rt.status(&id)? == "running",
        "container not running after bad kill"
    );
    Ok(())
}

fn kill_stopped(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["true"]))?;
    c.rt.wait_status(&id, "stopped")?;
    // runc: "container not running" (containerd's shim matches this string).
    c.rt.kill(&id, "KILL")
        .failed()?
        .stderr_has("container not running")?;
    c.rt.kill(&id, "TERM")
        .failed()?
        .stderr_has("container not running")?;
    ensure!(c.rt.status(&id)? == "stopped", "status changed by kill");
    Ok(())
}

fn delete_running_refused(c: &Ctx) -> TestResult {
    let id = start_sleeper(c)?;
    // runc: "cannot delete container ID that is not stopped: running"
    c.rt.delete(&id).failed()?.stderr_has("not stopped")?;
    ensure!(
        c.rt.status(&id)? == "running",
        "container hurt by refused delete"
    );
    Ok(())
}

fn delete_force_running(c: &Ctx) -> TestResult {
    let id = start_sleeper(c)?;
    let pid = c.rt.pid(&id)?;
    c.rt.delete_force(&id).ok()?;
    nothing_left(c, &id)?;
    wait_until("init to die", Duration::from_secs(10), || !pid_alive(pid))
}

fn delete_created(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let pid = c.rt.pid(&id)?;
    // runc deletes a created (never started) container without --force, killing its init.
    c.rt.delete(&id).ok()?;
    nothing_left(c, &id)?;
    wait_until("init to die", Duration::from_secs(10), || !pid_alive(pid))
}

fn delete_unknown(c: &Ctx) -> TestResult {
    let id = c.id();
    // runc: "container does not exist"
    c.rt.delete(&id).failed()?.stderr_has("does not exist")?;
    // runc: `delete --force` of an unknown id succeeds silently.
    c.rt.delete_force(&id).ok()?;
    Ok(())
}

fn unknown_id_errors(c: &Ctx) -> TestResult {
    let id = c.id();
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = c.rt.exec(&args).failed()?.stderr_has("does not exist")?;
        hull_one_line(c, &out.stderr)?;
    }
    Ok(())
}

fn start_twice(c: &Ctx) -> TestResult {
    let id = start_sleeper(c)?;
    // runc: "cannot start an already running container"
    c.rt.start(&id)
        .failed()?
        .stderr_has("cannot start an already running container")?;
    ensure!(
        c.rt.status(&id)? == "running",
        "second start hurt the container"
    );
    Ok(())
}

fn start_stopped(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["true"]))?;
    c.rt.wait_status(&id, "stopped")?;
    // runc: "cannot start a container that has stopped"
    c.rt.start(&id)
        .failed()?
        .stderr_has("cannot start a container that has stopped")?;
    Ok(())
}

fn create_duplicate_id(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let b2 = c.bundle(&config(&["sleep", "31"]))?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let pid = c.rt.pid(&id)?;
    // runc: "runc create failed: container with given ID already exists"
    c.rt.create(&id, &b2)
        .failed()?
        .stderr_has("already exists")?;
    let st = c.rt.state(&id)?;
    ensure!(
        st["pid"] == pid && st["status"] == "created",
        "first container changed: {st}"
    );
    ensure!(
        st["bundle"] == p(&b).as_str(),
        "bundle changed by duplicate create: {st}"
    );
    Ok(())
}

/// HullOnly: runc 1.1.5 loses this race. Seen on this host: both creates fail ("exec fifo
/// <root>/<id>/exec.fifo already exists" + "unable to apply cgroup configuration: ... no such
/// file or directory"), or one exits 0 but its state dir was removed by the loser, leaving
/// an orphaned `runc init` and the container's cgroups behind. hull must let exactly one win
/// and leave a consistent container.
fn create_concurrent_same_id(c: &Ctx) -> TestResult {
    for _ in 0..5 {
        let b1 = c.bundle(&config(&["sleep", "30"]))?;
        let b2 = c.bundle(&config(&["sleep", "30"]))?;
        let id = c.id();
        let s1 = c.rt.spawn(&["create", "--bundle", &p(&b1), &id])?;
        let s2 = c.rt.spawn(&["create", "--bundle", &p(&b2), &id])?;
        let o1 = s1.wait(Duration::from_secs(60));
        let o2 = s2.wait(Duration::from_secs(60));
        let wins = [&o1, &o2].iter().filter(|o| o.code == 0).count();
        ensure!(
            wins == 1,
            "{wins} of 2 concurrent creates of {id} succeeded; stderr: {:?} / {:?}",
            o1.stderr,
            o2.stderr
        );
        let loser = if o1.code == 0 { &o2 } else { &o1 };
        ensure!(
            loser.stderr.contains("already exists"),
            "loser's stderr: {}",
            loser.stderr
        );
        ensure!(c.rt.status(&id)? == "created", "winner not created");
        let pid = c.rt.pid(&id)?;
        c.rt.delete_force(&id).ok()?;
        nothing_left(c, &id)?;
        wait_until("init to die", Duration::from_secs(10), || !pid_alive(pid))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// list / state / spec

fn created(c: &Ctx) -> Result<(String, std::path::PathBuf), Outcome> {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    Ok((id, b))
}

/// `list ARGS`. runc 1.1.5's `list` fails when another container is deleted while it reads
/// the root ("stat <root>/<id>: no such file or directory"); the suite deletes containers
/// in parallel, so for runtimes other than hull that error is retried (bounded). hull must
/// tolerate concurrent deletes.
fn list(c: &Ctx, args: &[&str]) -> Result<String, Outcome> {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    let mut tries = 0;
    loop {
        let out = c.rt.exec(&all);
        tries += 1;
        if out.code != 0
            && !c.rt.is_hull()
            && tries < 20
            && out.stderr.contains("no such file or directory")
        {
            continue;
        }
        return Ok(out.ok()?.stdout);
    }
}

fn list_table(c: &Ctx) -> TestResult {
    let (id, _) = created(c)?;
    let out = list(c, &[])?;
    let header = out.lines().next().unwrap_or("");
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        ensure!(
            header.split_whitespace().any(|w| w == col),
            "list header lacks {col}: {header:?}"
        );
    }
    let row = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()));
    let Some(row) = row else {
        fail!("{id} not listed: {out}")
    };
    ensure!(row.contains("created"), "row: {row:?}");
    Ok(())
}

fn list_quiet(c: &Ctx) -> TestResult {
    let (id, _) = created(c)?;
    let out = list(c, &["-q"])?;
    ensure!(out.lines().any(|l| l == id), "{id} not in list -q: {out}");
    ensure!(
        out.lines().all(|l| !l.trim().contains(char::is_whitespace)),
        "list -q prints more than ids: {out}"
    );
    Ok(())
}

fn list_json(c: &Ctx) -> TestResult {
    let (id, b) = created(c)?;
    let out = list(c, &["-f", "json"])?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| Outcome::Fail(format!("list -f json: {e}: {out}")))?;
    let Some(arr) = v.as_array() else {
        fail!("list -f json is not an array: {out}")
    };
    let Some(obj) = arr.iter().find(|o| o["id"] == id.as_str()) else {
        fail!("{id} not in list -f json: {out}")
    };
    ensure!(obj["pid"].as_i64().unwrap_or(0) > 0, "pid: {obj}");
    ensure!(obj["status"] == "created", "status: {obj}");
    ensure!(obj["bundle"] == p(&b).as_str(), "bundle: {obj}");
    Ok(())
}

fn state_json(c: &Ctx) -> TestResult {
    let b = c.bundle(&config(&["sleep", "30"]))?;
    let id = c.id();
    // A relative --bundle: state must report the absolute path.
    let parent = b.parent().expect("bundle parent");
    let rel = b
        .file_name()
        .expect("bundle name")
        .to_string_lossy()
        .into_owned();
    c.rt.exec_in(&["create", "--bundle", &rel, &id], Some(parent))
        .ok()?;
    let st = c.rt.state(&id)?;
    ensure!(
        st["ociVersion"].as_str().is_some_and(|s| !s.is_empty()),
        "ociVersion: {st}"
    );
    ensure!(st["id"] == id.as_str(), "id: {st}");
    ensure!(st["status"] == "created", "status: {st}");
    ensure!(st["pid"].as_i64().unwrap_or(0) > 0, "pid: {st}");
    ensure!(
        st["bundle"] == p(&b).as_str(),
        "bundle (want {}): {st}",
        b.display()
    );
    Ok(())
}

fn spec_command(c: &Ctx) -> TestResult {
    let d = c.dir("spec")?;
    c.rt.exec_in(&["spec"], Some(&d)).ok()?;
    let cfg: Value = serde_json::from_slice(&std::fs::read(d.join("config.json"))?)?;
    ensure!(cfg["ociVersion"].is_string(), "ociVersion: {cfg}");
    ensure!(cfg["process"]["args"] == json!(["sh"]), "args: {cfg}");
    ensure!(cfg["root"]["path"] == "rootfs", "root.path: {cfg}");
    // runc: "File config.json exists. Remove it first"
    c.rt.exec_in(&["spec"], Some(&d)).failed()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// bad inputs: exit code 1, nothing left behind

fn bad_missing_bundle(c: &Ctx) -> TestResult {
    let d = c.dir("bundles")?.join("does-not-exist");
    // runc: "runc create failed: chdir <dir>: no such file or directory"
    create_fails_cleanly(c, &d)?;
    Ok(())
}

fn bad_invalid_json(c: &Ctx) -> TestResult {
    let d = c.dir("bundles")?;
    std::fs::write(d.join("config.json"), "{bad")?;
    // runc: "runc create failed: invalid character 'b' looking for beginning of object key string"
    let err = create_fails_cleanly(c, &d)?;
    if c.rt.is_hull() {
        ensure!(
            err.contains("config.json"),
            "hull stderr does not name config.json: {err}"
        );
    }
    Ok(())
}

fn bad_wrong_type(c: &Ctx) -> TestResult {
    for (field, ptr, v) in [
        ("args", "/process/args", json!("notalist")),
        ("terminal", "/process/terminal", json!("yes")),
    ] {
        let mut cfg = config(&["true"]);
        *cfg.pointer_mut(ptr).expect("field") = v;
        // runc: "runc create failed: json: cannot unmarshal string into Go struct field
        // Process.process.args of type []string"
        let err = create_fails_cleanly(c, &c.bundle(&cfg)?)?;
        ensure!(err.contains(field), "stderr does not name {field}: {err}");
        if c.rt.is_hull() {
            ensure!(
                err.contains("config.json"),
                "hull stderr does not name config.json: {err}"
            );
        }
    }
    Ok(())
}

fn bad_missing_process(c: &Ctx) -> TestResult {
    // OCI makes `process` optional for create, but runc 1.1.5 refuses at create:
    // "runc create failed: process property must not be empty".
    let mut cfg = config(&["true"]);
    cfg.as_object_mut().expect("object").remove("process");
    create_fails_cleanly(c, &c.bundle(&cfg)?)?;
    Ok(())
}

fn bad_missing_rootfs(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&c.dir("priv")?.join("no-rootfs")));
    // runc: "runc create failed: invalid rootfs: stat <path>: no such file or directory"
    create_fails_cleanly(c, &c.bundle(&cfg)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rootfs and mounts

fn rootfs_readonly(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let mut cfg = sh_config("touch /x 2>/dev/null && echo writable || echo readonly");
    cfg["root"] = json!({"path": p(&root), "readonly": true});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.trim() == "readonly", "root.readonly: {out:?}");
    ensure!(!root.join("x").exists(), "file created in read-only rootfs");
    Ok(())
}

fn mount_bind_ro(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let host = c.dir("hostdata")?;
    std::fs::write(host.join("data.txt"), "bind-ok\n")?;
    let mut cfg =
        sh_config("cat /data/data.txt; touch /data/new 2>/dev/null && echo writable || echo ro");
    cfg["root"]["path"] = json!(p(&root));
    push(
        &mut cfg,
        "/mounts",
        json!({"destination": "/data", "type": "bind", "source": p(&host), "options": ["rbind", "ro"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "bind-ok\nro\n", "bind mount: {out:?}");
    ensure!(!host.join("new").exists(), "write went through the ro bind");
    Ok(())
}

fn mount_tmpfs(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let mut cfg = sh_config(
        "grep ' /mnt ' /proc/self/mountinfo | grep -c tmpfs; echo x > /mnt/f && cat /mnt/f",
    );
    cfg["root"]["path"] = json!(p(&root));
    push(
        &mut cfg,
        "/mounts",
        json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=755", "size=1m"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "1\nx\n", "tmpfs at /mnt: {out:?}");
    ensure!(
        !root.join("mnt/f").exists(),
        "tmpfs write reached the rootfs"
    );
    Ok(())
}

fn masked_paths(c: &Ctx) -> TestResult {
    // /proc/kcore does not exist on this host: mask a file and a directory that do.
    let mut cfg = sh_config("wc -c < /proc/version; ls /proc/sys/fs | wc -l");
    push(&mut cfg, "/linux/maskedPaths", json!("/proc/version"));
    push(&mut cfg, "/linux/maskedPaths", json!("/proc/sys/fs"));
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    ensure!(lines == ["0", "0"], "masked file/dir not empty: {out:?}");
    // Without masking the same script sees content (the test means something).
    let out = c.sh("wc -c < /proc/version; ls /proc/sys/fs | wc -l")?;
    ensure!(
        !out.starts_with("0\n"),
        "unmasked /proc/version empty: {out:?}"
    );
    Ok(())
}

fn readonly_paths(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "echo x > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro; \
         touch /etc/rt-probe 2>/dev/null && echo writable || echo ro",
    );
    push(&mut cfg, "/linux/readonlyPaths", json!("/etc"));
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "ro\nro\n", "readonlyPaths writable: {out:?}");
    Ok(())
}

fn default_devices(c: &Ctx) -> TestResult {
    let out = c.sh(
        "for d in null zero full random urandom tty; do test -c /dev/$d || echo missing $d; done; \
         test -e /dev/ptmx || echo missing ptmx; \
         for l in fd stdin stdout stderr; do test -L /dev/$l || echo missing $l; done; \
         echo x > /dev/null || echo null-unwritable; \
         head -c 4 /dev/zero | wc -c",
    )?;
    ensure!(out.trim() == "4", "default devices: {out:?}");
    Ok(())
}

fn linux_devices(c: &Ctx) -> TestResult {
    let mut cfg =
        sh_config("stat -c '%F %t:%T %a' /dev/mynull; echo x > /dev/mynull && echo written");
    cfg["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                      "fileMode": 0o666, "uid": 0, "gid": 0}]);
    push(
        &mut cfg,
        "/linux/resources/devices",
        json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("character special file 1:3 666") && out.contains("written"),
        "linux.devices: {out:?}"
    );
    Ok(())
}

fn symlink_escape(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let target = format!(
        "/tmp/escape-target-{}-{}",
        std::process::id(),
        c.suite.next()
    );
    std::os::unix::fs::symlink(&target, root.join("evil"))?;
    let t2 = target.clone();
    c.on_cleanup(move || {
        let _ = std::fs::remove_dir(format!("{t2}/sub"));
        let _ = std::fs::remove_dir(&t2);
    });
    let mut cfg =
        sh_config("grep -c ' /evil/sub \\| /tmp/escape-target' /proc/self/mountinfo; true");
    cfg["root"]["path"] = json!(p(&root));
    push(
        &mut cfg,
        "/mounts",
        json!({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    let out = c.run_cfg(&cfg)?;
    let escaped = Path::new(&target).symlink_metadata().is_ok();
    ensure!(
        !escaped,
        "mount escaped the rootfs: host {target} was created"
    );
    ensure!(
        runtime_tests::util::host_mounts_mentioning(&target).is_empty(),
        "host has a mount on {target}"
    );
    // runc resolves the symlink inside the rootfs and mounts there.
    out.ok()?;
    let inside = root.join(target.trim_start_matches('/')).join("sub");
    ensure!(
        inside.is_dir(),
        "mount point not created inside rootfs at {}",
        inside.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// namespaces

fn ns_user(c: &Ctx) -> TestResult {
    let mut cfg =
        sh_config("cat /proc/self/uid_map /proc/self/gid_map; id -u; readlink /proc/self/ns/user");
    set_ns(&mut cfg, json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["uidMappings"] = map.clone();
    cfg["linux"]["gidMappings"] = map;
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(lines.len() == 4, "userns output: {out:?}");
    ensure!(lines[0] == ["0", "100000", "65536"], "uid_map: {out:?}");
    ensure!(lines[1] == ["0", "100000", "65536"], "gid_map: {out:?}");
    ensure!(lines[2] == ["0"], "uid inside: {out:?}");
    let host = std::fs::read_link("/proc/self/ns/user")?;
    ensure!(
        lines[3] != [host.to_string_lossy().as_ref()],
        "container shares the host user namespace"
    );
    Ok(())
}

fn ns_time(c: &Ctx) -> TestResult {
    let mut cfg = config(&["readlink", "/proc/self/ns/time"]);
    set_ns(&mut cfg, json!({"type": "time"}));
    let out = c.run_cfg(&cfg)?;
    if out.code != 0 && !c.rt.is_hull() && out.stderr.contains("time") {
        // runc 1.1.5: `namespace {"time" ""} does not exist` (time ns support is runc 1.2).
        skip!("runtime cannot make time namespaces: {}", out.stderr.trim());
    }
    let out = out.ok()?.stdout;
    let host = std::fs::read_link("/proc/self/ns/time")?;
    ensure!(
        out.trim().starts_with("time:[") && out.trim() != host.to_string_lossy(),
        "time ns inside {out:?}, host {host:?}"
    );
    Ok(())
}

fn ns_join_net(c: &Ctx) -> TestResult {
    let name = format!("rt-{}-{}", std::process::id(), c.suite.next());
    let st = std::process::Command::new("ip")
        .args(["netns", "add", &name])
        .status();
    if !matches!(st, Ok(s) if s.success()) {
        skip!("cannot create a network namespace with `ip netns add`: {st:?}");
    }
    let n2 = name.clone();
    c.on_cleanup(move || {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &n2])
            .status();
    });
    let path = format!("/run/netns/{name}");
    let ino = std::fs::metadata(&path)?.ino();
    let mut cfg = config(&["readlink", "/proc/self/ns/net"]);
    set_ns(&mut cfg, json!({"type": "network", "path": path}));
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.trim() == format!("net:[{ino}]"),
        "container netns {out:?}, wanted net:[{ino}]"
    );
    Ok(())
}

fn ns_join_pid(c: &Ctx) -> TestResult {
    let a = start_sleeper(c)?;
    let pid_a = c.rt.pid(&a)?;
    let mut cfg = sh_config("cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$");
    set_ns(
        &mut cfg,
        json!({"type": "pid", "path": format!("/proc/{pid_a}/ns/pid")}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.first().is_some_and(|l| l.trim() == "sleep 600"),
        "container B does not see A's init as pid 1: {out:?}"
    );
    ensure!(
        lines.get(1).is_some_and(|l| l.trim() != "1"),
        "B's shell is pid 1: {out:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// hull only

fn crash_safety_create(c: &Ctx) -> TestResult {
    for delay_ms in [0u64, 1, 2, 3, 5, 8, 13, 21, 34, 55] {
        let id = c.id();
        let marker = format!("HULL_RT_TEST={id}");
        let mut cfg = config(&["sleep", "30"]);
        push(&mut cfg, "/process/env", json!(marker));
        let b = c.bundle(&cfg)?;
        let child = c.rt.spawn(&["create", "--bundle", &p(&b), &id])?;
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = signal(child.pid(), libc::SIGKILL);
        let _ = child.wait(Duration::from_secs(30));
        let pid = c.rt.pid(&id).ok();
        let out = c.rt.delete_force(&id);
        ensure!(
            out.code == 0 || out.stderr.contains("does not exist"),
            "delay {delay_ms} ms: delete --force after killed create exited {}: {}",
            out.code,
            out.stderr.trim()
        );
        nothing_left(c, &id)?;
        if let Some(pid) = pid {
            wait_until(
                "init of half-created container to die",
                Duration::from_secs(10),
                || !pid_alive(pid),
            )?;
        }
        wait_until(
            "container processes to die",
            Duration::from_secs(10),
            || procs_with_env(&marker).is_empty(),
        )?;
        let cgroups: Vec<String> = runtime_tests::util::cgroups_matching(&id)
            .into_iter()
            .filter(|d| d.ends_with(&format!("/{id}")))
            .collect();
        ensure!(
            cgroups.is_empty(),
            "delay {delay_ms} ms: cgroups left after delete --force: {}",
            cgroups.join(", ")
        );
    }
    Ok(())
}

fn log_json_errors(c: &Ctx) -> TestResult {
    let d = c.dir("logs")?;
    let log = d.join("log.json");
    let check = |what: &str| -> TestResult {
        let text = std::fs::read_to_string(&log)?;
        let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
            fail!("{what}: log file is empty")
        };
        let v: Value = serde_json::from_str(last)
            .map_err(|e| Outcome::Fail(format!("{what}: last log line not JSON ({e}): {last}")))?;
        ensure!(v["level"] == "error", "{what}: level: {last}");
        ensure!(
            v["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: msg: {last}"
        );
        Ok(())
    };
    let id = c.id();
    let lf = p(&log);
    c.rt.exec(&["--log", &lf, "--log-format", "json", "state", &id])
        .failed()?;
    check("state of unknown id")?;
    let bad = c.dir("bundles")?;
    std::fs::write(bad.join("config.json"), "{bad")?;
    c.rt.exec(&[
        "--log",
        &lf,
        "--log-format",
        "json",
        "create",
        "--bundle",
        &p(&bad),
        &id,
    ])
    .failed()?;
    check("create with invalid config.json")?;
    Ok(())
}

/// `features` prints the runtime-spec features document engines read.
fn features_command(c: &Ctx) -> TestResult {
    let out = c.rt.exec(&["features"]).ok()?;
    let doc: Value = serde_json::from_str(&out.stdout).map_err(|e| {
        runtime_tests::Outcome::Fail(format!("features is not JSON: {e}: {}", out.stdout))
    })?;
    ensure!(doc["ociVersionMin"].is_string(), "no ociVersionMin: {doc}");
    let hooks = doc["hooks"].as_array().cloned().unwrap_or_default();
    ensure!(hooks.iter().any(|h| h == "poststart"), "hooks: {hooks:?}");
    let ns = doc["linux"]["namespaces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        ns.iter().any(|n| n == "pid") && ns.iter().any(|n| n == "mount"),
        "namespaces: {ns:?}"
    );
    let caps = doc["linux"]["capabilities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        caps.iter().any(|c| c == "CAP_SYS_ADMIN"),
        "capabilities: {caps:?}"
    );
    ensure!(doc["linux"]["seccomp"]["enabled"] == true, "seccomp: {doc}");
    Ok(())
}
