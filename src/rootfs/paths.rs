//! After pivot_root: masked paths, read-only paths, a read-only "/". These
//! run in the container's own root, so every path (and symlink) resolves
//! inside it.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::statvfs::statvfs;

use super::options::{self, MountOptions};
use crate::error::{Context, Result};

const NONE: Option<&str> = None;

/// Hide `path`: /dev/null over a file, an empty read-only tmpfs over a
/// directory. A path the rootfs lacks needs no hiding.
pub fn mask(path: &Path) -> Result<()> {
    let null = verified_null()?;
    let source = null_source(&null);
    match mount(Some(source.as_path()), path, NONE, MsFlags::MS_BIND, NONE) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ENOTDIR) => mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
            .step_at("mask directory", path),
        Err(e) => Err(e).step_at("mask", path),
    }
}

/// CVE-2025-31133: the /dev/null we bind over masked paths must be the null
/// device (char 1:3), checked on an fd opened without following a symlink,
/// and that very fd is what gets mounted (through /proc/self/fd when /proc is
/// a procfs), so no symlink or file swapped in can be bound instead.
fn verified_null() -> Result<std::os::fd::OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = Path::new("/dev/null");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .step_at("open", path)?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&file)).step_at("stat", path)?;
    let is_char = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_char || st.st_rdev != libc::makedev(1, 3) {
        return Err(crate::error::Error::new("mask")
            .at(path)
            .detail("not the null device (char 1:3): refusing to bind it over masked paths")
            .hint("the rootfs or a mount replaced /dev/null"));
    }
    Ok(file.into())
}

fn null_source(fd: &std::os::fd::OwnedFd) -> std::path::PathBuf {
    if crate::security::procfs::Procfs::open().is_ok() {
        super::resolve::fd_path(fd)
    } else {
        std::path::PathBuf::from("/dev/null")
    }
}

/// Make `path` read-only: bind it onto itself, then remount that bind.
pub fn readonly(path: &Path) -> Result<()> {
    match mount(
        Some(path),
        path,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    ) {
        Ok(()) => {}
        Err(Errno::ENOENT) => return Ok(()),
        Err(e) => return Err(e).step_at("bind readonly path", path),
    }
    remount_readonly(path)
}

/// MS_REMOUNT|MS_BIND|MS_RDONLY, carrying over the mount's locked flags
/// (in a user namespace, procfs' nosuid/nodev/noexec cannot be dropped).
pub fn remount_readonly(path: &Path) -> Result<()> {
    let st = statvfs(path).step_at("statvfs", path)?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | options::kept_flags(st.flags(), &MountOptions::default());
    mount(NONE, path, NONE, flags, NONE).step_at("remount read-only", path)
}

/// `linux.rootfsPropagation` once more on the new "/": pivot_root needed the
/// rootfs' parent private, so "shared" is only true from here on.
pub fn root_propagation(value: &str) -> Result<()> {
    let flags = options::root_propagation(Some(value))?;
    mount(NONE, "/", NONE, flags, NONE).step_at("set rootfs propagation", Path::new("/"))
}
