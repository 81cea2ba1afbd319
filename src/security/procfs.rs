//! Writes into procfs that cannot be redirected (CVE-2025-52881 class): the
//! container's /proc is opened without following a symlink and checked to be
//! the root of a proc filesystem, and every file below it is opened with
//! openat2 refusing symlinks, magic links and mount crossings, then checked
//! to be on procfs again. A bind mount or symlink swapped in by the image or
//! the config makes the write fail with a clear error instead of landing
//! somewhere else (e.g. /proc/sysrq-trigger).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::{fstat, Mode};
use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use crate::error::{Context, Error, Result};
use crate::sys;

/// The root inode of every procfs (PROC_ROOT_INO).
const PROC_ROOT_INO: u64 = 1;

pub struct Procfs {
    root: OwnedFd,
}

fn is_proc(fd: &OwnedFd) -> bool {
    fstatfs(fd.as_fd()).is_ok_and(|s| s.filesystem_type() == PROC_SUPER_MAGIC)
}

impl Procfs {
    /// The procfs mounted at /proc in the current mount namespace.
    pub fn open() -> Result<Procfs> {
        let path = Path::new("/proc");
        let root = open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(sys::own_fd)
        .step_at("open procfs", path)
        .map_err(|e| e.hint("mount proc on /proc (a \"proc\" entry in mounts)"))?;
        let st = fstat(root.as_raw_fd()).step_at("stat procfs", path)?;
        if !is_proc(&root) || st.st_ino != PROC_ROOT_INO {
            return Err(Error::new("verify procfs")
                .at(path)
                .detail("not the root of a proc filesystem")
                .hint("something other than a fresh proc mount is on /proc"));
        }
        Ok(Procfs { root })
    }

    /// Write `value` to /proc/`rel` (no symlink, no mount crossing).
    pub fn write(&self, rel: &str, value: &[u8]) -> Result<()> {
        let shown = Path::new("/proc").join(rel);
        let c =
            CString::new(rel).map_err(|_| Error::new("open").at(&shown).detail("NUL in path"))?;
        let resolve = sys::RESOLVE_BENEATH
            | sys::RESOLVE_NO_SYMLINKS
            | sys::RESOLVE_NO_MAGICLINKS
            | sys::RESOLVE_NO_XDEV;
        let fd = sys::openat2(
            self.root.as_fd(),
            &c,
            libc::O_WRONLY | libc::O_NOCTTY,
            0,
            resolve,
        )
        .step_at("open", &shown)
        .map_err(|e| {
            e.hint_if(
                nix::errno::Errno::EXDEV,
                "something is mounted over this procfs path: refusing to write through it",
            )
            .hint_if(
                nix::errno::Errno::ELOOP,
                "this procfs path is a symlink: refusing to follow it",
            )
        })?;
        if !is_proc(&fd) {
            return Err(Error::new("verify procfs file")
                .at(&shown)
                .detail("not on procfs"));
        }
        std::fs::File::from(fd)
            .write_all(value)
            .step_at("write", &shown)
    }
}
