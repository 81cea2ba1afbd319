//! Signal names as users and containerd write them: "TERM", "SIGTERM", "15".

use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::state::proc_start_time;
use crate::sys;

/// The signal number; 0 (only check that the target exists) as kill(1)
/// and runc take it.
pub fn parse(text: &str) -> Result<i32> {
    let bad = || {
        Error::new("parse signal")
            .detail(format!("invalid signal {text:?}"))
            .hint("use a name like TERM or SIGKILL, or a number like 9")
    };
    if let Ok(n) = text.parse::<i32>() {
        return match n {
            0 => Ok(0),
            n => Signal::try_from(n).map(|s| s as i32).map_err(|_| bad()),
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map(|s| s as i32).map_err(|_| bad())
}

/// A pidfd for `pid`, only if it is still the process that started at
/// `start`: opened first, then checked, so a reused pid cannot slip in.
pub fn pidfd_if_ours(pid: i32, start: u64) -> Result<OwnedFd> {
    let gone = || Error::new("container not running");
    let fd = sys::pidfd_open(Pid::from_raw(pid)).map_err(|_| gone())?;
    match proc_start_time(pid) {
        Some((s, false)) if s == start => Ok(fd),
        _ => Err(gone()),
    }
}

/// Signal the process `pid` that started at `start`, and no other.
pub fn send(pid: i32, start: u64, signal: i32) -> Result<()> {
    let fd = pidfd_if_ours(pid, start)?;
    sys::pidfd_send_signal(fd.as_fd(), signal)
        .step("send signal")
        .map_err(|e| e.hint_if(Errno::ESRCH, "no such process: the container has exited"))
}

/// SIGKILL a process we know by pid and start time, and wait until it is
/// gone (pidfd readable), so that what it held is free when we return.
pub fn kill_and_wait(pid: Pid, start: u64) {
    let Ok(pidfd) = pidfd_if_ours(pid.as_raw(), start) else {
        return;
    };
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    // A SIGKILLed process exits promptly; the bound only guards against a
    // process stuck in the kernel (D state), which we cannot help.
    let _ = poll(&mut fds, PollTimeout::from(10_000u16));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_prefixed_names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("0").unwrap(), 0);
    }

    #[test]
    fn rejects_unknown_names_and_numbers() {
        assert!(parse("FOO").is_err());
        assert!(parse("-1").is_err());
        assert!(parse("99").is_err());
        assert!(parse("").is_err());
    }
}
