//! The spec's `mounts`, in order, each onto a destination resolved inside the
//! rootfs and reached through /proc/self/fd/N.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use nix::sys::statfs::{statfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
use nix::sys::statvfs::fstatvfs;
use oci_spec::runtime::Mount;

use super::options::{self, MountOptions};
use super::resolve::fd_path;
use super::{cgroup, Ctx};
use crate::error::{Context, Error, Result};
use crate::sys;

const NONE: Option<&str> = None;

pub fn dir_mode() -> Mode {
    Mode::from_bits_truncate(0o755)
}

/// Mount every entry of `spec.mounts`, in order.
pub fn mount_all(ctx: &Ctx) -> Result<()> {
    for (i, m) in ctx.cfg.spec.mounts().iter().flatten().enumerate() {
        mount_one(ctx, i, m)
            .map_err(|e| e.within(format!("mount {}", m.destination().display())))?;
    }
    Ok(())
}

/// Is `m` a bind mount? runc's rule plus type "bind" alone (which runc 1.1
/// hands to mount(2) as a filesystem type, failing with ENODEV).
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// The host path a bind mount's source names: relative ones are relative to
/// the bundle.
pub fn bind_source(m: &Mount, bundle: &Path) -> Option<PathBuf> {
    let source = m.source().as_deref()?;
    Some(if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    })
}

/// Is `m` an idmapped mount, and then recursively ("ridmap")? Mappings of
/// the mount's own without either option mean "idmap".
pub fn idmap_of(m: &Mount) -> Option<bool> {
    let has_maps = m.uid_mappings().is_some() || m.gid_mappings().is_some();
    options::parse(m.options().as_deref().unwrap_or(&[]))
        .idmap
        .or(has_maps.then_some(false))
}

fn mount_one(ctx: &Ctx, index: usize, m: &Mount) -> Result<()> {
    let mut opts = options::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = m.destination();
    let idmapped = idmap_of(m).is_some();
    if idmapped && !is_bind(m) {
        return Err(Error::new("mount")
            .detail(format!("idmapped mounts are bind mounts, not {typ}"))
            .hint("add \"rbind\" (or \"bind\") to the options"));
    }
    if is_bind(m) {
        opts.flags |= MsFlags::MS_BIND;
        // runc passes what it does not know to mount(2) as data, which a bind
        // ignores: an option it was asked for would silently not apply.
        if !opts.data.is_empty() {
            return Err(unknown_options(
                &opts.data,
                "a bind mount takes no filesystem data",
            ));
        }
        let source = bind_source(m, ctx.cfg.bundle)
            .ok_or_else(|| Error::new("bind mount").detail("no source"))?;
        // Opened by hull on the host side (a user namespace may not reach
        // it), or, idmapped, a detached copy hull made of it.
        return match (ctx.cfg.sources.get(index), idmapped) {
            (Some(fd), false) => bind_at(ctx, &source, &fd_path(fd), None, dest, &opts),
            (Some(tree), true) => bind_at(ctx, &source, &fd_path(tree), Some(tree), dest, &opts),
            (None, false) => bind(ctx, &source, dest, &opts),
            (None, true) => Err(Error::new("idmapped mount")
                .at(&source)
                .detail("hull made no idmapped copy of the source")
                .hint("idmapped mounts need hull to run as root")),
        };
    }
    let source = m.source().as_deref().unwrap_or(Path::new(typ));
    match typ {
        "cgroup" | "cgroup2" if !opts.data.is_empty() => Err(unknown_options(
            &opts.data,
            "hull mounts the cgroup hierarchies itself, with no filesystem data",
        )),
        "cgroup" | "cgroup2" => cgroup::mount(ctx, dest, typ, &opts),
        // Root may mount sysfs for any network namespace (runc does); a user
        // namespace only for one it owns.
        "sysfs" if ctx.cfg.in_userns && !ctx.cfg.new_netns => {
            rbind_host(ctx, Path::new("/sys"), dest, &opts)
        }
        // Without its own network (or IPC) namespace, a user namespace may not
        // mount sysfs (mqueue): show the host's, as runc does.
        "sysfs" | "mqueue" => match fresh(ctx, source, dest, typ, &opts) {
            Err(e) if e.errno() == Some(Errno::EPERM) && ctx.cfg.in_userns => {
                let (host, ns) = if typ == "sysfs" {
                    ("/sys", "network")
                } else {
                    ("/dev/mqueue", "ipc")
                };
                if !Path::new(host).exists() {
                    return Err(e.hint(format!(
                        "give the container its own {ns} namespace (the host has no {host} to bind)"
                    )));
                }
                rbind_host(ctx, Path::new(host), dest, &opts)
            }
            r => r,
        },
        "" => Err(Error::new("mount").detail("no type and not a bind")),
        _ => fresh(ctx, source, dest, typ, &opts),
    }
}

fn unknown_options(data: &str, why: &str) -> Error {
    Error::new("mount options")
        .detail(format!("unknown option(s) {data:?}: {why}"))
        .hint("remove them; `hull features` lists the options hull knows")
}

/// A new filesystem instance (proc, tmpfs, devpts, mqueue, sysfs, overlay...).
pub fn fresh(ctx: &Ctx, source: &Path, dest: &Path, typ: &str, opts: &MountOptions) -> Result<()> {
    let tmpfs = typ == "tmpfs";
    if opts.copy_up && !tmpfs {
        return Err(Error::new("mount")
            .at(dest)
            .detail(format!("\"tmpcopyup\" is for tmpfs mounts, not {typ}")));
    }
    // What the image has there, before the tmpfs covers it.
    let image_mode = if tmpfs { dir_mode_of(ctx, dest) } else { None };
    let target = ctx.root.mkdir_all(dest, dir_mode())?;
    check_proc_dest(ctx, dest, &target, typ == "proc")?;
    check_sys_dest(ctx, dest, &target, typ == "sysfs")?;
    if typ == "proc" || typ == "sysfs" {
        check_not_redirected(ctx, dest, &target, typ)?;
    }
    let data = match image_mode {
        // A tmpfs over a directory looks like it (setuid/setgid/sticky bits
        // too), unless the options say mode=, which comes later and wins.
        // runc 1.1.5 chmods after the mount instead, so mode= loses there.
        Some(mode) if opts.data.is_empty() => Some(format!("mode={mode:04o}")),
        Some(mode) => Some(format!("mode={mode:04o},{}", opts.data)),
        None => opts.data().map(str::to_owned),
    };
    let mut flags = opts.flags - MsFlags::MS_REMOUNT;
    // Files still go in (device nodes into /dev, the image's files into a
    // tmpcopyup, hooks' files): read-only comes in `finalize`, as in runc.
    let late_ro = flags.contains(MsFlags::MS_RDONLY) && (tmpfs || is_dev(dest));
    if late_ro {
        flags -= MsFlags::MS_RDONLY;
    }
    mount(
        Some(source),
        &fd_path(&target),
        Some(typ),
        flags,
        data.as_deref(),
    )
    .step_at(&format!("mount {typ}"), dest)?;
    if opts.copy_up {
        // `target` still names the image's directory, now underneath.
        let top = ctx.root.open_path("open mount", dest)?;
        crate::storage::layers::copy_contents(&fd_path(&target), &fd_path(&top))
            .map_err(|e| e.within("tmpcopyup"))?;
    }
    after_mount(ctx, dest, opts)?;
    if late_ro {
        let top = ctx.root.open_path("open mount", dest)?;
        ctx.late_ro.borrow_mut().push((top, dest.to_path_buf()));
    }
    Ok(())
}

/// The permission bits of the directory at `dest` in the rootfs, if one is
/// there.
fn dir_mode_of(ctx: &Ctx, dest: &Path) -> Option<u32> {
    let fd = ctx.root.resolve(dest).ok()?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFDIR).then_some(st.st_mode & 0o7777)
}

/// Is `dest` the container's /dev (runc compares the cleaned path)?
pub fn is_dev(dest: &Path) -> bool {
    super::resolve::clean(dest) == [std::ffi::OsString::from("dev")]
}

/// A bind mount of the host path `source` onto `dest` in the rootfs.
pub fn bind(ctx: &Ctx, source: &Path, dest: &Path, opts: &MountOptions) -> Result<()> {
    bind_at(ctx, source, source, None, dest, opts)
}

/// `bind`, reaching the source through `reach` (the path itself, or the
/// /proc/self/fd path of an fd hull opened for it); errors name `source`.
/// With `tree` (a detached mount hull made), that mount is attached
/// instead of a new bind.
fn bind_at(
    ctx: &Ctx,
    source: &Path,
    reach: &Path,
    tree: Option<&OwnedFd>,
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    let meta = std::fs::metadata(reach)
        .step_at("bind source", source)
        .map_err(|e| e.hint_if(Errno::ENOENT, "the source does not exist on the host"))?;
    let target = if meta.is_dir() {
        ctx.root.mkdir_all(dest, dir_mode())?
    } else {
        ctx.root.create_file(dest)?
    };
    let source_is_proc = statfs(reach).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC);
    check_proc_dest(ctx, dest, &target, source_is_proc)?;
    let source_is_sysfs = statfs(reach).is_ok_and(|s| s.filesystem_type() == SYSFS_MAGIC);
    check_sys_dest(ctx, dest, &target, source_is_sysfs)?;
    if let Some(tree) = tree {
        sys::move_mount_onto(tree.as_fd(), target.as_fd())
            .step_at("attach idmapped mount", source)?;
    } else {
        let mut flags = MsFlags::MS_BIND;
        if opts.is_recursive() {
            flags |= MsFlags::MS_REC;
        }
        mount(Some(reach), &fd_path(&target), NONE, flags, NONE).step_at("bind mount", source)?;
    }
    if !opts.remount_flags().is_empty() {
        let top = ctx.root.open_path("open mount", dest)?;
        remount_bind(&top, opts.remount_flags(), opts).step_at("remount", dest)?;
    }
    after_mount(ctx, dest, opts)
}

/// A recursive bind of a host tree (/sys, /dev/mqueue) standing in for a
/// fresh mount; "ro" then applies to every mount in the tree.
fn rbind_host(ctx: &Ctx, host: &Path, dest: &Path, opts: &MountOptions) -> Result<()> {
    let mut opts = opts.clone();
    opts.flags |= MsFlags::MS_BIND | MsFlags::MS_REC;
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        opts.rec_set |= sys::MOUNT_ATTR_RDONLY;
    }
    opts.data.clear();
    // Whatever "/" propagates, mounts the container puts on top of the
    // host's tree (e.g. the cgroup tmpfs on /sys) must not reach it.
    opts.propagation
        .insert(0, MsFlags::MS_SLAVE | MsFlags::MS_REC);
    bind(ctx, host, dest, &opts)
}

/// Change a bind mount's per-mount flags to `want` plus the flags it already
/// has that the user did not clear (see `options::kept_flags`).
pub fn remount_bind(fd: &OwnedFd, want: MsFlags, opts: &MountOptions) -> nix::Result<()> {
    let st = fstatvfs(fd.as_fd())?;
    let flags = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | (want - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT))
        | options::kept_flags(st.flags(), opts);
    mount(NONE, &fd_path(fd), NONE, flags, NONE)
}

/// Propagation and recursive attributes, on the mount now at `dest`.
fn after_mount(ctx: &Ctx, dest: &Path, opts: &MountOptions) -> Result<()> {
    let rec = opts.rec_set != 0 || opts.rec_clear != 0 || opts.rec_atime.is_some();
    if opts.propagation.is_empty() && !rec {
        return Ok(());
    }
    // Reopen: the fd we mounted onto names the directory underneath.
    let top = ctx.root.open_path("open mount", dest)?;
    for p in &opts.propagation {
        mount(NONE, &fd_path(&top), NONE, *p, NONE).step_at("set mount propagation", dest)?;
    }
    if rec {
        let (mut set, mut clear) = (opts.rec_set, opts.rec_clear);
        if let Some(atime) = opts.rec_atime {
            set |= atime;
            clear |= sys::MOUNT_ATTR__ATIME;
        }
        sys::mount_setattr(top.as_fd(), true, set, clear)
            .step_at("mount_setattr", dest)
            .map_err(|e| e.hint_if(Errno::ENOSYS, "recursive mount options need Linux 5.12+"))?;
    }
    Ok(())
}

/// Where `fd` really is, relative to the rootfs ("proc/sys").
fn in_rootfs(ctx: &Ctx, dest: &Path, fd: &OwnedFd) -> Result<PathBuf> {
    let real = std::fs::read_link(fd_path(fd)).step_at("readlink mount target", dest)?;
    real.strip_prefix(ctx.cfg.rootfs)
        .map(Path::to_path_buf)
        .map_err(|_| Error::new("mount target escapes the rootfs").at(real))
}

/// runc's rule against hiding /proc from the container's security view:
/// only a procfs may go onto /proc, and beneath /proc only the files lxcfs
/// emulates.
fn check_proc_dest(ctx: &Ctx, dest: &Path, fd: &OwnedFd, is_proc: bool) -> Result<()> {
    let rel = in_rootfs(ctx, dest, fd)?;
    if proc_dest_allowed(&rel, is_proc) {
        Ok(())
    } else {
        Err(Error::new("mount")
            .at(dest)
            .detail(if rel == Path::new("proc") {
                "only a proc filesystem can be mounted on /proc"
            } else {
                "mounts inside /proc are not allowed"
            }))
    }
}

/// CVE-2023-27561 (as runc 1.1.5): proc and sysfs go on a real /proc or /sys,
/// not wherever a symlink in the image points, or masked and read-only paths
/// would miss them.
fn check_not_redirected(ctx: &Ctx, dest: &Path, fd: &OwnedFd, typ: &str) -> Result<()> {
    let rel = in_rootfs(ctx, dest, fd)?;
    let want: PathBuf = super::resolve::clean(dest).iter().collect();
    if rel == want {
        return Ok(());
    }
    Err(Error::new(format!("mount {typ}"))
        .at(dest)
        .detail(format!(
            "the destination is a symlink (to /{}); {typ} must be mounted on a real directory",
            rel.display()
        ))
        .hint("replace the symlink in the rootfs with a directory"))
}

/// Only sysfs (fresh, or a bind of the host's) may be mounted on /sys itself;
/// mounts below it (/sys/fs/cgroup) are fine. Goes beyond runc 1.1.
fn check_sys_dest(ctx: &Ctx, dest: &Path, fd: &OwnedFd, is_sysfs: bool) -> Result<()> {
    if is_sysfs || in_rootfs(ctx, dest, fd)? != Path::new("sys") {
        return Ok(());
    }
    Err(Error::new("mount")
        .at(dest)
        .detail("only a sysfs can be mounted on /sys")
        .hint("mount a directory below /sys, or use type \"sysfs\""))
}

/// `rel` is the resolved destination relative to the rootfs.
pub fn proc_dest_allowed(rel: &Path, is_proc: bool) -> bool {
    const LXCFS: [&str; 10] = [
        "proc/cpuinfo",
        "proc/diskstats",
        "proc/meminfo",
        "proc/stat",
        "proc/swaps",
        "proc/uptime",
        "proc/loadavg",
        "proc/slabinfo",
        "proc/net/dev",
        "proc/sys/kernel/ns_last_pid",
    ];
    if !rel.starts_with("proc") {
        return true;
    }
    if rel == Path::new("proc") {
        return is_proc;
    }
    LXCFS.iter().any(|p| rel == Path::new(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_rules() {
        assert!(proc_dest_allowed(Path::new("proc"), true));
        assert!(!proc_dest_allowed(Path::new("proc"), false));
        assert!(proc_dest_allowed(Path::new("proc/meminfo"), false));
        assert!(!proc_dest_allowed(Path::new("proc/sys"), false));
        assert!(!proc_dest_allowed(Path::new("proc/self/attr"), true));
        assert!(proc_dest_allowed(Path::new("processes"), false));
        assert!(proc_dest_allowed(Path::new("data"), false));
    }
}
