//! Which namespaces the container gets, and how it gets them.
//!
//! Fast path (no namespace joined by path, the common case): one clone3 with
//! every CLONE_NEW* flag, and the child is already pid 1 of its namespace.
//! Slow path (some joined by path): a plain fork; the child joins (user
//! first, mount last, as runc does), unshares the new ones, and forks once
//! more for the pid namespace with CLONE_PARENT, so the init is still hull's
//! child. Time namespaces are always unshared by the init itself: offsets
//! can only be written before a process enters one, and execve enters it.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Context, Result};

pub struct Plan {
    /// Namespaces to create.
    pub new: CloneFlags,
    /// Namespaces to join, opened in the parent (so a bad path fails before
    /// any fork), ordered user first and mount last.
    join: Vec<(CloneFlags, File, PathBuf)>,
}

pub fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CLONE_NEWTIME,
    }
}

/// nix names no CLONE_NEWTIME (its value overlaps CSIGNAL for clone(2)).
pub const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

fn join_rank(f: CloneFlags) -> u8 {
    if f == CloneFlags::CLONE_NEWUSER {
        0
    } else if f == CloneFlags::CLONE_NEWNS {
        2
    } else {
        1
    }
}

impl Plan {
    pub fn from_spec(spec: &Spec) -> Result<Plan> {
        let mut new = CloneFlags::empty();
        let mut join = Vec::new();
        let namespaces = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref());
        for ns in namespaces.into_iter().flatten() {
            let f = flag(ns.typ());
            match ns.path() {
                None => new |= f,
                Some(path) => {
                    let file = File::open(path)
                        .step_at(&format!("open {:?} namespace", ns.typ()), path)
                        .map_err(|e| e.hint("linux.namespaces[].path must name a namespace file, e.g. /proc/PID/ns/net"))?;
                    join.push((f, file, path.clone()));
                }
            }
        }
        join.sort_by_key(|(f, _, _)| join_rank(*f));
        Ok(Plan { new, join })
    }

    pub fn has(&self, f: CloneFlags) -> bool {
        self.new.contains(f) || self.join.iter().any(|(g, _, _)| *g == f)
    }

    /// Flags for the first clone: everything at once on the fast path,
    /// except cgroup (its root is the cgroup we are in when it is made, so
    /// the init unshares it once hull has placed it) and time.
    pub fn clone_flags(&self) -> CloneFlags {
        if self.join.is_empty() {
            self.new - CLONE_NEWTIME - CloneFlags::CLONE_NEWCGROUP
        } else {
            CloneFlags::empty()
        }
    }

    pub fn fast_path(&self) -> bool {
        self.join.is_empty()
    }

    /// Slow path, in the child: join what has a path, then create the rest
    /// except pid (needs a fork) and time (the init does it). Calls
    /// `map_ids` right after a new user namespace exists.
    pub fn join_and_unshare(&self, map_ids: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.fast_path() {
            return Ok(());
        }
        for (f, file, path) in &self.join {
            setns(file.as_fd(), *f).step_at("join namespace", path)?;
        }
        if self.new.contains(CloneFlags::CLONE_NEWUSER) {
            unshare(CloneFlags::CLONE_NEWUSER).step("unshare user namespace")?;
            map_ids()?;
        }
        let rest = self.new
            - CloneFlags::CLONE_NEWUSER
            - CloneFlags::CLONE_NEWPID
            - CLONE_NEWTIME
            - CloneFlags::CLONE_NEWCGROUP;
        if !rest.is_empty() {
            unshare(rest).step("unshare namespaces")?;
        }
        Ok(())
    }

    /// After hull has placed us in our cgroups: the namespaces that had to wait.
    pub fn unshare_after_placement(&self) -> Result<()> {
        if self.new.contains(CloneFlags::CLONE_NEWCGROUP) {
            unshare(CloneFlags::CLONE_NEWCGROUP).step("unshare cgroup namespace")?;
        }
        if !self.fast_path() && self.new.contains(CloneFlags::CLONE_NEWPID) {
            unshare(CloneFlags::CLONE_NEWPID).step("unshare pid namespace")?;
        }
        Ok(())
    }

    /// Slow path: does the child still have to fork to land in its pid namespace?
    pub fn needs_pid_fork(&self) -> bool {
        !self.fast_path() && self.has(CloneFlags::CLONE_NEWPID)
    }
}

/// Write the uid/gid maps of `pid` from the host side, where any mapping
/// the spec asks for is allowed.
pub fn write_id_maps(pid: nix::unistd::Pid, spec: &Spec) -> Result<()> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    write_maps(
        pid,
        linux.uid_mappings().as_deref().unwrap_or(&[]),
        linux.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

/// Write these uid and gid maps for the user namespace of `pid`.
pub fn write_maps(
    pid: nix::unistd::Pid,
    uids: &[oci_spec::runtime::LinuxIdMapping],
    gids: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<()> {
    let render = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    for (file, maps) in [("uid_map", uids), ("gid_map", gids)] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, render(maps))
            .step_at("write id map", &path)
            .map_err(|e| e.hint("check the uid and gid mappings: ranges must not overlap"))?;
    }
    Ok(())
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plan {{ new: {:?}, join: {} }}",
            self.new,
            self.join.len()
        )
    }
}
