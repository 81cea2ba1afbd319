//! Making the rootfs the container's "/".

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, chroot, fchdir, pivot_root};

use super::mountinfo::read_mountinfo;
use crate::error::{Context, Result};

const NONE: Option<&str> = None;

/// pivot_root(".", ".") (runc's trick: no put_old directory needed, so
/// nothing is created in a possibly read-only rootfs), then detach the old
/// root that now sits on top of "/".
pub fn pivot(rootfs: &Path) -> Result<()> {
    let old = File::open("/").step_at("open old root", Path::new("/"))?;
    let new = File::open(rootfs).step_at("open rootfs", rootfs)?;
    fchdir(new.as_raw_fd()).step_at("chdir", rootfs)?;
    pivot_root(".", ".")
        .step_at("pivot_root", rootfs)
        .map_err(|e| {
            e.hint_if(
                Errno::EINVAL,
                "the rootfs must not be on a shared mount or on an initramfs (use --no-pivot)",
            )
        })?;
    // Back to the old root, which is mounted on top of the new one.
    fchdir(old.as_raw_fd()).step_at("chdir", Path::new("old root"))?;
    // Slave first, so unmounting the old root cannot propagate to the host.
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .step_at("make old root rslave", Path::new("/"))?;
    umount2(".", MntFlags::MNT_DETACH).step_at("detach old root", Path::new("/"))?;
    chdir("/").step_at("chdir", Path::new("/"))
}

/// --no-pivot (e.g. rootfs on an initramfs, which pivot_root refuses): move
/// the rootfs over "/" and chroot. The host's /proc and /sys stay reachable in
/// this mount namespace underneath, so they are detached first (as runc does):
/// otherwise the kernel would consider the container's own proc/sys mounts
/// "not too revealing" based on them.
pub fn move_root(rootfs: &Path) -> Result<()> {
    for m in read_mountinfo()? {
        let full = m.root == Path::new("/") && (m.fstype == "proc" || m.fstype == "sysfs");
        if !full || m.mount_point.starts_with(rootfs) {
            continue;
        }
        let p = m.mount_point.as_path();
        match mount(NONE, p, NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE) {
            Ok(()) => {}
            // Gone already (detached along with a parent): nothing to hide.
            Err(Errno::ENOENT | Errno::EINVAL) => continue,
            Err(e) => return Err(e).step_at("make rslave", p),
        }
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            // Not allowed to unmount (locked in a user namespace): cover it.
            Err(Errno::EINVAL | Errno::EPERM) => {
                mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::empty(), NONE)
                    .step_at("cover host mount", p)?;
            }
            Err(e) => return Err(e).step_at("detach host mount", p),
        }
    }
    chdir(rootfs).step_at("chdir", rootfs)?;
    mount(Some(rootfs), "/", NONE, MsFlags::MS_MOVE, NONE).step_at("move rootfs to /", rootfs)?;
    chroot(".").step_at("chroot", rootfs)?;
    chdir("/").step_at("chdir", Path::new("/"))
}
