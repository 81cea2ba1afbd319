//! What every container process gets right before execve, whether it is
//! the init or a process started by `hull exec`: rlimits, user and groups,
//! umask, cwd, no_new_privs, the environment (environ.rs), the executable
//! looked up in the container's PATH, then a clean signal state and no
//! inherited fds.

use std::convert::Infallible;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{self, Gid, Uid};
use oci_spec::runtime::{Linux, PosixRlimitType, Process};

use super::environ;
use crate::error::{Context, Error, Result};
use crate::security;
use crate::sys;

/// The program to exec, resolved before the init reports ready, so a typo
/// in process.args fails `create`, not `start`.
pub struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// Capabilities still to drop and the seccomp filter still to load.
    pub security: security::Late,
}

/// Apply the process's own settings (in this order: limits and scheduling
/// while still privileged, environment and cwd as root, then identity,
/// then capabilities) and find its program. `linux` brings the seccomp profile
/// (compiled here, loaded by `exec`) and the personality.
pub fn apply_with(process: &Process, linux: Option<&Linux>) -> Result<Exec> {
    set_rlimits(process)?;
    security::sched::oom_score_adj(process)?;
    // CVE-2019-5736: until execve this process is the hull binary; a
    // non-dumpable process's /proc/PID/exe cannot be opened by container
    // processes (no CAP_SYS_PTRACE over hull's user namespace).
    prctl::set_dumpable(false).step("make process undumpable")?;
    security::sched::scheduler(process)?;
    security::sched::io_priority(process)?;
    security::sched::personality(linux.and_then(|l| l.personality().as_ref()))?;
    security::lsm::apply(process)?;
    let nnp = process.no_new_privileges() == Some(true);
    let seccomp = linux
        .and_then(|l| l.seccomp().as_ref())
        .map(security::seccomp::compile)
        .transpose()?;
    let caps = security::caps::before_user_switch(process)?;
    // Read as root: /etc/passwd may not be readable by the container user.
    let env = environ::build(
        process.env().as_deref().unwrap_or_default(),
        process.user().uid(),
    )?;
    // As root first, as runc does: a cwd only root may enter (0700) still
    // works for a process that drops to another uid. Only a permission
    // error is retried as the user (root squashed on NFS, a userns).
    let cwd = process.cwd().as_path();
    let early = match unistd::chdir(cwd) {
        Ok(()) => true,
        Err(Errno::EACCES | Errno::EPERM) => false,
        Err(e) => return Err(Error::sys("chdir to process.cwd", Some(cwd), e)),
    };
    give_stdio_to_user(process.user().uid(), process.terminal() == Some(true))?;
    switch_user(process)?;
    if !early {
        unistd::chdir(cwd).step_at("chdir to process.cwd", cwd)?;
    }
    check_cwd(process)?;
    let caps = security::caps::after_user_switch(caps, seccomp.is_some() && !nnp)?;
    if nnp {
        prctl::set_no_new_privs().step("set no_new_privs")?;
    }
    // Changing credentials may have reset it (fs.suid_dumpable).
    prctl::set_dumpable(false).step("make process undumpable")?;
    let mut exec = resolve_exec(process, env)?;
    exec.security = security::Late {
        caps,
        seccomp,
        from_hull: None,
    };
    Ok(exec)
}

/// CVE-2024-21626: a cwd reached through an fd hull holds (process.cwd
/// "/proc/self/fd/N") would start the process in a host directory. The
/// kernel reports such a cwd as unreachable from our root.
fn check_cwd(process: &Process) -> Result<()> {
    match unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(Error::new("chdir to process.cwd")
            .at(process.cwd())
            .detail("the directory is outside the container's root")
            .hint("process.cwd must be a directory inside the rootfs")),
    }
}

/// Replace this process with the container's program. Fds 3 .. 3+`keep_fds`
/// stay open (runc's --preserve-fds); every other fd above stdio is closed.
pub fn exec(exec: &Exec, keep_fds: u32) -> Result<Infallible> {
    restore_signals()?;
    sys::cloexec_from(3 + keep_fds).step("close inherited fds")?;
    // Last: after this only sendmsg (notify) / capset (no NNP) and execve.
    exec.security.finish()?;
    unistd::execve(&exec.path, &exec.args, &exec.env)
        .step_at("exec", Path::new(exec.path.to_str().unwrap_or("?")))
}

fn set_rlimits(process: &Process) -> Result<()> {
    for rl in process.rlimits().iter().flatten() {
        let resource = rlimit_resource(rl.typ());
        setrlimit(resource, rl.soft(), rl.hard())
            .map_err(|e| {
                Error::sys(format!("set rlimit {}", rl.typ()), None, e)
                    .detail(format!("soft {} hard {}", rl.soft(), rl.hard()))
            })
            .map_err(|e| {
                e.hint_if(
                    Errno::EPERM,
                    "raising a hard limit needs CAP_SYS_RESOURCE; keep hard at or below the current limit",
                )
            })?;
    }
    Ok(())
}

fn rlimit_resource(t: PosixRlimitType) -> Resource {
    use PosixRlimitType as T;
    match t {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// runc's fixStdioPermissions: stdio goes to the process's uid, so a
/// process that is not root can use its terminal and reopen /dev/stdout.
/// Only what belongs to the container's run: its pty (`own_terminal`), and
/// pipes, FIFOs and sockets (what engines pass). Unlike runc with `-d`, a
/// regular file or a host terminal the caller redirected to is never handed
/// to a container uid on the host. The gid stays (devpts gives a pty the
/// tty group); what the user namespace cannot map (EINVAL, EPERM) is left.
fn give_stdio_to_user(uid: u32, own_terminal: bool) -> Result<()> {
    for fd in 0..=2 {
        let Ok(st) = nix::sys::stat::fstat(fd) else {
            continue;
        };
        let ours = match st.st_mode & libc::S_IFMT {
            libc::S_IFIFO | libc::S_IFSOCK => true,
            libc::S_IFCHR => own_terminal,
            _ => false,
        };
        if !ours || st.st_uid == uid {
            continue;
        }
        match unistd::fchown(fd, Some(Uid::from_raw(uid)), None) {
            Ok(()) | Err(Errno::EINVAL | Errno::EPERM) => {}
            Err(e) => {
                return Err(Error::sys(format!("chown stdio fd {fd}"), None, e)
                    .detail(format!("to uid {uid}")))
            }
        }
    }
    Ok(())
}

fn switch_user(process: &Process) -> Result<()> {
    let user = process.user();
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    match unistd::setgroups(&gids) {
        // A joined user namespace may have setgroups denied: fine when
        // there are no groups to set.
        Err(Errno::EPERM) if gids.is_empty() => {}
        other => other.step("setgroups")?,
    }
    let gid = Gid::from_raw(user.gid());
    let uid = Uid::from_raw(user.uid());
    unistd::setresgid(gid, gid, gid)
        .step("setgid")
        .map_err(|e| {
            e.detail(format!("gid {gid}"))
                .hint_if(Errno::EINVAL, "the gid is not mapped in the user namespace")
        })?;
    unistd::setresuid(uid, uid, uid)
        .step("setuid")
        .map_err(|e| {
            e.detail(format!("uid {uid}"))
                .hint_if(Errno::EINVAL, "the uid is not mapped in the user namespace")
        })?;
    umask(Mode::from_bits_truncate(user.umask().unwrap_or(0o022)));
    Ok(())
}

fn cstring(s: &str, what: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| Error::new("check process").detail(format!("{what} contains a NUL byte")))
}

fn resolve_exec(process: &Process, env: Vec<String>) -> Result<Exec> {
    let args = process.args().as_deref().unwrap_or_default();
    let program = &args[0];
    let path = if program.contains('/') {
        PathBuf::from(program)
    } else {
        let search = env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        search
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .find(|p| is_executable(p))
            .ok_or_else(|| {
                exec_error(program, "executable file not found in $PATH")
                    .hint("check process.args[0] and the PATH in process.env")
            })?
    };
    let hint = "process.args[0] must be an executable inside the rootfs";
    match std::fs::metadata(&path) {
        Err(e) => {
            let why = go_strerror(Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
            let detail = format!("stat {}: {why}", path.display());
            return Err(exec_error(program, &detail).hint(hint));
        }
        Ok(_) if !is_executable(&path) => {
            return Err(exec_error(program, "permission denied").hint(hint))
        }
        Ok(_) => {}
    }
    // A noexec mount passes the mode check above.
    nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK)
        .map_err(|e| exec_error(program, &go_strerror(e)).hint(hint))?;
    Ok(Exec {
        security: security::Late::default(),
        path: cstring(&path.to_string_lossy(), "process.args[0]")?,
        args: args
            .iter()
            .map(|a| cstring(a, "process.args"))
            .collect::<Result<_>>()?,
        env: env
            .iter()
            .map(|e| cstring(e, "process.env"))
            .collect::<Result<_>>()?,
    })
}

/// runc's words for a program it cannot run (`exec: "foo": executable file
/// not found in $PATH`, `exec: "/x": stat /x: no such file or directory`):
/// Docker's CLI turns exactly these into exit codes 127 and 126.
fn exec_error(program: &str, detail: &str) -> Error {
    Error::new(format!("exec: {program:?}")).detail(detail)
}

/// An errno as Go (and so runc) spells it: "no such file or directory".
fn go_strerror(e: Errno) -> String {
    e.desc().to_lowercase()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// hull blocks signals (to forward them), Rust ignores SIGPIPE, and whoever
/// started hull may have ignored others (nohup ignores SIGHUP; exec keeps an
/// ignored signal ignored). The container's process starts with none of it:
/// a shell cannot even trap a signal that was ignored when it started.
fn restore_signals() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).step("reset signal mask")?;
    sys::default_all_signals();
    Ok(())
}
