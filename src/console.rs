//! Terminals for containers whose process.terminal is true.
//!
//! The init makes the pty from the container's own devpts (after
//! pivot_root), so the pty belongs to the container, and sends the master
//! to hull. hull then either hands it to the console socket (containerd's
//! shim, `--console-socket`) or, for a foreground `run`, copies between its
//! own stdio and the master.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::unistd::{dup2, isatty};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The pty for `process` when it asks for a terminal (see open_in_container).
/// `as_console`: the container's init, whose pty also becomes /dev/console.
pub fn open_if_terminal(
    process: &oci_spec::runtime::Process,
    as_console: bool,
) -> Result<Option<OwnedFd>> {
    if process.terminal() != Some(true) {
        return Ok(None);
    }
    let size = process
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    open_in_container(size, as_console).map(Some)
}

/// The runtime spec: with a terminal, /dev/console is the pty slave. The
/// target is opened without following a symlink and must be a plain file or
/// a device (CVE-2025-52565: a /dev/console planted as a symlink made runc
/// bind the pty over a file of its choosing); a missing one is created.
fn bind_console(slave: &OwnedFd) -> Result<()> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    let path = Path::new("/dev/console");
    let dev = nix::fcntl::open(
        "/dev",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .step_at("open /dev", Path::new("/dev"))
    .map_err(|e| e.hint("/dev must be a directory in the container, not a symlink"))?;
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let target = match openat(Some(dev.as_raw_fd()), "console", flags, Mode::empty()) {
        Err(nix::errno::Errno::ENOENT) => {
            let create = OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_WRONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            openat(
                Some(dev.as_raw_fd()),
                "console",
                create,
                Mode::from_bits_truncate(0o600),
            )
        }
        other => other,
    }
    .map(sys::own_fd)
    .step_at("open /dev/console", path)?;
    let kind = SFlag::from_bits_truncate(
        fstat(target.as_raw_fd())
            .step_at("stat /dev/console", path)?
            .st_mode
            & libc::S_IFMT,
    );
    if kind != SFlag::S_IFREG && kind != SFlag::S_IFCHR {
        return Err(Error::new("bind the pty to /dev/console")
            .at(path)
            .detail("refusing: it is not a plain file or a device (a symlink?)")
            .hint("remove /dev/console from the image, or mount a tmpfs on /dev"));
    }
    nix::mount::mount(
        Some(format!("/proc/self/fd/{}", slave.as_raw_fd()).as_str()),
        format!("/proc/self/fd/{}", target.as_raw_fd()).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .step_at("bind the pty to /dev/console", path)
    .map_err(|e| e.hint("a terminal needs /proc mounted in the container"))
}

/// In the init: a new pty whose slave becomes our stdio and controlling
/// terminal (we are a session leader already). Returns the master.
pub fn open_in_container(size: Option<(u16, u16)>, as_console: bool) -> Result<OwnedFd> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .step_at("open pty master", Path::new("/dev/ptmx"))
        .map_err(|e| {
            e.hint("process.terminal needs a devpts mount at /dev/pts (newinstance, ptmxmode=0666)")
        })?;
    grantpt(&master).step("grantpt")?;
    unlockpt(&master).step("unlockpt")?;
    let name = ptsname_r(&master).step("ptsname")?;
    // The slave straight from the master (no path to redirect), then checked.
    let slave = sys::pty_peer(master.as_fd()).step_at("open pty slave", Path::new(&name))?;
    let st =
        nix::sys::stat::fstat(slave.as_raw_fd()).step_at("stat pty slave", Path::new(&name))?;
    let major = libc::major(st.st_rdev);
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || !(136..=143).contains(&major) {
        return Err(crate::error::Error::new("open pty slave")
            .at(&name)
            .detail("not a pty slave device"));
    }
    if let Some((rows, cols)) = size {
        sys::set_window_size(slave.as_fd(), rows, cols).step("set console size")?;
    }
    if as_console {
        bind_console(&slave)?;
    }
    sys::set_controlling_tty(slave.as_fd()).step("set controlling terminal")?;
    for target in 0..=2 {
        dup2(slave.as_raw_fd(), target).step("attach stdio to pty")?;
    }
    Ok(sys::own_fd(master.into_raw_fd()))
}

/// For a foreground `run`/`exec` with a terminal, as runc does it: the
/// process's output passed on as it wrote it (no `\n` to `\r\n` on the
/// container's pty, so `run ... > file` gets plain lines; our own terminal
/// still translates what it shows), our terminal's input raw, and the
/// container's pty at our window size. Our terminal is restored on drop.
pub fn attach_foreground(master: BorrowedFd<'_>) -> RawMode {
    clear_onlcr(master);
    copy_window_size(master);
    RawMode::enter()
}

pub fn clear_onlcr(master: BorrowedFd<'_>) {
    use nix::sys::termios::OutputFlags;
    if let Ok(mut t) = tcgetattr(master) {
        t.output_flags.remove(OutputFlags::ONLCR);
        let _ = tcsetattr(master, SetArg::TCSANOW, &t);
    }
}

/// Hand the pty master to the listener on `socket`, as runc does: one
/// message, payload the pty name, SCM_RIGHTS carrying exactly one fd.
pub fn send_to_socket(socket: &Path, master: &OwnedFd) -> Result<()> {
    let stream = UnixStream::connect(socket)
        .step_at("connect console socket", socket)
        .map_err(|e| e.hint("--console-socket must name a listening Unix socket"))?;
    let payload = b"/dev/ptmx";
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(payload)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .step_at("send pty to console socket", socket)
    .map(drop)
}

/// Our terminal in raw mode for the length of a foreground run, restored on drop.
pub struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !isatty(stdin.as_raw_fd()).unwrap_or(false) {
            return RawMode { saved: None };
        }
        let Ok(saved) = tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        // Output stays as it was (OPOST, ONLCR), as runc leaves it: the
        // container's pty no longer turns \n into \r\n, our terminal does.
        raw.output_flags = saved.output_flags;
        let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

/// Copy our terminal's size to the container's pty (at start and on SIGWINCH).
pub fn copy_window_size(master: BorrowedFd<'_>) {
    if let Ok((rows, cols)) = sys::window_size(std::io::stdin().as_fd()) {
        let _ = sys::set_window_size(master, rows, cols);
    }
}

/// Move what is readable on `from` to `to`. Returns false at end of input.
pub fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) => off += w,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => return false,
                }
            }
            true
        }
    }
}

/// Who holds the container's stdio, and so who serves its terminal.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// `create`: the caller's stdio; a terminal goes to --console-socket.
    #[default]
    Detached,
    /// A foreground `run`: hull proxies its own stdin and stdout.
    Foreground,
    /// `run -d`: the monitor's pipes (stdin, stdout, stderr) become the
    /// process's; the monitor serves a terminal.
    Monitor([std::os::fd::RawFd; 3]),
}

/// Refuse a terminal nobody will serve (`detached`: no hull proxies it),
/// and a console socket without a terminal.
pub fn check_usable(terminal: bool, console_socket: Option<&Path>, detached: bool) -> Result<()> {
    if terminal && detached && console_socket.is_none() {
        return Err(Error::new("check console")
            .detail("process.terminal is true but the container will run detached without --console-socket")
            .hint("pass --console-socket, or set process.terminal to false"));
    }
    if !terminal && console_socket.is_some() {
        return Err(Error::new("check console")
            .detail("--console-socket given but process.terminal is false")
            .hint("set process.terminal to true, or drop --console-socket"));
    }
    Ok(())
}

/// A foreground `run` proxies our stdin to the container's pty: without a
/// terminal there, the process would wait for input nobody can type. (exec
/// keeps runc's behaviour.)
pub fn check_foreground_stdin(terminal: bool, console_socket: Option<&Path>) -> Result<()> {
    if terminal && console_socket.is_none() && !isatty(0).unwrap_or(false) {
        return Err(Error::new("check console")
            .detail("process.terminal is true but stdin is not a terminal")
            .hint("run from a terminal, pass --tty=false (or set process.terminal to false), or pass --console-socket"));
    }
    Ok(())
}
