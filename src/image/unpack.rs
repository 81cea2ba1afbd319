//! One layer tar (plain, gzip or zstd) unpacked into a fresh directory that
//! overlay can stack as a lower: tar whiteouts (`.wh.NAME`) become 0/0
//! character devices, opaque markers (`.wh..wh..opq`) the
//! `trusted.overlay.opaque` xattr; owners, modes, times, xattrs, hard links
//! and device nodes are kept (hull unpacks as root).
//!
//! Every write goes through a directory fd resolved with RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS, and every file is created with O_EXCL | O_NOFOLLOW:
//! an entry named with `..` or an absolute path, or one whose path (or hard
//! link target) crosses a symlink, is refused with an error instead of
//! writing outside the layer (the classic extraction escape). The caller
//! unpacks into a temp dir and renames it, so a failure leaves no layer.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::digest::{Digest, Hashing};
use crate::error::{Context, Error, Result};
use crate::sys;

/// What unpacking a layer found.
#[derive(Debug)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar: the layer's diff id.
    pub diff_id: Digest,
    /// Bytes of file content (Docker's SIZE counts these).
    pub size: u64,
}

/// The decompressed stream of a layer blob, by its first bytes: gzip
/// (1f 8b), zstd (28 b5 2f fd), or a plain tar.
pub fn decompressed<'a>(blob: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, blob);
    let head = r.fill_buf().step("read layer")?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let z = ruzstd::decoding::StreamingDecoder::new(r).map_err(|e| {
            Error::new("read layer")
                .detail(format!("zstd: {e}"))
                .hint("the layer is corrupt or truncated")
        })?;
        Box::new(z)
    } else {
        Box::new(r)
    })
}

/// Unpack the layer `blob` (compressed or not) into the empty directory
/// `dir`, returning its diff id and size.
pub fn unpack(blob: impl Read, dir: &Path) -> Result<Unpacked> {
    let root = File::open(dir).step_at("open layer dir", dir)?;
    let mut tar = tar::Archive::new(Hashing::new(decompressed(blob)?));
    let mut size = 0u64;
    let mut dir_times: Vec<(Vec<u8>, TimeSpec)> = Vec::new();
    let entries = tar.entries().map_err(|e| broken("layer", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| broken("layer", e))?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let within = |e: Error| e.within(format!("layer entry {shown:?}"));
        let rel = clean(&raw).map_err(within)?;
        let kind = entry.header().entry_type();
        if kind == tar::EntryType::XGlobalHeader {
            continue;
        }
        let mtime = TimeSpec::new(entry.header().mtime().unwrap_or(0) as i64, 0);
        if let Some(dir) = place(&root, &rel, kind, &mut entry, &mut size).map_err(within)? {
            dir_times.push((dir, mtime));
        }
    }
    // A directory's time is set last: what was made in it changed it.
    for (rel, mtime) in dir_times.iter().rev() {
        if let Ok(fd) = open_beneath(&root, rel, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
            let _ = nix::sys::stat::futimens(fd.as_raw_fd(), &mtime.clone(), mtime);
        }
    }
    let (diff_id, _) = tar.into_inner().finish().map_err(|e| broken("layer", e))?;
    Ok(Unpacked { diff_id, size })
}

/// A tar that cannot be read (`what`: "layer" or "archive"). The tar
/// crate's message ends with the raw bytes it could not parse: only its
/// first part is kept.
pub fn broken(what: &str, e: std::io::Error) -> Error {
    let step = format!("read {what}");
    let err = match e.raw_os_error() {
        Some(code) => Error::sys(step, None, Errno::from_raw(code)),
        None => {
            let text = e.to_string();
            Error::new(step).detail(text.split(':').next().unwrap_or("").trim().to_string())
        }
    };
    err.hint(format!("the {what} is corrupt or truncated"))
}

/// An entry's path as relative components without `.`; `..` and absolute
/// paths are refused. Empty for the layer's root ("./").
pub fn clean(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.first() == Some(&b'/') {
        return Err(Error::new("check path").detail("an absolute path").hint(
            "layer entries are relative to the layer's root; this tar would write outside it",
        ));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                return Err(Error::new("check path")
                    .detail("a path with ..")
                    .hint("this tar would write outside the layer"))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join(&b'/'))
}

/// Write one entry at `rel`; a directory's path is returned for its time.
fn place(
    root: &File,
    rel: &[u8],
    kind: tar::EntryType,
    entry: &mut tar::Entry<impl Read>,
    size: &mut u64,
) -> Result<Option<Vec<u8>>> {
    let header = entry.header().clone();
    let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o7777);
    let uid = Uid::from_raw(header.uid().unwrap_or(0) as u32);
    let gid = Gid::from_raw(header.gid().unwrap_or(0) as u32);
    let mtime = TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0);
    if rel.is_empty() {
        if kind.is_dir() {
            set_owner_mode(root.as_fd(), uid, gid, mode)?;
            return Ok(Some(Vec::new()));
        }
        return Err(Error::new("unpack").detail("the layer's root is not a directory"));
    }
    let (parent_rel, name) = split(rel);
    let parent = parent_dir(root, parent_rel)?;
    let name = cstr(name)?;
    if let Some(hidden) = name.to_bytes().strip_prefix(b".wh.") {
        if hidden == b".wh..opq" {
            return set_opaque(&parent).map(|()| None);
        }
        if hidden.starts_with(b".wh.") {
            return Ok(None); // aufs bookkeeping (.wh..wh.plnk, ...)
        }
        let hidden = cstr(hidden)?;
        remove_existing(&parent, &hidden, false)?;
        return nix::sys::stat::mknodat(
            Some(parent.as_raw_fd()),
            hidden.as_c_str(),
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .step("create whiteout")
        .map(|()| None);
    }
    let at = Some(parent.as_raw_fd());
    let xattrs = xattrs(entry)?;
    match kind {
        tar::EntryType::Directory => {
            if !remove_existing(&parent, &name, true)? {
                nix::sys::stat::mkdirat(at, name.as_c_str(), Mode::from_bits_truncate(0o700))
                    .step("create directory")?;
            }
            let fd = open_at(&parent, &name, OFlag::O_DIRECTORY | OFlag::O_RDONLY)?;
            set_owner_mode(fd.as_fd(), uid, gid, mode)?;
            set_xattrs(fd.as_fd(), &xattrs)?;
            return Ok(Some(rel.to_vec()));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_existing(&parent, &name, false)?;
            let fd = nix::fcntl::openat(
                at,
                name.as_c_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .step("create file")?;
            let mut file = File::from(sys::own_fd(fd));
            *size += std::io::copy(entry, &mut file).map_err(|e| broken("layer", e))?;
            set_owner_mode(file.as_fd(), uid, gid, mode)?;
            set_xattrs(file.as_fd(), &xattrs)?;
            nix::sys::stat::futimens(file.as_raw_fd(), &mtime, &mtime).step("set file time")?;
            return Ok(None);
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Error::new("create symlink").detail("no target"))?;
            let target = cstr(&target)?;
            remove_existing(&parent, &name, false)?;
            nix::unistd::symlinkat(target.as_c_str(), at, name.as_c_str())
                .step("create symlink")?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Error::new("create hard link").detail("no target"))?;
            let target = clean(&target).map_err(|e| e.within("hard link target"))?;
            let (tparent_rel, tname) = split(&target);
            let tparent = open_beneath(root, tparent_rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(|e| escape(e, "hard link target", tparent_rel))?;
            remove_existing(&parent, &name, false)?;
            nix::unistd::linkat(
                Some(tparent.as_raw_fd()),
                cstr(tname)?.as_c_str(),
                at,
                name.as_c_str(),
                nix::fcntl::AtFlags::empty(),
            )
            .step("create hard link")
            .map_err(|e| e.hint("a hard link's target must come earlier in the same layer"))?;
            return Ok(None);
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let flag = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let dev = libc::makedev(
                header.device_major().ok().flatten().unwrap_or(0),
                header.device_minor().ok().flatten().unwrap_or(0),
            );
            remove_existing(&parent, &name, false)?;
            nix::sys::stat::mknodat(at, name.as_c_str(), flag, mode, dev)
                .step("create device node")?;
        }
        other => {
            return Err(Error::new("unpack")
                .detail(format!("unsupported entry type {other:?}"))
                .hint("hull unpacks files, directories, links, devices and fifos"))
        }
    }
    // Symlinks, devices, fifos: no fd to set them through.
    nix::unistd::fchownat(
        at,
        name.as_c_str(),
        Some(uid),
        Some(gid),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .step("chown")?;
    if kind != tar::EntryType::Symlink {
        nix::sys::stat::fchmodat(
            at,
            name.as_c_str(),
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .step("chmod")?;
    }
    nix::sys::stat::utimensat(
        at,
        name.as_c_str(),
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .step("set time")?;
    Ok(None)
}

fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|b| *b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

fn cstr(bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| Error::new("check path").detail("contains a NUL byte"))
}

/// `rel` under `root`, refusing any symlink on the way and anything that
/// leaves `root`.
fn open_beneath(root: &File, rel: &[u8], flags: OFlag) -> std::result::Result<OwnedFd, Errno> {
    let path = if rel.is_empty() { &b"."[..] } else { rel };
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    sys::openat2(
        root.as_fd(),
        &c,
        (flags | OFlag::O_CLOEXEC).bits(),
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    )
}

fn open_at(parent: &OwnedFd, name: &CString, flags: OFlag) -> Result<OwnedFd> {
    nix::fcntl::openat(
        Some(parent.as_raw_fd()),
        name.as_c_str(),
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .step("open")
}

fn escape(errno: Errno, what: &str, rel: &[u8]) -> Error {
    let shown = String::from_utf8_lossy(rel).into_owned();
    let err = Error::sys(
        format!("open {what} directory"),
        Some(Path::new(&shown)),
        errno,
    );
    match errno {
        Errno::ELOOP => err
            .detail("its path crosses a symlink")
            .hint("this tar would write through a symlink, maybe outside the layer"),
        Errno::ENOTDIR => err.detail("a part of the path is not a directory"),
        _ => err,
    }
}

/// The directory an entry goes in, made (0755, root's) where the tar did
/// not list it first.
fn parent_dir(root: &File, rel: &[u8]) -> Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    match open_beneath(root, rel, flags) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(escape(e, "parent", rel)),
    }
    let mut made = Vec::new();
    for part in rel.split(|b| *b == b'/') {
        let at = open_beneath(root, &made, flags).map_err(|e| escape(e, "parent", &made))?;
        match nix::sys::stat::mkdirat(
            Some(at.as_raw_fd()),
            cstr(part)?.as_c_str(),
            Mode::from_bits_truncate(0o755),
        ) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys("create parent directory", None, e)),
        }
        if !made.is_empty() {
            made.push(b'/');
        }
        made.extend_from_slice(part);
    }
    open_beneath(root, rel, flags).map_err(|e| escape(e, "parent", rel))
}

/// Clear the way for a new entry `name`: a directory stays when the new
/// entry is one too (true: "it exists"), anything else is removed.
fn remove_existing(parent: &OwnedFd, name: &CString, keep_dir: bool) -> Result<bool> {
    let st = match nix::sys::stat::fstatat(
        Some(parent.as_raw_fd()),
        name.as_c_str(),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) => st,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(Error::sys("stat existing entry", None, e)),
    };
    let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
    if is_dir && keep_dir {
        return Ok(true);
    }
    if is_dir {
        // std's remove_dir_all does not follow symlinks inside.
        let path = Path::new(&format!("/proc/self/fd/{}", parent.as_raw_fd()))
            .join(OsStr::from_bytes(name.as_bytes()));
        std::fs::remove_dir_all(&path).step("remove replaced directory")?;
    } else {
        nix::unistd::unlinkat(
            Some(parent.as_raw_fd()),
            name.as_c_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )
        .step("remove replaced entry")?;
    }
    Ok(false)
}

fn set_owner_mode(fd: std::os::fd::BorrowedFd<'_>, uid: Uid, gid: Gid, mode: Mode) -> Result<()> {
    nix::unistd::fchown(fd.as_raw_fd(), Some(uid), Some(gid)).step("chown")?;
    // After chown, which clears set-user-id bits.
    nix::sys::stat::fchmod(fd.as_raw_fd(), mode).step("chmod")
}

fn set_opaque(dir: &OwnedFd) -> Result<()> {
    // An O_PATH fd cannot take xattrs: reopen it.
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .step("open opaque directory")?;
    sys::fsetxattr(fd.as_fd(), c"trusted.overlay.opaque", b"y").step("mark directory opaque")
}

/// The entry's extended attributes (PAX `SCHILY.xattr.NAME`), without
/// overlay's own: a layer must not forge overlay metadata.
fn xattrs(entry: &mut tar::Entry<impl Read>) -> Result<Vec<(CString, Vec<u8>)>> {
    let mut out = Vec::new();
    let Some(pax) = entry.pax_extensions().map_err(|e| broken("layer", e))? else {
        return Ok(out);
    };
    for ext in pax {
        let ext = ext.map_err(|e| broken("layer", e))?;
        let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
            continue;
        };
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        out.push((cstr(name)?, ext.value_bytes().to_vec()));
    }
    Ok(out)
}

fn set_xattrs(fd: std::os::fd::BorrowedFd<'_>, xattrs: &[(CString, Vec<u8>)]) -> Result<()> {
    for (name, value) in xattrs {
        match sys::fsetxattr(fd, name, value) {
            // A file system without that namespace: the layer still works.
            Ok(()) | Err(Errno::EOPNOTSUPP) => {}
            Err(e) => {
                return Err(
                    Error::sys("set xattr", None, e).detail(name.to_string_lossy().into_owned())
                )
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths_and_refuses_escapes() {
        assert_eq!(clean(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(clean(b"./").unwrap(), b"");
        assert!(clean(b"/etc/passwd").is_err());
        assert!(clean(b"a/../../b").is_err());
        assert!(clean(b"..").is_err());
        assert_eq!(split(b"a/b/c"), (&b"a/b"[..], &b"c"[..]));
        assert_eq!(split(b"c"), (&b""[..], &b"c"[..]));
    }
}
