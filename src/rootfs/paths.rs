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
    match mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::ENOTDIR) => mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
            .step_at("mask directory", path),
        Err(e) => Err(e).step_at("mask", path),
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
