//! `start`: release a created container's init and return once the
//! user's process has been executed. Shared by `start`, `run` and the
//! monitor (which starts the containers it runs).

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::{Container, Status};
use crate::sys;

/// Release a created container's init: open exec.fifo (the init is blocked
/// opening the other end), read its byte, remove the fifo. A pidfd in the
/// same poll means an init that died instead is noticed at once.
pub fn start_container(container: &Container, log: &Logger) -> Result<()> {
    match container.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(Error::new("cannot start a container that has stopped")
                .hint(format!("use `hull restart {}`", container.record.id)))
        }
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
