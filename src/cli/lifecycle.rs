//! The lifecycle commands: create, start, run, kill, delete.

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigmaskHow};
use nix::unistd::Pid;

use super::foreground;
use crate::console;
use crate::create::{self, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::signal as signals;
use crate::state::{Container, Status, Store};
use crate::sys;

/// What `create` and `run` share: the bundle, its extras, how the init is made.
#[derive(Args)]
pub struct CreateArgs {
    /// Path to the bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the init's host pid to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for an initramfs root)
    #[arg(long)]
    no_pivot: bool,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Keep the caller's session keyring (by default the container gets one of its own)
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass N more fds (after stdio and any LISTEN_FDS) to the process
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[command(flatten)]
    storage: super::storage::StorageArgs,
    #[command(flatten)]
    network: super::network::NetworkArgs,
    #[command(flatten)]
    overrides: super::overrides::OverrideArgs,
    id: String,
    /// A command and its arguments replacing process.args (hull-only)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

impl CreateArgs {
    /// `detached`: nobody will proxy a terminal, so one needs a console socket.
    /// First thing a command does: the fds passed on are checked before
    /// hull opens any of its own.
    fn options(self, detached: bool) -> Result<CreateOptions> {
        let passed = crate::process::fds::for_init(self.preserve_fds)?;
        Ok(CreateOptions {
            keep_fds: passed.count,
            no_new_keyring: self.no_new_keyring,
            extra_env: passed.env,
            id: self.id,
            bundle: self.bundle,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            console_socket: self.console_socket,
            detached,
            storage: self.storage.extras(),
            network: self.network.extras(),
            overrides: self.overrides.overrides(self.command)?,
        })
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// Return once the container is started, leave it running
    #[arg(short, long)]
    detach: bool,
    /// Keep the stopped container's state after a foreground run
    #[arg(long)]
    keep: bool,
    /// Do not become the subreaper of the container's orphans (runc's flag)
    #[arg(long)]
    no_subreaper: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal every process of the container, not just its init
    #[arg(short, long)]
    all: bool,
    id: String,
    /// Signal name (TERM, SIGTERM) or number; default TERM
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running
    #[arg(short, long)]
    force: bool,
    id: String,
}

pub fn create(root: &Path, args: CreateArgs, log: &Logger) -> Result<()> {
    let id = args.id.clone();
    let opts = args
        .options(true)
        .map_err(|e| e.within(format!("create {id}")))?;
    create::create(&Store::new(root), &opts, log)
        .map(drop)
        .map_err(|e| e.within(format!("create {}", opts.id)))
}

pub fn start(root: &Path, id: &str, log: &Logger) -> Result<()> {
    let container = Store::new(root).load(id)?;
    log.step("start: load container");
    let within = |e: Error| e.within(format!("start {id}"));
    start_container(&container, log).map_err(within)?;
    // A failing poststart hook fails the start and destroys the container,
    // as runc does.
    if let Err(e) = crate::security::poststart(&container) {
        create::destroy(container, log);
        return Err(within(e));
    }
    Ok(())
}

/// Release a created container's init: open exec.fifo (the init is blocked
/// opening the other end), read its byte, remove the fifo. A pidfd in the
/// same poll means an init that died instead is noticed at once.
fn start_container(container: &Container, log: &Logger) -> Result<()> {
    match container.status() {
        Status::Created => {}
        Status::Stopped => return Err(Error::new("cannot start a container that has stopped")),
        Status::Running => return Err(Error::new("cannot start an already running container")),
        Status::Paused => return Err(Error::new("cannot start a paused container")),
        Status::Creating => {
            return Err(Error::new("cannot start a container in the creating state"))
        }
    }
    let pid = container
        .live_pid()
        .ok_or_else(|| Error::new("cannot start a container that has stopped"))?;
    let pidfd = sys::pidfd_open(pid).step("open pidfd of init")?;
    let fifo_path = container.fifo();
    let fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo_path)
        .step_at("open exec.fifo", &fifo_path)?;
    let mut fds = [
        PollFd::new(fifo.as_fd(), PollFlags::POLLIN),
        PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
    ];
    loop {
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.step("wait for container init").map(drop)?,
        }
    }
    let released = fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLIN));
    let _ = std::fs::remove_file(&fifo_path);
    if released {
        log.step("start: init released");
        wait_until_executed(&fifo);
        log.step("start: process executed");
        Ok(())
    } else {
        Err(Error::new("start").detail("the container init exited before it was started"))
    }
}

/// The init holds its end of exec.fifo open, close-on-exec, through the
/// startContainer hooks until execve: end-of-file on our end means the
/// user's process has been executed (or the init died), which is when the
/// spec lets poststart hooks run and `start` return.
fn wait_until_executed(fifo: &std::fs::File) {
    use std::io::Read;
    let mut buf = [0u8; 8];
    loop {
        match (&*fifo).read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
                if let Err(e) = poll(&mut fds, PollTimeout::NONE) {
                    if e != nix::errno::Errno::EINTR {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

pub fn run(root: &Path, args: RunArgs, log: &Logger) -> Result<ExitCode> {
    let store = Store::new(root);
    let id = args.create.id.clone();
    let opts = args
        .create
        .options(args.detach)
        .map_err(|e| e.within(format!("run {id}")))?;
    // Block the signals we forward before the init exists, so none is lost
    // between its birth and our signalfd (the init unblocks them before exec).
    let forwarded = foreground::forwarded_signals();
    if !args.detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).step("block signals")?;
        // As runc: processes the container leaves behind (without a pid
        // namespace) come to us, not to the host's init, while we run.
        if !args.no_subreaper {
            nix::sys::prctl::set_child_subreaper(true).step("become child subreaper")?;
        }
    }
    let created = create::create(&store, &opts, log).map_err(|e| e.within(format!("run {id}")))?;
    let (container, pid) = (created.container, created.pid);
    // In the foreground, our terminal drives the container's.
    let raw = created
        .pty
        .as_ref()
        .map(|master| console::attach_foreground(master.as_fd()));
    if let Err(e) =
        start_container(&container, log).and_then(|()| crate::security::poststart(&container))
    {
        create::destroy(container, log);
        return Err(e.within(format!("run {id}")));
    }
    log.step("started");
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    // Let `state`, `kill` and `delete` reach the container while it runs.
    drop(container);
    let code = foreground::forward_signals_until_exit(pid, &forwarded, created.pty)?;
    drop(raw);
    log.step("process exited");
    if !args.keep {
        if let Ok(container) = store.load(&id) {
            create::destroy(container, log);
            log.step("deleted");
        }
    }
    Ok(ExitCode::from(code))
}

pub fn kill(root: &Path, args: KillArgs) -> Result<()> {
    let container = Store::new(root).load(&args.id)?;
    let signal = signals::parse(&args.signal)?;
    // --all: every process in the container's cgroups (cgroup.kill on v2),
    // whatever the init's state: processes may outlive an init that had no
    // pid namespace, and with none left there is nothing to do (runc 1.1).
    if args.all && !container.record.cgroups.is_empty() {
        return crate::cgroups::signal_all(&container.record.cgroups, signal)
            .map_err(|e| e.within(format!("kill {}", args.id)));
    }
    match container.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => return Err(Error::new("container not running").within(format!("kill {}", args.id))),
    }
    signals::send(container.record.pid, container.record.pid_start, signal)
        .map_err(|e| e.within(format!("kill {}", args.id)))
}

pub fn delete(root: &Path, args: DeleteArgs, log: &Logger) -> Result<()> {
    let store = Store::new(root);
    let container = match store.load(&args.id) {
        Ok(c) => c,
        Err(e) if e.to_string().contains("does not exist") => {
            // A create killed before its first write leaves a bare dir.
            store.remove_stale(&args.id);
            return if args.force { Ok(()) } else { Err(e) };
        }
        Err(e) => return Err(e),
    };
    match container.status() {
        s @ (Status::Running | Status::Paused) if !args.force => Err(Error::new(format!(
            "cannot delete container {} that is not stopped: {}",
            args.id,
            s.as_str()
        ))
        .hint("stop it with `hull kill`, or use `delete --force`")),
        _ => create::destroy_checked(container, log)
            .map_err(|e| e.within(format!("delete {}", args.id))),
    }
}

/// SIGKILL a process we know by pid and start time, and wait until it is
/// gone (pidfd readable), so that what it held is free when we return.
pub fn kill_and_wait(pid: Pid, start: u64) {
    let Ok(pidfd) = signals::pidfd_if_ours(pid.as_raw(), start) else {
        return;
    };
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    // A SIGKILLed process exits promptly; the bound only guards against a
    // process stuck in the kernel (D state), which we cannot help.
    let _ = poll(&mut fds, PollTimeout::from(10_000u16));
}
