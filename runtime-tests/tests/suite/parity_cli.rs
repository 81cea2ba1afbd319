//! runc parity of the command line, hooks, seccomp and the scheduler. Each test encodes
//! what runc 1.1.5 does (or crun, where runc 1.1.5 lacks the behaviour: then the test
//! skips on runc and names its version).

use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{guard, procs_with_env, wait_until};
use runtime_tests::{ensure, fail, skip, Outcome, TestResult};
use serde_json::{json, Value};

use super::security::{
    add_mount, hook, p, read_json, recording_hook, recv_with_fd, seccomp, write_script, ALLOWED,
};

pub const TESTS: &[Test] = &[
    // hooks
    t(
        "pc_hooks_create_container_cwd",
        Kind::Oci,
        hooks_create_container_cwd,
    ),
    t(
        "pc_hooks_start_container_env",
        Kind::Oci,
        hooks_start_container_env,
    ),
    t(
        "pc_hooks_start_container_seccomp",
        Kind::Oci,
        hooks_start_container_seccomp,
    ),
    t("pc_hooks_prestart_status", Kind::Oci, hooks_prestart_status),
    t(
        "pc_hooks_poststart_failure",
        Kind::Oci,
        hooks_poststart_failure,
    ),
    t(
        "pc_hooks_poststop_failure",
        Kind::Oci,
        hooks_poststop_failure,
    ),
    t(
        "pc_hooks_poststop_all_run",
        Kind::Oci,
        hooks_poststop_all_run,
    ),
    // seccomp
    t("pc_seccomp_enosys_stub", Kind::Oci, seccomp_enosys_stub),
    t(
        "pc_seccomp_notify_during_create",
        Kind::Oci,
        seccomp_notify_during_create,
    ),
    // scheduler
    t("pc_sched_fifo", Kind::Oci, sched_fifo),
    t("pc_sched_flags_spelling", Kind::Oci, sched_flags_spelling),
    // command line
    t("pc_version", Kind::Oci, version),
    t("pc_json_key_order", Kind::Oci, json_key_order),
    t("pc_error_wording", Kind::Oci, error_wording),
    t("pc_log_unopenable", Kind::Oci, log_unopenable),
    t("pc_oci_version", Kind::Oci, oci_version),
    t("pc_closed_stdout", Kind::Oci, closed_stdout),
];

// ---------------------------------------------------------------------------------------
// helpers

/// runc lacks `what` (in every version up to the one installed): skip, naming it.
fn skip_on_runc(c: &Ctx, what: &str) -> TestResult {
    if c.rt.is_hull() {
        return Ok(());
    }
    let out = c.rt.exec(&["--version"]).stdout;
    if let Some(v) = out.lines().find_map(|l| l.strip_prefix("runc version ")) {
        skip!("runc {v} {what}");
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, Outcome> {
    std::fs::read_to_string(path).map_err(|e| Outcome::Fail(format!("{}: {e}", path.display())))
}

fn push_env(cfg: &mut Value, kv: &str) {
    cfg["process"]["env"]
        .as_array_mut()
        .expect("process.env")
        .push(json!(kv));
}

/// The container is unknown to the runtime and no process carries `marker` in its env.
fn destroyed(c: &Ctx, id: &str, marker: &str) -> TestResult {
    ensure!(
        c.rt.is_gone(id),
        "container {id} still exists: {}",
        c.rt.exec(&["state", id]).stdout
    );
    wait_until(
        "the container's processes to die",
        Duration::from_secs(10),
        || procs_with_env(marker).is_empty(),
    )
}

/// The keys of a JSON object, in document order.
fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// hooks

/// createContainer hooks run in the rootfs directory (runc chdirs there), so paths
/// relative to the rootfs work; like every hook the init runs, one that lists no env
/// gets process.env.
fn hooks_create_container_cwd(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    std::fs::write(root.join("etc/pc-marker"), "in-the-rootfs\n")?;
    let dir = c.dir("hooks")?;
    let script = dir.join("cc.sh");
    write_script(
        &script,
        &format!(
            "pwd > '{0}/cwd'; cat etc/pc-marker > '{0}/marker'; env > '{0}/env'",
            p(&dir)
        ),
    )?;
    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&root));
    push_env(&mut cfg, "PC_FROM=process-env");
    cfg["hooks"] = json!({"createContainer": [hook(&script, &[])]});
    c.run_cfg(&cfg)?.ok()?;
    let cwd = read(&dir.join("cwd"))?;
    ensure!(
        Path::new(cwd.trim()) == root.canonicalize()?,
        "createContainer cwd {cwd:?}, want the rootfs {}",
        root.display()
    );
    let marker = read(&dir.join("marker"))?;
    ensure!(marker == "in-the-rootfs\n", "etc/pc-marker: {marker:?}");
    let env = read(&dir.join("env"))?;
    ensure!(
        env.lines().any(|l| l == "PC_FROM=process-env"),
        "createContainer env lacks process.env: {env:?}"
    );
    Ok(())
}

/// A startContainer hook without `env` gets process.env (runc's init has made it its
/// own), not the runtime's environment.
fn hooks_start_container_env(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    write_script(&dir.join("start.sh"), "env > /hooks/env")?;
    let mut cfg = config(&["true"]);
    push_env(&mut cfg, "PC_FROM=process-env");
    cfg["hooks"] = json!({"startContainer": [{"path": "/hooks/start.sh"}]});
    add_mount(
        &mut cfg,
        json!({"destination": "/hooks", "type": "bind", "source": p(&dir), "options": ["rbind"]}),
    );
    c.run_cfg(&cfg)?.ok()?;
    let env = read(&dir.join("env"))?;
    ensure!(
        env.lines().any(|l| l == "PC_FROM=process-env"),
        "startContainer env lacks process.env: {env:?}"
    );
    let path = cfg["process"]["env"][0].as_str().unwrap_or_default();
    ensure!(
        env.lines().any(|l| l == path),
        "startContainer PATH is not process.env's {path}: {env:?}"
    );
    Ok(())
}

/// runc loads the seccomp filter before it runs startContainer hooks: the hooks run
/// under it.
fn hooks_start_container_seccomp(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    write_script(
        &dir.join("start.sh"),
        "mkdir /hooks/made 2> /hooks/err; echo $? > /hooks/rc",
    )?;
    let mut cfg = config(&["true"]);
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]),
    );
    cfg["hooks"] = json!({"startContainer": [{"path": "/hooks/start.sh"}]});
    add_mount(
        &mut cfg,
        json!({"destination": "/hooks", "type": "bind", "source": p(&dir), "options": ["rbind"]}),
    );
    c.run_cfg(&cfg)?.ok()?;
    let (rc, err) = (read(&dir.join("rc"))?, read(&dir.join("err"))?);
    ensure!(
        !dir.join("made").exists() && rc.trim() != "0",
        "mkdir in the startContainer hook was not filtered: rc {rc:?}"
    );
    ensure!(
        err.contains("not supported"),
        "mkdir should fail with EOPNOTSUPP (95): {err:?}"
    );
    Ok(())
}

/// prestart hooks run once the runtime environment exists: crun reports "created".
fn hooks_prestart_status(c: &Ctx) -> TestResult {
    skip_on_runc(
        c,
        "reports \"creating\" to prestart hooks (crun: \"created\")",
    )?;
    let dir = c.dir("hooks")?;
    let mut cfg = config(&["true"]);
    cfg["hooks"] = json!({"prestart": [recording_hook(&dir, "prestart")?]});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.run(&id, &b).ok()?;
    let st = read_json(&dir.join("prestart.json"))?;
    ensure!(st["status"] == "created", "prestart state: {st}");
    ensure!(st["id"] == id.as_str(), "prestart state: {st}");
    ensure!(st["pid"].as_i64().unwrap_or(0) > 0, "prestart state: {st}");
    Ok(())
}

/// A failing poststart hook fails the command that ran it and destroys the container
/// (runc runs poststart hooks in `create` and `run`, hull in `start` and `run`).
fn hooks_poststart_failure(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    let failing = dir.join("fail.sh");
    write_script(&failing, "echo poststart-says-no >&2; exit 3")?;
    let marker = format!("PC_POSTSTART={}-{}", std::process::id(), c.suite.next());
    let mut cfg = config(&["sleep", "30"]);
    push_env(&mut cfg, &marker);
    cfg["hooks"] = json!({"poststart": [hook(&failing, &[])]});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.exec(&["run", "--detach", "--bundle", &p(&b), &id])
        .code(1)?;
    destroyed(c, &id, &marker)?;
    let id = c.id();
    let created = c.rt.create(&id, &b);
    if created.code == 0 {
        c.rt.start(&id).code(1)?;
    } else {
        created.code(1)?;
    }
    destroyed(c, &id, &marker)
}

/// A failing poststop hook does not keep a container alive: `delete` and
/// `delete --force` succeed and the container is gone.
fn hooks_poststop_failure(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    let failing = dir.join("fail.sh");
    write_script(&failing, "echo poststop-says-no >&2; exit 3")?;
    let mut cfg = config(&["sleep", "30"]);
    cfg["hooks"] = json!({"poststop": [hook(&failing, &[])]});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    ensure!(c.rt.is_gone(&id), "{id} still exists after delete");
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    c.rt.start(&id).ok()?;
    c.rt.delete_force(&id).ok()?;
    ensure!(c.rt.is_gone(&id), "{id} still exists after delete --force");
    Ok(())
}

/// Runtime spec: a failing poststop hook is a warning, and the remaining hooks run.
fn hooks_poststop_all_run(c: &Ctx) -> TestResult {
    skip_on_runc(c, "stops at the first failing poststop hook")?;
    let dir = c.dir("hooks")?;
    let failing = dir.join("fail.sh");
    write_script(&failing, "exit 3")?;
    let mut cfg = config(&["true"]);
    cfg["hooks"] = json!({"poststop": [hook(&failing, &[]), recording_hook(&dir, "second")?]});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let out = c.rt.delete(&id).ok()?;
    ensure!(
        out.stderr.contains("warning") && out.stderr.contains("poststop"),
        "no warning about the failing poststop hook: {}",
        out.stderr
    );
    ensure!(
        dir.join("second.json").exists(),
        "the poststop hook after the failing one did not run"
    );
    ensure!(c.rt.is_gone(&id), "{id} still exists after delete");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// seccomp

/// Syscalls of `ALLOWED` numbered at or above unshare (272 on x86_64), or unknown.
const NEWER_THAN_UNSHARE: &[&str] = &[
    "close_range",
    "statx",
    "faccessat2",
    "pipe2",
    "dup3",
    "clone3",
    "execveat",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "epoll_create1",
    "epoll_pwait",
    "seccomp",
    "renameat2",
    "openat2",
    "newuname",
];

/// With a refusing default action, a syscall numbered above every syscall the profile
/// names is one the profile cannot know: runc's stub answers ENOSYS (glibc's clone3 ->
/// clone fallback needs it), while a known but unlisted syscall gets the default errno.
fn seccomp_enosys_stub(c: &Ctx) -> TestResult {
    if std::env::consts::ARCH != "x86_64" {
        skip!("the syscall numbers of this test are x86_64's");
    }
    let names: Vec<&str> = ALLOWED
        .iter()
        .copied()
        .filter(|n| !NEWER_THAN_UNSHARE.contains(n))
        .collect();
    let mut cfg = sh_config("unshare -m true 2>&1; echo rc=$?; mkdir /tmp/pc-d 2>&1; echo rc=$?");
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ERRNO",
        json!([{"names": names, "action": "SCMP_ACT_ALLOW"}]),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let lines: Vec<&str> = out.lines().collect();
    ensure!(
        lines.len() == 4 && lines[0].contains("Function not implemented"),
        "unshare (newer than the profile) should get ENOSYS: {out:?}"
    );
    ensure!(
        lines[2].contains("Operation not permitted"),
        "mkdir (known, not allowed) should get the default EPERM: {out:?}"
    );
    Ok(())
}

/// With SCMP_ACT_NOTIFY the listener fd reaches listenerPath during `create`: an agent
/// may wait for it before anyone calls `start`.
fn seccomp_notify_during_create(c: &Ctx) -> TestResult {
    let dir = c.dir("agent")?;
    let sock_path = dir.join("agent.sock");
    let listener = UnixListener::bind(&sock_path)?;
    listener.set_nonblocking(true)?;
    let (tx, rx) = mpsc::channel();
    // The agent: take the notify fd and close it (notified syscalls then fail).
    std::thread::spawn(move || {
        let got = (|| -> Result<Value, String> {
            let start = Instant::now();
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(_) if start.elapsed() < Duration::from_secs(30) => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(e) => return Err(format!("no connection from the runtime: {e}")),
                }
            };
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(guard(Duration::from_secs(30))))
                .map_err(|e| e.to_string())?;
            let (data, fd) = recv_with_fd(&stream).map_err(|e| format!("recvmsg: {e}"))?;
            if fd < 0 {
                return Err("the message carried no fd".into());
            }
            // SAFETY: fd is ours (received with SCM_RIGHTS) and closed once.
            unsafe { libc::close(fd) };
            serde_json::from_slice(&data).map_err(|e| e.to_string())
        })();
        let _ = tx.send(got);
    });
    let mut cfg = sh_config("mkdir /dev/shm/d 2>&1; echo rc=$?");
    let mut s = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]),
    );
    s["listenerPath"] = json!(p(&sock_path));
    cfg["linux"]["seccomp"] = s;
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let created = c.rt.create(&id, &b).ok()?;
    // `create` has returned and nobody has called `start`: the agent has its fd (the
    // bound only guards against a runtime that sends it at `start`, or never).
    let msg = match rx.recv_timeout(guard(Duration::from_secs(20))) {
        Ok(Ok(msg)) => msg,
        Ok(Err(e)) => fail!("seccomp agent: {e}"),
        Err(_) => fail!("the agent got no notify fd during create (sent only at start?)"),
    };
    ensure!(msg["state"]["id"] == id.as_str(), "agent message: {msg}");
    c.rt.start(&id).ok()?;
    c.rt.wait_status(&id, "stopped")?;
    let out = read(&created.stdout_path)?;
    ensure!(
        out.contains("rc=1"),
        "mkdir should fail once the agent closed the fd: {out:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// scheduler

/// SCHED_FIFO works although a new cpu cgroup has no realtime budget (cgroup v1 with
/// realtime group scheduling, as on this host).
fn sched_fifo(c: &Ctx) -> TestResult {
    skip_on_runc(c, "ignores process.scheduler (it came with runc 1.2)")?;
    let own = std::fs::read_to_string("/proc/self/cgroup")?
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == "cpu")
                .then(|| path.to_string())
        });
    if let Some(own) = own {
        let file = format!("/sys/fs/cgroup/cpu{own}/cpu.rt_runtime_us");
        if let Ok(v) = std::fs::read_to_string(&file) {
            if v.trim() == "0" {
                skip!("no realtime budget to share: {file} is 0");
            }
        }
    }
    let mut cfg = sh_config("grep -E '^(policy|prio) ' /proc/$$/sched");
    cfg["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let value = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().last())
            .map(str::to_owned)
    };
    // /proc/PID/sched: policy 1 is SCHED_FIFO; prio is 99 - priority.
    ensure!(
        value("policy").as_deref() == Some("1") && value("prio").as_deref() == Some("89"),
        "SCHED_FIFO priority 10: {out:?}"
    );
    Ok(())
}

/// process.scheduler.flags as the runtime spec spells them (SCHED_FLAG_RESET_ON_FORK):
/// a negative nice is not inherited by children.
fn sched_flags_spelling(c: &Ctx) -> TestResult {
    skip_on_runc(c, "ignores process.scheduler (it came with runc 1.2)")?;
    // Field 19 of /proc/PID/stat is the nice value; `true` keeps sh from exec'ing the
    // second cut (which would then be sh itself).
    let mut cfg = sh_config("cut -d' ' -f19 /proc/$$/stat; cut -d' ' -f19 /proc/self/stat; true");
    cfg["process"]["scheduler"] = json!({
        "policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]
    });
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out == "-5\n0\n",
        "nice -5 with reset-on-fork (shell, then a child): {out:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// command line

/// `--version` and `-v` print runc's shape, which dockerd parses for `docker info`.
fn version(c: &Ctx) -> TestResult {
    for flag in ["--version", "-v"] {
        let out = c.rt.exec(&[flag]).ok()?.stdout;
        let lines: Vec<&str> = out.lines().collect();
        let first = lines.first().copied().unwrap_or("");
        let (name, ver) = first.split_once(" version ").unwrap_or(("", ""));
        ensure!(
            !name.is_empty() && !ver.trim().is_empty(),
            "{flag}: first line {first:?}"
        );
        let has = |prefix: &str| {
            lines
                .iter()
                .any(|l| l.strip_prefix(prefix).is_some_and(|v| !v.trim().is_empty()))
        };
        ensure!(has("commit: "), "{flag}: no commit line: {out:?}");
        ensure!(has("spec: 1."), "{flag}: no spec 1.x line: {out:?}");
        ensure!(has("libseccomp: "), "{flag}: no libseccomp line: {out:?}");
    }
    Ok(())
}

/// `state`, `list -f json` and `events --stats` print runc's keys in runc's order;
/// `list` names the owner, `state` leaves it empty (as runc does).
fn json_key_order(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sleep", "30"]);
    cfg["annotations"] = json!({"pc.key": "pc-value"});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let order = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "annotations",
        "owner",
    ];
    let st = c.rt.state(&id)?;
    ensure!(keys(&st) == order, "state keys: {:?}", keys(&st));
    ensure!(st["owner"] == "", "state owner: {st}");
    let list: Value = serde_json::from_str(&c.rt.exec(&["list", "-f", "json"]).ok()?.stdout)?;
    let Some(entry) = list
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()))
    else {
        fail!("{id} not in list -f json: {list}")
    };
    ensure!(keys(entry) == order, "list keys: {:?}", keys(entry));
    ensure!(entry["owner"] == "root", "list owner: {entry}");
    let events = c.rt.exec(&["events", "--stats", &id]).ok()?.stdout;
    let ev: Value = serde_json::from_str(events.lines().next().unwrap_or(""))?;
    ensure!(
        keys(&ev) == ["type", "id", "data"],
        "events keys: {:?}",
        keys(&ev)
    );
    ensure!(
        keys(&ev["data"]).first() == Some(&"cpu"),
        "events data keys: {:?}",
        keys(&ev["data"])
    );
    Ok(())
}

/// An error line says "error"; a program that cannot be run is reported in runc's
/// words, which Docker's CLI maps to exit codes 127 and 126.
fn error_wording(c: &Ctx) -> TestResult {
    let d = c.dir("logs")?;
    for (i, (arg, want)) in [
        (
            "pc-nosuch",
            r#"exec: "pc-nosuch": executable file not found in $PATH"#,
        ),
        (
            "/pc/nosuch",
            r#"exec: "/pc/nosuch": stat /pc/nosuch: no such file or directory"#,
        ),
        ("/etc", r#"exec: "/etc": permission denied"#),
    ]
    .into_iter()
    .enumerate()
    {
        let b = c.bundle(&config(&[arg]))?;
        let id = c.id();
        let out = c.rt.run(&id, &b).code(1)?;
        // runc's text log quotes the program as \"pc-nosuch\": compare what follows it.
        let tail = want.rsplit_once("\": ").map_or(want, |(_, t)| t);
        ensure!(
            out.stderr.contains("error") && out.stderr.contains(tail),
            "{arg}: stderr: {}",
            out.stderr
        );
        ensure!(c.rt.is_gone(&id), "{id} left after a failed run");
        let log = d.join(format!("{i}.json"));
        let id = c.id();
        c.rt.exec(&[
            "--log",
            &p(&log),
            "--log-format",
            "json",
            "run",
            "--bundle",
            &p(&b),
            &id,
        ])
        .code(1)?;
        let text = read(&log)?;
        let last = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let rec: Value = serde_json::from_str(last)?;
        ensure!(
            rec["level"] == "error" && rec["msg"].as_str().is_some_and(|m| m.contains(want)),
            "{arg}: last log record: {last}"
        );
    }
    Ok(())
}

/// A --log file that cannot be opened is an error, exit 1.
fn log_unopenable(c: &Ctx) -> TestResult {
    let log = c.dir("logs")?.join("no/such/dir/log.json");
    let out = c.rt.exec(&["--log", &p(&log), "list"]).code(1)?;
    ensure!(
        out.stderr.contains(&p(&log)),
        "the error does not name the log file: {}",
        out.stderr
    );
    Ok(())
}

/// A config without ociVersion, or of another major version, is refused (crun 1.8.1:
/// "unknown version specified").
fn oci_version(c: &Ctx) -> TestResult {
    skip_on_runc(c, "accepts any ociVersion")?;
    for version in [Some("2.0.0"), None] {
        let mut cfg = config(&["true"]);
        match version {
            Some(v) => cfg["ociVersion"] = json!(v),
            None => {
                cfg.as_object_mut().expect("object").remove("ociVersion");
            }
        }
        let b = c.bundle(&cfg)?;
        let id = c.id();
        let out = c.rt.create(&id, &b).code(1)?;
        ensure!(
            out.stderr.contains("ociVersion") && out.stderr.trim().lines().count() == 1,
            "{version:?}: stderr: {}",
            out.stderr
        );
        ensure!(c.rt.is_gone(&id), "{id} exists after a refused create");
    }
    Ok(())
}

/// A reader that went away (`state ID | head -1`) ends the runtime quietly, as it
/// ends every Unix tool: exit 0 or killed by SIGPIPE, no panic, nothing on stderr.
fn closed_stdout(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["sleep", "30"]))?;
    let commands: [&[&str]; 9] = [
        &["state", &id],
        &["list"],
        &["list", "-q"],
        &["list", "-f", "json"],
        &["ps", &id],
        &["ps", "-f", "json", &id],
        &["events", "--stats", &id],
        &["features"],
        &["--version"],
    ];
    for args in commands {
        // runc's `list` fails when another test deletes a container while
        // it reads the root (as in `list` of suite.rs): try that again.
        let mut tries = 0;
        let (code, stderr) = loop {
            let (reader, writer) = std::io::pipe()?;
            drop(reader);
            let out = Command::new(&c.rt.bin)
                .arg("--root")
                .arg(&c.rt.root)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::from(writer))
                .stderr(Stdio::piped())
                .output()?;
            let code = out
                .status
                .code()
                .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            tries += 1;
            let raced = !c.rt.is_hull()
                && (stderr.contains("no such file or directory")
                    || stderr.contains("does not exist"));
            if !raced || tries >= 20 {
                break (code, stderr);
            }
        };
        ensure!(
            (code == 0 || code == 128 + libc::SIGPIPE) && stderr.trim().is_empty(),
            "{args:?} to a closed pipe: exit {code}, stderr {stderr:?}"
        );
    }
    Ok(())
}
