//! Process setup as runc 1.1.5 does it: the environment (HOME), the cwd,
//! loopback, exec's options and exit status, fds passed on, terminals.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::Output;
use runtime_tests::util::{guard, procs_with_env, wait_file_contains, wait_until};
use runtime_tests::{ensure, fail, skip, Outcome, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("pp_home_from_passwd", Kind::Oci, home_from_passwd),
    t("pp_env_later_entry_wins", Kind::Oci, env_later_entry_wins),
    t("pp_cwd_entered_as_root", Kind::Oci, cwd_entered_as_root),
    t("pp_loopback_up", Kind::Oci, loopback_up),
    t("pp_run_subreaper", Kind::Oci, run_subreaper),
    t("pp_exec_cap_prefix", Kind::Oci, exec_cap_prefix),
    t(
        "pp_exec_process_json_no_user",
        Kind::Oci,
        exec_process_json_no_user,
    ),
    t("pp_exec_ignore_paused", Kind::Oci, exec_ignore_paused),
    t("pp_exec_sub_cgroup", Kind::Oci, exec_sub_cgroup),
    t("pp_exec_failure_exit_255", Kind::Oci, exec_failure_exit_255),
    t(
        "pp_preserve_fds_create_run",
        Kind::Oci,
        preserve_fds_create_run,
    ),
    t("pp_listen_fds", Kind::Oci, listen_fds),
    t(
        "pp_preserve_fds_must_be_open",
        Kind::HullOnly,
        preserve_fds_must_be_open,
    ),
    t("pp_stdio_owned_by_user", Kind::Oci, stdio_owned_by_user),
    t("pp_terminal_owner_onlcr", Kind::Oci, terminal_owner_onlcr),
    t(
        "pp_exec_terminal_owner_onlcr",
        Kind::Oci,
        exec_terminal_owner_onlcr,
    ),
];

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A running `sleep` container made from `cfg`; returns its id.
fn running(c: &Ctx, mut cfg: Value) -> Result<String, Outcome> {
    cfg["process"]["args"] = json!(["sleep", "600"]);
    Ok(c.start_cfg(&cfg)?.0)
}

/// A private rootfs with an /etc/passwd (uid 42 is alice, home /home/alice).
fn rootfs_with_passwd(c: &Ctx) -> Result<PathBuf, Outcome> {
    let root = c.private_rootfs()?;
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nalice:x:42:42:Alice:/home/alice:/bin/sh\n",
    )?;
    Ok(root)
}

/// The NUL-separated environment a process printed with `cat /proc/self/environ`.
fn env_of(out: &str) -> Vec<String> {
    out.split('\0')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

fn values<'a>(env: &'a [String], name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}=");
    env.iter()
        .filter_map(|e| e.strip_prefix(prefix.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// 1. HOME

/// Without HOME in process.env, HOME is the passwd home of the process's uid, or `/`
/// (no entry, or no /etc/passwd); a HOME in process.env is kept. Same for exec.
fn home_from_passwd(c: &Ctx) -> TestResult {
    let root = rootfs_with_passwd(c)?;
    let with_passwd = |uid: u32, env: &[&str]| {
        let mut cfg = sh_config("echo HOME=$HOME");
        cfg["root"]["path"] = json!(p(&root));
        cfg["process"]["user"] = json!({"uid": uid, "gid": uid});
        for e in env {
            cfg["process"]["env"]
                .as_array_mut()
                .expect("env")
                .push(json!(e));
        }
        cfg
    };
    for (cfg, want) in [
        (with_passwd(0, &[]), "/root"),
        (with_passwd(42, &[]), "/home/alice"),
        (with_passwd(77, &[]), "/"),
        (with_passwd(42, &["HOME=/mine"]), "/mine"),
        (with_passwd(42, &["HOME="]), "/home/alice"),
        // The shared rootfs has no /etc/passwd at all.
        (sh_config("echo HOME=$HOME"), "/"),
    ] {
        let out = c.run_cfg(&cfg)?.ok()?;
        ensure!(
            out.stdout.trim() == format!("HOME={want}"),
            "uid {} env {}: got {:?}, want HOME={want}",
            cfg["process"]["user"]["uid"],
            cfg["process"]["env"],
            out.stdout
        );
    }

    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&root));
    let id = running(c, cfg)?;
    let out =
        c.rt.exec(&["exec", "--user", "42", &id, "sh", "-c", "echo $HOME"]);
    ensure!(
        out.clone().ok()?.stdout.trim() == "/home/alice",
        "exec --user 42: HOME {:?}",
        out.stdout
    );
    let file = c.dir("proc")?.join("process.json");
    let process = json!({
        "user": {"uid": 42, "gid": 42},
        "args": ["/bin/sh", "-c", "echo $HOME"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    std::fs::write(&file, serde_json::to_vec(&process)?)?;
    let out = c.rt.exec(&["exec", "--process", &p(&file), &id]).ok()?;
    ensure!(
        out.stdout.trim() == "/home/alice",
        "exec --process (uid 42, no HOME): HOME {:?}",
        out.stdout
    );
    Ok(())
}

/// process.env is applied in order: a later NAME=V replaces an earlier one (runc sets
/// each with os.Setenv). exec's `--env` comes after the spec's, so it wins.
fn env_later_entry_wins(c: &Ctx) -> TestResult {
    let mut cfg = config(&["cat", "/proc/self/environ"]);
    let env = cfg["process"]["env"].as_array_mut().expect("env");
    for e in ["A=1", "B=2", "A=3"] {
        env.push(json!(e));
    }
    let out = c.run_cfg(&cfg)?.ok()?;
    let env = env_of(&out.stdout);
    ensure!(
        values(&env, "A") == ["3"] && values(&env, "B") == ["2"],
        "init environment: {env:?}"
    );

    let mut cfg = config(&["true"]);
    cfg["process"]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!("FOO=spec"));
    let id = running(c, cfg)?;
    let out =
        c.rt.exec(&["exec", "--env", "FOO=cli", &id, "cat", "/proc/self/environ"])
            .ok()?;
    let env = env_of(&out.stdout);
    ensure!(
        values(&env, "FOO") == ["cli"],
        "exec --env FOO=cli: FOO is {:?} in {env:?}",
        values(&env, "FOO")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. cwd

/// process.cwd is entered while still root: a 0700 root-owned directory works as the
/// cwd of a process that runs as uid 42 (which then cannot list it).
fn cwd_entered_as_root(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let secret = root.join("secret");
    std::fs::create_dir(&secret)?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700))?;
    let mut cfg = sh_config("pwd; id -u; ls . >/dev/null 2>&1 || echo cannot-list");
    cfg["root"]["path"] = json!(p(&root));
    cfg["process"]["user"] = json!({"uid": 42, "gid": 42});
    cfg["process"]["cwd"] = json!("/secret");
    let out = c.run_cfg(&cfg)?.ok()?;
    ensure!(
        out.stdout == "/secret\n42\ncannot-list\n",
        "run with cwd /secret as uid 42: {:?}",
        out.stdout
    );

    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&root));
    let id = running(c, cfg)?;
    let out =
        c.rt.exec(&["exec", "--user", "42", "--cwd", "/secret", &id, "pwd"])
            .ok()?;
    ensure!(
        out.stdout == "/secret\n",
        "exec --cwd /secret as uid 42: {:?}",
        out.stdout
    );
    // A cwd that cannot be entered at all is still an error.
    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&root));
    std::fs::write(root.join("afile"), "")?;
    cfg["process"]["cwd"] = json!("/afile");
    c.run_cfg(&cfg)?.failed()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. loopback

/// A new network namespace has `lo` up (IFF_UP in its flags).
fn loopback_up(c: &Ctx) -> TestResult {
    let out = c.sh("cat /sys/class/net/lo/flags")?;
    let flags = out.trim();
    let bits = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0);
    ensure!(bits & 1 == 1, "lo is down in a new netns: flags {flags:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 4. exec

/// `--cap CAP_NET_RAW` (runc's form, with the prefix) adds the capability.
fn exec_cap_prefix(c: &Ctx) -> TestResult {
    let id = running(c, config(&["true"]))?;
    let out =
        c.rt.exec(&[
            "exec",
            "--cap",
            "CAP_NET_RAW",
            &id,
            "grep",
            "CapEff",
            "/proc/self/status",
        ])
        .ok()?;
    let hex = out.stdout.split_whitespace().nth(1).unwrap_or("");
    let eff = u64::from_str_radix(hex, 16).unwrap_or(0);
    ensure!(
        eff & (1 << 13) != 0,
        "CAP_NET_RAW not effective: {:?}",
        out.stdout
    );
    Ok(())
}

/// A process.json without "user" runs as uid 0, gid 0.
fn exec_process_json_no_user(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let id = running(c, cfg)?;
    let file = c.dir("proc")?.join("process.json");
    let process = json!({
        "args": ["/bin/sh", "-c", "id -u; id -g"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    std::fs::write(&file, serde_json::to_vec(&process)?)?;
    let out = c.rt.exec(&["exec", "--process", &p(&file), &id]).ok()?;
    ensure!(
        out.stdout == "0\n0\n",
        "process.json without user: {:?}",
        out.stdout
    );
    Ok(())
}

/// The host directory of the container's freezer cgroup (v1), or its v2 cgroup.
fn freezer_dir(c: &Ctx, id: &str) -> Result<PathBuf, Outcome> {
    let pid = c.rt.pid(id)?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrl.split(',').any(|c| c == "freezer") {
            return Ok(Path::new("/sys/fs/cgroup/freezer").join(path.trim_start_matches('/')));
        }
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        if let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) {
            return Ok(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')));
        }
    }
    skip!("no freezer cgroup for the container: {text}")
}

/// exec into a paused container fails (255) unless --ignore-paused: then the process
/// is made, frozen with the container, and runs once it is resumed.
fn exec_ignore_paused(c: &Ctx) -> TestResult {
    let id = running(c, config(&["true"]))?;
    let procs = freezer_dir(c, &id)?.join("cgroup.procs");
    c.rt.exec(&["pause", &id]).ok()?;
    c.rt.exec(&["exec", &id, "true"])
        .code(255)?
        .stderr_has("paused")?;
    let spawned =
        c.rt.spawn(&["exec", "--ignore-paused", &id, "echo", "ran-after-resume"])?;
    let count = || {
        std::fs::read_to_string(&procs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    // The exec'd process is in the container's (frozen) cgroup beside the init.
    let waited = wait_until(
        "the exec'd process to join the paused container",
        Duration::from_secs(20),
        || count() >= 2,
    );
    c.rt.exec(&["resume", &id]).ok()?;
    waited?;
    let out = spawned.wait(Duration::from_secs(30)).ok()?;
    ensure!(
        out.stdout == "ran-after-resume\n",
        "exec --ignore-paused printed {:?}",
        out.stdout
    );
    Ok(())
}

/// `exec --cgroup [CONTROLLER:]SUB` puts the process in an existing sub-cgroup of the
/// container's; a path leaving the container's cgroup, an unknown controller and a
/// malformed argument are refused.
fn exec_sub_cgroup(c: &Ctx) -> TestResult {
    let id = running(c, config(&["true"]))?;
    let pid = c.rt.pid(&id)?;
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let (dir, arg, line_of) = if let Some(path) = text
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
        .filter(|_| Path::new("/sys/fs/cgroup/memory").is_dir())
    {
        let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
        (dir, "memory:pp-sub", ":memory:")
    } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let path = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or("");
        let dir = Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        (dir, "pp-sub", "0::")
    } else {
        skip!("neither a v1 memory hierarchy nor cgroup2 here: {text}");
    };
    let sub = dir.join("pp-sub");
    std::fs::create_dir(&sub)?;
    let result = (|| -> TestResult {
        let out =
            c.rt.exec(&["exec", "--cgroup", arg, &id, "cat", "/proc/self/cgroup"])
                .ok()?;
        let line = out
            .stdout
            .lines()
            .find(|l| l.contains(line_of))
            .unwrap_or("");
        // The container has a cgroup namespace: its own cgroup is "/".
        ensure!(
            line.ends_with("/pp-sub"),
            "exec --cgroup {arg}: {:?}",
            out.stdout
        );
        for bad in ["memory:../..", "no-such-controller:x", "a:b:c"] {
            c.rt.exec(&["exec", "--cgroup", bad, &id, "true"])
                .code(255)?;
        }
        Ok(())
    })();
    // Before the container goes: a runtime removes only the cgroups it made.
    let _ = std::fs::remove_dir(&sub);
    result
}

/// A failure of exec itself exits 255 (runc), never 1 like a process's own failure:
/// no such container, no such program, a relative cwd, empty args, a pid file that
/// cannot be written (the process is not left behind), a paused or a stopped container.
fn exec_failure_exit_255(c: &Ctx) -> TestResult {
    c.rt.exec(&["exec", "no-such-container-pp", "true"])
        .code(255)?
        .stderr_has("does not exist")?;
    let id = running(c, config(&["true"]))?;
    c.rt.exec(&["exec", &id, "sh", "-c", "exit 1"]).code(1)?;
    c.rt.exec(&["exec", &id, "/no/such/program"]).code(255)?;
    c.rt.exec(&["exec", &id, "no-such-program"]).code(255)?;
    c.rt.exec(&["exec", "--cwd", "relative", &id, "true"])
        .code(255)?;
    let file = c.dir("proc")?.join("process.json");
    std::fs::write(&file, r#"{"args": [], "cwd": "/"}"#)?;
    c.rt.exec(&["exec", "--process", &p(&file), &id])
        .code(255)?;
    let mark = format!("PP_PIDFILE_MARK={id}");
    for detach in [true, false] {
        let mut args = vec![
            "exec",
            "--env",
            &mark,
            "--pid-file",
            "/nonexistent-pp/dir/pid",
        ];
        if detach {
            args.push("--detach");
        }
        args.extend([id.as_str(), "sleep", "30"]);
        c.rt.exec(&args).code(255)?;
        wait_until(
            "the process whose pid file failed to go",
            Duration::from_secs(10),
            || procs_with_env(&mark).is_empty(),
        )?;
    }
    c.rt.exec(&["pause", &id]).ok()?;
    let paused = c.rt.exec(&["exec", &id, "true"]);
    c.rt.exec(&["resume", &id]).ok()?;
    paused.code(255)?;
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.exec(&["exec", &id, "true"]).code(255)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 5. fds passed on

/// `sh -c SCRIPT` with the runtime as $0 and `extra` as $1.., stdout and stderr to
/// files (a created container keeps them open); waits for sh.
fn sh_with_runtime(c: &Ctx, script: &str, extra: &[&str]) -> Result<Output, Outcome> {
    let io = c.dir("io")?;
    let (out, err) = (io.join("out"), io.join("err"));
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&c.rt.bin)
        .arg(&c.rt.root)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .status()?;
    Ok(Output {
        desc: format!("sh -c {script:?}"),
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
        stdout_path: out,
    })
}

/// Two files with known contents, for fds 3 and 4.
fn fd_files(c: &Ctx) -> Result<(String, String), Outcome> {
    let d = c.dir("fds")?;
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::write(&a, "content-a\n")?;
    std::fs::write(&b, "content-b\n")?;
    Ok((p(&a), p(&b)))
}

const SHOW_FDS: &str = "cat <&3 2>/dev/null || echo no-fd-3; cat <&4 2>/dev/null || echo no-fd-4; \
                        echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID";

/// `--preserve-fds N` on run and on create (the init keeps them until start).
fn preserve_fds_create_run(c: &Ctx) -> TestResult {
    let (a, b) = fd_files(c)?;
    let bundle = c.bundle(&sh_config(SHOW_FDS))?;
    let id = c.id();
    let out = sh_with_runtime(
        c,
        "exec \"$0\" --root \"$1\" run --preserve-fds 2 --bundle \"$2\" \"$3\" 3<\"$4\" 4<\"$5\"",
        &[&p(&bundle), &id, &a, &b],
    )?
    .ok()?;
    let want = "content-a\ncontent-b\nLISTEN_FDS= LISTEN_PID=\n";
    ensure!(out.stdout == want, "run --preserve-fds 2: {:?}", out.stdout);

    // Without the flag the fds stay behind.
    let id = c.id();
    let out = sh_with_runtime(
        c,
        "exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\" 3<\"$4\" 4<\"$5\"",
        &[&p(&bundle), &id, &a, &b],
    )?
    .ok()?;
    ensure!(
        out.stdout.starts_with("no-fd-3\nno-fd-4\n"),
        "run without --preserve-fds: {:?}",
        out.stdout
    );

    let id = c.id();
    let created = sh_with_runtime(
        c,
        "exec \"$0\" --root \"$1\" create --preserve-fds 1 --bundle \"$2\" \"$3\" 3<\"$4\"",
        &[&p(&bundle), &id, &a],
    )?
    .ok()?;
    c.rt.start(&id).ok()?;
    c.rt.wait_status(&id, "stopped")?;
    wait_file_contains(&created.stdout_path, "LISTEN_FDS")?;
    let text = std::fs::read_to_string(&created.stdout_path)?;
    ensure!(
        text == "content-a\nno-fd-4\nLISTEN_FDS= LISTEN_PID=\n",
        "create --preserve-fds 1: {text:?}"
    );
    Ok(())
}

/// Socket activation: with LISTEN_PID naming the runtime, its LISTEN_FDS fds come
/// first (the process gets LISTEN_FDS=n, LISTEN_PID=1), --preserve-fds ones after.
/// LISTEN_PID naming another process passes nothing.
fn listen_fds(c: &Ctx) -> TestResult {
    let (a, b) = fd_files(c)?;
    let bundle = c.bundle(&sh_config(SHOW_FDS))?;
    let id = c.id();
    let out = sh_with_runtime(
        c,
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" --root \"$1\" run --preserve-fds 1 --bundle \"$2\" \"$3\" 3<\"$4\" 4<\"$5\"",
        &[&p(&bundle), &id, &a, &b],
    )?
    .ok()?;
    let want = "content-a\ncontent-b\nLISTEN_FDS=1 LISTEN_PID=1\n";
    ensure!(out.stdout == want, "socket activation: {:?}", out.stdout);

    let id = c.id();
    let out = sh_with_runtime(
        c,
        "LISTEN_PID=1 LISTEN_FDS=1 exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\" 3<\"$4\"",
        &[&p(&bundle), &id, &a],
    )?
    .ok()?;
    let want = "no-fd-3\nno-fd-4\nLISTEN_FDS= LISTEN_PID=\n";
    ensure!(
        out.stdout == want,
        "LISTEN_PID of another process: {:?}",
        out.stdout
    );
    Ok(())
}

/// A --preserve-fds fd the caller did not open is refused: otherwise one of the
/// runtime's own fds could take its number and reach the container (runc 1.1.5
/// passes whatever it has open there).
fn preserve_fds_must_be_open(c: &Ctx) -> TestResult {
    let (a, _) = fd_files(c)?;
    let bundle = c.bundle(&sh_config("ls /proc/self/fd"))?;
    let id = c.id();
    sh_with_runtime(
        c,
        "exec \"$0\" --root \"$1\" run --preserve-fds 2 --bundle \"$2\" \"$3\" 3<\"$4\"",
        &[&p(&bundle), &id, &a],
    )?
    .code(1)?
    .stderr_has("preserve-fds")?;
    ensure!(c.rt.is_gone(&id), "container {id} was made");
    let running_id = running(c, config(&["true"]))?;
    // fd 3 closed explicitly: the suite may inherit one (cargo's jobserver).
    sh_with_runtime(
        c,
        "exec \"$0\" --root \"$1\" exec --preserve-fds 1 \"$2\" true 3<&-",
        &[&running_id],
    )?
    .code(255)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 9. stdio and terminals

/// `$RUNTIME --root R args` with stdout and stderr pipes (as engines pass them).
fn with_pipes(c: &Ctx, args: &[&str]) -> Result<(i32, String, String), Outcome> {
    let out = Command::new(&c.rt.bin)
        .arg("--root")
        .arg(&c.rt.root)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A process that is not root can reopen its stdout and stderr pipes (/dev/stdout):
/// runc gives stdio to the process's uid before switching to it. Also for exec.
fn stdio_owned_by_user(c: &Ctx) -> TestResult {
    let script = "echo via-dev-stdout > /dev/stdout && echo via-dev-stderr > /dev/stderr";
    let mut cfg = sh_config(script);
    cfg["process"]["user"] = json!({"uid": 42, "gid": 42});
    let bundle = c.bundle(&cfg)?;
    let id = c.id();
    let got = with_pipes(c, &["run", "--bundle", &p(&bundle), &id])?;
    let want = (
        0,
        "via-dev-stdout\n".to_string(),
        "via-dev-stderr\n".to_string(),
    );
    ensure!(got == want, "run as uid 42 with pipes: {got:?}");
    let id = running(c, config(&["true"]))?;
    let got = with_pipes(c, &["exec", "--user", "42", &id, "sh", "-c", script])?;
    ensure!(got == want, "exec as uid 42 with pipes: {got:?}");
    Ok(())
}

/// Run the runtime with `args` on a new terminal of ours (its stdin, stderr and
/// controlling terminal; stdout too unless `stdout` names a file). Returns what the
/// terminal received and the exit code.
fn on_terminal(c: &Ctx, args: &[&str], stdout: Option<&Path>) -> Result<(Vec<u8>, i32), Outcome> {
    // Close-on-exec from birth (not openpty): the suite runs tests in parallel, and a
    // runtime another thread starts must not inherit our pty as its fd 3.
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")?
        .into();
    // SAFETY: unlockpt and TIOCGPTPEER only act on the master fd we own; the peer fd
    // returned is new and owned by nobody else.
    let slave = unsafe {
        if libc::unlockpt(master.as_raw_fd()) != 0 {
            fail!("unlockpt: {}", std::io::Error::last_os_error());
        }
        let fd = libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            fail!("open pty peer: {}", std::io::Error::last_os_error());
        }
        OwnedFd::from_raw_fd(fd)
    };
    let mut cmd = Command::new(&c.rt.bin);
    cmd.arg("--root").arg(&c.rt.root).args(args);
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave.try_clone()?));
    match stdout {
        Some(file) => cmd.stdout(std::fs::File::create(file)?),
        None => cmd.stdout(Stdio::from(slave.try_clone()?)),
    };
    // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe and touch only the child.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(cmd);
    drop(slave);
    let mut got = Vec::new();
    let mut file = std::fs::File::from(master);
    let start = Instant::now();
    loop {
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the length of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, 200) };
        if n > 0 {
            let mut buf = [0u8; 4096];
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break, // EIO: every slave fd is closed
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        } else if start.elapsed() > guard(Duration::from_secs(60)) {
            let _ = child.kill();
            let _ = child.wait();
            fail!(
                "hang guard: runtime on a terminal still running after {:?}",
                guard(Duration::from_secs(60))
            );
        }
    }
    let code = child.wait()?.code().unwrap_or(-1);
    Ok((got, code))
}

/// Prints whether ONLCR was already off when the process started, waits (bounded)
/// until it is: runc 1.1.5 clears it only once its relay has the pty, which may be
/// after the process started; hull clears it before.
const TTY_SCRIPT: &str = "first=$(stty -a 2>/dev/null | grep -o .onlcr); i=0; \
    until stty -a 2>/dev/null | grep -q -- -onlcr || [ $i -gt 2000 ]; do i=$((i+1)); done; \
    printf 'a\\nb\\n'; stat -c 'owner %u %g' $(tty); echo \"first $first\"";

/// What a terminal run printed through a file: plain lines, and the pty's owner.
fn check_plain(c: &Ctx, what: &str, text: &str) -> TestResult {
    ensure!(
        text.starts_with("a\nb\n"),
        "{what}: output to a file is not plain \\n lines: {text:?}"
    );
    // runc keeps the devpts gid (gid=5 in the suite's mounts) and changes the uid.
    ensure!(
        text.contains("owner 42 5\n"),
        "{what}: the pty slave is not owned by uid 42 (gid 5 from devpts): {text:?}"
    );
    if c.rt.is_hull() {
        ensure!(
            text.contains("first -onlcr"),
            "{what}: ONLCR was still on when the process started: {text:?}"
        );
    }
    Ok(())
}

/// A foreground run with a terminal: the pty slave belongs to the process's uid, and
/// the container's pty does not turn \n into \r\n (runc clears ONLCR): through a file
/// the lines are plain, while on our terminal each shows once as \r\n.
fn terminal_owner_onlcr(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(TTY_SCRIPT);
    cfg["process"]["terminal"] = json!(true);
    cfg["process"]["user"] = json!({"uid": 42, "gid": 42});
    let bundle = c.bundle(&cfg)?;
    let file = c.dir("tty")?.join("out");
    let id = c.id();
    let (shown, code) = on_terminal(c, &["run", "--bundle", &p(&bundle), &id], Some(&file))?;
    ensure!(
        code == 0,
        "run exited {code}: {}",
        String::from_utf8_lossy(&shown)
    );
    check_plain(c, "run", &std::fs::read_to_string(&file)?)?;

    let id = c.id();
    let (shown, code) = on_terminal(c, &["run", "--bundle", &p(&bundle), &id], None)?;
    ensure!(code == 0, "run exited {code}");
    // runc writes a NUL first on some terminals.
    let shown = String::from_utf8_lossy(&shown).replace('\0', "");
    ensure!(
        shown.starts_with("a\r\nb\r\n") && !shown.contains("\r\r"),
        "on the terminal: {shown:?}"
    );
    Ok(())
}

/// The same for `exec -t` in the foreground.
fn exec_terminal_owner_onlcr(c: &Ctx) -> TestResult {
    let id = running(c, config(&["true"]))?;
    let file = c.dir("tty")?.join("out");
    let args = ["exec", "-t", "--user", "42:42", &id, "sh", "-c", TTY_SCRIPT];
    let (shown, code) = on_terminal(c, &args, Some(&file))?;
    ensure!(
        code == 0,
        "exec -t exited {code}: {}",
        String::from_utf8_lossy(&shown)
    );
    check_plain(c, "exec -t", &std::fs::read_to_string(&file)?)
}

/// A foreground `run` is the subreaper of what the container orphans (no pid
/// namespace: the orphan would go to the host's init); `--no-subreaper`
/// turns that off. Each run prints the orphan's parent pid and kills it.
fn run_subreaper(c: &Ctx) -> TestResult {
    let script = "sh -c 'sleep 60 & echo $! > /tmp/orphan'; \
                  o=$(cat /tmp/orphan); grep PPid /proc/$o/status; kill $o";
    for (flag, want_ours) in [(None, true), (Some("--no-subreaper"), false)] {
        let mut cfg = sh_config(script);
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|n| n["type"] != "pid");
        cfg["mounts"].as_array_mut().expect("mounts").push(json!(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}
        ));
        let b = c.bundle(&cfg)?;
        let id = c.id();
        let mut args = vec!["run", "--bundle"];
        let bs = p(&b);
        args.push(&bs);
        args.extend(flag);
        args.push(&id);
        let run = c.rt.spawn(&args)?;
        let runtime_pid = run.pid();
        let out = run.wait(Duration::from_secs(60)).ok()?.stdout;
        let ppid: i32 = out
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(-1);
        ensure!(
            (ppid == runtime_pid) == want_ours,
            "{flag:?}: orphan's parent {ppid}, runtime {runtime_pid}: {out:?}"
        );
    }
    Ok(())
}
