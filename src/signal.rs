//! Signal names as users and containerd write them: "TERM", "SIGTERM", "15".

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::state::proc_start_time;
use crate::sys;

pub fn parse(text: &str) -> Result<Signal> {
    let bad = || {
        Error::new("parse signal")
            .detail(format!("invalid signal {text:?}"))
            .hint("use a name like TERM or SIGKILL, or a number like 9")
    };
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
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
pub fn send(pid: i32, start: u64, signal: Signal) -> Result<()> {
    let fd = pidfd_if_ours(pid, start)?;
    sys::pidfd_send_signal(fd.as_fd(), signal as i32)
        .step("send signal")
        .map_err(|e| e.hint_if(Errno::ESRCH, "no such process: the container has exited"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_prefixed_names_and_numbers() {
        assert_eq!(parse("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("SIGUSR1").unwrap(), Signal::SIGUSR1);
    }

    #[test]
    fn rejects_unknown_names_and_numbers() {
        assert!(parse("FOO").is_err());
        assert!(parse("0").is_err());
        assert!(parse("99").is_err());
        assert!(parse("").is_err());
    }
}
