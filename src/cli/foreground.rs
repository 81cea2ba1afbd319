//! The foreground of `run` and `exec`: hull stays, relays signals (and,
//! with a terminal, bytes between its stdio and the pty) to the container
//! process, and exits with its code.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as kill_pid, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console;
use crate::error::{Context, Result};

/// Every signal a user may send to `hull run` that the container should get
/// instead; SIGCHLD tells us the init has exited.
pub fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
    ] {
        set.remove(s);
    }
    set
}

/// Relay signals to the init (and, with a terminal, bytes between our
/// stdio and the pty) until it exits; return its exit code, with 128+N for a
/// process killed by signal N, as shells do.
pub fn forward_signals_until_exit(init: Pid, set: &SigSet, pty: Option<OwnedFd>) -> Result<u8> {
    let sfd = SignalFd::new(set).step("create signalfd")?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = pty.is_some();
    let mut pty_open = pty.is_some();
    loop {
        // Reap first: the init may have exited before we started listening.
        if let Some(code) = reap(init) {
            if let Some(master) = &pty {
                drain(master.as_fd(), stdout.as_fd());
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(master) = pty.as_ref().filter(|_| pty_open) {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if let Some(_master) = pty.as_ref().filter(|_| stdin_open) {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let ready = wait_ready(&mut fds)?;
        drop(fds);
        if let Some(master) = &pty {
            let mut i = 1;
            if pty_open {
                if ready[i] {
                    pty_open = console::pump(master.as_fd(), stdout.as_fd());
                }
                i += 1;
            }
            if stdin_open && ready[i] {
                stdin_open = console::pump(stdin.as_fd(), master.as_fd());
            }
        }
        if !ready[0] {
            continue;
        }
        let Some(info) = sfd.read_signal().step("read signalfd")? else {
            continue;
        };
        match info.ssi_signo as i32 {
            libc::SIGCHLD => {}
            libc::SIGWINCH if pty.is_some() => {
                console::copy_window_size(pty.as_ref().expect("pty").as_fd())
            }
            sig => {
                if let Ok(sig) = Signal::try_from(sig) {
                    let _ = kill_pid(init, sig);
                }
            }
        }
    }
}

/// Wait until one of `fds` is ready; which ones are.
pub fn wait_ready(fds: &mut [PollFd]) -> Result<Vec<bool>> {
    loop {
        match poll(fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other.step("wait for the container")?,
        };
        return Ok(fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect());
    }
}

/// Reap exited children; the init's exit code once it is among them.
fn reap(init: Pid) -> Option<u8> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => return Some(code as u8),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => return Some(128 + sig as u8),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The init has exited: copy what it wrote that we have not read yet.
fn drain(master: BorrowedFd<'_>, out: BorrowedFd<'_>) {
    let _ = nix::fcntl::fcntl(
        master.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while console::pump(master, out) {}
}
