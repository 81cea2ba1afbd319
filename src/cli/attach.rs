//! `attach`: the user's terminal (or stdio) joined to a detached
//! container's through its monitor's socket (monitor/attach.rs). ctrl-p
//! ctrl-q detaches and leaves the container running.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::foreground::wait_ready;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::monitor::attach::{Decoder, DetachScanner, Frame};
use crate::monitor::info::ATTACH_SOCKET;
use crate::state::{Status, Store};

#[derive(Args)]
pub struct AttachArgs {
    /// Only watch: send none of our input to the container
    #[arg(long)]
    no_stdin: bool,
    id: String,
}

pub fn attach(root: &Path, args: AttachArgs) -> Result<ExitCode> {
    let within = |e: Error| e.within(format!("attach {}", args.id));
    let c = Store::new(root).peek(&args.id).map_err(within)?;
    if !matches!(c.status(), Status::Running | Status::Paused) {
        return Err(within(Error::new("container not running")));
    }
    let dir = std::fs::File::open(&c.dir)
        .step_at("open state dir", &c.dir)
        .map_err(within)?;
    let path = format!("/proc/self/fd/{}/{ATTACH_SOCKET}", dir.as_raw_fd());
    let sock = UnixStream::connect(&path)
        .step_at("connect to monitor", &c.dir.join(ATTACH_SOCKET))
        .map_err(|e| {
            within(e.hint("only containers started with `run -d` (or `restart`) have a monitor"))
        })?;
    let terminal = std::fs::read_link(format!("/proc/{}/fd/0", c.record.pid))
        .is_ok_and(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/console"));
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&winch), None).step("block SIGWINCH")?;
    let sfd = SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .step("create signalfd")?;
    let _raw = terminal.then(console::RawMode::enter);
    let send = |f: Frame| crate::monitor::write_all(&sock, &f.encode());
    if terminal {
        send_size(&send);
    }
    let stdin = std::io::stdin();
    let mut stdin_open = !args.no_stdin;
    let mut scanner = DetachScanner::default();
    let mut decoder = Decoder::default();
    loop {
        let mut fds = vec![
            PollFd::new(sock.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let ready = wait_ready(&mut fds)?;
        drop(fds);
        if ready[1] {
            while let Ok(Some(_)) = sfd.read_signal() {}
            if terminal {
                send_size(&send);
            }
        }
        if stdin_open && ready[2] {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => {
                    stdin_open = false;
                    send(Frame::CloseStdin);
                }
                Ok(n) => {
                    let (input, detach) = if terminal {
                        scanner.feed(&buf[..n])
                    } else {
                        (buf[..n].to_vec(), false)
                    };
                    if !input.is_empty() {
                        send(Frame::Stdin(input));
                    }
                    if detach {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
        if ready[0] {
            let mut buf = [0u8; 16384];
            let n = match nix::unistd::read(sock.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => return Ok(ExitCode::SUCCESS),
                Ok(n) => n,
            };
            let frames = decoder.push(&buf[..n]).ok_or_else(|| {
                within(Error::new("read from monitor").detail("not the attach protocol"))
            })?;
            for frame in frames {
                match frame {
                    Frame::Stdout(b) => super::out::print_bytes(&b)?,
                    Frame::Stderr(b) => {
                        let _ = std::io::stderr().write_all(&b);
                    }
                    Frame::Exit(code) => return Ok(ExitCode::from(code.clamp(0, 255) as u8)),
                    _ => {}
                }
            }
        }
    }
}

fn send_size(send: &impl Fn(Frame) -> bool) {
    if let Ok((rows, cols)) = crate::sys::window_size(std::io::stdin().as_fd()) {
        send(Frame::Resize { rows, cols });
    }
}
