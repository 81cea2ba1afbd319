//! Layers as directories: what a container changed (its overlay upper), read
//! as a diff, and copied out as a new layer (`commit`) with its whiteouts
//! (0/0 character devices) and opaque markers kept, so it stacks as a lower.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, Mode, SFlag};

use crate::error::{Context, Error, Result};
use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Changed,
    Deleted,
}

impl Change {
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Changed => 'C',
            Change::Deleted => 'D',
        }
    }
}

pub fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::new("path").at(p).detail("contains a NUL byte"))
}

/// A whiteout: a character device 0/0 in an overlay layer hides the entry.
pub fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// An opaque directory hides everything below it in the lower layers.
pub fn is_opaque(path: &Path) -> bool {
    let Ok(c) = cpath(path) else { return false };
    [c"trusted.overlay.opaque", c"user.overlay.opaque"]
        .iter()
        .any(|name| sys::lgetxattr(&c, name).is_ok_and(|v| v == b"y"))
}

/// Does the container path `rel` exist in any of `lowers` (resolved in each
/// layer as its root)?
fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    lowers.iter().any(|l| {
        let Ok(root) = fs::File::open(l) else {
            return false;
        };
        let Ok(c) = CString::new(rel.as_os_str().as_bytes()) else {
            return false;
        };
        use std::os::fd::AsFd;
        sys::openat2(
            root.as_fd(),
            &c,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
        )
        .is_ok()
    })
}

/// What the upper `upper` changed against `lowers` (top first): every entry
/// of the upper, in walk order (a directory before what it holds).
pub fn diff(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<(Change, PathBuf)>> {
    let mut out = Vec::new();
    walk_diff(upper, Path::new(""), lowers, &mut out)?;
    Ok(out)
}

fn walk_diff(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<(Change, PathBuf)>,
) -> Result<()> {
    let dir = upper.join(rel);
    let mut entries: Vec<_> = fs::read_dir(&dir)
        .step_at("read upper dir", &dir)?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let rel = rel.join(e.file_name());
        let meta = e.metadata().step_at("stat", &e.path())?;
        let change = if is_whiteout(&meta) {
            Change::Deleted
        } else if in_lowers(lowers, &rel) {
            Change::Changed
        } else {
            Change::Added
        };
        out.push((change, Path::new("/").join(&rel)));
        if meta.is_dir() {
            if change == Change::Changed && is_opaque(&e.path()) {
                opaque_deletions(upper, &rel, lowers, out);
            }
            walk_diff(upper, &rel, lowers, out)?;
        }
    }
    Ok(())
}

/// An opaque directory hides everything the lowers have in it: what is not
/// in the upper again was deleted.
fn opaque_deletions(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<(Change, PathBuf)>,
) {
    let mut gone = std::collections::BTreeSet::new();
    for l in lowers {
        let Some(fd) = super::volumes::open_in_root(l, rel) else {
            continue;
        };
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        for e in fs::read_dir(path).into_iter().flatten().flatten() {
            if fs::symlink_metadata(upper.join(rel).join(e.file_name())).is_err() {
                gone.insert(e.file_name());
            }
        }
    }
    for name in gone {
        out.push((Change::Deleted, Path::new("/").join(rel).join(name)));
    }
}

/// Copy the tree `src` into `dst` (which must exist), entry by entry:
/// directories, files, symlinks, devices (whiteouts included), fifos, with
/// mode, owner, times and extended attributes. Sockets are skipped.
pub fn copy_contents(src: &Path, dst: &Path) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)
        .step_at("read dir", src)?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        copy_entry(&e.path(), &dst.join(e.file_name()))?;
    }
    Ok(())
}

fn copy_entry(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).step_at("stat", src)?;
    let ft = meta.file_type();
    let perm = Mode::from_bits_truncate(meta.mode() & 0o7777);
    if ft.is_dir() {
        match fs::create_dir(dst) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(e).step_at("mkdir", dst)
            }
            _ => {}
        }
        copy_contents(src, dst)?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).step_at("readlink", src)?;
        std::os::unix::fs::symlink(&target, dst).step_at("symlink", dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst).step_at("copy file", dst)?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
        let kind = if ft.is_char_device() {
            SFlag::S_IFCHR
        } else if ft.is_block_device() {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFIFO
        };
        mknod(dst, kind, perm, meta.rdev()).step_at("mknod", dst)?;
    } else {
        return Ok(());
    }
    copy_xattrs(src, dst)?;
    std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid())).step_at("chown", dst)?;
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .step_at("chmod", dst)?;
    }
    let times = |s: i64, ns: i64| nix::sys::time::TimeSpec::new(s, ns);
    let _ = nix::sys::stat::utimensat(
        None,
        dst,
        &times(meta.atime(), meta.atime_nsec()),
        &times(meta.mtime(), meta.mtime_nsec()),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    Ok(())
}

/// Extended attributes, except overlay's bookkeeping other than "opaque"
/// (origin, impure, ... name inodes of this one mount; meaningless elsewhere).
fn copy_xattrs(src: &Path, dst: &Path) -> Result<()> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    let names = match sys::llistxattr(&s) {
        Ok(n) => n,
        Err(nix::errno::Errno::ENOTSUP) => return Ok(()),
        Err(e) => return Err(Error::sys("list xattrs", Some(src), e)),
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let text = OsStr::from_bytes(name).to_string_lossy();
        let overlay = text.starts_with("trusted.overlay.") || text.starts_with("user.overlay.");
        if overlay && !text.ends_with(".opaque") {
            continue;
        }
        let cname = CString::new(name).expect("split at NUL");
        let value = match sys::lgetxattr(&s, &cname) {
            Ok(v) => v,
            Err(nix::errno::Errno::ENODATA) => continue,
            Err(e) => return Err(Error::sys(format!("get xattr {text}"), Some(src), e)),
        };
        sys::lsetxattr(&d, &cname, &value)
            .map_err(|e| Error::sys(format!("set xattr {text}"), Some(dst), e))?;
    }
    Ok(())
}

/// Write the changes in `upper` to the new layer directory `dir` (created;
/// it must not exist, or be empty).
pub fn commit(upper: &Path, dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let empty = fs::read_dir(dir)
                .step_at("read layer dir", dir)?
                .next()
                .is_none();
            if !empty {
                return Err(Error::new("commit")
                    .at(dir)
                    .detail("the directory exists and is not empty")
                    .hint("give a new directory for the layer"));
            }
        }
        Err(e) => return Err(e).step_at("create layer dir", dir),
    }
    let result = copy_root(upper, dir).and_then(|()| copy_contents(upper, dir));
    if result.is_err() {
        // Half a layer is worse than none: leave the directory empty.
        if let Ok(entries) = fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
            }
        }
    }
    result
}

/// The mode and owner of the tree's root directory `src`, onto `dst`.
pub fn copy_root(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::metadata(src).step_at("stat", src)?;
    std::os::unix::fs::chown(dst, Some(meta.uid()), Some(meta.gid())).step_at("chown", dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777)).step_at("chmod", dst)
}
