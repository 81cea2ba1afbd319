//! `hull gc [--dry-run]`: reconcile the host with the state store after a
//! crash or a reboot. It removes, printing one line per object:
//!
//! * containers whose init is gone and that were never deleted (a create or
//!   a delete that was killed, a container that stopped): everything their
//!   journals name, as `delete --force` would, and their state dir;
//! * state dirs a create left before its first write;
//! * hull's objects of containers that are no longer in the state store:
//!   cgroups and overlay dirs marked with a gone state dir of this --root
//!   (owner.rs), volume uses naming one, leases recorded for one, and the
//!   veths and rule chains of a hull bridge that no lease accounts for.
//!
//! It never touches what hull did not make or what belongs to another
//! --root, and skips any container another command holds (its lock).
//! Everything is found first, then removed: `--dry-run` prints the same list.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::cgroups::{Dir, Host, Paths};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::{Container, Entry, Store};

#[derive(Args)]
pub struct GcArgs {
    /// Print what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    /// Where the lease stores are (default /run/hull-net, or $HULL_NET_ROOT)
    #[arg(long)]
    net_root: Option<PathBuf>,
}

type Remove = Box<dyn FnOnce(&Logger) -> Result<()>>;

/// Objects found, one line each, removed together.
struct Leftover {
    lines: Vec<String>,
    remove: Remove,
}

impl Leftover {
    fn new(lines: Vec<String>, remove: impl FnOnce(&Logger) -> Result<()> + 'static) -> Self {
        Leftover {
            lines,
            remove: Box::new(remove),
        }
    }
}

pub fn gc(root: &Path, args: GcArgs, log: &Logger) -> Result<()> {
    let root = std::path::absolute(root).step_at("resolve --root", root)?;
    let mut found = containers(&Store::new(&root))?;
    found.extend(marked_cgroups(&root)?);
    found.extend(marked_overlay_dirs(&root));
    found.extend(volume_uses(&root));
    for f in crate::network::gc::find(&root, args.net_root.as_deref())? {
        let lines = f.lines.clone();
        found.push(Leftover::new(lines, move |log| f.remove(log)));
    }
    log.step("gc: found");
    let mut failed = 0;
    for f in found {
        if args.dry_run {
            f.lines.iter().for_each(|l| println!("would remove {l}"));
            continue;
        }
        match (f.remove)(log) {
            Ok(()) => f.lines.iter().for_each(|l| println!("removed {l}")),
            Err(e) => {
                failed += 1;
                log.error(&format!("gc: {}: {e}", f.lines.join(", ")));
            }
        }
    }
    if failed > 0 {
        return Err(
            Error::new(format!("gc: {failed} leftovers could not be removed"))
                .hint("see the errors above; `hull gc` can be run again"),
        );
    }
    Ok(())
}

/// State dirs of this root: the stopped containers and the bare dirs.
fn containers(store: &Store) -> Result<Vec<Leftover>> {
    let root = store.root();
    let mut ids: Vec<String> = match std::fs::read_dir(root) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).step_at("read state root", root),
    };
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        match store.try_entry(&id) {
            Ok(Entry::Busy) => {}
            Ok(Entry::Bare(bare)) => out.push(Leftover::new(
                vec![format!(
                    "state dir {} (a create killed early)",
                    bare.dir.display()
                )],
                move |_| bare.remove(),
            )),
            // Run by a monitor (`run -d`): stopped ones are kept on purpose
            // (for `logs`, `restart`) until `rm` or `prune`.
            Ok(Entry::Container(c)) if crate::monitor::is_monitored(&c.dir) => {}
            Ok(Entry::Container(c)) if c.live_pid().is_none() => {
                let lines = inventory(&c)?;
                out.push(Leftover::new(lines, move |log| {
                    crate::create::destroy_checked(*c, log)
                }));
            }
            Ok(Entry::Container(_)) => {}
            // Gone meanwhile (a delete), or not a container dir.
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.within(format!("gc: container {id}"))),
        }
    }
    Ok(out)
}

/// What `delete --force` of a stopped container would remove, as lines.
fn inventory(c: &Container) -> Result<Vec<String>> {
    let id = &c.record.id;
    let mut lines = vec![format!(
        "container {id} (state dir {}, {})",
        c.dir.display(),
        if c.record.pid == 0 {
            "its create was killed"
        } else {
            "stopped"
        }
    )];
    for d in &c.record.cgroups.dirs {
        let mut dirs: Vec<&PathBuf> = d.created.iter().collect();
        if !dirs.contains(&&d.path) {
            dirs.push(&d.path);
        }
        dirs.iter()
            .filter(|p| p.exists())
            .for_each(|p| lines.push(format!("cgroup {}", p.display())));
    }
    if let Some(j) = crate::storage::Journal::read(&c.dir)? {
        j.data_dir
            .iter()
            .chain(&j.markers)
            .filter(|p| p.exists())
            .for_each(|p| lines.push(format!("{} {}", storage_kind(&j, p), p.display())));
    }
    for j in crate::network::Journal::read_all(&c.dir)? {
        lines.extend(crate::network::gc::inventory(&j)?);
    }
    Ok(lines)
}

fn storage_kind(j: &crate::storage::Journal, p: &Path) -> &'static str {
    if j.data_dir.as_deref() == Some(p) {
        "overlay dir"
    } else {
        "volume use"
    }
}

/// Cgroups hull marked for a container of this root that is gone, in every
/// hierarchy (a container's cgroupsPath may put it anywhere).
fn marked_cgroups(root: &Path) -> Result<Vec<Leftover>> {
    let mut out = Vec::new();
    for h in Host::detect()?.hierarchies {
        let mut todo = vec![h.mount.clone()];
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let path = e.path();
                let Some(owner) = crate::owner::orphan_of(&path, root) else {
                    todo.push(path);
                    continue;
                };
                let paths = Paths {
                    dirs: vec![Dir {
                        path: path.clone(),
                        controllers: h.controllers.clone(),
                        v2: h.v2,
                        created: Vec::new(),
                    }],
                };
                out.push(Leftover::new(
                    vec![format!(
                        "cgroup {} (of {})",
                        path.display(),
                        owner.display()
                    )],
                    move |_| crate::cgroups::destroy(&paths),
                ));
            }
        }
    }
    Ok(out)
}

/// Overlay dirs under the data root marked for a gone container of this root.
fn marked_overlay_dirs(root: &Path) -> Vec<Leftover> {
    let dir = crate::storage::data_root().join("containers");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let path = e.path();
        if let Some(owner) = crate::owner::orphan_of(&path, root) {
            let line = format!("overlay dir {} (of {})", path.display(), owner.display());
            out.push(Leftover::new(vec![line], move |_| {
                std::fs::remove_dir_all(&path).step_at("remove overlay dir", &path)
            }));
        }
    }
    out
}

/// Volume use markers naming a gone container of this root.
fn volume_uses(root: &Path) -> Vec<Leftover> {
    let store = crate::storage::volumes::Store::new(&crate::storage::data_root());
    let mut out = Vec::new();
    for name in store.names() {
        for u in store.users(&name) {
            if crate::owner::orphan(u.state_dir.clone(), root).is_some() {
                let line = format!("volume use {} (volume {name})", u.marker.display());
                let marker = u.marker;
                out.push(Leftover::new(vec![line], move |_| {
                    std::fs::remove_file(&marker).step_at("remove volume use", &marker)
                }));
            }
        }
    }
    out
}
