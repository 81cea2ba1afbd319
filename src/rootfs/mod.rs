//! The container's filesystem view: mounts, devices, pivot_root, masked and
//! read-only paths. Runs in the container init, inside its new mount
//! namespace, in three steps the caller sequences around its own work:
//!
//! * `prepare`  — propagation, rootfs bind, spec mounts, devices, cwd. The
//!   host's /proc is still visible: every mount goes through /proc/self/fd.
//! * `enter`    — pivot_root (or move + chroot) into the rootfs.
//! * `finalize` — read-only tmpfs and /dev mounts, readonlyPaths,
//!   maskedPaths, root.readonly, propagation.
//!
//! Behaviour follows runc's rootfs_linux.go unless a comment says otherwise.

mod cgroup;
/// The controllers (and name=) of a v1 hierarchy, from its super options.
pub(crate) use cgroup::v1_data;
mod devices;
/// The device nodes a spec asks for (pure: the fuzz target `config` checks it).
pub use devices::{device_list, Device};
pub(crate) mod mountinfo;
mod mounts;
pub mod options;
mod paths;
mod pivot;
pub(crate) mod resolve;
pub mod sources;

use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;

use crate::error::{Context, Result};
use resolve::InRoot;

pub struct RootfsConfig<'a> {
    pub spec: &'a oci_spec::runtime::Spec,
    /// Absolute, canonicalized host path of the rootfs.
    pub rootfs: &'a Path,
    /// Absolute bundle dir: relative mount sources resolve against it.
    pub bundle: &'a Path,
    /// The container has a new user namespace: no mknod (devices are
    /// bind-mounted from the host), and some mounts fall back to binds.
    pub in_userns: bool,
    /// False together with `in_userns`: sysfs cannot be mounted fresh, the
    /// host's /sys is rbind-mounted (read-only recursively if asked "ro").
    pub new_netns: bool,
    /// Cgroup mounts: fresh cgroup filesystems (true) or binds of the host's
    /// directories of this process's cgroups (false).
    pub new_cgroupns: bool,
    /// --no-pivot: MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Bind sources hull opened on the host side (with a user namespace).
    pub sources: &'a sources::Sources,
}

/// What the mount code needs: the config and the rootfs anchor.
pub(crate) struct Ctx<'a> {
    pub cfg: &'a RootfsConfig<'a>,
    pub root: InRoot,
    /// Mounts asked "ro" that still take files: made read-only in `finalize`.
    pub late_ro: RefCell<Vec<(OwnedFd, PathBuf)>>,
}

/// What `prepare` leaves for `finalize`.
pub struct Prepared {
    late_ro: Vec<(OwnedFd, PathBuf)>,
}

const NONE: Option<&str> = None;

fn rootfs_propagation<'a>(cfg: &'a RootfsConfig) -> Option<&'a str> {
    cfg.spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .filter(|v| !v.is_empty())
}

/// In the init, already inside the container's new mount namespace (and
/// pid/net/user ns), before pivot_root.
/// Make every mount of this (new) mount namespace a slave of the host's, so
/// nothing mounted here can propagate back to the host.
pub fn isolate_from_host() -> Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .step_at("make / a recursive slave", Path::new("/"))
}

pub fn prepare(cfg: &RootfsConfig) -> Result<Prepared> {
    // Recursively slave (by default) so no mount made below reaches the host;
    // "unbindable" is applied in finalize (see options::prepare_propagation).
    let prop = options::prepare_propagation(rootfs_propagation(cfg))?;
    mount(NONE, "/", NONE, prop, NONE).step_at("set mount propagation", Path::new("/"))?;
    parent_private(cfg.rootfs)?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(cfg.rootfs),
        cfg.rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .step_at("bind rootfs onto itself", cfg.rootfs)?;

    // Opened after the bind, so lookups through it see the mounts we add.
    let ctx = Ctx {
        cfg,
        root: InRoot::open(cfg.rootfs)?,
        late_ro: RefCell::new(Vec::new()),
    };
    mounts::mount_all(&ctx)?;

    let spec_mounts = cfg.spec.mounts().as_deref().unwrap_or(&[]);
    if !devices::dev_is_bound(spec_mounts) {
        devices::create(&ctx)?;
    }

    if let Some(process) = cfg.spec.process() {
        ctx.root
            .mkdir_all(process.cwd(), Mode::from_bits_truncate(0o755))
            .map_err(|e| e.within("create process.cwd"))?;
    }
    Ok(Prepared {
        late_ro: ctx.late_ro.into_inner(),
    })
}

/// The mount holding the rootfs must not be shared: the rootfs bind would
/// propagate to its peers (the host) and pivot_root refuses a shared parent.
/// Nor unbindable: the rootfs could not be bound onto itself.
fn parent_private(rootfs: &Path) -> Result<()> {
    let mounts = mountinfo::read_mountinfo()?;
    let Some(parent) = mountinfo::mount_containing(&mounts, rootfs) else {
        return Ok(());
    };
    // Unbindable (rootfsPropagation "unbindable") would make the bind EINVAL.
    let in_the_way = |o: &String| o.starts_with("shared:") || o == "unbindable";
    if parent.optional.iter().any(in_the_way) {
        mount(NONE, &parent.mount_point, NONE, MsFlags::MS_PRIVATE, NONE)
            .step_at("make rootfs parent mount private", &parent.mount_point)?;
    }
    Ok(())
}

/// pivot_root (or move+chroot) into cfg.rootfs, detach the old root, chdir("/").
pub fn enter(cfg: &RootfsConfig) -> Result<()> {
    if cfg.no_pivot {
        pivot::move_root(cfg.rootfs)
    } else {
        pivot::pivot(cfg.rootfs)
    }
}

/// After enter (and the hooks, and /dev/console): the read-only tmpfs and
/// /dev mounts, readonlyPaths, maskedPaths, root.readonly, and the final
/// rootfsPropagation of "/".
pub fn finalize(cfg: &RootfsConfig, prepared: Prepared) -> Result<()> {
    for (fd, dest) in prepared.late_ro {
        // This mount only (not what was mounted below it), and its other
        // flags as they are: mount_setattr, on the fd taken at mount time,
        // so a later mount on the same destination is not the one changed.
        crate::sys::mount_setattr(fd.as_fd(), false, crate::sys::MOUNT_ATTR_RDONLY, 0)
            .step_at("remount read-only", &dest)?;
    }
    if let Some(linux) = cfg.spec.linux() {
        for p in linux.readonly_paths().iter().flatten() {
            paths::readonly(Path::new(p)).map_err(|e| e.within("linux.readonlyPaths"))?;
        }
        for p in linux.masked_paths().iter().flatten() {
            paths::mask(Path::new(p)).map_err(|e| e.within("linux.maskedPaths"))?;
        }
    }
    if cfg.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        paths::remount_readonly(Path::new("/")).map_err(|e| e.within("root.readonly"))?;
    }
    if let Some(value) = rootfs_propagation(cfg) {
        paths::root_propagation(value)?;
    }
    Ok(())
}
