//! `exec`: a new process in a running container, as containerd's shim and
//! `docker exec` use it. All runc-compatible.

use std::path::Path;

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{pid_alive, wait_until};
use runtime_tests::{ensure, TestResult};
use serde_json::json;

pub const TESTS: &[Test] = &[
    t("exec_joins_namespaces", Kind::Oci, exec_joins_namespaces),
    t("exec_exit_code", Kind::Oci, exec_exit_code),
    t("exec_process_json", Kind::Oci, exec_process_json),
    t("exec_overrides", Kind::Oci, exec_overrides),
    t("exec_detach_pid_file", Kind::Oci, exec_detach_pid_file),
    t("exec_errors", Kind::Oci, exec_errors),
    t("exec_container_seccomp", Kind::Oci, exec_container_seccomp),
    t("session_keyring", Kind::Oci, session_keyring),
];

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A running container whose init sleeps; returns its id.
fn running(c: &Ctx) -> Result<String, runtime_tests::Outcome> {
    let (id, _) = c.start_cfg(&config(&["sleep", "60"]))?;
    Ok(id)
}

/// `exec ID sh -c SCRIPT`.
fn exec_sh(c: &Ctx, id: &str, script: &str) -> runtime_tests::runtime::Output {
    c.rt.exec(&["exec", id, "sh", "-c", script])
}

fn exec_joins_namespaces(c: &Ctx) -> TestResult {
    let id = running(c)?;
    let out = exec_sh(
        c,
        &id,
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'",
    )
    .ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.first() == Some(&"hull-test"),
        "hostname in exec: {}",
        out.stdout
    );
    ensure!(
        lines.get(1).is_some_and(|l| l.trim() == "sleep 60"),
        "pid 1 is not the init: {}",
        out.stdout
    );
    let procs: usize = lines
        .get(2)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(99);
    ensure!(
        procs <= 5,
        "exec sees host processes ({procs}): {}",
        out.stdout
    );
    // The exec'd process does not change the container's state.
    ensure!(c.rt.status(&id)? == "running", "state after exec");
    Ok(())
}

fn exec_exit_code(c: &Ctx) -> TestResult {
    let id = running(c)?;
    exec_sh(c, &id, "exit 5").code(5)?;
    c.rt.exec(&["exec", &id, "true"]).ok()?;
    Ok(())
}

fn exec_process_json(c: &Ctx) -> TestResult {
    let id = running(c)?;
    let dir = c.dir("proc")?;
    let file = dir.join("process.json");
    let process = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000},
        "args": ["sh", "-c", "echo $GREETING; pwd; id -u; id -g"],
        "env": ["PATH=/bin:/usr/bin", "GREETING=hi-from-process-json"],
        "cwd": "/tmp"
    });
    std::fs::write(&file, serde_json::to_vec(&process)?)?;
    let out = c.rt.exec(&["exec", "--process", &p(&file), &id]).ok()?;
    let want = "hi-from-process-json\n/tmp\n1000\n1000\n";
    ensure!(
        out.stdout == want,
        "exec --process printed {:?}, want {want:?}",
        out.stdout
    );
    Ok(())
}

fn exec_overrides(c: &Ctx) -> TestResult {
    let id = running(c)?;
    let out =
        c.rt.exec(&[
            "exec",
            "--env",
            "EXTRA=yes",
            "--cwd",
            "/tmp",
            "--user",
            "1000:100",
            &id,
            "sh",
            "-c",
            "echo $EXTRA; pwd; id -u; id -g",
        ])
        .ok()?;
    ensure!(
        out.stdout == "yes\n/tmp\n1000\n100\n",
        "exec overrides: {:?}",
        out.stdout
    );
    Ok(())
}

fn exec_detach_pid_file(c: &Ctx) -> TestResult {
    let id = running(c)?;
    let pid_file = c.dir("pid")?.join("exec.pid");
    c.rt.exec(&[
        "exec",
        "--detach",
        "--pid-file",
        &p(&pid_file),
        &id,
        "sleep",
        "30",
    ])
    .ok()?;
    let pid: i32 = std::fs::read_to_string(&pid_file)?
        .trim()
        .parse()
        .unwrap_or(0);
    ensure!(
        pid > 0 && pid_alive(pid),
        "detached exec process {pid} not alive"
    );
    // It lives in the container: killing the container ends it too.
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    wait_until(
        "the exec'd process to end with its container",
        std::time::Duration::from_secs(10),
        || !pid_alive(pid),
    )
}

fn exec_errors(c: &Ctx) -> TestResult {
    c.rt.exec(&["exec", "no-such-container-id", "true"])
        .failed()?
        .stderr_has("does not exist")?;
    let id = running(c)?;
    c.rt.exec(&["exec", &id, "/no/such/program"]).failed()?;
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.exec(&["exec", &id, "true"])
        .failed()?
        .stderr_has("stopped")?;
    Ok(())
}

/// An exec'd process runs under the container's seccomp profile, as the init does.
fn exec_container_seccomp(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sleep", "60"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (id, _) = c.start_cfg(&cfg)?;
    let out = exec_sh(
        c,
        &id,
        "grep ^Seccomp: /proc/self/status; mkdir /tmp/blocked && echo made",
    )
    .failed()?;
    ensure!(
        out.stdout.contains("Seccomp:\t2"),
        "exec'd process has no seccomp filter: {:?}",
        out.stdout
    );
    ensure!(
        !out.stdout.contains("made"),
        "mkdir was not blocked in the exec'd process"
    );
    Ok(())
}

/// Keys are not namespaced: the init gets a session keyring of its own,
/// `_ses.<id>` (runc's name), which exec'd processes join; with
/// --no-new-keyring the caller's stays. /proc/keys shows the keyrings a
/// process possesses.
fn session_keyring(c: &Ctx) -> TestResult {
    let unmasked = |args: &[&str]| {
        let mut cfg = config(args);
        cfg["linux"]["maskedPaths"]
            .as_array_mut()
            .expect("maskedPaths")
            .retain(|m| m != "/proc/keys");
        cfg
    };
    let b = c.bundle(&unmasked(&["sleep", "60"]))?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    c.rt.start(&id).ok()?;
    let own = format!("_ses.{id}:");
    let keys = c.rt.exec(&["exec", &id, "cat", "/proc/keys"]).ok()?.stdout;
    ensure!(keys.contains(&own), "exec does not hold {own}: {keys}");

    let kept = c.id();
    let b = c.bundle(&unmasked(&["cat", "/proc/keys"]))?;
    let out =
        c.rt.exec(&["run", "--no-new-keyring", "--bundle", &p(&b), &kept])
            .ok()?
            .stdout;
    let own = format!("_ses.{kept}:");
    ensure!(
        !out.contains(&own),
        "--no-new-keyring made a keyring: {out}"
    );
    Ok(())
}
