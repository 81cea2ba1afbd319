//! security tests of the black-box suite: capabilities, no_new_privs, seccomp, hooks,
//! oomScoreAdj, sysctl, LSM, scheduling, and one regression test per known runtime CVE
//! class. A CVE test that runc 1.1.5 fails because the fix came later says so and is
//! skipped for runc older than the fix (never weakened).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::Runtime;
use runtime_tests::util::{guard, wait_file_contains};
use runtime_tests::{ensure, skip, Outcome, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    // capabilities and no_new_privs
    t("sec_caps_exact", Kind::Oci, caps_exact),
    t("sec_caps_ambient_nonroot", Kind::Oci, caps_ambient_nonroot),
    t(
        "sec_caps_dropped_op_fails",
        Kind::Oci,
        caps_dropped_op_fails,
    ),
    t("sec_caps_unavailable", Kind::Oci, caps_unavailable),
    t(
        "sec_cve_2022_29162_inheritable",
        Kind::Oci,
        caps_no_inheritable_leak,
    ),
    t("sec_no_new_privs", Kind::Oci, no_new_privs),
    // seccomp
    t("sec_seccomp_errno", Kind::Oci, seccomp_errno),
    t(
        "sec_seccomp_default_errno",
        Kind::Oci,
        seccomp_default_errno,
    ),
    t("sec_seccomp_kill", Kind::Oci, seccomp_kill),
    t("sec_seccomp_args", Kind::Oci, seccomp_args),
    t("sec_seccomp_notify", Kind::Oci, seccomp_notify),
    t("sec_seccomp_without_nnp", Kind::Oci, seccomp_without_nnp),
    // hooks
    t("sec_hooks_order_state", Kind::Oci, hooks_order_state),
    t("sec_hooks_args_env", Kind::Oci, hooks_args_env),
    t("sec_hooks_timeout", Kind::Oci, hooks_timeout),
    t("sec_hooks_create_failure", Kind::Oci, hooks_create_failure),
    t(
        "sec_hooks_poststart_failure",
        Kind::Oci,
        hooks_poststart_failure,
    ),
    t(
        "sec_hooks_docker_prestart",
        Kind::Oci,
        hooks_docker_prestart,
    ),
    // process settings
    t("sec_oom_score_adj", Kind::Oci, oom_score_adj),
    t("sec_sysctl_namespaced", Kind::Oci, sysctl_namespaced),
    t("sec_sysctl_refused", Kind::Oci, sysctl_refused),
    t("sec_selinux_unsupported", Kind::Oci, selinux_unsupported),
    t(
        "sec_apparmor_unsupported",
        Kind::HullOnly,
        apparmor_unsupported,
    ),
    t("sec_personality", Kind::Oci, personality),
    t("sec_scheduler_ioprio", Kind::HullOnly, scheduler_ioprio),
    // CVE classes
    t("sec_cve_2019_5736_exe", Kind::Oci, cve_2019_5736_exe),
    t("sec_cve_2024_21626_fds", Kind::Oci, cve_2024_21626_fds),
    t("sec_cve_2024_21626_cwd", Kind::Oci, cve_2024_21626_cwd),
    t("sec_cve_2019_16884_proc_mount", Kind::Oci, cve_proc_mounts),
    t(
        "sec_cve_2023_27561_proc_symlink",
        Kind::Oci,
        cve_proc_symlink,
    ),
    t("sec_cve_sys_mount", Kind::HullOnly, cve_sys_mount),
    t(
        "sec_cve_2021_30465_mkdir_symlink",
        Kind::Oci,
        cve_mkdir_symlink,
    ),
    t("sec_cve_2025_31133_devnull", Kind::Oci, cve_devnull_symlink),
    t("sec_terminal_dev_console", Kind::Oci, terminal_dev_console),
    t(
        "sec_cve_2025_52565_console_symlink",
        Kind::Oci,
        cve_console_symlink,
    ),
    t(
        "sec_cve_2025_52881_sysctl_redirect",
        Kind::Oci,
        cve_sysctl_redirect,
    ),
    t("sec_cve_2026_41579_dev_symlink", Kind::Oci, cve_dev_symlink),
    t("sec_cve_2023_25809_cgroup_ro", Kind::Oci, cve_cgroup_ro),
];

// ---------------------------------------------------------------------------------------
// helpers

pub(crate) fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The Cap* and NoNewPrivs lines of /proc/self/status, as a map.
fn status_of(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn caps_cfg(script: &str, sets: &[(&str, &[&str])]) -> Value {
    let mut cfg = sh_config(script);
    let mut caps = json!({});
    for (set, list) in sets {
        caps[*set] = json!(list);
    }
    cfg["process"]["capabilities"] = caps;
    cfg
}

fn mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

const STATUS: &str = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status";

/// runc older than `fixed` lacks `what` (a CVE fix, or an OCI feature): it fails this
/// test, so the test is skipped (never passed) there.
pub(crate) fn needs_fix_in_runc(c: &Ctx, fixed: (u32, u32, u32), what: &str) -> TestResult {
    if c.rt.is_hull() {
        return Ok(());
    }
    let ver = c.rt.runc_version();
    match ver {
        Some(v) if v < fixed => skip!(
            "runc {}.{}.{} predates {what} ({}.{}.{}): it fails this test",
            v.0,
            v.1,
            v.2,
            fixed.0,
            fixed.1,
            fixed.2
        ),
        _ => Ok(()),
    }
}

/// Hull's error output must be one line.
fn one_line(c: &Ctx, stderr: &str) -> TestResult {
    if c.rt.is_hull() {
        ensure!(
            stderr.trim().lines().count() == 1,
            "hull stderr is not one line: {stderr:?}"
        );
    }
    Ok(())
}

/// `create` must exit 1 and leave nothing behind; returns stderr.
fn create_refused(c: &Ctx, cfg: &Value) -> Result<String, Outcome> {
    let b = c.bundle(cfg)?;
    let id = c.id();
    let out = c.rt.create(&id, &b).code(1)?;
    ensure!(
        c.rt.is_gone(&id),
        "container {id} exists after a failed create"
    );
    ensure!(
        !c.rt.root.join(&id).exists(),
        "state dir of {id} left behind"
    );
    one_line(c, &out.stderr)?;
    Ok(out.stderr)
}

pub(crate) fn write_script(path: &Path, body: &str) -> TestResult {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

pub(crate) fn hook(path: &Path, args: &[&str]) -> Value {
    let mut all = vec![p(path)];
    all.extend(args.iter().map(|s| s.to_string()));
    json!({"path": p(path), "args": all})
}

fn remove_mount(cfg: &mut Value, dest: &str) {
    cfg["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != dest);
}

pub(crate) fn add_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().expect("mounts").push(m);
}

// ---------------------------------------------------------------------------------------
// capabilities and no_new_privs

fn caps_exact(c: &Ctx) -> TestResult {
    // CAP_CHOWN=0, CAP_KILL=5, CAP_NET_BIND_SERVICE=10. For uid 0 execve gives
    // permitted = effective = bounding, so the config keeps them equal (as runc spec does).
    let set: &[&str] = &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let cfg = caps_cfg(
        STATUS,
        &[("bounding", set), ("effective", set), ("permitted", set)],
    );
    let st = status_of(&c.run_cfg(&cfg)?.ok()?.stdout);
    let want = mask(&[0, 5, 10]);
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        ensure!(
            st.get(key) == Some(&want),
            "{key}: {:?}, want {want}",
            st.get(key)
        );
    }
    for key in ["CapInh", "CapAmb"] {
        ensure!(
            st.get(key) == Some(&mask(&[])),
            "{key}: {:?}, want 0",
            st.get(key)
        );
    }
    Ok(())
}

fn caps_ambient_nonroot(c: &Ctx) -> TestResult {
    let nbs: &[&str] = &["CAP_NET_BIND_SERVICE"];
    let mut cfg = caps_cfg(
        STATUS,
        &[
            ("bounding", &["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]),
            ("effective", nbs),
            ("permitted", nbs),
            ("inheritable", nbs),
            ("ambient", nbs),
        ],
    );
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let st = status_of(&c.run_cfg(&cfg)?.ok()?.stdout);
    let want = mask(&[10]);
    for key in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        ensure!(
            st.get(key) == Some(&want),
            "{key}: {:?}, want {want}",
            st.get(key)
        );
    }
    ensure!(
        st.get("CapBnd") == Some(&mask(&[0, 10])),
        "CapBnd: {:?}",
        st.get("CapBnd")
    );
    Ok(())
}

fn caps_dropped_op_fails(c: &Ctx) -> TestResult {
    let script = "touch /dev/shm/f; chown 1:1 /dev/shm/f && echo chown-ok || echo chown-denied";
    let with: &[&str] = &["CAP_CHOWN"];
    let cfg = caps_cfg(
        script,
        &[("bounding", with), ("effective", with), ("permitted", with)],
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.contains("chown-ok"), "with CAP_CHOWN: {out:?}");
    let without: &[&str] = &["CAP_KILL"];
    let cfg = caps_cfg(
        script,
        &[
            ("bounding", without),
            ("effective", without),
            ("permitted", without),
        ],
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.contains("chown-denied"), "without CAP_CHOWN: {out:?}");
    Ok(())
}

fn caps_unavailable(c: &Ctx) -> TestResult {
    // This host's bounding set lacks CAP_SYS_RESOURCE: asking for it must fail create
    // (runc: "operation not permitted"), not be silently dropped.
    if std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("CapBnd:") && l.trim().ends_with("ffffffff"))
    {
        skip!("this host's bounding set has CAP_SYS_RESOURCE");
    }
    let set: &[&str] = &["CAP_KILL", "CAP_SYS_RESOURCE"];
    let cfg = caps_cfg(
        "true",
        &[("bounding", set), ("effective", set), ("permitted", set)],
    );
    let err = create_refused(c, &cfg)?;
    ensure!(
        err.to_lowercase().contains("not permitted") || err.contains("EPERM"),
        "stderr: {err}"
    );
    Ok(())
}

/// CVE-2022-29162: the container's inheritable set is what the config says (here:
/// nothing), even when the runtime itself runs with inheritable capabilities.
fn caps_no_inheritable_leak(c: &Ctx) -> TestResult {
    needs_fix_in_runc(c, (1, 1, 2), "the fix of CVE-2022-29162")?;
    if !Path::new("/usr/sbin/capsh").exists() {
        skip!("capsh (libcap2-bin) is not installed");
    }
    let set: &[&str] = &["CAP_KILL", "CAP_CHOWN"];
    let mut cfg = caps_cfg(
        STATUS,
        &[("bounding", set), ("effective", set), ("permitted", set)],
    );
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out_path = c.dir("capsh")?.join("out");
    // The runtime starts with CapInh = kill,chown.
    let st = Command::new("/usr/sbin/capsh")
        .arg("--inh=cap_kill,cap_chown")
        .arg("--")
        .arg("-c")
        .arg(format!(
            "grep CapInh /proc/self/status >&2; exec '{}' --root '{}' run --bundle '{}' '{}' > '{}'",
            p(&c.rt.bin),
            p(&c.rt.root),
            p(&b),
            id,
            p(&out_path)
        ))
        .stdin(Stdio::null())
        .output()?;
    let stderr = String::from_utf8_lossy(&st.stderr);
    ensure!(
        st.status.success(),
        "run under capsh failed: {}",
        stderr.trim()
    );
    ensure!(
        !stderr.contains("0000000000000000"),
        "capsh did not give the runtime inheritable caps: {stderr}"
    );
    let st = status_of(&std::fs::read_to_string(&out_path)?);
    ensure!(
        st.get("CapInh") == Some(&mask(&[])),
        "inheritable leaked into the container: {:?}",
        st.get("CapInh")
    );
    // And a non-root process gains nothing from it either.
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let st = status_of(&c.run_cfg(&cfg)?.ok()?.stdout);
    for key in ["CapInh", "CapPrm", "CapEff", "CapAmb"] {
        ensure!(st.get(key) == Some(&mask(&[])), "{key}: {:?}", st.get(key));
    }
    Ok(())
}

fn no_new_privs(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(STATUS);
    let st = status_of(&c.run_cfg(&cfg)?.ok()?.stdout);
    ensure!(
        st.get("NoNewPrivs") == Some(&"1".into()),
        "nnp true: {st:?}"
    );
    cfg["process"]["noNewPrivileges"] = json!(false);
    let st = status_of(&c.run_cfg(&cfg)?.ok()?.stdout);
    ensure!(
        st.get("NoNewPrivs") == Some(&"0".into()),
        "nnp false: {st:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// seccomp

pub(crate) fn seccomp(default: &str, syscalls: Value) -> Value {
    json!({
        "defaultAction": default,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls
    })
}

fn seccomp_errno(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("mkdir /dev/shm/d 2>&1; echo rc=$?; touch /dev/shm/f && echo touch-ok");
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95}]),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("not supported") && out.contains("rc=1") && out.contains("touch-ok"),
        "mkdir should fail with EOPNOTSUPP (95), touch should work: {out:?}"
    );
    // Without errnoRet the errno is EPERM.
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("not permitted") && out.contains("rc=1"),
        "mkdir should fail with EPERM: {out:?}"
    );
    Ok(())
}

/// Syscalls busybox sh, cat, echo and a runtime's last steps need.
pub(crate) const ALLOWED: &[&str] = &[
    "read",
    "write",
    "readv",
    "writev",
    "pread64",
    "pwrite64",
    "open",
    "openat",
    "close",
    "close_range",
    "stat",
    "fstat",
    "lstat",
    "newfstatat",
    "statx",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "brk",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "ioctl",
    "access",
    "faccessat",
    "faccessat2",
    "pipe",
    "pipe2",
    "dup",
    "dup2",
    "dup3",
    "getpid",
    "getppid",
    "gettid",
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "wait4",
    "waitid",
    "kill",
    "tgkill",
    "uname",
    "fcntl",
    "getcwd",
    "chdir",
    "fchdir",
    "getuid",
    "getgid",
    "geteuid",
    "getegid",
    "getgroups",
    "setgroups",
    "setuid",
    "setgid",
    "setresuid",
    "setresgid",
    "getresuid",
    "getresgid",
    "capget",
    "capset",
    "prctl",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrlimit",
    "futex",
    "getdents64",
    "readlink",
    "readlinkat",
    "sched_getaffinity",
    "sched_yield",
    "getrandom",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "nanosleep",
    "clock_nanosleep",
    "clock_gettime",
    "gettimeofday",
    "umask",
    "sendmsg",
    "recvmsg",
    "socket",
    "connect",
    "getsockopt",
    "setsockopt",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "madvise",
    "mremap",
    "sigaltstack",
    "seccomp",
    "getpgrp",
    "setpgid",
    "getpgid",
    "setsid",
    "getsid",
    "fstatfs",
    "statfs",
    "sync",
    "fsync",
    "unlink",
    "unlinkat",
    "rename",
    "renameat",
    "renameat2",
    "chmod",
    "fchmod",
    "fchmodat",
    "chown",
    "fchown",
    "fchownat",
    "openat2",
    "newuname",
    "time",
    "times",
    "sysinfo",
    "alarm",
    "pause",
    "sched_getparam",
    "sched_getscheduler",
    "personality",
    "getpriority",
    "setpriority",
];

fn seccomp_default_errno(c: &Ctx) -> TestResult {
    // defaultAction ERRNO with defaultErrnoRet: everything not allowed gets errno 95.
    let mut cfg = sh_config("mkdir /dev/shm/d 2>&1; echo rc=$?");
    let mut s = seccomp(
        "SCMP_ACT_ERRNO",
        json!([{"names": ALLOWED, "action": "SCMP_ACT_ALLOW"}]),
    );
    s["defaultErrnoRet"] = json!(95);
    cfg["linux"]["seccomp"] = s;
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("not supported") && out.contains("rc=1"),
        "mkdir should fail with the default errno 95: {out:?}"
    );
    Ok(())
}

fn seccomp_kill(c: &Ctx) -> TestResult {
    for action in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"] {
        let mut cfg = config(&["mkdir", "/dev/shm/d"]);
        cfg["linux"]["seccomp"] = seccomp(
            "SCMP_ACT_ALLOW",
            json!([{"names": ["mkdir", "mkdirat"], "action": action}]),
        );
        // Killed by SIGSYS (31): 128 + 31.
        c.run_cfg(&cfg)?
            .code(159)
            .map_err(|e| Outcome::Fail(format!("{action}: {e}")))?;
    }
    Ok(())
}

fn seccomp_args(c: &Ctx) -> TestResult {
    // kill(pid, SIGUSR1) is refused, kill with another signal is not (SCMP_CMP_EQ on
    // argument 1); signals whose two low bits are set (SIGTERM = 15) are refused, SIGHUP
    // (1) is not (SCMP_CMP_MASKED_EQ: (sig & 3) == 3).
    let mut cfg = sh_config(
        "trap 'echo got-usr2' USR2; trap 'echo got-usr1' USR1; \
         trap 'echo got-term' TERM; trap 'echo got-hup' HUP; \
         kill -USR1 $$ 2>&1; echo usr1-rc=$?; kill -USR2 $$; echo usr2-rc=$?; \
         kill -TERM $$ 2>/dev/null; echo term-rc=$?; kill -HUP $$; echo hup-rc=$?",
    );
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ALLOW",
        json!([
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 1, "value": 3, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("usr1-rc=1") && !out.contains("got-usr1"),
        "kill -USR1 should be refused: {out:?}"
    );
    ensure!(
        out.contains("got-usr2") && out.contains("usr2-rc=0"),
        "kill -USR2 should work: {out:?}"
    );
    ensure!(
        out.contains("term-rc=1") && !out.contains("got-term"),
        "kill -TERM should be refused (masked): {out:?}"
    );
    ensure!(
        out.contains("got-hup") && out.contains("hup-rc=0"),
        "kill -HUP should work: {out:?}"
    );
    Ok(())
}

/// Receive one message with one fd (SCM_RIGHTS) on a connected unix stream.
pub(crate) fn recv_with_fd(
    sock: &std::os::unix::net::UnixStream,
) -> std::io::Result<(Vec<u8>, i32)> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 65536];
    let mut cbuf = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; it points at our iov and control buffer, which
    // outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.len();
    // SAFETY: recvmsg writes into the buffers described by msg.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut fd = -1;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
        }
    }
    buf.truncate(n as usize);
    Ok((buf, fd))
}

fn seccomp_notify(c: &Ctx) -> TestResult {
    let dir = c.dir("agent")?;
    let sock_path = dir.join("agent.sock");
    let listener = UnixListener::bind(&sock_path)?;
    listener.set_nonblocking(true)?;
    // The agent: accept, take the notify fd and the message, then close the fd, which
    // makes every notified syscall fail with ENOSYS.
    let agent = std::thread::spawn(move || -> Result<(Value, String), String> {
        let start = Instant::now();
        let stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if start.elapsed() < guard(Duration::from_secs(20)) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(format!("no connection from the runtime: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(guard(Duration::from_secs(20))))
            .map_err(|e| e.to_string())?;
        let (data, fd) = recv_with_fd(&stream).map_err(|e| format!("recvmsg: {e}"))?;
        if fd < 0 {
            return Err("the message carried no fd".into());
        }
        let kind = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|l| p(&l))
            .unwrap_or_default();
        // SAFETY: fd is ours (received with SCM_RIGHTS) and closed once.
        unsafe { libc::close(fd) };
        let msg: Value = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
        Ok((msg, kind))
    });
    let mut cfg = sh_config("mkdir /dev/shm/d 2>&1; echo rc=$?; touch /dev/shm/f && echo touch-ok");
    let mut s = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]),
    );
    s["listenerPath"] = json!(p(&sock_path));
    s["listenerMetadata"] = json!("agent-meta-42");
    cfg["linux"]["seccomp"] = s;
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out = c.rt.run(&id, &b);
    let (msg, kind) = agent
        .join()
        .map_err(|_| Outcome::Fail("agent panicked".into()))?
        .map_err(Outcome::Fail)?;
    let out = out.ok()?.stdout;
    ensure!(
        kind.contains("seccomp"),
        "the fd is not a seccomp notify fd: {kind:?}"
    );
    ensure!(
        msg["metadata"] == "agent-meta-42",
        "metadata in agent message: {msg}"
    );
    ensure!(msg["fds"] == json!(["seccompFd"]), "fds: {msg}");
    ensure!(msg["state"]["id"] == id.as_str(), "state.id: {msg}");
    ensure!(msg["pid"].as_i64().unwrap_or(0) > 0, "pid: {msg}");
    ensure!(
        out.contains("rc=1") && out.contains("touch-ok"),
        "mkdir should fail once the agent closed the fd: {out:?}"
    );
    Ok(())
}

fn seccomp_without_nnp(c: &Ctx) -> TestResult {
    // Without noNewPrivileges the filter load needs CAP_SYS_ADMIN, which the process
    // must not keep.
    let mut cfg = sh_config(&format!("mkdir /dev/shm/d 2>&1; echo rc=$?; {STATUS}"));
    cfg["process"]["noNewPrivileges"] = json!(false);
    cfg["linux"]["seccomp"] = seccomp(
        "SCMP_ACT_ALLOW",
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.contains("rc=1"), "mkdir not refused: {out:?}");
    let st = status_of(&out);
    let want = mask(&[5, 10, 29]); // KILL, NET_BIND_SERVICE, AUDIT_WRITE
    ensure!(
        st.get("CapEff") == Some(&want) && st.get("CapPrm") == Some(&want),
        "caps after a load without NNP: {st:?}"
    );
    ensure!(st.get("NoNewPrivs") == Some(&"0".into()), "NNP: {st:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// hooks

/// A hook script that saves its stdin as DIR/KIND.json and appends KIND to DIR/order.
pub(crate) fn recording_hook(dir: &Path, kind: &str) -> Result<Value, Outcome> {
    let script = dir.join(format!("{kind}.sh"));
    write_script(
        &script,
        &format!(
            "cat > '{0}/{kind}.json'; echo {kind} >> '{0}/order'",
            p(dir)
        ),
    )?;
    Ok(hook(&script, &[]))
}

pub(crate) fn read_json(path: &Path) -> Result<Value, Outcome> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Outcome::Fail(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| Outcome::Fail(format!("{}: {e}: {text:?}", path.display())))
}

fn hooks_order_state(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    let mut cfg = config(&["sleep", "30"]);
    let mut hooks = json!({});
    // runc 1.1 runs poststart hooks during `create`, against the spec (fixed in runc
    // 1.2): there the test leaves poststart out rather than encode that.
    let poststart = needs_fix_in_runc(c, (1, 2, 0), "").is_ok();
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        if kind == "poststart" && !poststart {
            continue;
        }
        hooks[kind] = json!([recording_hook(&dir, kind)?]);
    }
    // startContainer runs inside the container: its path and output are container paths.
    std::fs::create_dir_all(dir.join("in"))?;
    write_script(
        &dir.join("in/start.sh"),
        "cat > /hooks/startContainer.json; echo startContainer >> /hooks/order",
    )?;
    hooks["startContainer"] = json!([{"path": "/hooks/in/start.sh"}]);
    cfg["hooks"] = hooks;
    add_mount(
        &mut cfg,
        json!({"destination": "/hooks", "type": "bind", "source": p(&dir), "options": ["rbind"]}),
    );
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let pid = c.rt.pid(&id)?;
    let order = || std::fs::read_to_string(dir.join("order")).unwrap_or_default();
    ensure!(
        order() == "prestart\ncreateRuntime\ncreateContainer\n",
        "after create: {:?}",
        order()
    );
    c.rt.start(&id).ok()?;
    let started = if poststart {
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\n"
    } else {
        "prestart\ncreateRuntime\ncreateContainer\nstartContainer\n"
    };
    wait_file_contains(&dir.join("order"), "startContainer")?;
    wait_file_contains(&dir.join("order"), started.lines().last().unwrap_or(""))?;
    ensure!(order() == started, "after start: {:?}", order());
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    ensure!(
        order() == format!("{started}poststop\n"),
        "after delete: {:?}",
        order()
    );
    // prestart's status differs between runtimes: parity_cli::hooks_prestart_status.
    for (kind, status) in [
        ("createRuntime", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        if kind == "poststart" && !poststart {
            continue;
        }
        let st = read_json(&dir.join(format!("{kind}.json")))?;
        ensure!(st["id"] == id.as_str(), "{kind} state id: {st}");
        ensure!(st["status"] == status, "{kind} state status: {st}");
        ensure!(st["bundle"] == p(&b).as_str(), "{kind} state bundle: {st}");
        if kind != "poststop" {
            ensure!(st["pid"] == pid, "{kind} state pid (want {pid}): {st}");
        }
    }
    for kind in ["prestart", "createContainer", "startContainer"] {
        let st = read_json(&dir.join(format!("{kind}.json")))?;
        ensure!(st["id"] == id.as_str(), "{kind} state id: {st}");
    }
    Ok(())
}

fn hooks_args_env(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    let mut cfg = config(&["true"]);
    cfg["hooks"] = json!({"prestart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("echo \"$0|$1|$FOO\" > '{0}/args'; env > '{0}/env'", p(&dir)), "zero", "one"],
        "env": ["FOO=bar baz", "OTHER=1"]
    }]});
    c.run_cfg(&cfg)?.ok()?;
    let args = std::fs::read_to_string(dir.join("args"))?;
    ensure!(args.trim() == "zero|one|bar baz", "hook args: {args:?}");
    let env = std::fs::read_to_string(dir.join("env"))?;
    ensure!(
        env.lines().any(|l| l == "OTHER=1") && env.lines().any(|l| l == "FOO=bar baz"),
        "hook env: {env:?}"
    );
    ensure!(
        !env.lines()
            .any(|l| l.starts_with("HULL_RT_SUITE=") || l.starts_with("HOME=")),
        "hook env is not exactly the configured one: {env:?}"
    );
    Ok(())
}

fn hooks_timeout(c: &Ctx) -> TestResult {
    // The hook outlasts the bound (a hang guard, scaled under emulation): a
    // runtime that waited for it fails.
    let bound = guard(Duration::from_secs(15));
    let hook_secs = (bound.as_secs() + 5).to_string();
    let mut cfg = config(&["true"]);
    cfg["hooks"] =
        json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", hook_secs], "timeout": 1}]});
    let start = Instant::now();
    let err = create_refused(c, &cfg)?;
    ensure!(
        start.elapsed() < bound,
        "create took {:?} with a 1 s hook timeout",
        start.elapsed()
    );
    ensure!(err.contains("timeout"), "stderr: {err}");
    Ok(())
}

fn hooks_create_failure(c: &Ctx) -> TestResult {
    let dir = c.dir("hooks")?;
    let failing = dir.join("fail.sh");
    write_script(&failing, "echo hook-says-no >&2; exit 3")?;
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let mut cfg = config(&["true"]);
        cfg["hooks"] = json!({ kind: [hook(&failing, &[])] });
        create_refused(c, &cfg).map_err(|e| Outcome::Fail(format!("{kind}: {e}")))?;
    }
    Ok(())
}

fn hooks_poststart_failure(c: &Ctx) -> TestResult {
    // runc 1.1 runs poststart hooks during `create` (so a failure fails create).
    needs_fix_in_runc(c, (1, 2, 0), "poststart hooks run by `start`")?;
    let dir = c.dir("hooks")?;
    let failing = dir.join("fail.sh");
    write_script(&failing, "exit 3")?;
    let mut cfg = config(&["sleep", "30"]);
    cfg["hooks"] = json!({"poststart": [hook(&failing, &[])]});
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let pid = c.rt.pid(&id)?;
    c.rt.start(&id).code(1)?;
    // runc destroys the container when a poststart hook fails.
    runtime_tests::util::wait_until("init to die", Duration::from_secs(10), || {
        !runtime_tests::util::pid_alive(pid)
    })?;
    ensure!(c.rt.is_gone(&id), "container left after a failed poststart");
    Ok(())
}

/// Docker's prestart hook (libnetwork) reads the state on stdin and enters the
/// container's network namespace through /proc/<pid>/ns/net.
fn hooks_docker_prestart(c: &Ctx) -> TestResult {
    if !Path::new("/usr/bin/nsenter").exists() || !Path::new("/usr/sbin/ip").exists() {
        skip!("nsenter or ip is missing");
    }
    let dir = c.dir("hooks")?;
    let script = dir.join("net.sh");
    write_script(
        &script,
        "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); \
         exec /usr/bin/nsenter --net=/proc/$pid/ns/net /usr/sbin/ip link set lo up",
    )?;
    let mut cfg = sh_config("cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
    cfg["hooks"] = json!({"prestart": [hook(&script, &[])]});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    // lo starts down in a new netns; IFF_UP is 0x1.
    let flags = out.lines().nth(1).unwrap_or("");
    let up = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap_or(0) & 1;
    ensure!(up == 1, "lo is not up after the prestart hook: {out:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// process settings

fn oom_score_adj(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /proc/self/oom_score_adj");
    cfg["process"]["oomScoreAdj"] = json!(432);
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.trim() == "432", "oom_score_adj: {out:?}");
    Ok(())
}

fn sysctl_namespaced(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/sys/fs/mqueue/msg_max",
    );
    cfg["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmni": "1234",
        "fs.mqueue.msg_max": "33"
    });
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "1\n1234\n33\n", "sysctl values: {out:?}");
    Ok(())
}

fn sysctl_refused(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["linux"]["sysctl"] = json!({"kernel.panic": "1"});
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("kernel.panic"), "stderr: {err}");
    let mut cfg = config(&["true"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "network");
    cfg["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("net.ipv4.ip_forward"), "stderr: {err}");
    Ok(())
}

fn selinux_unsupported(c: &Ctx) -> TestResult {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        skip!("this host has SELinux");
    }
    let mut cfg = config(&["true"]);
    cfg["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    let err = create_refused(c, &cfg)?;
    ensure!(err.to_lowercase().contains("selinux"), "stderr: {err}");
    Ok(())
}

/// HullOnly: runc 1.1 ignores apparmorProfile on a host without AppArmor.
fn apparmor_unsupported(c: &Ctx) -> TestResult {
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
    {
        skip!("this host has AppArmor");
    }
    let mut cfg = config(&["true"]);
    cfg["process"]["apparmorProfile"] = json!("docker-default");
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("AppArmor"), "stderr: {err}");
    Ok(())
}

fn personality(c: &Ctx) -> TestResult {
    // runc 1.1 ignores linux.personality.
    needs_fix_in_runc(c, (1, 2, 0), "linux.personality support")?;
    let mut cfg = config(&["uname", "-m"]);
    cfg["linux"]["personality"] = json!({"domain": "LINUX32"});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.trim() == "i686", "uname -m under LINUX32: {out:?}");
    Ok(())
}

/// HullOnly: process.scheduler and process.ioPriority came with runc 1.2.
fn scheduler_ioprio(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /proc/self/stat; cat /proc/self/sched | grep -E '^policy'");
    cfg["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 5});
    cfg["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let stat = out.lines().next().unwrap_or("");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    // After ')': state(0) ... nice is field 19 of stat = index 16 here; policy index 38.
    ensure!(fields.get(16) == Some(&"5"), "nice: {stat}");
    ensure!(
        fields.get(38) == Some(&"3"),
        "policy (SCHED_BATCH=3): {stat}"
    );
    let mut cfg = sh_config("ionice -p $$ 2>&1 || cat /proc/self/io 2>&1 | head -1");
    cfg["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("best-effort") && out.contains('6') || out.contains("prio 6"),
        "ionice: {out:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// CVE classes

/// CVE-2019-5736: a container process must not be able to overwrite the runtime
/// binary through /proc/<pid>/exe of a runtime process in its pid namespace. Container
/// A shares its pid namespace with container B, whose init sits in the "created" state
/// (for hull: still the hull binary). A opens /proc/<B's init>/exe and, once B has
/// started and no runtime process runs, tries to write through that fd. The runtime
/// under test is a private copy, so a vulnerable runtime only ruins the copy.
fn cve_2019_5736_exe(c: &Ctx) -> TestResult {
    let work = c.dir("cve5736")?;
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir)?;
    let name = c.rt.bin.file_name().expect("runtime file name");
    let copy = bin_dir.join(name);
    std::fs::copy(&c.rt.bin, &copy)?;
    let before = std::fs::read(&copy)?;
    let io = c.dir("cve5736-io")?;
    let rt = Runtime::new(copy.clone(), c.rt.root.clone(), io);
    let shared = work.join("shared");
    std::fs::create_dir_all(&shared)?;

    // A: find a process that is not its own shell and not pid 1, open its exe and
    // report; then, when told, write through /proc/self/fd/N.
    let script = "\
        while [ ! -e /shared/go ]; do \
          for d in /proc/[0-9]*; do n=${d#/proc/}; \
            [ \"$n\" = 1 ] && continue; [ \"$n\" = $$ ] && continue; \
            read comm < $d/comm 2>/dev/null || continue; \
            case \"$comm\" in sh|sleep|\"\") continue;; esac; \
            if (exec 7</proc/$n/exe) 2>/dev/null; then exec 7</proc/$n/exe; echo opened $n $comm > /shared/tried; \
              while [ ! -e /shared/go ]; do sleep 0.05; done; break 2; \
            else echo denied $n $comm > /shared/tried; fi; \
          done; sleep 0.02; \
        done; \
        if [ -e /proc/self/fd/7 ]; then \
          (echo PWNED > /proc/self/fd/7) 2>/dev/null && echo write-ok > /shared/result || echo write-failed > /shared/result; \
        else echo no-fd > /shared/result; fi; sleep 30";
    let mut a_cfg = sh_config(script);
    add_mount(
        &mut a_cfg,
        json!({"destination": "/shared", "type": "bind", "source": p(&shared), "options": ["rbind"]}),
    );
    let a_id = c.id();
    let a_b = c.bundle(&a_cfg)?;
    rt.create(&a_id, &a_b).ok()?;
    rt.start(&a_id).ok()?;
    let a_pid = rt.pid(&a_id)?;

    // B joins A's pid namespace and waits in "created".
    let mut b_cfg = config(&["sleep", "30"]);
    b_cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "pid");
    b_cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "pid", "path": format!("/proc/{a_pid}/ns/pid")}));
    let b_id = c.id();
    let b_b = c.bundle(&b_cfg)?;
    let res = (|| -> TestResult {
        rt.create(&b_id, &b_b).ok()?;
        wait_file_contains(&shared.join("tried"), " ")?;
        // Let A try every process a few times.
        std::thread::sleep(Duration::from_millis(300));
        rt.start(&b_id).ok()?;
        std::fs::write(shared.join("go"), "")?;
        wait_file_contains(&shared.join("result"), "-")?;
        Ok(())
    })();
    let tried = std::fs::read_to_string(shared.join("tried")).unwrap_or_default();
    let result = std::fs::read_to_string(shared.join("result")).unwrap_or_default();
    let _ = rt.delete_force(&b_id);
    let _ = rt.delete_force(&a_id);
    res?;
    let after = std::fs::read(&copy)?;
    ensure!(
        after == before,
        "the runtime binary was overwritten from inside a container (A: {tried:?}, {result:?})"
    );
    ensure!(
        !result.contains("write-ok"),
        "a container process wrote through /proc/<runtime pid>/exe ({tried:?})"
    );
    Ok(())
}

/// CVE-2024-21626 (1): the container's process holds exactly stdio: no fd of the
/// runtime (state dir, cgroup dir, sync socket, ...) survives execve.
fn cve_2024_21626_fds(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["sleep", "30"]))?;
    let pid = c.rt.pid(&id)?;
    // The init is sleep once `start` returned; wait until it has exec'd.
    runtime_tests::util::wait_until("init to exec sleep", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|s| s.trim() == "sleep")
    })?;
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .flatten()
        .map(|e| {
            let l = std::fs::read_link(e.path())
                .map(|l| p(&l))
                .unwrap_or_default();
            format!("{}->{l}", e.file_name().to_string_lossy())
        })
        .collect();
    fds.sort();
    ensure!(
        fds.len() == 3 && fds.iter().all(|f| f.starts_with(['0', '1', '2'])),
        "fds of the container's process: {fds:?}"
    );
    Ok(())
}

/// CVE-2024-21626 (2): process.cwd = /proc/self/fd/N must never start the process in a
/// directory outside the rootfs (a runtime fd leaked into the init).
fn cve_2024_21626_cwd(c: &Ctx) -> TestResult {
    // runc 1.1.5 as Debian 12 ships it carries the backported fix.
    for n in 3..=12 {
        let mut cfg = config(&["sleep", "30"]);
        cfg["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        let b = c.bundle(&cfg)?;
        let id = c.id();
        let out = c.rt.create(&id, &b);
        if out.code != 0 {
            one_line(c, &out.stderr)?;
            continue;
        }
        c.rt.start(&id).ok()?;
        let pid = c.rt.pid(&id)?;
        runtime_tests::util::wait_until("init to exec", Duration::from_secs(10), || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|s| s.trim() == "sleep")
        })?;
        // Started: walking up from its cwd must reach its root.
        ensure!(
            cwd_under_root(pid),
            "cwd /proc/self/fd/{n} put the process outside its root: {:?}",
            std::fs::read_link(format!("/proc/{pid}/cwd"))
        );
        c.rt.delete_force(&id).ok()?;
    }
    Ok(())
}

/// Does the ".." chain from /proc/PID/cwd pass through /proc/PID/root?
fn cwd_under_root(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let Some(root) = id(&format!("/proc/{pid}/root")) else {
        return false;
    };
    let mut path = format!("/proc/{pid}/cwd");
    for _ in 0..64 {
        let Some(here) = id(&path) else { return false };
        if here == root {
            return true;
        }
        path.push_str("/..");
    }
    false
}

/// CVE-2019-16884 / CVE-2019-19921: nothing but procfs on /proc, no mounts over procfs
/// files (besides runc's lxcfs list).
fn cve_proc_mounts(c: &Ctx) -> TestResult {
    let host = c.dir("fakeproc")?;
    let mut cfg = config(&["true"]);
    remove_mount(&mut cfg, "/proc");
    add_mount(
        &mut cfg,
        json!({"destination": "/proc", "type": "bind", "source": p(&host), "options": ["rbind"]}),
    );
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("/proc"), "stderr: {err}");
    let mut cfg = config(&["true"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/proc/sys/kernel", "type": "bind", "source": p(&host), "options": ["rbind"]}),
    );
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("/proc"), "stderr: {err}");
    // hull also refuses new filesystems inside /proc (runc 1.1 checks only binds).
    if c.rt.is_hull() {
        let mut cfg = config(&["true"]);
        add_mount(
            &mut cfg,
            json!({"destination": "/proc/sys/kernel", "type": "tmpfs", "source": "tmpfs"}),
        );
        let err = create_refused(c, &cfg)?;
        ensure!(err.contains("/proc"), "stderr: {err}");
    }
    Ok(())
}

/// CVE-2023-27561 (a regression of CVE-2019-19921): a rootfs whose /proc (or /sys) is a
/// symlink is refused, so masked and read-only paths cannot miss the real procfs.
fn cve_proc_symlink(c: &Ctx) -> TestResult {
    for dir in ["proc", "sys"] {
        let root = c.private_rootfs()?;
        std::fs::remove_dir(root.join(dir))?;
        std::fs::create_dir(root.join("elsewhere"))?;
        std::os::unix::fs::symlink("/elsewhere", root.join(dir))?;
        let mut cfg = config(&["true"]);
        cfg["root"]["path"] = json!(p(&root));
        let err = create_refused(c, &cfg)?;
        ensure!(err.contains(dir), "/{dir} symlink: stderr: {err}");
    }
    Ok(())
}

/// HullOnly (runc 1.1 allows it): only sysfs may be mounted on /sys itself.
fn cve_sys_mount(c: &Ctx) -> TestResult {
    let host = c.dir("fakesys")?;
    let mut cfg = config(&["true"]);
    remove_mount(&mut cfg, "/sys");
    remove_mount(&mut cfg, "/sys/fs/cgroup");
    add_mount(
        &mut cfg,
        json!({"destination": "/sys", "type": "bind", "source": p(&host), "options": ["rbind"]}),
    );
    let err = create_refused(c, &cfg)?;
    ensure!(err.contains("/sys"), "stderr: {err}");
    Ok(())
}

/// CVE-2021-30465 / CVE-2024-45310: a mount destination below a symlink to a host path
/// (absolute, or climbing with ..) is created and mounted inside the rootfs.
fn cve_mkdir_symlink(c: &Ctx) -> TestResult {
    let host = c.dir("mkdir-target")?;
    let root = c.private_rootfs()?;
    std::os::unix::fs::symlink(&host, root.join("abs"))?;
    let ups = "../".repeat(20);
    std::os::unix::fs::symlink(
        format!("{ups}{}", p(&host).trim_start_matches('/')),
        root.join("rel"),
    )?;
    let mut cfg = sh_config("touch /abs/a/b/f /rel/c/d/f; echo done");
    cfg["root"]["path"] = json!(p(&root));
    for dest in ["/abs/a/b", "/rel/c/d"] {
        add_mount(
            &mut cfg,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
    }
    let out = c.run_cfg(&cfg)?;
    let left: Vec<String> = std::fs::read_dir(&host)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(left.is_empty(), "created on the host: {left:?}");
    ensure!(
        runtime_tests::util::host_mounts_mentioning(&p(&host)).is_empty(),
        "a mount landed on the host path"
    );
    out.ok()?;
    Ok(())
}

/// Config without a /dev tmpfs: the rootfs's own /dev is used.
fn no_dev_mounts(cfg: &mut Value) {
    for d in ["/dev", "/dev/pts", "/dev/shm", "/dev/mqueue"] {
        remove_mount(cfg, d);
    }
}

/// CVE-2025-31133: masking binds a /dev/null that is verified to be the null device;
/// a rootfs whose /dev/null is a symlink to a file cannot unmask a path with it.
fn cve_devnull_symlink(c: &Ctx) -> TestResult {
    needs_fix_in_runc(c, (1, 2, 8), "the fix of CVE-2025-31133")?;
    let root = c.private_rootfs()?;
    std::fs::create_dir_all(root.join("dev"))?;
    std::fs::write(root.join("etc/secret"), "SECRET\n")?;
    std::fs::write(root.join("etc/masked"), "PRIVATE\n")?;
    std::os::unix::fs::symlink("/etc/secret", root.join("dev/null"))?;
    let mut cfg = sh_config("cat /etc/masked; stat -L -c '%F %t:%T' /dev/null");
    cfg["root"]["path"] = json!(p(&root));
    no_dev_mounts(&mut cfg);
    cfg["linux"]["maskedPaths"] = json!(["/etc/masked"]);
    let out = c.run_cfg(&cfg)?;
    if out.code == 0 {
        ensure!(
            !out.stdout.contains("SECRET") && !out.stdout.contains("PRIVATE"),
            "the masked path shows {:?}",
            out.stdout
        );
        ensure!(
            out.stdout.contains("character special file 1:3"),
            "/dev/null is not the null device: {:?}",
            out.stdout
        );
    } else {
        one_line(c, &out.stderr)?;
    }
    Ok(())
}

/// CVE-2025-52881 class: a sysctl write cannot be redirected by a mount over the
/// procfs file (here: a bind of a host file onto /proc/sys/net/ipv4/ip_forward, which
/// the config itself asks for, as a race would produce).
fn cve_sysctl_redirect(c: &Ctx) -> TestResult {
    let host = c.dir("sysctl")?.join("target");
    std::fs::write(&host, "untouched\n")?;
    let mut cfg = config(&["true"]);
    cfg["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    add_mount(
        &mut cfg,
        json!({"destination": "/proc/sys/net/ipv4/ip_forward", "type": "bind",
               "source": p(&host), "options": ["bind"]}),
    );
    let b = c.bundle(&cfg)?;
    let out = c.rt.run(&c.id(), &b);
    let content = std::fs::read_to_string(&host)?;
    ensure!(
        content == "untouched\n",
        "the sysctl write landed in {}: {content:?}",
        host.display()
    );
    ensure!(out.code != 0, "a mount over a sysctl file was accepted");
    one_line(c, &out.stderr)?;
    Ok(())
}

/// CVE-2026-41579 class: a rootfs whose /dev is a symlink to a host directory cannot
/// make the runtime create device nodes there.
fn cve_dev_symlink(c: &Ctx) -> TestResult {
    needs_fix_in_runc(c, (1, 4, 0), "the fix of the CVE-2026-41579 class")?;
    let host = c.dir("devtarget")?;
    let root = c.private_rootfs()?;
    std::fs::remove_dir(root.join("dev"))?;
    std::os::unix::fs::symlink(&host, root.join("dev"))?;
    let mut cfg = config(&["true"]);
    cfg["root"]["path"] = json!(p(&root));
    no_dev_mounts(&mut cfg);
    cfg["linux"]["devices"] =
        json!([{"path": "/dev/hull-test-null", "type": "c", "major": 1, "minor": 3}]);
    let out = c.run_cfg(&cfg)?;
    let left: Vec<String> = std::fs::read_dir(&host)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(
        left.is_empty(),
        "device nodes created on the host: {left:?}"
    );
    if out.code != 0 {
        one_line(c, &out.stderr)?;
    }
    Ok(())
}

/// CVE-2023-25809 class: /sys/fs/cgroup mounted "ro" is read-only in every mount of
/// the tree (on a v1/hybrid host each controller is its own mount).
fn cve_cgroup_ro(c: &Ctx) -> TestResult {
    let out = c.sh(
        "grep ' /sys/fs/cgroup' /proc/self/mountinfo; \
         mkdir /sys/fs/cgroup/hull-x 2>/dev/null && echo TOP-MKDIR-OK; \
         for d in /sys/fs/cgroup/*/; do mkdir \"$d/hull-x\" 2>/dev/null && echo MKDIR-OK $d; done; true",
    )?;
    ensure!(!out.contains("MKDIR-OK"), "cgroupfs writable: {out}");
    // The tmpfs holding the v1 controllers: runc 1.1 leaves it writable (harmless: it
    // is the container's own tmpfs); hull makes it read-only too.
    let hull = c.rt.is_hull();
    let mut n = 0;
    for line in out
        .lines()
        .filter(|l| l.contains(" /sys/fs/cgroup") && (hull || !l.contains(" - tmpfs ")))
    {
        n += 1;
        let opts = line.split(' ').nth(5).unwrap_or("");
        ensure!(
            opts.split(',').any(|o| o == "ro"),
            "cgroup mount not read-only: {line}"
        );
    }
    ensure!(n > 0, "no cgroup mount in the container: {out}");
    Ok(())
}

/// A foreground `run` of `cfg` with a real terminal on our side (`script` gives
/// the runtime one: runc opens /dev/tty for a terminal container); returns what
/// the terminal showed and the runtime's exit code.
fn run_in_pty(c: &Ctx, cfg: &Value) -> Result<(String, i32), Outcome> {
    if !Path::new("/usr/bin/script").exists() {
        skip!("script (bsdutils) is not installed");
    }
    let b = c.bundle(cfg)?;
    let id = c.id();
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        c.rt.bin.display(),
        c.rt.root.display(),
        b.display(),
        id
    );
    let out = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    Ok((text, out.status.code().unwrap_or(-1)))
}

/// With process.terminal, /dev/console is the container's pty (runtime spec).
fn terminal_dev_console(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("ls -l /dev/console; tty");
    cfg["process"]["terminal"] = json!(true);
    let (out, code) = run_in_pty(c, &cfg)?;
    ensure!(code == 0, "terminal run exited {code}: {out}");
    let console = out
        .lines()
        .find(|l| l.contains("/dev/console"))
        .unwrap_or("");
    // runc's output begins with a NUL (shown as ^@): look inside the line.
    ensure!(
        console.contains("crw") && console.contains("136,"),
        "/dev/console is not a pty: {out}"
    );
    ensure!(out.contains("/dev/pts/"), "stdin is not the pty: {out}");
    Ok(())
}

/// CVE-2025-52565: a /dev/console planted in the image as a symlink must not make
/// the runtime bind the pty over the file it points to.
fn cve_console_symlink(c: &Ctx) -> TestResult {
    needs_fix_in_runc(c, (1, 2, 8), "the fix of CVE-2025-52565")?;
    let root = c.private_rootfs()?;
    std::fs::create_dir_all(root.join("dev/pts"))?;
    std::fs::write(root.join("etc/target"), "UNTOUCHED\n")?;
    std::os::unix::fs::symlink("/etc/target", root.join("dev/console"))?;
    let mut cfg = sh_config("cat /etc/target; ls -l /dev/console");
    cfg["process"]["terminal"] = json!(true);
    cfg["root"]["path"] = json!(root.to_string_lossy());
    // The image's own /dev, with a devpts for the pty.
    no_dev_mounts(&mut cfg);
    cfg["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/dev/pts", "type": "devpts", "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    }));
    let (out, _) = run_in_pty(c, &cfg)?;
    // Refused, or bound somewhere harmless: never over /etc/target.
    ensure!(
        !out.contains("crw"),
        "the pty was bound through the symlink: {out}"
    );
    ensure!(
        std::fs::read_to_string(root.join("etc/target"))? == "UNTOUCHED\n",
        "/etc/target changed"
    );
    Ok(())
}
