//! A layer directory (an overlay upper, or a lower such as a bundle's
//! rootfs) written as a layer tar, the inverse of unpack.rs: overlay
//! whiteouts (0/0 character devices) become `.wh.NAME` entries, an opaque
//! directory gets `.wh..wh..opq`; owners, modes, times, hard links, device
//! nodes and xattrs (as PAX `SCHILY.xattr.*`) are kept. Entries are sorted
//! by name and owners written as numbers only, so the same tree gives the
//! same bytes, hence the same diff id.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Context, Result};
use crate::storage::layers::{cpath, is_opaque, is_whiteout};
use crate::sys;

/// Write the tree at `dir` as a tar to `out`.
pub fn pack(dir: &Path, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(&mut tar, dir, "", &mut links)?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .step("write layer")
}

fn walk(
    tar: &mut tar::Builder<impl Write>,
    root: &Path,
    rel: &str,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let here = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let mut names: Vec<std::ffi::OsString> = fs::read_dir(&here)
        .step_at("read layer dir", &here)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .step_at("read layer dir", &here)?;
    names.sort();
    for name in names {
        let path = here.join(&name);
        let name = name.to_string_lossy().into_owned();
        let sub = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(&path).step_at("stat", &path)?;
        let ft = meta.file_type();
        if is_whiteout(&meta) {
            let wh = match sub.rsplit_once('/') {
                Some((parent, n)) => format!("{parent}/.wh.{n}"),
                None => format!(".wh.{name}"),
            };
            add(
                tar,
                &mut header(&meta, tar::EntryType::Regular, 0),
                &wh,
                &[][..],
            )?;
            continue;
        }
        xattrs(tar, &path, ft.is_symlink())?;
        if ft.is_dir() {
            add(
                tar,
                &mut header(&meta, tar::EntryType::Directory, 0),
                &sub,
                &[][..],
            )?;
            if is_opaque(&path) {
                let opq = format!("{sub}/.wh..wh..opq");
                add(
                    tar,
                    &mut header(&meta, tar::EntryType::Regular, 0),
                    &opq,
                    &[][..],
                )?;
            }
            walk(tar, root, &sub, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).step_at("read symlink", &path)?;
            let mut h = header(&meta, tar::EntryType::Symlink, 0);
            tar.append_link(&mut h, &sub, &target)
                .step_at("write layer", &path)?;
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    let mut h = header(&meta, tar::EntryType::Link, 0);
                    tar.append_link(&mut h, &sub, first)
                        .step_at("write layer", &path)?;
                    continue;
                }
                links.insert(key, sub.clone());
            }
            let f = fs::File::open(&path).step_at("open", &path)?;
            add(
                tar,
                &mut header(&meta, tar::EntryType::Regular, meta.len()),
                &sub,
                f,
            )?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else {
                tar::EntryType::Fifo
            };
            let mut h = header(&meta, kind, 0);
            let rdev = meta.rdev();
            h.set_device_major(libc::major(rdev)).step("write layer")?;
            h.set_device_minor(libc::minor(rdev)).step("write layer")?;
            add(tar, &mut h, &sub, &[][..])?;
        }
        // Sockets are not content: skipped, as tar does.
    }
    Ok(())
}

fn header(meta: &fs::Metadata, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid().into());
    h.set_gid(meta.gid().into());
    h.set_mtime(meta.mtime().max(0) as u64);
    h
}

fn add(
    tar: &mut tar::Builder<impl Write>,
    h: &mut tar::Header,
    path: &str,
    data: impl std::io::Read,
) -> Result<()> {
    tar.append_data(h, path, data)
        .step_at("write layer", Path::new(path))
}

/// The entry's xattrs as a PAX header before it; overlay's own are
/// bookkeeping of the overlay, not content.
fn xattrs(tar: &mut tar::Builder<impl Write>, path: &Path, symlink: bool) -> Result<()> {
    if symlink {
        return Ok(());
    }
    let c = cpath(path)?;
    let Ok(list) = sys::llistxattr(&c) else {
        return Ok(());
    };
    let mut records = Vec::new();
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let Ok(value) = sys::lgetxattr(&c, &cname) else {
            continue;
        };
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        records.extend(pax_record(&key, &value));
    }
    if records.is_empty() {
        return Ok(());
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(records.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append(&h, &records[..]).step_at("write layer", path)
}

/// One PAX record, "LEN KEY=VALUE\n", LEN counting itself.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_lengths_count_themselves() {
        let r = pax_record(b"k", b"v");
        assert_eq!(r, b"6 k=v\n");
        let long = vec![b'x'; 95];
        let r = pax_record(b"k", &long);
        let len: usize = String::from_utf8_lossy(r.split(|b| *b == b' ').next().unwrap())
            .parse()
            .unwrap();
        assert_eq!(len, r.len());
    }
}
