//! Docker-style lifecycle: `stop` (a signal, a grace period, then SIGKILL)
//! and `restart` (the same container again, under a new monitor).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::create::{self, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::monitor::info::STOP_REQUESTED;
use crate::monitor::{self, Info, Launch};
use crate::signal as signals;
use crate::state::{Record, Status, Store};

/// Annotations that name the signal that stops a container politely
/// (containerd's, from the image config, and the OCI image key).
const STOP_SIGNAL_KEYS: [&str; 2] = [
    "io.containerd.image.config.stop-signal",
    "org.opencontainers.image.stopSignal",
];
/// How long a SIGKILLed container, or its monitor's bookkeeping, may take.
const SETTLE: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait after the signal before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    /// The first signal (default: the bundle's stop-signal annotation, else TERM)
    #[arg(short, long)]
    signal: Option<String>,
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Args)]
pub struct RestartArgs {
    /// Seconds to wait for a running container to stop before SIGKILL
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

pub fn stop(root: &Path, args: StopArgs, log: &Logger) -> Result<ExitCode> {
    let store = Store::new(root);
    let grace = Duration::from_secs(args.time);
    super::lifecycle::each(&args.ids, log, |id| {
        stop_one(&store, id, grace, args.signal.as_deref(), log)
            .map_err(|e| e.within(format!("stop {id}")))?;
        super::out::line(id)
    })
}

pub fn restart(root: &Path, args: RestartArgs, log: &Logger) -> Result<ExitCode> {
    let store = Store::new(root);
    let grace = Duration::from_secs(args.time);
    super::lifecycle::each(&args.ids, log, |id| {
        restart_one(&store, id, grace, log).map_err(|e| e.within(format!("restart {id}")))?;
        super::out::line(id)
    })
}

/// Stop `id` and return once it has stopped and what it held while running
/// (ports, cgroups) is released; a stopped container is left as it is.
pub fn stop_one(
    store: &Store,
    id: &str,
    grace: Duration,
    signal: Option<&str>,
    log: &Logger,
) -> Result<()> {
    let c = store.peek(id)?;
    let signal = match signal {
        Some(s) => signals::parse(s)?,
        None => stop_signal(&c.record)?,
    };
    // Before the signal: the monitor must not restart what a user stopped.
    let marker = c.dir.join(STOP_REQUESTED);
    std::fs::write(&marker, "stop").step_at("mark stop requested", &marker)?;
    let info = Info::read(&c.dir)?;
    if let Some(info) = &info {
        info.hurry();
    }
    let monitor = info
        .filter(Info::monitor_alive)
        .and_then(|i| signals::pidfd_if_ours(i.pid, i.pid_start).ok());
    if let Some(m) = &monitor {
        // Wakes a monitor waiting out a restart backoff.
        let _ = crate::sys::pidfd_send_signal(m.as_fd(), libc::SIGUSR1);
    }
    if let Ok(init) = signals::pidfd_if_ours(c.record.pid, c.record.pid_start) {
        let _ = crate::sys::pidfd_send_signal(init.as_fd(), signal);
        if c.status() == Status::Paused {
            // A frozen process cannot act on the signal.
            crate::cgroups::freeze(&c.record.cgroups, false)?;
        }
        if !exited_within(&init, grace) {
            if c.record.cgroups.is_empty() {
                let _ = crate::sys::pidfd_send_signal(init.as_fd(), libc::SIGKILL);
            } else {
                crate::cgroups::signal_all(&c.record.cgroups, libc::SIGKILL)?;
            }
            if !exited_within(&init, SETTLE) {
                return Err(
                    Error::new("the container's process did not die after SIGKILL")
                        .hint("it may be stuck in the kernel (D state); see `hull ps ID`"),
                );
            }
        }
    }
    match monitor {
        // It records the exit and releases the ports; then it is done.
        Some(m) => {
            if !exited_within(&m, SETTLE) {
                return Err(Error::new("the container's monitor did not finish")
                    .hint("`hull delete -f` cleans up without it"));
            }
            Ok(())
        }
        None => {
            let c = store.load(id)?;
            create::release(&c, log)
        }
    }
}

fn restart_one(store: &Store, id: &str, grace: Duration, log: &Logger) -> Result<()> {
    stop_one(store, id, grace, None, log)?;
    let c = store.peek(id)?;
    let launch = match Launch::read(&c.dir)? {
        Some(launch) => launch,
        // Made by `create`: run it again as it was made, monitored now.
        None => Launch {
            create: CreateOptions {
                id: id.to_string(),
                bundle: c.record.bundle.clone(),
                no_new_keyring: c.record.no_new_keyring,
                ..Default::default()
            },
            ..Default::default()
        },
    };
    let marker: PathBuf = c.dir.join(STOP_REQUESTED);
    drop(c);
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).step_at("clear stop request", &marker)
        }
        _ => {}
    }
    // The new monitor prints its own error line.
    if monitor::run_detached(store, launch, true, b"", log)? != ExitCode::SUCCESS {
        return Err(Error::new("the container did not start again"));
    }
    Ok(())
}

/// The signal that asks this container to stop: its annotation, else TERM.
fn stop_signal(record: &Record) -> Result<i32> {
    STOP_SIGNAL_KEYS
        .iter()
        .find_map(|k| record.annotations.get(*k))
        .map_or(Ok(libc::SIGTERM), |s| signals::parse(s))
}

/// Wait until the process behind `pidfd` has exited, at most `limit`.
pub fn exited_within(pidfd: &impl AsFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            _ if left.is_zero() => return false,
            _ => continue,
        }
    }
}
