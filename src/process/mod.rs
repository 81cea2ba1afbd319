//! Starting the container init (hull's side of the clone) and talking to it
//! until it is ready. The child's side is init.rs.

pub mod environ;
pub mod fds;
pub mod finalize;
pub mod init;
pub mod join;
pub mod namespaces;
pub mod passwd;
pub mod sync;

use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::state::{proc_start_time, Container};
use crate::sys::{self, Forked};
use init::InitContext;
use namespaces::Plan;
use sync::Msg;

pub struct SpawnOptions<'a> {
    pub no_pivot: bool,
    /// The container's cgroups, made: the init joins them as it starts.
    pub cgroups: &'a crate::cgroups::Prepared,
    /// The init traces its own steps here too (`--debug`).
    pub log: &'a crate::log::Logger,
    /// Fds 3 .. 3+keep_fds of hull go to the container's process.
    pub keep_fds: u32,
    /// Becomes the process's fds 0, 1, 2 (None: hull's own).
    pub stdio: Option<[std::os::fd::RawFd; 3]>,
    /// The name of a new session keyring for the init, None to keep the caller's.
    pub session_keyring: Option<String>,
}

/// The init, set up and waiting for `start`.
pub struct Ready {
    pub pid: Pid,
    /// The pty master when process.terminal is true.
    pub pty: Option<OwnedFd>,
}

/// Fork the init of `container`, record its pid before it touches the host,
/// serve its requests (id maps), and return once it waits for `start`.
pub fn spawn(bundle: &Bundle, container: &mut Container, opts: &SpawnOptions) -> Result<Ready> {
    let plan = Plan::from_spec(&bundle.spec)?;
    let (ours, theirs) = sync::pair()?;
    let state_dir = open_path(container)?;
    let flags = plan.clone_flags().bits() as u32 as u64;

    // Born in the v2 cgroup (CLONE_INTO_CGROUP); joins v1 ones itself.
    let cgroups = opts.cgroups;
    let child = match sys::clone_fork(flags, cgroups.clone_into()).step("clone container init")? {
        Forked::Child => {
            drop(ours);
            init::run(InitContext {
                bundle,
                plan: &plan,
                chan: &theirs,
                state_dir: &state_dir,
                lock_fd: container.lock_fd(),
                cgroup_tasks: &cgroups.tasks,
                no_pivot: opts.no_pivot,
                log: opts.log,
                keep_fds: opts.keep_fds,
                stdio: opts.stdio,
                session_keyring: opts.session_keyring.as_deref(),
            })
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    opts.log.step("clone3 of the init");
    record_init(container, child)?;
    opts.log.step("init journalled");
    ours.send(&Msg::Go)?;

    let mut init = child;
    loop {
        match ours.recv()? {
            Some((Msg::MapIds, _)) => {
                namespaces::write_id_maps(child, &bundle.spec)?;
                ours.send(&Msg::Mapped)?;
            }
            Some((Msg::InitPid(pid), _)) => {
                // The intermediate of the slow path has done its job.
                let _ = waitpid(child, None);
                init = Pid::from_raw(pid);
                record_init(container, init)?;
            }
            Some((Msg::Ready, pty)) => return Ok(Ready { pid: init, pty }),
            Some((Msg::Hooks, _)) => {
                let (state, agent) =
                    crate::security::on_init_hooks(&bundle.spec, container, init.as_raw())?;
                ours.send_with_fd(&Msg::State(state), crate::security::raw(&agent))?;
            }
            Some((Msg::Failed(msg), _)) => {
                let _ = waitpid(init, None);
                return Err(Error::new(msg));
            }
            Some((Msg::OpenSources, _)) => {
                crate::rootfs::sources::send(&ours, init, &bundle.spec, &bundle.dir)?;
            }
            Some((
                Msg::Mapped | Msg::Go | Msg::State(_) | Msg::Source(_) | Msg::SourcesDone,
                _,
            )) => return Err(Error::new("sync protocol").detail("unexpected message from init")),
            None => return Err(vanished(init)),
        }
    }
}

/// Journal the init in state.json first, so `delete --force` finds it
/// whatever happens to hull next.
fn record_init(container: &mut Container, pid: Pid) -> Result<()> {
    container.record.pid = pid.as_raw();
    container.record.pid_start = proc_start_time(pid.as_raw()).map(|(s, _)| s).unwrap_or(0);
    container.save()
}

fn open_path(container: &Container) -> Result<OwnedFd> {
    open(
        &container.dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(crate::sys::own_fd)
    .step_at("open state dir", &container.dir)
}

/// The init closed the channel without a word: say how it ended.
fn vanished(pid: Pid) -> Error {
    let status = waitpid(pid, None);
    let how = match status {
        Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
        Ok(WaitStatus::Signaled(_, sig, _)) => format!("was killed by {sig}"),
        _ => "ended".to_string(),
    };
    let err = Error::new("start container init").detail(format!("the init {how} during setup"));
    // Nothing in the init sends itself SIGKILL: the OOM killer does, when the
    // container's memory limit cannot hold even the setup.
    match status {
        Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => {
            err.hint("if linux.resources.memory.limit is set, it may be too small to start in")
        }
        _ => err,
    }
}
