//! Finding again the network namespace a container's host side lives in
//! (the bridge, the host end of its veth, the rules): hull's own, a named
//! one under /run/netns, or any other a live process holds.
//!
//! The nsfs inode number alone cannot tell: it is reused soon after a
//! namespace dies, so a match could be some other namespace. The cookie
//! (SO_NETNS_COOKIE, Linux 5.14) is never reused; with it recorded, every
//! process's namespace is a candidate, so `delete` run from elsewhere still
//! reaches the objects (before, it took an unnamed namespace for gone and
//! left them there). Without a cookie (an older kernel or journal) only
//! hull's own and named namespaces count, as before.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};

/// (dev, inode) of a network namespace.
pub type Id = (u64, u64);

/// Where a container's host side is: the namespace's id and, when the
/// kernel has them, its cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub id: Id,
    pub cookie: Option<u64>,
}

fn id_of(path: &Path) -> Option<Id> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The calling thread's namespace.
pub fn here() -> Result<Place> {
    let p = Path::new("/proc/thread-self/ns/net");
    let id = id_of(p).ok_or_else(|| Error::new("identify network namespace").at(p))?;
    Ok(Place {
        id,
        cookie: crate::sys::netns_cookie().ok(),
    })
}

impl Place {
    /// The calling thread is in this namespace: the same id and, when both
    /// are known, the same cookie.
    fn is_here(&self) -> bool {
        here().is_ok_and(|h| h.id == self.id && (self.cookie.is_none() || h.cookie == self.cookie))
    }

    /// Move the calling thread (a thread of its own: it may end up in
    /// another namespace) into this namespace. False when it is gone, and
    /// with it veths, bridge and rules.
    pub fn enter(&self) -> Result<bool> {
        if self.is_here() {
            return Ok(true);
        }
        for path in self.candidates() {
            let Ok(ns) = File::open(&path) else {
                continue;
            };
            if id_of(&path) != Some(self.id) {
                continue;
            }
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).step_at(
                "enter network namespace of the container's host side",
                &path,
            )?;
            if self.is_here() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Named namespaces, then (only with a cookie to check them by) every
    /// process's.
    fn candidates(&self) -> Vec<PathBuf> {
        let named = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path());
        let mut out: Vec<PathBuf> = named.collect();
        if self.cookie.is_some() {
            let procs = std::fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .map(|e| e.path().join("ns/net"));
            out.extend(procs);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cookie is what tells namespaces apart when inode numbers are
    /// reused: it must be there (Linux 5.14+) and stay put.
    #[test]
    fn here_has_a_stable_cookie_and_is_entered_at_once() {
        let a = here().unwrap();
        assert!(a.cookie.is_some(), "no SO_NETNS_COOKIE on this kernel");
        assert_eq!(here().unwrap(), a);
        assert!(a.enter().unwrap());
        let other = Place {
            id: a.id,
            cookie: a.cookie.map(|c| c ^ 1),
        };
        assert!(!other.is_here(), "a different cookie is another namespace");
    }
}
