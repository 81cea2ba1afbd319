//! The monitor of a detached container (`run -d`, `restart`): a small
//! process that is the init's parent, reaps it, records how it ended
//! (info.rs), keeps its output in a log (logfile.rs), applies the restart
//! policy (policy.rs), serves `attach` (attach.rs), and removes the
//! container on `--rm` or when the caller's lease ends. No daemon: one
//! monitor per container, gone with it.
//!
//! `hull run -d` forks; the child becomes the monitor (a session of its
//! own, subreaper), creates and starts the container, tells the parent
//! "started" (or prints the error and exits 1), lets go of the caller's
//! stdio, and serves (serve.rs). The parent exits when told.

pub mod attach;
pub mod info;
pub mod logfile;
pub mod policy;
mod serve;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{dup2, pipe2};
use serde::{Deserialize, Serialize};

pub use info::Info;

use crate::create::{self, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::Store;
use crate::sys::{self, Forked};

const LAUNCH_FILE: &str = "launch.json";
/// What the monitor tells `run -d` once the container runs.
const STARTED: &[u8; 7] = b"started";

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

/// `run -d` (`again`: `restart` of a stopped container): fork the monitor,
/// wait until it says the container started, return. The monitor prints
/// its own error, so a failure here is only an exit code.
pub fn run_detached(store: &Store, launch: Launch, again: bool, log: &Logger) -> Result<ExitCode> {
    let (report_r, report_w) = pipe2(OFlag::O_CLOEXEC).step("create report pipe")?;
    match sys::clone_fork(0, None).step("fork monitor")? {
        Forked::Child => {
            drop(report_r);
            let code = match become_monitor(store, launch, again, report_w, log) {
                Ok(()) => 0,
                Err(e) => {
                    log.error(&e.to_string());
                    1
                }
            };
            std::process::exit(code)
        }
        Forked::Parent(child) => {
            drop(report_w);
            // The word is enough: no need to wait for the monitor to close
            // its end (it re-executes itself first).
            let mut said = [0u8; STARTED.len()];
            if std::fs::File::from(report_r).read_exact(&mut said).is_ok() && said == *STARTED {
                return Ok(ExitCode::SUCCESS);
            }
            // It printed why; its code is ours.
            let code = match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c as u8,
                _ => 1,
            };
            Ok(ExitCode::from(code.max(1)))
        }
    }
}

/// In the forked child: everything up to the container running, then the
/// report, then the serve loop. An Err is printed by the caller (on the
/// user's stderr, which we still hold until the report).
fn become_monitor(
    store: &Store,
    launch: Launch,
    again: bool,
    report: OwnedFd,
    log: &Logger,
) -> Result<()> {
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
    launch.write(&running.dir).map_err(within)?;
    let _ = nix::unistd::write(&report, STARTED);
    drop(report);
    // Let go of the caller's stdio: `hull run -d … | head -1` must end.
    detach_stdio();
    let e = serve::reexec(store, &running, 0, log);
    log.warning(&e.to_string());
    serve::serve(store, launch, running, signals, 0, log);
    Ok(())
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
