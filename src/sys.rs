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
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;

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
/// The container's seccomp filter may already be loaded, and refuse
/// close_range (too new for the profile: ENOSYS, or not allowed): then each
/// fd listed in /proc/self/fd is marked, with calls every profile allows.
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: close_range only changes fd flags in our own table.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if Errno::result(ret).is_ok() {
        return Ok(());
    }
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| io_errno(&e))?;
    for entry in dir {
        let fd: RawFd = match entry.map(|e| e.file_name().to_string_lossy().parse()) {
            Ok(Ok(fd)) => fd,
            _ => continue,
        };
        if fd >= first as RawFd {
            use nix::fcntl::{fcntl, FcntlArg, FdFlag};
            match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
                // The directory's own fd, gone by now.
                Ok(_) | Err(Errno::EBADF) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Load the seccomp BPF program `prog` into this thread with seccomp(2)
/// SECCOMP_SET_MODE_FILTER and `flags`; the listener fd when `flags` asks
/// for one (SECCOMP_FILTER_FLAG_NEW_LISTENER).
pub fn seccomp_set_filter(
    flags: u32,
    prog: &[libc::sock_filter],
) -> Result<Option<OwnedFd>, Errno> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?,
        // The kernel only reads the program.
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel
    // copies the program and returns a new fd (or 0) that nothing else owns.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    let ret = Errno::result(ret)?;
    let listener = flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32 != 0;
    // SAFETY: with NEW_LISTENER the return value is a fresh fd, ours alone.
    Ok(listener.then(|| unsafe { OwnedFd::from_raw_fd(ret as RawFd) }))
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

/// Have the kernel send `signal` to process `owner` when input arrives on
/// `fd` (F_SETOWN, F_SETSIG, O_ASYNC): a process in a pid namespace below
/// `owner`'s can signal it this way through a pipe, with no pid to name and
/// no thread waiting. For the failpoints build only.
#[cfg(feature = "failpoints")]
pub fn signal_on_input(fd: BorrowedFd<'_>, owner: Pid, signal: i32) -> Result<(), Errno> {
    // linux/fcntl.h; the libc crate exports it for musl only.
    const F_SETSIG: libc::c_int = 10;
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl with integer arguments only, on an fd we hold.
    unsafe {
        Errno::result(libc::fcntl(fd, libc::F_SETOWN, owner.as_raw()))?;
        Errno::result(libc::fcntl(fd, F_SETSIG, signal))?;
        let flags = Errno::result(libc::fcntl(fd, libc::F_GETFL))?;
        Errno::result(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC))?;
    }
    Ok(())
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
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
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
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set,
            attr_clr,
            propagation: 0,
            userns_fd: 0,
        },
    )
}

/// mount_setattr(MOUNT_ATTR_IDMAP): make the detached mount `fd` (and, with
/// `recursive`, those below it) show ids through the mapping of `userns`.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> Result<(), Errno> {
    setattr(
        fd,
        recursive,
        &MountAttr {
            attr_set: MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        },
    )
}

fn setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> Result<(), Errno> {
    let mut flags = libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    setattr_flags(fd, flags, attr)
}

fn setattr_flags(fd: BorrowedFd<'_>, flags: u32, attr: &MountAttr) -> Result<(), Errno> {
    // SAFETY: the path is a static empty C string, `attr` is a valid
    // mount_attr of the size we pass; both outlive the call. The syscall only
    // changes mount attributes and returns no resources.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

/// Put one signal back to its default action (hull ignores SIGPIPE).
pub fn default_signal(signal: nix::sys::signal::Signal) -> Result<(), Errno> {
    // SAFETY: SIG_DFL installs no handler code, so no async-signal-safety
    // question arises.
    unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) }.map(drop)
}

/// Ignore `signal` (the monitor and SIGPIPE: a client gone mid-write).
pub fn ignore_signal(signal: nix::sys::signal::Signal) {
    // SAFETY: SIG_IGN installs no handler code, so no async-signal-safety
    // question arises; the disposition is reset for the container's
    // process before it execs (default_all_signals).
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigIgn) };
}

/// Reset every signal, realtime ones included, to its default action (exec
/// keeps SIG_IGN, so a signal ignored in hull would stay ignored in the
/// container). The raw syscall, because the C library refuses to touch the
/// signals it reserves (32 and 33), which a parent may have ignored too.
pub fn default_all_signals() {
    // The kernel's struct sigaction: handler, flags, restorer, mask.
    let action: [libc::c_ulong; 4] = [libc::SIG_DFL as libc::c_ulong, 0, 0, 0];
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: `action` is a valid kernel sigaction that installs no
        // handler code (SIG_DFL); no old action is written back; 8 is the
        // size of the kernel's signal mask.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                action.as_ptr(),
                std::ptr::null_mut::<libc::c_void>(),
                8usize,
            )
        };
    }
}

const KEYCTL_SETPERM: libc::c_int = 5;
const KEYCTL_DESCRIBE: libc::c_int = 6;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): join (or make) the session
/// keyring `name`; returns its serial.
pub fn join_session_keyring(name: &CStr) -> Result<i32, Errno> {
    // SAFETY: `name` is a valid C string that outlives the call; the syscall
    // returns a key serial and keeps no pointer.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(ret).map(|id| id as i32)
}

/// The permission mask of key `id`, from KEYCTL_DESCRIBE
/// ("type;uid;gid;perm;description", perm in hex).
pub fn keyring_perm(id: i32) -> Result<u32, Errno> {
    let mut buf = [0u8; 512];
    // SAFETY: the kernel writes at most buf.len() bytes into `buf`, which we
    // own and which outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let len = (Errno::result(ret)? as usize).min(buf.len());
    let text = String::from_utf8_lossy(&buf[..len]);
    text.trim_end_matches('\0')
        .split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p, 16).ok())
        .ok_or(Errno::EINVAL)
}

/// keyctl(KEYCTL_SETPERM, id, perm).
pub fn keyring_set_perm(id: i32, perm: u32) -> Result<(), Errno> {
    // SAFETY: plain integer arguments; nothing is read from or written to
    // our memory.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_SETPERM, id, perm) };
    Errno::result(ret).map(drop)
}

/// open_tree(OPEN_TREE_CLONE): a detached copy of the mount at `path` (with
/// the mounts below it if `recursive`), as an fd, to attach with move_mount.
pub fn open_tree_clone(path: &CStr, recursive: bool) -> Result<OwnedFd, Errno> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: `path` is a valid C string that outlives the call; the
    // returned fd is new and ours.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
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

// The new mount API (fsopen/fsconfig/fsmount/move_mount), for overlay
// mounts with many layers: each "lowerdir+" is one fsconfig call, so the
// stack is not limited by the one-page data string of mount(2).
pub const FSOPEN_CLOEXEC: u32 = 0x1;
pub const FSMOUNT_CLOEXEC: u32 = 0x1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;

/// fsopen(2): a filesystem context for `fstype`, configured with `fsconfig_*`.
pub fn fsopen(fstype: &CStr) -> Result<OwnedFd, Errno> {
    // SAFETY: `fstype` is a valid C string that outlives the call; the
    // returned fd is new and ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fsconfig(FSCONFIG_SET_STRING): set `key` to `value` on a context.
pub fn fsconfig_set_string(fs: BorrowedFd<'_>, key: &CStr, value: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are valid C strings that outlive the call; aux 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// fsconfig(FSCONFIG_SET_FLAG): turn on the flag option `key`.
pub fn fsconfig_set_flag(fs: BorrowedFd<'_>, key: &CStr) -> Result<(), Errno> {
    // SAFETY: `key` is a valid C string that outlives the call; a flag takes
    // no value (null) and aux 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// fsconfig(FSCONFIG_CMD_CREATE): create the superblock from the context.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: a command takes no key or value pointers (null) and aux 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// fsmount(2): a detached mount of the created superblock, as an fd.
pub fn fsmount(fs: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall on a valid fd; the returned fd is new and ours.
    let fd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// move_mount(2) of the detached mount `mnt` onto the path `target`.
pub fn move_mount_to(mnt: BorrowedFd<'_>, target: &CStr) -> Result<(), Errno> {
    // SAFETY: the empty path and `target` are valid C strings that outlive
    // the call; MOVE_MOUNT_F_EMPTY_PATH makes `mnt` itself the source.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// move_mount(2) of the detached mount `mnt` onto what the fd `target`
/// refers to (MOVE_MOUNT_T_EMPTY_PATH: no path is looked up, and a
/// /proc/self/fd path would name the link itself, not follow it).
pub fn move_mount_onto(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: both paths are the static empty C string; the fds are valid for
    // the call. The syscall only attaches a mount and returns no resources.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// The names of the extended attributes of `path` (not following a final
/// symlink), as the kernel lists them: NUL-separated.
pub fn llistxattr(path: &CStr) -> Result<Vec<u8>, Errno> {
    // SAFETY: sized_read passes either a null buffer of length 0 (a size
    // query) or a buffer it owns, writable for `len` bytes; `path` is a valid
    // C string for the call.
    sized_read(|buf, len| unsafe { libc::llistxattr(path.as_ptr(), buf.cast(), len) })
}

/// The value of the extended attribute `name` of `path` (no final symlink).
pub fn lgetxattr(path: &CStr, name: &CStr) -> Result<Vec<u8>, Errno> {
    // SAFETY: as in llistxattr; `name` is a valid C string too.
    sized_read(|buf, len| unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf, len) })
}

/// The kernel's "ask for the size, then fill" protocol of the xattr calls:
/// `call(buf, len)` with a null buffer returns the size needed; retried when
/// the value grew between the two calls (ERANGE).
fn sized_read(call: impl Fn(*mut libc::c_void, usize) -> isize) -> Result<Vec<u8>, Errno> {
    loop {
        let size = Errno::result(call(std::ptr::null_mut(), 0))? as usize;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match Errno::result(call(buf.as_mut_ptr().cast(), buf.len())) {
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
            Ok(n) => {
                buf.truncate(n as usize);
                return Ok(buf);
            }
        }
    }
}

/// Set the extended attribute `name` of the open file `fd` to `value`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `fd` is open for the call, `name` is a valid C string and
    // `value` is valid for `value.len()` bytes; flags 0.
    let ret = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Set the extended attribute `name` of `path` (no final symlink) to `value`.
pub fn lsetxattr(path: &CStr, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: the strings and `value` are valid for the call; flags 0.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

// bpf(2) for the cgroup-v2 device filter.
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_PROG_DETACH: i32 = 9;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_PROG_QUERY: i32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Load a BPF_PROG_TYPE_CGROUP_DEVICE program made of raw 8-byte
/// instructions. On failure: the errno and the verifier's log.
pub fn bpf_load_cgroup_device(insns: &[[u8; 8]]) -> Result<OwnedFd, (Errno, String)> {
    let license = c"Apache";
    let mut log = vec![0u8; 16 * 1024];
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"hull_device");
    let mut attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        expected_attach_type: BPF_CGROUP_DEVICE,
        prog_name: name,
        ..Default::default()
    };
    for attempt in 0..2 {
        if attempt == 1 {
            // Load again with the verifier's log, to say why.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        // SAFETY: `attr` is a valid bpf_attr prefix of the size we pass;
        // the instruction array, license and log buffer it points to outlive
        // the call, and the kernel writes at most log_size bytes into `log`.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &mut attr as *mut BpfProgLoad,
                std::mem::size_of::<BpfProgLoad>(),
            )
        };
        match Errno::result(ret) {
            Ok(fd) => return Ok(own_fd(fd as RawFd)),
            Err(e) if attempt == 1 || e == Errno::EPERM => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(0);
                let text = String::from_utf8_lossy(&log[..end]);
                let last = text.lines().last().unwrap_or("").to_string();
                return Err((e, last));
            }
            Err(_) => {}
        }
    }
    unreachable!("the second attempt returns")
}

#[repr(C)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Attach a device program to the cgroup directory `cgroup`; with `replace`,
/// in place of that program, in one step (BPF_F_REPLACE).
pub fn bpf_attach_cgroup_device(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | if replace.is_some() { BPF_F_REPLACE } else { 0 },
        replace_bpf_fd: replace.map_or(0, |r| r.as_raw_fd() as u32),
    };
    bpf_call(BPF_PROG_ATTACH, &mut attr).map(drop)
}

/// Detach the device program `prog` from the cgroup directory `cgroup`.
pub fn bpf_detach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> Result<(), Errno> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    bpf_call(BPF_PROG_DETACH, &mut attr).map(drop)
}

#[repr(C)]
struct BpfProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
struct BpfGetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The device programs attached to the cgroup directory `cgroup` itself.
pub fn bpf_cgroup_device_progs(cgroup: BorrowedFd<'_>) -> Result<Vec<OwnedFd>, Errno> {
    let mut ids = [0u32; 64];
    let mut query = BpfProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
    };
    bpf_call(BPF_PROG_QUERY, &mut query)?;
    let n = (query.prog_cnt as usize).min(ids.len());
    ids[..n]
        .iter()
        .map(|id| {
            let mut attr = BpfGetFdById {
                prog_id: *id,
                next_id: 0,
                open_flags: 0,
            };
            bpf_call(BPF_PROG_GET_FD_BY_ID, &mut attr).map(|fd| own_fd(fd as RawFd))
        })
        .collect()
}

/// bpf(2) with `attr`, a bpf_attr prefix for command `cmd`.
/// Taken mutably: some commands write results into it (prog_cnt).
fn bpf_call<T>(cmd: i32, attr: &mut T) -> Result<i64, Errno> {
    // SAFETY: every caller passes a #[repr(C)] bpf_attr prefix for `cmd`,
    // exclusively borrowed for the call; the pointers inside it (prog_ids)
    // point to buffers of the sizes given, which outlive the call too.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    Errno::result(ret)
}

// ---------------------------------------------------------------------------
// Process security (src/security/): capset, ioprio, sched_setattr, personality.

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset(2) of this thread's effective, permitted and inheritable sets in
/// one call (bit N = capability N), so no intermediate state exists.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and the two-element data array (the v3 layout) are
    // valid for the call; capset only reads them.
    let ret =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// ioprio_set(IOPRIO_WHO_PROCESS, self, class << 13 | level).
pub fn ioprio_set_self(class: u32, level: u32) -> Result<(), Errno> {
    const IOPRIO_WHO_PROCESS: i32 = 1;
    const IOPRIO_CLASS_SHIFT: u32 = 13;
    // SAFETY: integer arguments only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0,
            (class << IOPRIO_CLASS_SHIFT) | level,
        )
    };
    Errno::result(ret).map(drop)
}

/// The kernel's struct sched_attr (the first version, 48 bytes).
#[repr(C)]
#[derive(Default)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

/// sched_setattr(2) for this thread.
pub fn sched_setattr_self(attr: &mut SchedAttr) -> Result<(), Errno> {
    attr.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `attr` is a valid sched_attr of the size it declares and
    // outlives the call; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

/// personality(2): set the execution domain of this process.
pub fn set_personality(persona: u64) -> Result<(), Errno> {
    // SAFETY: integer argument only.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    Errno::result(ret).map(drop)
}

/// TIOCGPTPEER: open the slave of pty `master` without a path lookup, so no
/// symlink or mount in the container's /dev/pts can hand us another file
/// (CVE-2025-52565 class).
pub fn pty_peer(master: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: TIOCGPTPEER takes open flags as an integer and returns a new fd.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    Errno::result(ret).map(own_fd)
}

/// Drop this process's page-table entries for `len` bytes at `addr`, a
/// mapping of a file that was never written (the monitor's clean code and
/// read-only data): the pages stay in the page cache and fault back in
/// when used. Must not be used on anything written: its changes would go.
pub fn forget_clean_file_pages(addr: usize, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller passes a whole private file mapping with no dirty
    // page (/proc/self/smaps says Private_Dirty: 0 and it is not writable),
    // so MADV_DONTNEED loses nothing: every page reads back as it was.
    let ret = unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    Errno::result(ret).map(drop)
}

/// The nice value of process `pid` (0: this one). An error reads as -1,
/// which is also a valid value: callers only compare, or set back what
/// they read.
pub fn nice_of(pid: i32) -> i32 {
    // SAFETY: plain syscall; no memory is passed.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, pid as libc::id_t) }
}

/// Set the nice value of process `pid` (0: this one): raising it is always
/// allowed, lowering it needs CAP_SYS_NICE or RLIMIT_NICE.
pub fn set_nice_of(pid: i32, value: i32) -> Result<(), Errno> {
    // SAFETY: plain syscall; no memory is passed.
    Errno::result(unsafe { libc::setpriority(libc::PRIO_PROCESS, pid as libc::id_t, value) })
        .map(drop)
}

/// What `share_memory_with` heard from its child: the last byte it wrote
/// on its `tell` pipe before executing a program or exiting, if any.
pub struct Heard {
    pub child: Pid,
    pub word: Option<u8>,
}

/// Run `child` in a new process that shares this one's memory (CLONE_VM),
/// on a stack of its own, while this one waits. `child` gets the write end
/// of a pipe (close-on-exec) to tell us how it is going; it returns the
/// code it exits with when it does not execute a program.
///
/// We wait until the pipe closes, that is until the child has executed a
/// program or exited: then the memory is ours alone again and we return
/// what it said last. But when it says `leave_on`, we write `farewell` to
/// our stdout and exit at once with code 0, leaving it running: we cannot
/// return then, since it may still be using anything in the memory we
/// share. `farewell` is ours: the child must not touch it.
///
/// This is how `run -d` hands a container to its monitor without the cost
/// of a fork: the monitor works in pages that are already there (no page
/// table copy, no copy-on-write, no refaulting hull's code), and the caller
/// leaves the moment the container runs, without even tearing down its
/// memory. What the child allocates stays allocated.
pub fn share_memory_with<F: FnOnce(OwnedFd) -> i32>(
    child: F,
    leave_on: Option<u8>,
    farewell: &[u8],
) -> Result<Heard, Errno> {
    const STACK: usize = 8 << 20;
    struct Start<F> {
        child: Option<F>,
        tell: RawFd,
    }
    extern "C" fn trampoline<F: FnOnce(OwnedFd) -> i32>(start: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `start` is the `Start<F>` in the caller's frame, which
        // stays alive while we run (the caller waits, or has exited and
        // left the memory to us); we take F out of it, so the caller finds
        // None and drops nothing twice.
        let start = unsafe { &mut *(start as *mut Start<F>) };
        let code = match start.child.take() {
            Some(child) => child(own_fd(start.tell)),
            None => 1,
        };
        // SAFETY: _exit ends this process without running the caller's
        // atexit handlers or flushing buffers the caller still owns.
        unsafe { libc::_exit(code) }
    }
    let (listen, tell) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(Errno::last());
    }
    // SAFETY: the lowest page of our own mapping becomes a guard: a child
    // that overflows its stack faults there instead of writing into ours.
    unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    let mut start = Start {
        child: Some(child),
        tell: tell.as_raw_fd(),
    };
    // SAFETY: the child runs `trampoline` on its own stack (the top of the
    // mapping; stacks grow down) and never returns into our frames: it
    // execs or _exits. Until its end of the pipe closes we touch nothing
    // but our own stack and the pipe, so the memory we share is used by
    // one of us at a time. hull is single-threaded here: no lock is held
    // by a thread that is not running.
    let pid = unsafe {
        libc::clone(
            trampoline::<F>,
            (stack as *mut u8).add(STACK) as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            &mut start as *mut Start<F> as *mut libc::c_void,
        )
    };
    // The child has its own copy of our fd table: close ours, so that the
    // pipe ends when the child's copy does.
    drop(tell);
    let child = match Errno::result(pid) {
        Ok(pid) => Pid::from_raw(pid),
        Err(e) => {
            // SAFETY: there is no child: the mapping is unused.
            unsafe { libc::munmap(stack, STACK) };
            return Err(e);
        }
    };
    let mut word = None;
    loop {
        let mut byte = 0u8;
        // SAFETY: a read of one byte into our own stack.
        let n = unsafe { libc::read(listen.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        match n {
            1 if Some(byte) == leave_on => {
                // SAFETY: `farewell` is valid for its length and only ours;
                // then ending this process without touching the memory the
                // child is still using (no destructors, no atexit). A failed
                // write (a closed stdout) changes nothing: the child runs.
                unsafe {
                    if !farewell.is_empty() {
                        libc::write(1, farewell.as_ptr().cast(), farewell.len());
                    }
                    libc::_exit(0)
                }
            }
            1 => word = Some(byte),
            // Only a signal can fail this read (the fd and the buffer are
            // ours), and errno is no place to look: the child shares our
            // thread-local memory, errno included.
            -1 => {}
            _ => break,
        }
    }
    // SAFETY: the child has exec'ed or exited: nothing runs on this stack.
    unsafe { libc::munmap(stack, STACK) };
    Ok(Heard { child, word })
}

/// SO_NETNS_COOKIE (asm-generic/socket.h; the same on x86 and arm).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the calling thread's network namespace: unique for the
/// boot and never reused, unlike the nsfs inode number (Linux 5.14+).
pub fn netns_cookie() -> Result<u64, Errno> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `sock` is an open socket we own; the kernel writes at most
    // `len` (8) bytes into `cookie`, a live u64, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    Errno::result(rc)?;
    Ok(cookie)
}
