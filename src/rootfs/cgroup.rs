//! A spec mount of type "cgroup": the container's view of its cgroups.
//!
//! v1 and hybrid hosts: a tmpfs at the destination holding one directory per
//! host hierarchy (named like the host's: "cpu", "cpu,cpuacct", "systemd"),
//! plus "unified" (cgroup2) when the host has it. Each is a fresh cgroup mount
//! when the container has its own cgroup namespace (it then shows the
//! container's cgroup as its root), otherwise a bind of the host directory of
//! this process's own cgroup. Pure cgroup2 hosts: one cgroup2 mount or bind.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::unistd::symlinkat;

use super::mountinfo::{read_mountinfo, read_proc_cgroup, CgroupLine, MountInfo};
use super::mounts::{bind, dir_mode, remount_bind};
use super::options::MountOptions;
use super::resolve::fd_path;
use super::Ctx;
use crate::error::{Context, Error, Result};

pub fn mount(ctx: &Ctx, dest: &Path, typ: &str, opts: &MountOptions) -> Result<()> {
    let infos = read_mountinfo()?;
    let own = read_proc_cgroup()?;
    let v1: Vec<&MountInfo> = infos.iter().filter(|m| m.fstype == "cgroup").collect();
    let v2 = infos.iter().find(|m| m.fstype == "cgroup2");
    // Per-hierarchy mounts take the user's flags (ro, nosuid, ...) but are
    // never recursive binds themselves.
    let mut sub = opts.clone();
    sub.flags -= MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT;
    sub.propagation.clear();
    sub.data.clear();

    if v1.is_empty() || typ == "cgroup2" {
        let v2 =
            v2.ok_or_else(|| Error::new("mount cgroup2").detail("the host has no cgroup2 mount"))?;
        return hierarchy(ctx, v2, &own, dest, &sub);
    }

    // The tmpfs stays writable until every hierarchy directory exists.
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let target = ctx.root.mkdir_all(dest, dir_mode())?;
    nix::mount::mount(
        Some("tmpfs"),
        &fd_path(&target),
        Some("tmpfs"),
        base,
        Some("mode=755"),
    )
    .step_at("mount tmpfs for cgroups", dest)?;
    let dir = ctx.root.open_path("open mount", dest)?;

    let mut seen = HashSet::new();
    for h in v1.iter().copied().chain(v2) {
        let name = if h.fstype == "cgroup2" {
            "unified".to_string()
        } else {
            match h.mount_point.file_name() {
                Some(n) => n.to_string_lossy().into_owned(),
                None => continue,
            }
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        hierarchy(ctx, h, &own, &dest.join(&name), &sub)?;
        // "cpu,cpuacct" is also reachable as "cpu" and "cpuacct", as on hosts.
        if name.contains(',') {
            for part in name.split(',') {
                match symlinkat(name.as_str(), Some(dir.as_raw_fd()), part) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(Error::sys("symlink", Some(&dest.join(part)), e)),
                }
            }
        }
    }

    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = ctx.root.open_path("open mount", dest)?;
        remount_bind(&top, base | MsFlags::MS_RDONLY, &sub).step_at("remount read-only", dest)?;
    }
    for p in &opts.propagation {
        let top = ctx.root.open_path("open mount", dest)?;
        nix::mount::mount(None::<&str>, &fd_path(&top), None::<&str>, *p, None::<&str>)
            .step_at("set mount propagation", dest)?;
    }
    Ok(())
}

/// One hierarchy `h` of the host at `dest`: a fresh mount in a new cgroup
/// namespace, else (or when a user namespace may not mount it) a bind.
fn hierarchy(
    ctx: &Ctx,
    h: &MountInfo,
    own: &[CgroupLine],
    dest: &Path,
    opts: &MountOptions,
) -> Result<()> {
    if ctx.cfg.new_cgroupns {
        let target = ctx.root.mkdir_all(dest, dir_mode())?;
        let data = v1_data(&h.super_options);
        let data = (h.fstype == "cgroup").then_some(data.as_str());
        match nix::mount::mount(
            Some(h.fstype.as_str()),
            &fd_path(&target),
            Some(h.fstype.as_str()),
            opts.flags,
            data,
        ) {
            Ok(()) => return Ok(()),
            // v1 cannot be mounted from a user namespace; EBUSY: cgroup2 with
            // controllers bound elsewhere. Fall back to the bind.
            Err(Errno::EPERM | Errno::EBUSY) if ctx.cfg.in_userns || h.fstype == "cgroup2" => {}
            Err(e) => return Err(Error::sys(format!("mount {}", h.fstype), Some(dest), e)),
        }
    }
    let source = host_cgroup_dir(h, own).ok_or_else(|| {
        Error::new("find own cgroup")
            .at(&h.mount_point)
            .detail("no matching line in /proc/self/cgroup")
    })?;
    let mut b = opts.clone();
    b.flags |= MsFlags::MS_BIND;
    bind(ctx, &source, dest, &b)
}

/// The mount data naming a v1 hierarchy: its controllers and name=, without
/// rw/ro and options that must match the host's (xattr, release_agent...).
pub fn v1_data(super_options: &str) -> String {
    const SKIP: [&str; 8] = [
        "rw",
        "ro",
        "xattr",
        "noprefix",
        "clone_children",
        "cpuset_v2_mode",
        "favordynmods",
        "nofavordynmods",
    ];
    super_options
        .split(',')
        .filter(|o| !o.is_empty() && !SKIP.contains(o) && !o.starts_with("release_agent="))
        .collect::<Vec<_>>()
        .join(",")
}

/// The host directory of this process's cgroup in hierarchy `h`.
pub fn host_cgroup_dir(h: &MountInfo, own: &[CgroupLine]) -> Option<PathBuf> {
    let line = if h.fstype == "cgroup2" {
        own.iter().find(|l| l.id == 0 && l.controllers.is_empty())?
    } else {
        let data = v1_data(&h.super_options);
        let ctrls: Vec<&str> = data.split(',').collect();
        own.iter()
            .find(|l| l.controllers.iter().any(|c| ctrls.contains(&c.as_str())))?
    };
    // The hierarchy may be mounted from a subdirectory (h.root) of its tree.
    let rel = line.path.strip_prefix(&h.root).unwrap_or(&line.path);
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    Some(h.mount_point.join(rel))
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo::{parse_mountinfo, parse_proc_cgroup};
    use super::*;

    const MOUNTS: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 /sub /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "\
9:name=systemd:/
4:memory:/process_api/0bf
2:cpu,cpuacct:/a
0::/sub/c1
";

    #[test]
    fn data_names_the_hierarchy() {
        assert_eq!(v1_data("rw,cpu,cpuacct"), "cpu,cpuacct");
        assert_eq!(
            v1_data("rw,xattr,release_agent=/x,name=systemd"),
            "name=systemd"
        );
    }

    #[test]
    fn own_dirs() {
        let m = parse_mountinfo(MOUNTS);
        let own = parse_proc_cgroup(OWN);
        let dirs: Vec<PathBuf> = m
            .iter()
            .map(|h| host_cgroup_dir(h, &own).unwrap())
            .collect();
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a"),
                PathBuf::from("/sys/fs/cgroup/memory/process_api/0bf"),
                PathBuf::from("/sys/fs/cgroup/systemd"),
                PathBuf::from("/sys/fs/cgroup/unified/c1"),
            ]
        );
    }
}
