//! The monitor of a detached container (`run -d`, `restart`): a small
//! process that is the init's parent, reaps it, records how it ended
//! (info.rs), keeps its output in a log (logfile.rs), applies the restart
//! policy (policy.rs), serves `attach` (attach.rs), and removes the
//! container on `--rm` or when the caller's lease ends. No daemon: one
//! monitor per container, gone with it.
//!
//! `hull run -d` starts the monitor in its own memory
//! (`sys::share_memory_with`): it becomes a session of its own and
//! subreaper, creates and starts the container, writes its records, lets go
//! of the caller's stdio, tells the caller (which exits), and re-executes
//! itself to serve (serve.rs); or it prints the error, removes what it made
//! and exits 1.

pub mod attach;
pub mod info;
pub mod logfile;
pub mod policy;
mod serve;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{dup2, pipe2};
use serde::{Deserialize, Serialize};

pub use info::Info;

use crate::create::{self, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::Store;
use crate::sys;

const LAUNCH_FILE: &str = "launch.json";
/// What the monitor tells `run -d`: the container runs, its records are
/// written; or (to `restart`, after STARTED) it could not serve it after all.
const STARTED: u8 = b'S';
const FAILED: u8 = b'F';

/// How a detached container is run; kept in launch.json for `restart`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Launch {
    pub create: CreateOptions,
    pub restart: policy::Policy,
    /// `--rm`: delete the container when it ends.
    pub auto_remove: bool,
    pub log: logfile::LogOptions,
    /// `-i`: keep stdin open; `attach` writes to it.
    pub interactive: bool,
    /// `--lease`: when this process ends, so does the container.
    pub lease: Option<Lease>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub pid: i32,
    pub start: u64,
}

impl Lease {
    /// The lease of process `pid`, which must exist now.
    pub fn of(pid: i32) -> Result<Lease> {
        match crate::state::proc_start_time(pid) {
            Some((start, false)) => Ok(Lease { pid, start }),
            _ => Err(Error::new("take lease")
                .detail(format!("process {pid} does not exist"))
                .hint("--lease names a running process (default: hull's parent)")),
        }
    }
}

impl Launch {
    pub fn read(state_dir: &Path) -> Result<Option<Launch>> {
        crate::jsonfile::read(state_dir, LAUNCH_FILE, "launch options")
    }

    fn write(&self, state_dir: &Path) -> Result<()> {
        crate::jsonfile::write(state_dir, LAUNCH_FILE, "launch options", self)
    }
}

/// Whether a monitor ran this container (`run -d`, `restart`): it is
/// kept, stopped, until `rm`.
pub fn is_monitored(state_dir: &Path) -> bool {
    state_dir.join(LAUNCH_FILE).exists()
}

/// `run -d` (`again`: `restart` of a stopped container): start the
/// monitor, which creates and starts the container, and return once it
/// has, writing `farewell` to stdout then (`run -d --image` prints the
/// id). The monitor prints its own error, so a failure here is only an
/// exit code.
///
/// The monitor runs in our memory (`sys::share_memory_with`) until it
/// re-executes itself as a small serving image: a fork would make every
/// page the create touches a copy and cost `run -d` a millisecond. `run
/// -d` exits the moment the monitor says the container runs (its records
/// written); `restart` goes on once the monitor has re-executed.
pub fn run_detached(
    store: &Store,
    launch: Launch,
    again: bool,
    farewell: &[u8],
    log: &Logger,
) -> Result<ExitCode> {
    let leave_on = (!again).then_some(STARTED);
    let heard = sys::share_memory_with(
        |tell| match become_monitor(store, launch, again, tell, log) {
            Ok(code) => code,
            Err(e) => {
                log.error(&e.to_string());
                1
            }
        },
        leave_on,
        farewell,
    )
    .step("start monitor")?;
    if heard.word == Some(STARTED) {
        return Ok(ExitCode::SUCCESS);
    }
    // It printed why; its code is ours.
    let code = match nix::sys::wait::waitpid(heard.child, None) {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c as u8,
        _ => 1,
    };
    Ok(ExitCode::from(code.max(1)))
}

/// In the monitor, sharing the caller's memory: everything up to the
/// container running, then STARTED on `tell`, then the re-execution that
/// serves. Returns an error (printed by the caller on the user's stderr)
/// after which no container is left behind, or the exit code of serving
/// in place.
fn become_monitor(
    store: &Store,
    launch: Launch,
    again: bool,
    tell: OwnedFd,
    log: &Logger,
) -> Result<i32> {
    let id = launch.create.id.clone();
    let within = |e: Error| e.within(format!("run {id}"));
    // Our own session: the caller's ctrl-c and hangup are not ours.
    nix::unistd::setsid().step("setsid").map_err(within)?;
    // An init that forked into its pid namespace, and what the container
    // orphans without one, come back to us.
    nix::sys::prctl::set_child_subreaper(true)
        .step("become child subreaper")
        .map_err(within)?;
    let signals = monitor_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .step("block signals")
        .map_err(within)?;
    // A client that goes away mid-write must not kill us.
    sys::ignore_signal(Signal::SIGPIPE);
    let running = serve::Running::start(store, &launch, again, log).map_err(within)?;
    let mut launch = launch;
    // The same anonymous volumes on every restart, not new ones, and the
    // same address if it is still free.
    launch.create.storage.anonymous = crate::storage::anonymous_volumes(&running.dir);
    if let Ok(Some(net)) = crate::network::Journal::read(&running.dir) {
        launch.create.network.address = Some(net.ip);
    }
    if let Err(e) = launch.write(&running.dir) {
        discard(store, &id, &running, log);
        return Err(within(e));
    }
    // Let go of the caller's stdio (`hull run -d … | head -1` must end),
    // keeping stderr, closed on exec, for an exec that fails.
    let stderr = nix::fcntl::fcntl(2, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map(sys::own_fd);
    detach_stdio();
    // `run -d` exits when told; the user waits for that, not for us: let
    // it go first rather than compete with our new image for the CPU.
    let caller = (!again)
        .then(|| sys::pidfd_open(nix::unistd::getppid()).ok())
        .flatten();
    let _ = nix::unistd::write(&tell, &[STARTED]);
    if let Some(caller) = caller {
        let mut fds = [PollFd::new(caller.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
    }
    let e = serve::reexec(store, &running, 0, log);
    if let Ok(stderr) = &stderr {
        let _ = dup2(stderr.as_raw_fd(), 2);
    }
    if !again {
        // `run -d` has returned, and left its memory to us: serve as we are.
        log.warning(&e.to_string());
        serve::serve(store, launch, running, signals, 0, log);
        return Ok(0);
    }
    // `restart` waits until we exec or exit, so we cannot serve from here;
    // a container nobody monitors is not left behind either.
    let _ = nix::unistd::write(&tell, &[FAILED]);
    discard(store, &id, &running, log);
    Err(within(e))
}

/// Kill and remove the container the monitor started but cannot serve.
fn discard(store: &Store, id: &str, running: &serve::Running, log: &Logger) {
    let _ = nix::sys::signal::kill(running.init, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(running.init, None);
    if let Ok(container) = store.load(id) {
        create::destroy(container, log);
    }
}

/// SIGCHLD (the init, orphans) and SIGUSR1 (`stop` during a restart
/// backoff), read from a signalfd.
fn monitor_signals() -> SigSet {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    signals.add(Signal::SIGUSR1);
    signals
}

/// First thing in main: when hull was re-executed as a monitor (serve.rs
/// `reexec`), serve, and exit when done. None: an ordinary command.
pub fn exec_entry() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    if args.next()? != serve::EXEC_NAME {
        return None;
    }
    let rest: Vec<std::ffi::OsString> = args.collect();
    Some(match serve::resume(&rest) {
        Some(()) => ExitCode::SUCCESS,
        None => ExitCode::FAILURE,
    })
}

fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = dup2(null.as_raw_fd(), fd);
        }
    }
}

/// The pipes of a container's stdio: the init's ends (dup'ed onto its
/// 0, 1, 2) and ours.
pub(crate) struct Pipes {
    pub theirs: [OwnedFd; 3],
    /// Our end of stdin (`-i`); None: stdin is /dev/null.
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

impl Pipes {
    pub fn new(interactive: bool) -> Result<Pipes> {
        let flags = OFlag::O_CLOEXEC;
        let (stdin_theirs, stdin) = if interactive {
            let (r, w) = pipe2(flags).step("create stdin pipe")?;
            (r, Some(w))
        } else {
            let null = std::fs::File::open("/dev/null").step_at("open", Path::new("/dev/null"))?;
            (OwnedFd::from(null), None)
        };
        let (stdout, stdout_theirs) = pipe2(flags).step("create stdout pipe")?;
        let (stderr, stderr_theirs) = pipe2(flags).step("create stderr pipe")?;
        Ok(Pipes {
            theirs: [stdin_theirs, stdout_theirs, stderr_theirs],
            stdin,
            stdout,
            stderr,
        })
    }

    pub fn raw_theirs(&self) -> [RawFd; 3] {
        [
            self.theirs[0].as_raw_fd(),
            self.theirs[1].as_raw_fd(),
            self.theirs[2].as_raw_fd(),
        ]
    }
}

/// Create (or, `again`, recreate) and start the container with `launch`,
/// its stdio on `pipes`.
pub(crate) fn create_and_start(
    store: &Store,
    launch: &Launch,
    again: bool,
    pipes: &Pipes,
    log: &Logger,
) -> Result<create::Created> {
    let mut opts = launch.create.clone();
    opts.io = crate::console::Io::Monitor(pipes.raw_theirs());
    let created = if again {
        create::recreate(store, &opts, log)?
    } else {
        create::create(store, &opts, log)?
    };
    if let Err(e) = crate::start::start_container(&created.container, log)
        .and_then(|()| crate::security::poststart(&created.container))
    {
        create::destroy(created.container, log);
        return Err(e);
    }
    log.step("started");
    Ok(created)
}

/// Write `bytes` to `fd` in full (a pipe, the pty, a client socket); false
/// when it cannot take them (closed, or a non-blocking peer that is full).
pub(crate) fn write_all(fd: impl AsFd, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match nix::unistd::write(fd.as_fd(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
    true
}
