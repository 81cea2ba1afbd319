//! The container init: what runs in the child of clone3, top to bottom,
//! from "just forked" to execve of the user's process. Every error before
//! `Ready` goes back to hull over the sync channel with its cause.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::{self, Gid, Uid};

use super::finalize::{self, Exec};
use super::namespaces::{Plan, CLONE_NEWTIME};
use super::sync::{Channel, Msg};
use crate::bundle::Bundle;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::rootfs::{self, RootfsConfig};
use crate::security;
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
    pub log: &'a crate::log::Logger,
    /// v1 `tasks` files of the container's cgroups, opened by hull.
    pub cgroup_tasks: &'a [(OwnedFd, std::path::PathBuf)],
    /// Fds 3 .. 3+keep_fds go to the process (LISTEN_FDS, --preserve-fds).
    pub keep_fds: u32,
    /// Becomes fds 0, 1, 2 (the monitor's pipes) unless there is a terminal.
    pub stdio: Option<[RawFd; 3]>,
    /// A session keyring of the container's own (runc's `_ses.<id>`).
    pub session_keyring: Option<&'a str>,
}

/// The kernel makes `lo` first in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// Never returns: execs the container process or exits.
pub fn run(ctx: InitContext) -> ! {
    let err = match setup(&ctx) {
        Ok((exec, pty)) => {
            wait_for_start_and_exec(&ctx, exec, pty);
        }
        Err(e) => e,
    };
    let _ = ctx.chan.send(&Msg::Failed(err.to_string()));
    std::process::exit(1)
}

fn setup(ctx: &InitContext) -> Result<(Exec, Option<OwnedFd>)> {
    if let Some(fd) = ctx.lock_fd {
        let _ = unistd::close(fd);
    }
    // If hull dies during setup, so does the half-made container.
    prctl::set_pdeathsig(Signal::SIGKILL).step("set parent death signal")?;

    // hull journals our pid first.
    wait_for(ctx.chan, Msg::Go, "wait for placement")?;
    // Into our cgroups before anything else (the cgroup namespace, made
    // below, is rooted where we are).
    crate::cgroups::join_self(ctx.cgroup_tasks)?;
    ctx.log.step("init: placed");

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
    if let Some(name) = ctx.session_keyring {
        // Keys are not namespaced: without its own session keyring the
        // container would see and use the caller's.
        security::keyring::join_new(name, plan.has(CloneFlags::CLONE_NEWUSER))?;
    }
    if plan.new.contains(CLONE_NEWTIME) {
        enter_time_namespace(ctx.bundle)?;
    }
    if plan.new.contains(CloneFlags::CLONE_NEWNET) {
        // A new network namespace has only `lo`, down: runc brings it up.
        crate::network::netlink::Netlink::open()?.set_up(LOOPBACK_INDEX, "lo")?;
    }

    // An overlay rootfs is mounted here, inside the new mount namespace.
    let rootfs = crate::storage::mount_rootfs(ctx.bundle)?;
    let sources = rootfs::sources::receive(ctx.chan, spec, plan.has(CloneFlags::CLONE_NEWUSER))?;
    let rootfs_cfg = RootfsConfig {
        spec,
        rootfs,
        bundle: &ctx.bundle.dir,
        in_userns: plan.new.contains(CloneFlags::CLONE_NEWUSER),
        new_netns: plan.new.contains(CloneFlags::CLONE_NEWNET),
        new_cgroupns: plan.new.contains(CloneFlags::CLONE_NEWCGROUP),
        no_pivot: ctx.no_pivot,
        sources: &sources,
    };
    ctx.log.step("init: namespaces");
    let prepared = rootfs::prepare(&rootfs_cfg)?;
    ctx.log.step("init: rootfs mounts and devices");
    // prestart/createRuntime (by hull), createContainer (here), if any.
    let from_hull = security::init_before_pivot(ctx.chan, spec, rootfs_cfg.rootfs)?;
    rootfs::enter(&rootfs_cfg)?;
    ctx.log.step("init: pivot_root");
    security::sysctl::apply(spec)?;
    // /dev/console before a read-only /dev is sealed (runc's order).
    let process = ctx.bundle.process();
    let pty = console::open_if_terminal(process, true)?;
    rootfs::finalize(&rootfs_cfg, prepared)?;
    ctx.log.step("init: masked and readonly paths");

    if let Some(name) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        unistd::sethostname(name).step("set hostname")?;
    }
    if let Some(name) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        sys::setdomainname(name).step("set domainname")?;
    }

    let mut exec = finalize::apply_with(process, spec.linux().as_ref())?;
    if let Some(h) = from_hull {
        if let Some(agent) = h.agent {
            exec.security.set_agent(agent, spec, &h.state);
        }
        exec.security.from_hull = Some(security::FromHull {
            state: h.state,
            agent: None,
        });
    }
    ctx.log.step("init: process settings");

    // The monitor's pipes become the process's stdio late (before the
    // seccomp filter, which may not allow dup2): until here our --debug
    // trace goes to hull's stderr, not into the container's log. A
    // terminal has taken 0, 1 and 2 already.
    if let (Some(stdio), None) = (ctx.stdio, &pty) {
        for (target, fd) in stdio.into_iter().enumerate() {
            unistd::dup2(fd, target as RawFd).step("attach stdio")?;
        }
    }
    // From here hull may exit (create returns): the init must outlive it.
    prctl::set_pdeathsig(None).step("clear parent death signal")?;
    // The seccomp filter, before we report ready (runc's order): the agent
    // has its notify fd when `create` returns, and startContainer hooks run
    // under the filter. What follows uses few syscalls: sendmsg, openat,
    // write, close, the hooks, close_range (else fcntl), execve.
    exec.security.finish_early()?;
    Ok((exec, pty))
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
    // unshare(CLONE_NEWTIME) moves only our children; execve moves us too
    // since Linux 6.2 only. Join it now (offsets are fixed from here on):
    // the container process is in it on every kernel.
    let path = Path::new("/proc/self/ns/time_for_children");
    let ns = std::fs::File::open(path).step_at("open time namespace", path)?;
    nix::sched::setns(ns, CLONE_NEWTIME).step_at("join time namespace", path)?;
    Ok(())
}

/// Tell hull we are ready, block until `start` opens exec.fifo, then exec.
/// Errors from here on cannot reach hull (it may have exited): they go to
/// the container's stderr and the exit code.
fn wait_for_start_and_exec(ctx: &InitContext, exec: Exec, pty: Option<OwnedFd>) -> ! {
    if ctx
        .chan
        .send_with_fd(&Msg::Ready, pty.as_ref().map(|fd| fd.as_raw_fd()))
        .is_err()
    {
        std::process::exit(1);
    }
    drop(pty);
    let result = (|| -> Result<std::convert::Infallible> {
        // Blocks until `start` opens the other end. openat, not openat2:
        // the seccomp filter is loaded, and profiles older than openat2
        // refuse it (the fifo is hull's own file: no resolve flags needed).
        let fifo = nix::fcntl::openat(
            Some(ctx.state_dir.as_raw_fd()),
            EXEC_FIFO_C,
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(sys::own_fd)
        .step("open exec.fifo")?;
        // Kept open (close-on-exec) until execve: `start` waits for its end
        // of file, so poststart hooks run after our process is executed.
        let mut fifo = std::fs::File::from(fifo);
        fifo.write_all(b"0").step("write exec.fifo")?;
        security::init_before_exec(&ctx.bundle.spec, exec.security.from_hull.as_ref())?;
        finalize::exec(&exec, ctx.keep_fds)
    })();
    let Err(e) = result;
    eprintln!("hull: error: {e}");
    std::process::exit(127)
}
