//! Storage beyond runc: a copy-on-write overlay rootfs per container, named
//! volumes, and the CLI extras (-v, --tmpfs, --overlay) merged into the spec
//! as ordinary mounts and annotations, so a bundle run through containerd
//! can ask for the same things in config.json.
//!
//! Host-side objects (the container's upper/work dirs, volume user markers)
//! are journalled in `<state dir>/storage.json` before they exist, so
//! `delete` (and `delete --force` after a crash) finds them. The overlay
//! itself is mounted by the init inside the container's mount namespace:
//! it dies with the namespace and never needs unmounting on the host.
//!
//! In config.json:
//! * annotation `dev.hull.overlay: "true"`: the rootfs is the read-only lower;
//!   the container's root is writable whatever root.readonly says (a
//!   read-only copy-on-write root would defeat it), unless
//!   `dev.hull.overlay.readonly: "true"` (`--read-only`) asks for one;
//! * annotation `dev.hull.overlay.layers: "/l1:/l2"`: more lowers above the
//!   rootfs, base first (image-manifest order), relative to the bundle;
//! * mount `{"type": "volume", "source": NAME, "destination": ...}`: a named
//!   volume, options `ro`/`rw` and propagation as for a bind;
//! * annotation `dev.hull.volumes.anonymous: "n1,n2"`: those volumes are the
//!   container's own (`-v /path`), removed with it by `rm -v` or its monitor.

pub mod layers;
pub mod overlay;
pub mod users;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{Mount, MountBuilder};
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::Container;

pub const DEFAULT_DATA_ROOT: &str = "/var/lib/hull";
pub const ANNOTATION_OVERLAY: &str = "dev.hull.overlay";
pub const ANNOTATION_LAYERS: &str = "dev.hull.overlay.layers";
pub const ANNOTATION_ANONYMOUS: &str = "dev.hull.volumes.anonymous";
pub const ANNOTATION_OVERLAY_READONLY: &str = "dev.hull.overlay.readonly";
const JOURNAL: &str = "storage.json";

static DATA_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Set once by main from `--data-root`.
pub fn set_data_root(dir: &Path) {
    let dir = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    };
    let _ = DATA_ROOT.set(dir);
}

pub fn data_root() -> PathBuf {
    DATA_ROOT
        .get()
        .cloned()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
}

/// What the init needs to know about storage (filled in by `prepare`).
#[derive(Debug, Default, Clone)]
pub struct Plan {
    pub overlay: Option<overlay::Overlay>,
    /// Made from an image: the image's users, where the container's marker goes.
    pub image_users: Option<users::Users>,
}

/// Storage extras of `create`/`run`, as given on the command line.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Extras {
    /// `-v NAME:/path[:ro]` or `-v /host:/path[:ro|rw][,propagation]`.
    pub volumes: Vec<String>,
    /// `--tmpfs /path[:size=64m,mode=1777,...]`.
    pub tmpfs: Vec<String>,
    pub overlay: bool,
    /// `--layer DIR`, base first; implies overlay.
    pub layers: Vec<PathBuf>,
    /// Names for the anonymous volumes (`-v /path`), in order, instead of
    /// new random ones: `restart` gives the container the same volumes.
    pub anonymous: Vec<String>,
    /// `--read-only`: a read-only root, with an overlay too.
    pub read_only: bool,
}

/// The journal: every host object storage made for one container.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// `<data root>/containers/<id>`: upper, work and merged of the overlay.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The read-only lowers of the overlay, top-most first (for diff).
    #[serde(default)]
    pub lowers: Vec<PathBuf>,
    /// Marker files saying "this container uses volume (or image) X".
    #[serde(default, rename = "volumeUsers")]
    pub markers: Vec<PathBuf>,
    /// Volumes made for this container alone (`-v /path`, random names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous: Vec<String>,
}

impl Journal {
    pub fn read(state_dir: &Path) -> Result<Option<Journal>> {
        crate::jsonfile::read(state_dir, JOURNAL, "storage journal")
    }

    /// storage.json's bytes. Pure (the fuzz target `state` drives it).
    pub fn parse(text: &[u8]) -> Result<Journal> {
        serde_json::from_slice(text)
            .map_err(|e| Error::new("parse storage journal").detail(e.to_string()))
    }

    fn write(&self, state_dir: &Path) -> Result<()> {
        crate::jsonfile::write(state_dir, JOURNAL, "storage journal", self)
    }

    pub fn upper(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("upper"))
    }
}

/// Merge the CLI extras into the spec (as mounts and annotations) and check
/// what storage the bundle asks for. Runs before anything exists on the
/// host, so a bad `-v` leaves nothing behind.
pub fn merge_cli(bundle: &mut Bundle, extras: &Extras) -> Result<()> {
    if extras.overlay || !extras.layers.is_empty() {
        let mut ann = bundle.spec.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_OVERLAY.into(), "true".into());
        if !extras.layers.is_empty() {
            let mut list = Vec::new();
            for l in &extras.layers {
                let dir = std::fs::canonicalize(l)
                    .step_at("--layer", l)
                    .map_err(|e| {
                        e.hint("a layer is a directory (e.g. one written by `hull commit`)")
                    })?;
                list.push(dir.to_string_lossy().into_owned());
            }
            ann.insert(ANNOTATION_LAYERS.into(), list.join(":"));
        }
        bundle.spec.set_annotations(Some(ann));
    }
    if extras.read_only {
        let mut ann = bundle.spec.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_OVERLAY_READONLY.into(), "true".into());
        bundle.spec.set_annotations(Some(ann));
    }
    root_writability(bundle, extras.read_only);
    let mut added = Vec::new();
    let mut anonymous = Vec::new();
    let mut names = extras.anonymous.iter();
    for v in &extras.volumes {
        let mut m = volume_mount(v).map_err(|e| e.within(format!("-v {v}")))?;
        if parse_volume(v).is_ok_and(|a| a.is_anonymous()) {
            if let Some(name) = names.next() {
                m.set_source(Some(name.into()));
            }
            anonymous.extend(
                m.source()
                    .as_ref()
                    .map(|s| s.to_string_lossy().into_owned()),
            );
        }
        added.push(m);
    }
    if !anonymous.is_empty() {
        let mut ann = bundle.spec.annotations().clone().unwrap_or_default();
        ann.insert(ANNOTATION_ANONYMOUS.into(), anonymous.join(","));
        bundle.spec.set_annotations(Some(ann));
    }
    for t in &extras.tmpfs {
        added.push(tmpfs_mount(t).map_err(|e| e.within(format!("--tmpfs {t}")))?);
    }
    if !added.is_empty() {
        let mut mounts = bundle.spec.mounts().clone().unwrap_or_default();
        mounts.extend(added);
        bundle.spec.set_mounts(Some(mounts));
    }
    check(bundle)
}

/// With an overlay the root is writable unless asked read-only (the
/// annotation); without one, root.readonly stands, `--read-only` sets it.
fn root_writability(bundle: &mut Bundle, read_only_flag: bool) {
    let overlay = is_on(annotation(bundle, ANNOTATION_OVERLAY))
        || annotation(bundle, ANNOTATION_LAYERS).is_some_and(|l| !l.is_empty());
    let readonly = if overlay {
        is_on(annotation(bundle, ANNOTATION_OVERLAY_READONLY))
    } else if read_only_flag {
        true
    } else {
        return;
    };
    let mut root = bundle.spec.root().clone().unwrap_or_default();
    root.set_readonly(Some(readonly));
    bundle.spec.set_root(Some(root));
}

fn is_on(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "1" | "yes"))
}

fn mount(typ: &str, source: &str, dest: &str, options: Vec<String>) -> Result<Mount> {
    check_dest(dest)?;
    MountBuilder::default()
        .typ(typ)
        .source(source)
        .destination(dest)
        .options(options)
        .build()
        .map_err(|e| Error::new("build mount").detail(e.to_string()))
}

fn check_dest(dest: &str) -> Result<()> {
    if !dest.starts_with('/') || Path::new(dest).components().count() < 2 {
        return Err(Error::new("destination")
            .detail(format!("{dest:?} is not an absolute path below /"))
            .hint("write the container path as /path"));
    }
    Ok(())
}

/// A `-v` value taken apart, before any host lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeArg<'a> {
    /// A volume name, or a host path (it has a '/' or starts with '.'),
    /// or empty for an anonymous volume (`-v /path`).
    pub source: &'a str,
    pub dest: &'a str,
    pub ro: bool,
    /// Propagation options, in the order given.
    pub propagation: Vec<&'a str>,
}

impl VolumeArg<'_> {
    pub fn is_bind(&self) -> bool {
        self.source.contains('/') || self.source.starts_with('.')
    }

    pub fn is_anonymous(&self) -> bool {
        self.source.is_empty()
    }
}

/// Parse `-v NAME:/path[:ro]`, `-v /host:/path[:ro|rw][,propagation]` or
/// `-v /path` (an anonymous volume). Pure (no host lookups), so the fuzz
/// target `cli_flags` drives it.
pub fn parse_volume(spec: &str) -> Result<VolumeArg<'_>> {
    let parts: Vec<&str> = spec.splitn(3, ':').collect();
    let usage = || {
        Error::new("parse")
            .detail("expected NAME:/path[:ro], /host/path:/path[:ro|rw][,propagation] or /path")
    };
    let (source, dest) = match parts.as_slice() {
        [d] if d.starts_with('/') => ("", *d),
        [s, d] | [s, d, _] if !s.is_empty() && !d.is_empty() => (*s, *d),
        _ => return Err(usage()),
    };
    let mut arg = VolumeArg {
        source,
        dest,
        ro: false,
        propagation: Vec::new(),
    };
    for opt in parts.get(2).map(|m| m.split(',')).into_iter().flatten() {
        match opt {
            "ro" => arg.ro = true,
            "rw" => arg.ro = false,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                arg.propagation.push(opt)
            }
            _ => {
                return Err(usage().detail(format!(
                    "unknown option {opt:?}: use ro, rw, or a propagation (rprivate, rslave, ...)"
                )))
            }
        }
    }
    check_dest(dest)?;
    if !arg.is_bind() && !arg.is_anonymous() {
        volumes::check_name(source)?;
    }
    Ok(arg)
}

/// `-v` as a spec mount: a bind of an existing host path, or a named volume.
fn volume_mount(spec: &str) -> Result<Mount> {
    let arg = parse_volume(spec)?;
    let propagation = arg.propagation.iter().map(|p| p.to_string());
    if arg.is_bind() {
        // A bind: the source must exist (never silently created).
        let host = std::fs::canonicalize(arg.source)
            .step_at("bind source", Path::new(arg.source))
            .map_err(|e| {
                e.hint("the host path does not exist: create it first, or give a name for a volume")
            })?;
        let mut opts = vec!["rbind".to_string()];
        // "rro": read-only through mount_setattr(AT_RECURSIVE), submounts too.
        opts.push(if arg.ro { "rro" } else { "rw" }.to_string());
        opts.extend(propagation);
        mount("bind", &host.to_string_lossy(), arg.dest, opts)
    } else {
        let ro = arg.ro.then(|| "ro".to_string());
        let opts = ro.into_iter().chain(propagation).collect();
        let name = if arg.is_anonymous() {
            volumes::random_name()
        } else {
            arg.source.to_string()
        };
        mount("volume", &name, arg.dest, opts)
    }
}

/// `--tmpfs /path[:opts]`, with Docker's defaults (nosuid, nodev, noexec)
/// that later options may override ("exec"). Pure (fuzzed with `-v`).
pub fn tmpfs_mount(spec: &str) -> Result<Mount> {
    let (dest, opts) = spec.split_once(':').unwrap_or((spec, ""));
    let mut options: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
    options.extend(opts.split(',').filter(|o| !o.is_empty()).map(String::from));
    mount("tmpfs", "tmpfs", dest, options)
}

/// The overlay annotations and volume mounts of a bundle make sense.
fn check(bundle: &Bundle) -> Result<()> {
    let _ = overlay_lowers(bundle)?;
    for m in volume_mounts(bundle) {
        let name = m
            .source()
            .as_deref()
            .map(Path::to_string_lossy)
            .unwrap_or_default();
        volumes::check_name(&name)
            .map_err(|e| e.within(format!("mount {} (volume)", m.destination().display())))?;
    }
    Ok(())
}

fn volume_mounts(bundle: &Bundle) -> impl Iterator<Item = &Mount> {
    bundle
        .spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| m.typ().as_deref() == Some("volume"))
}

fn annotation<'a>(bundle: &'a Bundle, key: &str) -> Option<&'a str> {
    bundle
        .spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The lowers of the overlay rootfs, top-most first (the rootfs is the
/// bottom), or None when the bundle does not ask for an overlay.
fn overlay_lowers(bundle: &Bundle) -> Result<Option<Vec<PathBuf>>> {
    let on = is_on(annotation(bundle, ANNOTATION_OVERLAY));
    let layers = annotation(bundle, ANNOTATION_LAYERS).filter(|l| !l.is_empty());
    if !on && layers.is_none() {
        return Ok(None);
    }
    let mut lowers = vec![bundle.rootfs.clone()];
    for l in layers.into_iter().flat_map(|l| l.split(':')) {
        let path = bundle.dir.join(l);
        let dir = std::fs::canonicalize(&path)
            .step_at(&format!("annotation {ANNOTATION_LAYERS}"), &path)
            .map_err(|e| e.hint("each layer must be an existing directory"))?;
        if !dir.is_dir() {
            return Err(Error::new(format!("annotation {ANNOTATION_LAYERS}"))
                .at(dir)
                .detail("not a directory"));
        }
        lowers.push(dir);
    }
    lowers.reverse();
    Ok(Some(lowers))
}

/// The layers of the container's root, top-most first: the overlay's
/// lowers, or just the rootfs.
pub fn layers_top_first(bundle: &Bundle) -> Result<Vec<PathBuf>> {
    Ok(overlay_lowers(bundle)?.unwrap_or_else(|| vec![bundle.rootfs.clone()]))
}

/// After the id is reserved: journal, then create, the container's overlay
/// dirs and its volume uses; rewrite volume mounts into binds of the
/// volumes' data. Nothing to do (and no file written) for a plain bundle.
pub fn prepare(bundle: &mut Bundle, container: &Container, log: &Logger) -> Result<()> {
    let lowers = overlay_lowers(bundle)?;
    let uses: Vec<String> = volume_mounts(bundle)
        .filter_map(|m| {
            m.source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .collect();
    if lowers.is_none() && uses.is_empty() {
        return Ok(());
    }
    let data = data_root();
    let id = &container.record.id;
    let data_dir = lowers.as_ref().map(|_| data.join("containers").join(id));
    // `restart`: the journal of the last run names the same dir, which
    // holds the container's writes.
    let again = Journal::read(&container.dir)?.and_then(|j| j.data_dir);
    let reuse = data_dir.is_some() && again == data_dir;
    let store = volumes::Store::new(&data);
    let anonymous = annotation(bundle, ANNOTATION_ANONYMOUS).unwrap_or_default();
    let image_users = bundle.storage.image_users.clone();
    let image_users = image_users.as_ref();
    let journal = Journal {
        data_dir: data_dir.clone(),
        lowers: lowers.clone().unwrap_or_default(),
        markers: uses
            .iter()
            .map(|name| store.user_marker(name, &container.dir, id))
            .chain(image_users.map(|u| u.marker(&container.dir, id)))
            .collect(),
        anonymous: uses
            .iter()
            .filter(|name| anonymous.split(',').any(|a| a == name.as_str()))
            .cloned()
            .collect(),
    };
    journal.write(&container.dir)?;
    log.step("storage: journal");
    if let Some(users) = image_users {
        users.add(&container.dir, id)?;
        log.step("storage: mark image in use");
    }

    if let (Some(dir), Some(lowers)) = (data_dir, lowers) {
        let userns = bundle.spec.linux().as_ref().is_some_and(|l| {
            l.namespaces().iter().flatten().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::User && n.path().is_none()
            })
        });
        let ov = if reuse {
            overlay::Overlay::existing(&dir, lowers, userns)
        } else {
            overlay::Overlay::create(&dir, lowers, &bundle.rootfs, userns)?
        };
        crate::owner::mark(&dir, &container.dir);
        if userns {
            // The container's root must own the work dir (and may write "/").
            if let Some((uid, gid)) = mapped_root(bundle) {
                for d in [&ov.work, &ov.merged] {
                    std::os::unix::fs::chown(d, Some(uid), Some(gid))
                        .step_at("chown overlay dir", d)?;
                }
            }
        }
        bundle.storage.overlay = Some(ov);
        log.step("create overlay upper and work dirs");
    }

    if !uses.is_empty() {
        let seed_from = journal.lowers.clone();
        let seed_from = if seed_from.is_empty() {
            vec![bundle.rootfs.clone()]
        } else {
            seed_from
        };
        let mut mounts = bundle.spec.mounts().clone().unwrap_or_default();
        for m in mounts
            .iter_mut()
            .filter(|m| m.typ().as_deref() == Some("volume"))
        {
            let name = m
                .source()
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let data = store
                .attach(&name, m.destination(), &seed_from, &container.dir, id)
                .map_err(|e| e.within(format!("volume {name}")))?;
            let mut opts = vec!["rbind".to_string()];
            for o in m.options().iter().flatten() {
                opts.push(if o == "ro" { "rro".into() } else { o.clone() });
            }
            m.set_typ(Some("bind".into()));
            m.set_source(Some(data));
            m.set_options(Some(opts));
        }
        bundle.spec.set_mounts(Some(mounts));
        log.step("attach volumes");
    }
    Ok(())
}

/// The host uid and gid that container root maps to in a new user namespace.
fn mapped_root(bundle: &Bundle) -> Option<(u32, u32)> {
    let linux = bundle.spec.linux().as_ref()?;
    let find = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        maps.iter()
            .flatten()
            .find(|m| m.container_id() == 0)
            .map(|m| m.host_id())
    };
    Some((find(linux.uid_mappings())?, find(linux.gid_mappings())?))
}

/// In the init, inside the new mount namespace, before the rootfs is
/// prepared: mount the overlay and return the rootfs the container gets.
pub fn mount_rootfs(bundle: &Bundle) -> Result<&Path> {
    match &bundle.storage.overlay {
        None => Ok(&bundle.rootfs),
        Some(ov) => {
            ov.mount()?;
            Ok(&ov.merged)
        }
    }
}

/// The container's anonymous volumes (`-v /path`), as its journal lists
/// them: whoever removes the container (`rm -v`, the monitor at the end of
/// a lease) reads them first and removes them after.
pub fn anonymous_volumes(state_dir: &Path) -> Vec<String> {
    Journal::read(state_dir)
        .ok()
        .flatten()
        .map(|j| j.anonymous)
        .unwrap_or_default()
}

/// Remove volumes by name; the first failure is the error.
pub fn remove_volumes(names: &[String]) -> Result<()> {
    let store = volumes::Store::new(&data_root());
    names.iter().try_for_each(|n| store.remove(n, false))
}

/// Undo what the journal lists: the overlay dirs and the use markers.
/// Volume data is never touched. What is already gone is ignored.
pub fn cleanup(state_dir: &Path) -> Result<()> {
    let Some(journal) = Journal::read(state_dir)? else {
        return Ok(());
    };
    for marker in &journal.markers {
        match std::fs::remove_file(marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).step_at("remove use marker", marker)
            }
            _ => {}
        }
    }
    if let Some(dir) = &journal.data_dir {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).step_at("remove container data", dir)
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        let m = volume_mount("data:/srv:ro").unwrap();
        assert_eq!(m.typ().as_deref(), Some("volume"));
        assert_eq!(m.options().as_deref(), Some(&["ro".to_string()][..]));
        let m = volume_mount("/tmp:/host:ro,rslave").unwrap();
        assert_eq!(m.typ().as_deref(), Some("bind"));
        assert_eq!(m.options().clone().unwrap(), vec!["rbind", "rro", "rslave"]);
        assert!(volume_mount("/nonexistent-hull-src:/x").is_err());
        assert!(volume_mount("data").is_err());
        assert!(volume_mount("data:relative").is_err());
        assert!(volume_mount("data:/x:bogus").is_err());
        assert!(volume_mount("bad name:/x").is_err());
        // An anonymous volume: a fresh random name each time.
        let a = volume_mount("/cache").unwrap();
        let b = volume_mount("/cache").unwrap();
        assert_eq!(a.typ().as_deref(), Some("volume"));
        assert_ne!(a.source(), b.source());
        assert!(parse_volume("/cache").unwrap().is_anonymous());
        assert!(parse_volume("cache").is_err());
        assert!(parse_volume("/").is_err());
    }

    #[test]
    fn tmpfs_specs() {
        let m = tmpfs_mount("/run:size=64m,mode=1777,exec").unwrap();
        assert_eq!(
            m.options().clone().unwrap(),
            vec!["nosuid", "nodev", "noexec", "size=64m", "mode=1777", "exec"]
        );
        assert!(tmpfs_mount("/").is_err());
    }
}
