//! Cgroups on v2 (unified), hybrid (v1 controllers + cgroup2 at
//! /sys/fs/cgroup/unified) and legacy v1 hosts.
//!
//! The container's cgroups are a list of directories, one per hierarchy
//! (`Paths`), journalled in state.json before any of them exists: whoever
//! finds the record (`delete --force` after a crash included) can kill what
//! runs in them and remove them. Resources are written by v1.rs or v2.rs
//! depending on which hierarchy holds the controller; on a hybrid host the
//! container is also placed in the unified hierarchy, as runc does.

mod check;
pub mod devices;
pub mod resources;
pub mod stats;
mod tree;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::rootfs::mountinfo::{read_mountinfo, read_proc_cgroup, CgroupLine, MountInfo};
pub use resources::Resources;
pub use tree::{destroy, pids, signal_all};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// cgroup2 only, at /sys/fs/cgroup.
    Unified,
    /// v1 controllers, plus a cgroup2 hierarchy (usually /sys/fs/cgroup/unified).
    Hybrid,
    /// v1 only.
    Legacy,
}

/// One mounted hierarchy of the host.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// The directory of the hierarchy that is mounted (not "/" inside a container).
    pub root: PathBuf,
    /// v1: "cpu", "cpuacct", "name=systemd"; v2: empty.
    pub controllers: Vec<String>,
    pub v2: bool,
}

pub struct Host {
    pub mode: Mode,
    pub hierarchies: Vec<Hierarchy>,
    own: Vec<CgroupLine>,
}

impl Host {
    pub fn detect() -> Result<Host> {
        Ok(Host::from_parts(&read_mountinfo()?, read_proc_cgroup()?))
    }

    fn from_parts(mounts: &[MountInfo], own: Vec<CgroupLine>) -> Host {
        let mut hierarchies: Vec<Hierarchy> = Vec::new();
        for m in mounts {
            let h = match m.fstype.as_str() {
                "cgroup" => Hierarchy {
                    mount: m.mount_point.clone(),
                    root: m.root.clone(),
                    controllers: crate::rootfs::v1_data(&m.super_options)
                        .split(',')
                        .filter(|c| !c.is_empty())
                        .map(str::to_string)
                        .collect(),
                    v2: false,
                },
                "cgroup2" => Hierarchy {
                    mount: m.mount_point.clone(),
                    root: m.root.clone(),
                    controllers: Vec::new(),
                    v2: true,
                },
                _ => continue,
            };
            // The same hierarchy may be mounted twice: keep the first.
            if hierarchies
                .iter()
                .any(|o| o.v2 == h.v2 && o.controllers == h.controllers)
            {
                continue;
            }
            hierarchies.push(h);
        }
        let has_v1 = hierarchies.iter().any(|h| !h.v2);
        let has_v2 = hierarchies.iter().any(|h| h.v2);
        let mode = match (has_v1, has_v2) {
            (false, _) => Mode::Unified,
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Legacy,
        };
        Host {
            mode,
            hierarchies,
            own,
        }
    }

    /// Our own cgroup in hierarchy `h`, as a host directory.
    pub fn own_dir(&self, h: &Hierarchy) -> Option<PathBuf> {
        let line = if h.v2 {
            self.own
                .iter()
                .find(|l| l.id == 0 && l.controllers.is_empty())?
        } else {
            self.own
                .iter()
                .find(|l| l.controllers.iter().any(|c| h.controllers.contains(c)))?
        };
        under(h, &line.path)
    }

    /// The container's directories for `cgroups_path` (the spec's
    /// linux.cgroupsPath) and container `id`, with the ones that do not
    /// exist yet (to create, and to remove again).
    pub fn plan(&self, cgroups_path: Option<&Path>, id: &str) -> Result<Paths> {
        let inner = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => {
                check_systemd_form(p)?;
                clean(p)
            }
            _ => PathBuf::from(id),
        };
        let mut dirs = Vec::new();
        for h in &self.hierarchies {
            // Hybrid: the v2 hierarchy beside v1 controllers is not the main one.
            let (base, leaf) = if inner.is_absolute() {
                let root = h.mount.clone();
                let Some(leaf) = under(h, &inner) else {
                    return Err(Error::new("place cgroup").at(&inner).detail(format!(
                        "outside the hierarchy mounted at {}",
                        h.mount.display()
                    )));
                };
                (root, leaf)
            } else {
                let Some(own) = self.own_dir(h) else { continue };
                (own.clone(), own.join(&inner))
            };
            let mut created = Vec::new();
            let mut p = base.clone();
            for c in leaf
                .strip_prefix(&base)
                .unwrap_or(Path::new(""))
                .components()
            {
                p.push(c);
                if !p.exists() {
                    created.push(p.clone());
                }
            }
            dirs.push(Dir {
                path: leaf,
                controllers: h.controllers.clone(),
                v2: h.v2,
                created,
            });
        }
        if dirs.is_empty() {
            return Err(Error::new("place cgroup").detail("no cgroup hierarchy is mounted"));
        }
        Ok(Paths { dirs })
    }
}

/// `path` (a cgroup path as in /proc/self/cgroup) as a directory of `h`.
fn under(h: &Hierarchy, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(&h.root).ok()?;
    Some(h.mount.join(rel))
}

/// Lexically clean: no "..", no ".", no double slashes; keeps absoluteness.
fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir => out.push("/"),
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// "slice:prefix:name" is systemd's form; hull drives cgroupfs only.
fn check_systemd_form(p: &Path) -> Result<()> {
    let s = p.to_string_lossy();
    if !s.starts_with('/') && s.split(':').count() == 3 {
        return Err(Error::new("place cgroup")
            .detail(format!(
                "cgroupsPath {s:?} is a systemd slice:prefix:name path, and systemd is not running"
            ))
            .hint("use a cgroupfs path (relative or absolute)"));
    }
    Ok(())
}

/// `--systemd-cgroup` on a host without systemd.
pub fn check_systemd_flag() -> Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        return Err(Error::new("--systemd-cgroup")
            .detail("hull drives cgroups through cgroupfs only")
            .hint("drop --systemd-cgroup"));
    }
    Err(Error::new("--systemd-cgroup")
        .detail("systemd is not running on this host")
        .hint("drop --systemd-cgroup; hull places the container with cgroupfs"))
}

/// The journal of a container's cgroups (in state.json).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    #[serde(default)]
    pub dirs: Vec<Dir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    /// v1 controllers of the hierarchy ("memory", "name=systemd"); empty for v2.
    #[serde(default)]
    pub controllers: Vec<String>,
    #[serde(default)]
    pub v2: bool,
    /// Directories hull creates (top first): removed again, deepest first.
    #[serde(default)]
    pub created: Vec<PathBuf>,
}

impl Paths {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The v1 directory holding `controller`.
    pub fn v1(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| !d.v2 && d.controllers.iter().any(|c| c == controller))
            .map(|d| d.path.as_path())
    }

    pub fn unified(&self) -> Option<&Path> {
        self.dirs.iter().find(|d| d.v2).map(|d| d.path.as_path())
    }

    /// Only cgroup2: every controller lives in `unified`.
    pub fn v2_only(&self) -> bool {
        self.dirs.iter().all(|d| d.v2)
    }

    /// A directory whose cgroup.procs lists every process of the container.
    pub fn procs_dir(&self) -> Option<&Path> {
        if self.v2_only() {
            return self.unified();
        }
        self.v1("pids")
            .or_else(|| self.v1("freezer"))
            .or_else(|| self.dirs.first().map(|d| d.path.as_path()))
    }

    /// Where `controller` lives: its v1 directory, else the unified one
    /// when the v2 hierarchy has it (v2 host, or hybrid e.g. hugetlb).
    pub fn controller(&self, controller: &str) -> Option<(&Path, bool)> {
        if let Some(d) = self.v1(controller) {
            return Some((d, false));
        }
        let u = self.unified()?;
        if self.v2_only() || controller_available(u, controller) {
            Some((u, true))
        } else {
            None
        }
    }
}

/// Is `controller` listed in the parent's cgroup.controllers of v2 dir `dir`?
fn controller_available(dir: &Path, controller: &str) -> bool {
    let parent = dir.parent().unwrap_or(dir);
    fs::read_to_string(parent.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().any(|c| c == controller))
        .unwrap_or(false)
}

/// A container's cgroups made and configured, before its init joins them.
///
/// Joining is the costly part of a create on v1: writing a pid to
/// cgroup.procs takes the kernel's global threadgroup lock for writing, which
/// waits out an RCU grace period (1-30 ms here). So the init joins without
/// it: the v2 (unified) directory at birth through CLONE_INTO_CGROUP, and
/// each v1 hierarchy by writing "0" (itself, one thread) to its `tasks`
/// file, which the kernel moves under cgroup_mutex alone. hull opens those
/// files before the clone, so the write is checked against hull's
/// credentials even when the init is already in a user namespace.
pub struct Prepared {
    /// The v2 directory for CLONE_INTO_CGROUP (unified or hybrid hosts).
    fd: Option<OwnedFd>,
    /// v1 `tasks` files, for `join_self` in the init.
    pub tasks: Vec<(OwnedFd, PathBuf)>,
}

impl Prepared {
    pub fn clone_into(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }
}

/// In the init (or an exec'd process), single-threaded: move ourselves into
/// each v1 hierarchy through the `tasks` files hull opened (see Prepared).
pub fn join_self(tasks: &[(OwnedFd, PathBuf)]) -> Result<()> {
    for (fd, path) in tasks {
        nix::unistd::write(fd, b"0").step_at("join cgroup", path)?;
    }
    Ok(())
}

/// Open the v1 `tasks` files of `paths`, and its v2 directory for CLONE_INTO_CGROUP.
fn open_for_join(paths: &Paths) -> Result<Prepared> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let mut tasks = Vec::new();
    let mut v2 = None;
    for d in &paths.dirs {
        if d.v2 {
            let fd = open(
                &d.path,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .step_at("open cgroup", &d.path)?;
            v2 = Some(crate::sys::own_fd(fd));
        } else {
            let file = d.path.join("tasks");
            let fd = open(&file, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty())
                .step_at("open cgroup", &file)?;
            tasks.push((crate::sys::own_fd(fd), file));
        }
    }
    Ok(Prepared { fd: v2, tasks })
}

/// The cgroups the container's `init` is in (read from /proc/INIT/cgroup,
/// so no state record is needed), or the existing sub-cgroups of them that
/// `sub` names (`exec --cgroup`, see below_init), opened for an `exec`
/// process to join the way the init did (see Prepared).
pub fn open_join_of(init: Pid, sub: &BTreeMap<String, PathBuf>) -> Result<Prepared> {
    let mut host = Host::detect()?;
    let path = PathBuf::from(format!("/proc/{init}/cgroup"));
    let text = fs::read_to_string(&path).step_at("read cgroups of the init", &path)?;
    host.own = crate::rootfs::mountinfo::parse_proc_cgroup(&text);
    let dirs = host
        .hierarchies
        .iter()
        .filter_map(|h| {
            host.own_dir(h).map(|path| Dir {
                path,
                controllers: h.controllers.clone(),
                v2: h.v2,
                created: Vec::new(),
            })
        })
        .collect();
    let mut paths = Paths { dirs };
    below_init(&mut paths, sub)?;
    open_for_join(&paths)
}

/// runc's rules for `exec --cgroup`: the "" key moves the process down in
/// every hierarchy; otherwise each named v1 controller's hierarchy (a
/// controller the container has no directory for is an error). A path
/// never leaves the container's cgroup.
fn below_init(paths: &mut Paths, sub: &BTreeMap<String, PathBuf>) -> Result<()> {
    if let Some(all) = sub.get("") {
        for d in &mut paths.dirs {
            d.path = join_below(&d.path, all)?;
        }
        return Ok(());
    }
    let has = |c: &String| {
        paths
            .dirs
            .iter()
            .any(|d| !d.v2 && d.controllers.contains(c))
    };
    if let Some(c) = sub.keys().find(|c| !has(c)) {
        return Err(Error::new(format!("unknown controller {c} in --cgroup"))
            .hint("name a controller the container has a cgroup for, e.g. memory:sub"));
    }
    for d in paths.dirs.iter_mut().filter(|d| !d.v2) {
        // Co-mounted controllers (cpu,cpuacct) share one directory.
        let mut rels = d.controllers.iter().filter_map(|c| sub.get(c));
        let Some(rel) = rels.next() else { continue };
        if rels.any(|r| r != rel) {
            return Err(Error::new("invalid --cgroup arguments").detail(format!(
                "controllers {} share one hierarchy but name different paths",
                d.controllers.join(",")
            )));
        }
        d.path = join_below(&d.path, rel)?;
    }
    Ok(())
}

fn join_below(base: &Path, rel: &Path) -> Result<PathBuf> {
    let mut out = base.to_path_buf();
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
            }
            Component::ParentDir if depth > 0 => {
                out.pop();
                depth -= 1;
            }
            Component::ParentDir => {
                return Err(Error::new(format!(
                    "{} is not a sub cgroup path",
                    rel.display()
                )))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The create step: plan the container's cgroups from the spec, check that
/// the host can give what it asks (before anything is made or journalled,
/// so a refusal leaves pre-existing cgroups alone), journal them in
/// state.json, then create them and write the resources. A failure after
/// that leaves the journal for `destroy` to undo.
pub fn prepare(
    spec: &oci_spec::runtime::Spec,
    container: &mut crate::state::Container,
    log: &crate::log::Logger,
) -> Result<Prepared> {
    let res = Resources::from_spec(spec)?;
    let paths = plan_for(spec, &container.record.id)?;
    check::before_make(&paths, &res)?;
    container.record.cgroups = paths.clone();
    container.save()?;
    log.step("cgroups journalled");
    make(&paths, &res, &container.dir)
}

/// The create step: plan the container's cgroups from the spec, journal
/// them in `record` (the caller saves it BEFORE calling `make`).
pub fn plan_for(spec: &oci_spec::runtime::Spec, id: &str) -> Result<Paths> {
    let host = Host::detect()?;
    let path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    host.plan(path.as_deref(), id)
}

/// Create the journalled directories and write the resources. A leaf hull
/// makes is marked with `owner` (the state dir) for `gc`.
fn make(paths: &Paths, res: &Resources, owner: &Path) -> Result<Prepared> {
    for d in &paths.dirs {
        for dir in &d.created {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).step_at("create cgroup", dir),
            }
            if *dir == d.path {
                crate::owner::mark(dir, owner);
            }
        }
    }
    if let Some(dir) = paths.v1("cpuset") {
        v1::fill_cpuset(dir)?;
    }
    if let Some(u) = paths.unified() {
        v2::enable_controllers(paths, u, res)?;
    }
    apply(paths, res, When::Create)?;
    open_for_join(paths)
}

/// Which command writes the resources: `update` changes device rules
/// without ever passing through a state that denies what both the old and
/// the new rules allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Create,
    Update,
}

/// Write `res` to the container's cgroups (create and `update`).
pub fn apply(paths: &Paths, res: &Resources, when: When) -> Result<()> {
    v1::apply(paths, res, when)?;
    v2::apply(paths, res, when)
}

/// `update`: the checks of `before_make` that still apply, then `apply`.
pub fn update(paths: &Paths, res: &Resources) -> Result<()> {
    check::before_update(paths, res)?;
    apply(paths, res, When::Update)
}

/// Write `value` to `dir/file`: the error names both.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    // Never O_CREAT: cgroupfs refuses to create files, and a missing file
    // must read as ENOENT (no such setting here), not as EACCES.
    let written = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
    written.map_err(|e| {
        let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
        let err = Error::sys(format!("write {value:?}"), Some(&path), errno);
        match errno {
            Errno::ENOENT => err.hint("this kernel has no such cgroup file; drop the setting"),
            Errno::EINVAL | Errno::ERANGE => err.hint("the kernel does not accept this value here"),
            Errno::EBUSY => err.hint("the new limit is below what the container uses now"),
            _ => err,
        }
    })
}

pub(crate) fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Freeze (`true`) or thaw the container; waits until the kernel says so.
pub fn freeze(paths: &Paths, on: bool) -> Result<()> {
    if let Some(dir) = paths.v1("freezer") {
        write(dir, "freezer.state", if on { "FROZEN" } else { "THAWED" })?;
        let want = if on { "FROZEN" } else { "THAWED" };
        let deadline = Instant::now() + Duration::from_secs(10);
        while read(dir, "freezer.state").as_deref() != Some(want) {
            if Instant::now() > deadline {
                return Err(Error::new("freeze")
                    .at(dir.join("freezer.state"))
                    .detail("the cgroup did not reach FROZEN"));
            }
            // FREEZING: write again to push it on, as runc does.
            std::thread::sleep(Duration::from_millis(1));
            write(dir, "freezer.state", want)?;
        }
        return Ok(());
    }
    let Some(dir) = paths.unified().filter(|_| paths.v2_only()) else {
        return Err(Error::new("freeze").detail("the container has no freezer cgroup"));
    };
    write(dir, "cgroup.freeze", if on { "1" } else { "0" })?;
    let want = if on { "frozen 1" } else { "frozen 0" };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = read(dir, "cgroup.events").unwrap_or_default();
        if events.lines().any(|l| l.trim() == want) || Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

pub fn is_frozen(paths: &Paths) -> bool {
    if let Some(dir) = paths.v1("freezer") {
        return matches!(
            read(dir, "freezer.state").as_deref(),
            Some("FROZEN") | Some("FREEZING")
        );
    }
    if paths.v2_only() {
        if let Some(u) = paths.unified() {
            return read(u, "cgroup.freeze").as_deref() == Some("1");
        }
    }
    false
}

/// How many processes the kernel's OOM killer killed in the container.
pub fn oom_kills(paths: &Paths) -> u64 {
    let (file, dir) = match paths.controller("memory") {
        Some((d, false)) => ("memory.oom_control", d),
        Some((d, true)) => ("memory.events", d),
        None => return 0,
    };
    read(dir, file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::mountinfo::{parse_mountinfo, parse_proc_cgroup};

    const MOUNTS: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
35 31 0:32 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "4:memory:/pa/0bf\n1:cpu:/\n9:name=systemd:/\n0::/\n";

    fn host() -> Host {
        Host::from_parts(&parse_mountinfo(MOUNTS), parse_proc_cgroup(OWN))
    }

    #[test]
    fn detects_modes() {
        assert_eq!(host().mode, Mode::Hybrid);
        let v2 = "35 31 0:32 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            Host::from_parts(&parse_mountinfo(v2), vec![]).mode,
            Mode::Unified
        );
        let v1 = "33 31 0:30 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            Host::from_parts(&parse_mountinfo(v1), vec![]).mode,
            Mode::Legacy
        );
    }

    #[test]
    fn empty_path_is_id_beneath_own_cgroup() {
        let p = host().plan(None, "c1").unwrap();
        let dirs: Vec<_> = p.dirs.iter().map(|d| d.path.clone()).collect();
        assert_eq!(
            dirs,
            [
                "/sys/fs/cgroup/cpu/c1",
                "/sys/fs/cgroup/memory/pa/0bf/c1",
                "/sys/fs/cgroup/systemd/c1",
                "/sys/fs/cgroup/unified/c1"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            p.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/pa/0bf/c1"))
        );
        assert!(!p.v2_only());
    }

    #[test]
    fn relative_and_absolute_paths() {
        let p = host().plan(Some(Path::new("a/../b/c")), "x").unwrap();
        assert_eq!(
            p.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/pa/0bf/b/c"))
        );
        let p = host().plan(Some(Path::new("/abs/c")), "x").unwrap();
        assert_eq!(
            p.v1("memory"),
            Some(Path::new("/sys/fs/cgroup/memory/abs/c"))
        );
        let e = host()
            .plan(Some(Path::new("system.slice:hull:c")), "x")
            .unwrap_err();
        assert!(e.to_string().contains("systemd"), "{e}");
    }

    #[test]
    fn journal_round_trips() {
        let p = host().plan(None, "c1").unwrap();
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Paths>(&j).unwrap(), p);
    }
}
