//! Which containers use a shared object (a volume, an image): a directory of
//! markers, one per container, each naming the container's state dir. A
//! marker is written after the container's storage journal lists it, and
//! removed with the container (storage::cleanup); one whose state dir is gone
//! is stale and never counts.

use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};

/// A container that uses the object, as its marker says.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub state_dir: PathBuf,
    /// Its init runs, or its create is still in progress.
    pub live: bool,
    pub marker: PathBuf,
}

impl User {
    /// Not deleted: live, or stopped with its state kept.
    pub fn exists(&self) -> bool {
        self.live || self.state_dir.join("state.json").exists()
    }
}

/// The markers directory of one shared object.
#[derive(Debug, Clone)]
pub struct Users {
    dir: PathBuf,
}

impl Users {
    pub fn new(dir: PathBuf) -> Users {
        Users { dir }
    }

    /// The marker of the container `id` whose state dir is `state_dir`. Its
    /// name is unique per state dir (two --roots may hold the same id).
    pub fn marker(&self, state_dir: &Path, id: &str) -> PathBuf {
        let mut h = std::hash::DefaultHasher::new();
        state_dir.hash(&mut h);
        self.dir.join(format!("{id}@{:016x}", h.finish()))
    }

    /// Write the marker (the caller journalled its path).
    pub fn add(&self, state_dir: &Path, id: &str) -> Result<()> {
        fs::create_dir_all(&self.dir).step_at("create users dir", &self.dir)?;
        let marker = self.marker(state_dir, id);
        fs::write(&marker, state_dir.as_os_str().as_bytes()).step_at("mark in use", &marker)
    }

    pub fn list(&self) -> Vec<User> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            let id = fname
                .rsplit_once('@')
                .map(|(i, _)| i)
                .unwrap_or(&fname)
                .to_string();
            let state_dir = PathBuf::from(std::ffi::OsStr::from_bytes(
                &fs::read(e.path()).unwrap_or_default(),
            ));
            out.push(User {
                id,
                live: is_live(&state_dir),
                state_dir,
                marker: e.path(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The users that still exist; stale markers are removed on the way.
    pub fn existing(&self) -> Vec<User> {
        let (keep, stale): (Vec<User>, Vec<User>) = self.list().into_iter().partition(User::exists);
        for u in stale {
            let _ = fs::remove_file(&u.marker);
        }
        keep
    }
}

/// A container is live while its state dir exists and its init runs, or it
/// is still being created (no pid yet).
fn is_live(state_dir: &Path) -> bool {
    let Ok(text) = fs::read(state_dir.join("state.json")) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return false;
    };
    let pid = v["pid"].as_i64().unwrap_or(0) as i32;
    if pid == 0 {
        return true;
    }
    let start = v["pidStart"].as_u64().unwrap_or(0);
    matches!(crate::state::proc_start_time(pid), Some((s, false)) if s == start)
}
