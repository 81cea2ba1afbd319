//! The state store: `<root>/<id>/` holds state.json (written atomically),
//! exec.fifo while the container waits for `start`, and a flock that
//! serialises commands on one container.
//!
//! Status is never stored: it is computed from the init's pid, its start time
//! (so a reused pid reads as "stopped") and the presence of exec.fifo.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const OCI_VERSION: &str = "1.0.2";
/// The runtime-spec release hull implements (`--version`, `features`); a
/// config of another major version is refused.
pub const SPEC_VERSION: &str = "1.2.0";
const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
pub const EXEC_FIFO_C: &std::ffi::CStr = c"exec.fifo";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What state.json holds. `pid` and `pid_start` are written before the init
/// does anything on the host, so `delete --force` can always find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    /// Start time of the init (clock ticks since boot): tells our process
    /// from a later one that got the same pid.
    #[serde(default)]
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub owner: String,
    /// The container's cgroup directories, journalled before they exist.
    #[serde(default, skip_serializing_if = "crate::cgroups::Paths::is_empty")]
    pub cgroups: crate::cgroups::Paths,
    /// Created with --no-new-keyring: exec'd processes keep the caller's
    /// session keyring too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_new_keyring: bool,
    /// process.args as the container runs them (`ps` shows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

pub struct Store {
    root: PathBuf,
}

/// One container, locked for the lifetime of this value.
#[derive(Debug)]
pub struct Container {
    pub dir: PathBuf,
    pub record: Record,
    /// None for a read-only peek (`state`, `list` must not wait on a create).
    lock: Option<Flock<File>>,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reserve `id`: mkdir is atomic, so of two concurrent creates of one id
    /// exactly one wins. The lock is held until the returned value drops.
    pub fn reserve(&self, record: Record) -> Result<Container> {
        check_id(&record.id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .step_at("create state root", &self.root)?;
        let dir = self.root.join(&record.id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(
                    Error::new(format!("container with id {} already exists", record.id))
                        .hint("pick another id, or delete the old container first"),
                );
            }
            Err(e) => return Err(e).step_at("create state dir", &dir),
        }
        // The mode must not depend on the caller's umask: the container's
        // user (maybe unprivileged) opens exec.fifo through this directory.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))
            .step_at("chmod state dir", &dir)?;
        let lock = lock_dir(&dir)?;
        let container = Container {
            dir,
            record,
            lock: Some(lock),
        };
        container.save()?;
        Ok(container)
    }

    /// Open and lock an existing container.
    pub fn load(&self, id: &str) -> Result<Container> {
        check_id(id)?;
        let dir = self.root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(lock) => lock,
            Err(e) if e.errno() == Some(Errno::ENOENT) => return Err(not_found(id)),
            Err(e) => return Err(e),
        };
        let record = read_record_of(&dir, id)?;
        Ok(Container {
            dir,
            record,
            lock: Some(lock),
        })
    }

    /// For `gc`: lock `id` without waiting, and say what its dir holds.
    pub fn try_entry(&self, id: &str) -> Result<Entry> {
        check_id(id)?;
        let dir = self.root.join(id);
        let file = File::open(&dir).step_at("open state dir", &dir)?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Ok(Entry::Busy),
            Err((_, e)) => return Err(Error::sys("lock state dir", Some(&dir), e)),
        };
        match read_record(&dir) {
            Ok(record) => Ok(Entry::Container(Box::new(Container {
                dir,
                record,
                lock: Some(lock),
            }))),
            Err(e) if e.errno() == Some(Errno::ENOENT) => {
                Ok(Entry::Bare(Bare { dir, _lock: lock }))
            }
            Err(e) => Err(e),
        }
    }

    /// Remove what a create killed before its first write left: a bare dir.
    pub fn remove_stale(&self, id: &str) {
        if check_id(id).is_ok() {
            let _ = fs::remove_dir_all(self.root.join(id));
        }
    }

    /// Read a container without locking it: for commands that only look.
    pub fn peek(&self, id: &str) -> Result<Container> {
        check_id(id)?;
        let dir = self.root.join(id);
        let record = read_record_of(&dir, id)?;
        Ok(Container {
            dir,
            record,
            lock: None,
        })
    }

    /// Read every container without taking locks (list must not wait on a
    /// create in progress). Unreadable entries are skipped.
    pub fn list(&self) -> Vec<(Record, Status, u32)> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<_> = entries
            .flatten()
            .filter_map(|entry| {
                let dir = entry.path();
                let owner = entry.metadata().ok()?.uid();
                let record = read_record(&dir).ok()?;
                let status = status_of(&dir, &record, false);
                Some((record, status, owner))
            })
            .collect();
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        out
    }
}

/// A state dir as `gc` finds it.
pub enum Entry {
    /// Another command holds its lock (a create in progress, a delete, ...).
    Busy,
    /// No state.json: a create killed before its first write.
    Bare(Bare),
    Container(Box<Container>),
}

/// A state dir without a record, locked.
pub struct Bare {
    pub dir: PathBuf,
    _lock: Flock<File>,
}

impl Bare {
    pub fn remove(self) -> Result<()> {
        fs::remove_dir_all(&self.dir).step_at("remove state dir", &self.dir)
    }
}

impl Container {
    pub fn status(&self) -> Status {
        status_of(&self.dir, &self.record, self.lock.is_some())
    }

    /// The init's pid while it is alive (and is still our process).
    pub fn live_pid(&self) -> Option<Pid> {
        is_alive(&self.record).then(|| Pid::from_raw(self.record.pid))
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Write state.json atomically: a reader sees the old or the new record,
    /// never half of one.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let json = serde_json::to_vec(&self.record).expect("record serialises");
        let mut f = File::create(&tmp).step_at("write state", &tmp)?;
        f.write_all(&json).step_at("write state", &tmp)?;
        fs::rename(&tmp, &path).step_at("write state", &path)
    }

    /// Remove the state directory; the container is forgotten.
    pub fn remove(self) -> Result<()> {
        // A monitor whose container was just killed may still be writing
        // a file in the dir (it takes the lock for its records, not for
        // every line of log): go again while entries keep appearing.
        let mut tries = 0;
        loop {
            match fs::remove_dir_all(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 20 => tries += 1,
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).step_at("remove state dir", &self.dir)
                }
                _ => return Ok(()),
            }
        }
    }

    /// runc's state JSON, as `state` prints it: runc's keys in runc's order,
    /// `annotations` only when there are some, `owner` empty (runc fills it
    /// in `list` only).
    pub fn state_json(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.record.pid
        };
        let mut state = serde_json::json!({
            "ociVersion": self.record.oci_version,
            "id": self.record.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.record.bundle,
            "rootfs": self.record.rootfs,
            "created": self.record.created,
        });
        if !self.record.annotations.is_empty() {
            state["annotations"] = self.annotations_json();
        }
        state["owner"] = self.record.owner.clone().into();
        // The kernel's OOM killer hit the container: kept until `delete`.
        // (A monitor releases the cgroups at the end and keeps the record.)
        let monitored_oom =
            || crate::monitor::Info::read(&self.dir).is_ok_and(|i| i.is_some_and(|i| i.oom_killed));
        if status == Status::Stopped
            && (crate::cgroups::oom_kills(&self.record.cgroups) > 0 || monitored_oom())
        {
            state["oomKilled"] = serde_json::Value::Bool(true);
        }
        state
    }

    /// Sorted by key, as Go's encoding/json writes a map.
    fn annotations_json(&self) -> serde_json::Value {
        let sorted: std::collections::BTreeMap<_, _> = self.record.annotations.iter().collect();
        serde_json::json!(sorted)
    }

    /// The runtime spec's state, as hooks and the seccomp agent get it:
    /// ociVersion, id, status, pid (left out when there is none), bundle,
    /// annotations (when there are some).
    pub fn oci_state(&self, status: &str, pid: i32) -> serde_json::Value {
        let mut state = serde_json::json!({
            "ociVersion": self.record.oci_version,
            "id": self.record.id,
            "status": status,
        });
        if pid > 0 {
            state["pid"] = pid.into();
        }
        state["bundle"] = serde_json::json!(self.record.bundle);
        if !self.record.annotations.is_empty() {
            state["annotations"] = self.annotations_json();
        }
        state
    }
}

pub fn not_found(id: &str) -> Error {
    Error::new(format!("container {id} does not exist"))
        .hint("`hull list` shows the containers under this --root")
}

/// The same rule as runc: ids become directory names, so no slashes, no
/// dot-dot, nothing exotic.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!("invalid container id {id:?}"))
            .hint("use letters, digits and _ + - ."))
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let file = File::open(dir).step_at("open state dir", dir)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys("lock state dir", Some(dir), e))
}

/// The record of container `id`; a missing state.json means it does not exist.
fn read_record_of(dir: &Path, id: &str) -> Result<Record> {
    read_record(dir).map_err(|e| match e.errno() {
        Some(Errno::ENOENT) => not_found(id),
        _ => e,
    })
}

fn read_record(dir: &Path) -> Result<Record> {
    let path = dir.join(STATE_FILE);
    let text = fs::read(&path).step_at("read state", &path)?;
    parse_record(&text).map_err(|e| e.at(&path))
}

/// state.json's bytes as a Record. Pure, so the fuzz target `state` drives it.
pub fn parse_record(text: &[u8]) -> Result<Record> {
    serde_json::from_slice(text).map_err(|e| Error::new("parse state").detail(e.to_string()))
}

fn status_of(dir: &Path, record: &Record, we_hold_lock: bool) -> Status {
    if record.pid == 0 {
        // Reserved, init not yet started: "creating" while the create that
        // holds the lock runs, "stopped" once that create is gone.
        let creating = if we_hold_lock {
            false
        } else {
            lock_is_held(dir)
        };
        return if creating {
            Status::Creating
        } else {
            Status::Stopped
        };
    }
    if !is_alive(record) {
        return Status::Stopped;
    }
    if crate::cgroups::is_frozen(&record.cgroups) {
        Status::Paused
    } else if dir.join(EXEC_FIFO).exists() {
        Status::Created
    } else {
        Status::Running
    }
}

fn is_alive(record: &Record) -> bool {
    record.pid > 0
        && matches!(proc_start_time(record.pid), Some((start, false)) if start == record.pid_start)
}

fn lock_is_held(dir: &Path) -> bool {
    let Ok(file) = File::open(dir) else {
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_) => false,
        Err((_, e)) => e == Errno::EWOULDBLOCK,
    }
}

/// The start time of `pid` in clock ticks since boot (field 22 of
/// /proc/PID/stat) and whether it is a zombie or dead: together they tell
/// "our process, running" from "exited" and from "pid reused".
pub fn proc_start_time(pid: i32) -> Option<(u64, bool)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may hold spaces and parens: the fields we want follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

impl Container {
    /// The fd of the lock, for the init to close right after the fork: an
    /// inherited copy would keep the lock held (and `start` waiting) for as
    /// long as the init lives. Closing, not unlocking: flock(LOCK_UN) on the
    /// shared open file would release the parent's lock too.
    pub fn lock_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.lock.as_ref().map(|l| l.as_fd().as_raw_fd())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        assert!(check_id("web-1_a.b+c").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "x\n"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn start_time_of_self_is_readable_and_alive() {
        let (start, dead) = proc_start_time(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(!dead);
    }

    #[test]
    fn reserve_is_exclusive_and_load_finds_it() {
        let root = std::env::temp_dir().join(format!("hull-state-test-{}", std::process::id()));
        let store = Store::new(&root);
        let record = Record {
            oci_version: OCI_VERSION.into(),
            id: "a".into(),
            pid: 0,
            pid_start: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: crate::time::rfc3339_now(),
            annotations: HashMap::new(),
            owner: String::new(),
            cgroups: Default::default(),
            no_new_keyring: false,
            command: Vec::new(),
        };
        let c = store.reserve(record.clone()).unwrap();
        assert_eq!(store.peek("a").unwrap().status(), Status::Creating);
        let err = store.reserve(record).unwrap_err().to_string();
        assert!(err.contains("already exists"), "{err}");
        drop(c);
        let c = store.load("a").unwrap();
        assert_eq!(c.status(), Status::Stopped);
        c.remove().unwrap();
        assert!(store
            .load("a")
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
        fs::remove_dir_all(&root).unwrap();
    }
}
