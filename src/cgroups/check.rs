//! What is checked once the container's cgroups are planned and before any
//! of them is made: every setting the spec asks for can be written on this
//! host, and the directories that already exist can hold the container.
//! A refusal here leaves the host exactly as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::resources::{Network, Resources};
use super::{devices, read, tree, Dir, Paths};
use crate::error::{Error, Result};

/// `create`: all checks, and a warning for a cgroup that already holds
/// processes (runc 1.1 warns too; it will refuse in 1.2).
pub fn before_make(paths: &Paths, res: &Resources) -> Result<()> {
    settings(paths, res, false)?;
    not_frozen(paths)?;
    let existing: Vec<&Path> = paths
        .dirs
        .iter()
        .filter(|d| !d.created.contains(&d.path))
        .map(|d| d.path.as_path())
        .collect();
    let n = tree::pids_below(existing).len();
    if n > 0 {
        eprintln!("hull: warning: container's cgroup is not empty: {n} process(es) found");
    }
    Ok(())
}

/// `update`: the settings must be possible in the container's cgroups.
pub fn before_update(paths: &Paths, res: &Resources) -> Result<()> {
    settings(paths, res, true)
}

fn settings(paths: &Paths, res: &Resources, exists: bool) -> Result<()> {
    if let Some(u) = res.unified.as_ref().filter(|u| !u.is_empty()) {
        unified(paths, u, exists)?;
    }
    if let Some(n) = &res.network {
        network(paths, n)?;
    }
    if let Some(d) = &res.devices {
        devices::rules(d)?;
    }
    Ok(())
}

fn invalid(what: String) -> Error {
    Error::new(format!("invalid configuration: {what}"))
}

/// linux.resources.unified: each key must name an interface file of a
/// controller the cgroup2 hierarchy gives this container. The files of the
/// cgroup core that move processes, kill or freeze them, or reshape the
/// tree are never written: a key like `cgroup.procs` would let a bundle move
/// any host process into the container's cgroup.
fn unified(paths: &Paths, keys: &BTreeMap<String, String>, exists: bool) -> Result<()> {
    let Some(d) = paths.dirs.iter().find(|d| d.v2) else {
        return Err(
            invalid("linux.resources.unified needs a cgroup2 hierarchy".into())
                .detail("this host has none")
                .hint("use the v1 fields of linux.resources"),
        );
    };
    // Once made, the container's own cgroup.controllers lists what it has;
    // before, the nearest existing ancestor's lists what can be enabled.
    let from = if exists {
        d.path.clone()
    } else {
        nearest_existing_ancestor(d)
    };
    let listed = read(&from, "cgroup.controllers").unwrap_or_default();
    let available: Vec<&str> = listed.split_whitespace().collect();
    for k in keys.keys() {
        check_key(k, &available, !paths.v2_only())?;
    }
    Ok(())
}

/// The cgroup core files a container may set: limits on its own subtree.
const CORE_KEYS: [&str; 2] = ["cgroup.max.descendants", "cgroup.max.depth"];

fn check_key(k: &str, available: &[&str], hybrid: bool) -> Result<()> {
    let bad = |why: String| invalid(format!("linux.resources.unified key {k:?}")).detail(why);
    let plain = !k.is_empty()
        && !k.starts_with('.')
        && !k.contains("..")
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let parts = k.split_once('.');
    let Some((controller, _)) = parts.filter(|(c, f)| plain && !c.is_empty() && !f.is_empty())
    else {
        return Err(bad(
            "a key is the name of a cgroup interface file, CONTROLLER.FILE like memory.high".into(),
        ));
    };
    if controller == "cgroup" {
        if CORE_KEYS.contains(&k) {
            return Ok(());
        }
        return Err(bad(format!(
            "of the cgroup core files only {} may be set: the others move, kill or freeze processes or reshape the tree",
            CORE_KEYS.join(" and ")
        )));
    }
    if !available.contains(&controller) {
        let have = if available.is_empty() {
            "none".to_string()
        } else {
            available.join(" ")
        };
        let err = bad(format!(
            "controller {controller:?} is not in the cgroup2 hierarchy (it has: {have})"
        ));
        return Err(if hybrid {
            err.hint(
                "on this hybrid host, set v1 controllers through the other linux.resources fields",
            )
        } else {
            err
        });
    }
    Ok(())
}

/// The existing directory nearest to `d`'s leaf, the leaf excluded: the
/// parent of the first directory hull makes, or of the leaf.
fn nearest_existing_ancestor(d: &Dir) -> PathBuf {
    let top = d.created.first().unwrap_or(&d.path);
    top.parent().unwrap_or(top).to_path_buf()
}

/// linux.resources.network needs net_cls / net_prio: where they are not
/// mounted (any cgroup2-only host, and this kind of hybrid host) refusing
/// is the only honest answer. runc 1.1 fails too, later in the create.
fn network(paths: &Paths, n: &Network) -> Result<()> {
    let need = |controller: &str, field: &str| -> Result<()> {
        if paths.v1(controller).is_some() {
            return Ok(());
        }
        Err(invalid(format!("linux.resources.network.{field}"))
            .detail(format!(
                "the {controller} cgroup controller is not mounted on this host"
            ))
            .hint("drop linux.resources.network, or mount the v1 controller"))
    };
    if n.class_id.is_some() {
        need("net_cls", "classID")?;
    }
    if n.priorities.as_ref().is_some_and(|p| !p.is_empty()) {
        need("net_prio", "priorities")?;
    }
    Ok(())
}

/// A container placed in a frozen cgroup could never run: its init would
/// wait forever at its first step. Refuse before anything is made.
fn not_frozen(paths: &Paths) -> Result<()> {
    for d in &paths.dirs {
        let dir = if d.created.contains(&d.path) {
            nearest_existing_ancestor(d)
        } else {
            d.path.clone()
        };
        // v1's freezer.state and v2's cgroup.events both report a cgroup
        // frozen through an ancestor too.
        let frozen = if d.v2 {
            read(&dir, "cgroup.events").is_some_and(|e| e.lines().any(|l| l.trim() == "frozen 1"))
        } else if d.controllers.iter().any(|c| c == "freezer") {
            matches!(
                read(&dir, "freezer.state").as_deref(),
                Some("FROZEN") | Some("FREEZING")
            )
        } else {
            false
        };
        if frozen {
            return Err(Error::new("place cgroup")
                .at(&dir)
                .detail("container's cgroup is frozen: its processes could never run")
                .hint("thaw it first, or use another cgroupsPath"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_keys() {
        let have = ["hugetlb", "memory"];
        for ok in [
            "memory.high",
            "hugetlb.2MB.max",
            "memory.oom.group",
            "cgroup.max.depth",
        ] {
            assert!(check_key(ok, &have, false).is_ok(), "{ok}");
        }
        for bad in [
            "cgroup.procs",
            "cgroup.threads",
            "cgroup.subtree_control",
            "cgroup.kill",
            "cgroup.freeze",
            "cgroup.type",
            "../cgroup.procs",
            "memory/../../cgroup.procs",
            "sub/memory.max",
            "memory..max",
            "",
            ".memory",
            "memory.",
            "memory",
            "pids.max",
            "memory.max\n",
        ] {
            assert!(check_key(bad, &have, false).is_err(), "{bad:?}");
        }
        let e = check_key("pids.max", &have, true).unwrap_err().to_string();
        assert!(
            e.contains("invalid configuration") && e.contains("hugetlb"),
            "{e}"
        );
    }
}
