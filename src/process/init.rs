//! The container init: what runs in the child of clone3, top to bottom,
//! from "just forked" to execve of the user's process. Every error before
//! `Ready` goes back to hull over the sync channel with its cause.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{self, Gid, Uid};
use oci_spec::runtime::{PosixRlimitType, Process};

use super::namespaces::{Plan, CLONE_NEWTIME};
use super::sync::{Channel, Msg};
use crate::bundle::Bundle;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::rootfs::{self, RootfsConfig};
use crate::state::EXEC_FIFO_C;
use crate::sys::{self, Forked};

pub struct InitContext<'a> {
    pub bundle: &'a Bundle,
    pub plan: &'a Plan,
    pub chan: &'a Channel,
    /// O_PATH fd of the state directory: reaches exec.fifo after pivot_root.
    pub state_dir: &'a OwnedFd,
    /// The create's flock, inherited by the fork; closed first thing.
    pub lock_fd: Option<RawFd>,
    pub no_pivot: bool,
}

/// Never returns: execs the container process or exits.
pub fn run(ctx: InitContext) -> ! {
    let err = match setup(&ctx) {
        Ok(exec) => {
            wait_for_start_and_exec(&ctx, exec);
        }
        Err(e) => e,
    };
    let _ = ctx.chan.send(&Msg::Failed(err.to_string()));
    std::process::exit(1)
}

/// The program to exec, resolved before we report ready, so a typo in
/// process.args fails `create`, not `start`.
struct Exec {
    path: CString,
    args: Vec<CString>,
    env: Vec<CString>,
    /// The pty master, for hull, when process.terminal is true.
    pty: Option<OwnedFd>,
}

fn setup(ctx: &InitContext) -> Result<Exec> {
    if let Some(fd) = ctx.lock_fd {
        let _ = unistd::close(fd);
    }
    // If hull dies during setup, so does the half-made container.
    prctl::set_pdeathsig(Signal::SIGKILL).step("set parent death signal")?;

    // hull journals our pid and puts us in our cgroups first.
    wait_for(ctx.chan, Msg::Go, "wait for placement")?;

    let spec = &ctx.bundle.spec;
    let plan = ctx.plan;
    plan.join_and_unshare(|| request_id_maps(ctx.chan))?;
    if plan.fast_path() && plan.new.contains(CloneFlags::CLONE_NEWUSER) {
        request_id_maps(ctx.chan)?;
    }
    if plan.has(CloneFlags::CLONE_NEWUSER) {
        become_root_in_userns()?;
    }
    plan.unshare_after_placement()?;
    if plan.needs_pid_fork() {
        fork_into_pid_namespace(ctx.chan)?;
    }
    unistd::setsid().step("setsid")?;
    if plan.new.contains(CLONE_NEWTIME) {
        enter_time_namespace(ctx.bundle)?;
    }

    let rootfs_cfg = RootfsConfig {
        spec,
        rootfs: &ctx.bundle.rootfs,
        bundle: &ctx.bundle.dir,
        in_userns: plan.new.contains(CloneFlags::CLONE_NEWUSER),
        new_netns: plan.new.contains(CloneFlags::CLONE_NEWNET),
        new_cgroupns: plan.new.contains(CloneFlags::CLONE_NEWCGROUP),
        no_pivot: ctx.no_pivot,
    };
    rootfs::prepare(&rootfs_cfg)?;
    rootfs::enter(&rootfs_cfg)?;
    rootfs::finalize(&rootfs_cfg)?;

    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        unistd::sethostname(name).step("set hostname")?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(name).step("set domainname")?;
    }

    let process = ctx.bundle.process();
    let pty = match process.terminal() {
        Some(true) => Some(console::open_in_container(
            process
                .console_size()
                .map(|b| (b.height() as u16, b.width() as u16)),
        )?),
        _ => None,
    };
    set_rlimits(process)?;
    switch_user(process)?;
    unistd::chdir(process.cwd().as_path()).step_at("chdir to process.cwd", process.cwd())?;
    if process.no_new_privileges() == Some(true) {
        prctl::set_no_new_privs().step("set no_new_privs")?;
    }
    let mut exec = resolve_exec(process)?;
    exec.pty = pty;

    // From here hull may exit (create returns): the init must outlive it.
    prctl::set_pdeathsig(None).step("clear parent death signal")?;
    Ok(exec)
}

fn request_id_maps(chan: &Channel) -> Result<()> {
    chan.send(&Msg::MapIds)?;
    wait_for(chan, Msg::Mapped, "wait for uid/gid maps")
}

fn wait_for(chan: &Channel, want: Msg, step: &str) -> Result<()> {
    match chan.recv()? {
        Some((msg, _)) if msg == want => Ok(()),
        Some((msg, _)) => Err(Error::new(step).detail(format!("unexpected {msg:?} from hull"))),
        None => Err(Error::new(step).detail("hull went away")),
    }
}

/// Our host uid 0 is not mapped in the container's user namespace: until we
/// switch to its root we would create files as the overflow id (EOVERFLOW).
fn become_root_in_userns() -> Result<()> {
    let root_hint = "map container id 0 in linux.uidMappings and linux.gidMappings";
    unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0))
        .step("become root in user namespace (setgid 0)")
        .map_err(|e| e.hint(root_hint))?;
    unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
        .step("become root in user namespace (setuid 0)")
        .map_err(|e| e.hint(root_hint))
}

/// Slow path: unshare(CLONE_NEWPID) only moves our children, so fork once
/// more with CLONE_PARENT; the grandchild is pid 1 and still hull's child.
fn fork_into_pid_namespace(chan: &Channel) -> Result<()> {
    match sys::clone_fork(libc::CLONE_PARENT as u64, None).step("fork into pid namespace")? {
        Forked::Child => {
            prctl::set_pdeathsig(Signal::SIGKILL).step("set parent death signal")?;
            Ok(())
        }
        Forked::Parent(pid) => {
            let _ = chan.send(&Msg::InitPid(pid.as_raw()));
            std::process::exit(0)
        }
    }
}

fn enter_time_namespace(bundle: &Bundle) -> Result<()> {
    nix::sched::unshare(CLONE_NEWTIME).step("unshare time namespace")?;
    let offsets = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.time_offsets().clone());
    let mut text = String::new();
    for (clock, off) in offsets.iter().flatten() {
        let clock = match clock.as_str() {
            "monotonic" | "boottime" => clock,
            other => {
                return Err(Error::new("set time offsets")
                    .detail(format!("unknown clock {other:?}"))
                    .hint("linux.timeOffsets takes \"monotonic\" and \"boottime\""))
            }
        };
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        let path = Path::new("/proc/self/timens_offsets");
        std::fs::write(path, text).step_at("set time offsets", path)?;
    }
    Ok(())
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

fn resolve_exec(process: &Process) -> Result<Exec> {
    let args = process.args().as_deref().unwrap_or_default();
    let env: Vec<String> = process.env().clone().unwrap_or_default();
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
                Error::new(format!("exec: {program:?}"))
                    .detail("executable file not found in $PATH")
                    .hint("check process.args[0] and the PATH in process.env")
            })?
    };
    nix::unistd::access(&path, nix::unistd::AccessFlags::X_OK)
        .step_at("exec", &path)
        .map_err(|e| e.hint("process.args[0] must be an executable inside the rootfs"))?;
    Ok(Exec {
        path: cstring(&path.to_string_lossy(), "process.args[0]")?,
        args: args
            .iter()
            .map(|a| cstring(a, "process.args"))
            .collect::<Result<_>>()?,
        env: env
            .iter()
            .map(|e| cstring(e, "process.env"))
            .collect::<Result<_>>()?,
        pty: None,
    })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Tell hull we are ready, block until `start` opens exec.fifo, then exec.
/// Errors from here on cannot reach hull (it may have exited): they go to
/// the container's stderr and the exit code.
fn wait_for_start_and_exec(ctx: &InitContext, mut exec: Exec) -> ! {
    let pty = exec.pty.take();
    if ctx
        .chan
        .send_with_fd(&Msg::Ready, pty.as_ref().map(|fd| fd.as_raw_fd()))
        .is_err()
    {
        std::process::exit(1);
    }
    drop(pty);
    let result = (|| -> Result<std::convert::Infallible> {
        // Blocks until `start` opens the other end.
        let fifo = sys::openat2(ctx.state_dir.as_fd(), EXEC_FIFO_C, libc::O_WRONLY, 0, 0)
            .step("open exec.fifo")?;
        std::fs::File::from(fifo)
            .write_all(b"0")
            .step("write exec.fifo")?;
        restore_signals()?;
        sys::cloexec_from(3).step("close inherited fds")?;
        unistd::execve(&exec.path, &exec.args, &exec.env)
            .step_at("exec", Path::new(exec.path.to_str().unwrap_or("?")))
    })();
    let Err(e) = result;
    eprintln!("hull: {e}");
    std::process::exit(127)
}

/// hull blocks signals (to forward them) and Rust ignores SIGPIPE; the
/// container's process must start with neither.
fn restore_signals() -> Result<()> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).step("reset signal mask")?;
    sys::default_signal(Signal::SIGPIPE).step("reset SIGPIPE")
}
