//! Named volumes: `<data root>/volumes/<name>/` holds `_data` (what the
//! container sees), `users/` (one marker per container using it, naming its
//! state dir) and `created`. Created on first use and seeded, as Docker does,
//! with what the image has at the destination; kept when containers go.
//!
//! A flock on the volume's directory serialises first use, seeding and `rm`.

use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

pub use super::users::User;
use super::users::Users;
use crate::error::{Context, Error, Result};
use crate::sys;

pub struct Store {
    dir: PathBuf,
}

/// Docker's rule for volume names.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!("invalid volume name {name:?}"))
            .hint("use letters, digits and _ . - (a path with / is a bind mount)"))
    }
}

/// A fresh volume name (`volume create` without one, `-v /path`).
pub fn random_name() -> String {
    use std::io::Read;
    let mut buf = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = (t ^ std::process::id() as u128).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            dir: data_root.join("volumes"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn data(&self, name: &str) -> PathBuf {
        self.path(name).join("_data")
    }

    /// The marker a container leaves in a volume it uses. Its name is unique
    /// per state dir (two --roots may hold the same id).
    pub fn user_marker(&self, name: &str, state_dir: &Path, id: &str) -> PathBuf {
        self.user_markers(name).marker(state_dir, id)
    }

    fn user_markers(&self, name: &str) -> Users {
        Users::new(self.path(name).join("users"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.data(name).is_dir()
    }

    fn lock(&self, name: &str) -> Result<Flock<File>> {
        let dir = self.path(name);
        let f = File::open(&dir).step_at("open volume", &dir)?;
        Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::sys("lock volume", Some(&dir), e))
    }

    /// Create the volume if it does not exist (idempotent); true if new.
    pub fn create(&self, name: &str) -> Result<bool> {
        check_name(name)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.dir)
            .step_at("create volumes dir", &self.dir)?;
        let dir = self.path(name);
        let new = match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e).step_at("create volume", &dir),
        };
        let _lock = self.lock(name)?;
        for sub in ["_data", "users"] {
            let p = dir.join(sub);
            match fs::DirBuilder::new().mode(0o755).create(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(e).step_at("create volume", &p)
                }
                _ => {}
            }
        }
        let created = dir.join("created");
        if !created.exists() {
            fs::write(&created, crate::time::rfc3339_now()).step_at("create volume", &created)?;
        }
        Ok(new)
    }

    /// A container is about to use `name` at `dest`: create the volume if
    /// needed, seed it on first use from the top-most of `layers` (top
    /// first) that has a directory at `dest`, and leave the user marker.
    /// Returns the host path to bind.
    pub fn attach(
        &self,
        name: &str,
        dest: &Path,
        layers: &[PathBuf],
        state_dir: &Path,
        id: &str,
    ) -> Result<PathBuf> {
        self.create(name)?;
        let _lock = self.lock(name)?;
        let dir = self.path(name);
        let data = self.data(name);
        let seeded = dir.join("seeded");
        if !seeded.exists() {
            for layer in layers {
                if let Some(src) = open_in_root(layer, dest) {
                    let from = PathBuf::from(format!("/proc/self/fd/{}", fd_num(&src)));
                    super::layers::copy_root(&from, &data)
                        .and_then(|()| super::layers::copy_contents(&from, &data))
                        .map_err(|e| e.within(format!("seed from {}", dest.display())))?;
                    break;
                }
            }
            fs::write(&seeded, "").step_at("mark volume seeded", &seeded)?;
        }
        self.user_markers(name).add(state_dir, id)?;
        Ok(data)
    }

    pub fn names(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("_data").is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    pub fn created(&self, name: &str) -> String {
        fs::read_to_string(self.path(name).join("created")).unwrap_or_default()
    }

    /// The containers whose markers are in the volume.
    pub fn users(&self, name: &str) -> Vec<User> {
        self.user_markers(name).list()
    }

    /// Remove a volume and its data. Refused while a live container uses it,
    /// whatever `force` says (its data would go from under it), and, unless
    /// `force`, while a stopped container that is not deleted still names it
    /// (Docker's rule). Markers of deleted containers never count.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        check_name(name)?;
        if !self.exists(name) {
            return Err(Error::new(format!("volume {name} does not exist"))
                .hint("`hull volume ls` lists the volumes under this --data-root"));
        }
        let _lock = self.lock(name)?;
        let users = self.users(name);
        let ids = |pick: &dyn Fn(&User) -> bool| -> Vec<String> {
            users
                .iter()
                .filter(|u| pick(u))
                .map(|u| u.id.clone())
                .collect()
        };
        let live = ids(&|u| u.live);
        if !live.is_empty() {
            return Err(Error::new(format!(
                "volume {name} is in use by live container {}",
                live.join(", ")
            ))
            .hint("stop and delete the container first (`hull delete --force ID`)"));
        }
        let stopped = ids(&|u| u.exists());
        if !stopped.is_empty() && !force {
            return Err(Error::new(format!(
                "volume {name} is in use by stopped container {}",
                stopped.join(", ")
            ))
            .hint("delete the container first, or use `volume rm --force`"));
        }
        let dir = self.path(name);
        fs::remove_dir_all(&dir).step_at("remove volume", &dir)
    }

    pub fn remove_stale_users(&self, name: &str) {
        self.user_markers(name).existing();
    }
}

fn fd_num(fd: &std::os::fd::OwnedFd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// An O_PATH fd of the directory `path` inside `root`, resolved as if
/// `root` were "/" (no symlink leaves it), or None if it is not a directory.
pub fn open_in_root(root: &Path, path: &Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    let rootfd = File::open(root).ok()?;
    let rel: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    let rel = if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    };
    let c = std::ffi::CString::new(rel.as_os_str().as_bytes()).ok()?;
    sys::openat2(
        rootfd.as_fd(),
        &c,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["data", "a.b-c_d", "0x"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "a:b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
