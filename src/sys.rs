//! The only home of `unsafe`: raw syscalls nix does not wrap (clone3, pidfd,
//! openat2, close_range, ...). Each wrapper returns nix's `Errno` so callers
//! attach context with `error::Context`.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Result of a fork-like clone.
pub enum Forked {
    Parent(Pid),
    Child,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Fork the calling process with `flags` (CLONE_NEW* namespaces, CLONE_PARENT,
/// CLONE_INTO_CGROUP) using clone3, so every new namespace exists the moment
/// the child does. `cgroup` is a directory fd used with CLONE_INTO_CGROUP.
///
/// The caller must be single-threaded: the child continues on a copy of the
/// parent's stack, exactly as after fork(2).
pub fn clone_fork(flags: u64, cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Errno> {
    // With CLONE_PARENT the child inherits our exit signal, and clone3
    // insists exit_signal is then 0.
    let exit_signal = if flags & libc::CLONE_PARENT as u64 != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        // libc's constant is an i32 that overflows: spell out the u64.
        args.flags |= 0x2_0000_0000;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: clone3 with no stack behaves like fork(2): the child gets a
    // copy-on-write copy of the address space and returns 0 here. hull is
    // single-threaded when it calls this, so no lock can be held by a thread
    // that does not exist in the child. `args` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// A pidfd for `pid`: a handle that cannot be fooled by pid reuse.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send `signal` through a pidfd: reaches exactly the process the fd was opened for.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall on a valid fd; a null siginfo means "as kill(2)".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// openat2(2): open `path` relative to `dirfd` with `resolve` rules, e.g.
/// RESOLVE_IN_ROOT so ".." and absolute symlinks cannot leave `dirfd`.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `path` is a valid C string and `how` a valid open_how that
        // both outlive the call; the returned fd is new and ours.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(ret) {
            // openat2 may ask us to retry when a rename raced the lookup.
            Err(Errno::EAGAIN) => continue,
            Err(e) => return Err(e),
            // SAFETY: a fresh fd returned by the kernel.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        }
    }
}

/// Mark every fd from `first` up as close-on-exec, so the container process
/// inherits exactly stdio (and the fds it was promised).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range only changes fd flags in our own table.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(ret).map(drop)
}

pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: pointer and length describe `name`, which outlives the call.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// Make the terminal on `fd` the controlling terminal of this session.
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an int argument, no pointers.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(ret).map(drop)
}

/// Take ownership of an fd the kernel just returned (open, recvmsg with
/// SCM_RIGHTS). Only for such fresh fds: nothing else may refer to them.
pub fn own_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: callers pass only fds the kernel just created for us, which
    // have no other owner.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

// mount_setattr(2) attributes (linux/mount.h); libc does not export them all.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0000_0000;
pub const MOUNT_ATTR_NOATIME: u64 = 0x0000_0010;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x0000_0020;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x0000_0080;
/// The atime bits are one field, not independent flags: clearing any of them
/// must name the whole field.
pub const MOUNT_ATTR__ATIME: u64 = 0x0000_0070;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on the mount `fd` refers to (AT_EMPTY_PATH) and, with
/// `recursive`, on every mount below it: what "rro", "rnosuid", ... need, since
/// a MS_REMOUNT only ever changes one mount.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    attr_set: u64,
    attr_clr: u64,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: the path is a static empty C string, `attr` is a valid
    // mount_attr of the size we pass; both outlive the call. The syscall only
    // changes mount flags and returns no resources.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Reset `signal` to its default action (exec keeps SIG_IGN, so an ignored
/// signal in hull would stay ignored in the container).
pub fn default_signal(signal: nix::sys::signal::Signal) -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no handler code, so no async-signal-safety
    // question arises.
    unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) }.map(drop)
}

/// The size of the terminal on `fd` as (rows, columns).
pub fn window_size(fd: BorrowedFd<'_>) -> Result<(u16, u16), Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`, which we own.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCGWINSZ,
            &mut ws as *mut libc::winsize,
        )
    };
    Errno::result(ret).map(|_| (ws.ws_row, ws.ws_col))
}

pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`, valid for the call.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    Errno::result(ret).map(drop)
}
