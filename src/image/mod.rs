//! Images: a local content-addressed store under `<data root>/images`.
//!
//! ```text
//! lock                    flock: held exclusively by whatever changes the store
//!                         (load, tag, rmi, prune), shared while a create takes an image
//! blobs/sha256/<hex>      manifests, configs and layer blobs, verified on write
//! layers/<chain hex>/     a layer unpacked once, read-only: an overlay lower for
//!                         every container of every image that has the same chain
//! layers/<chain hex>.json its diff id and size
//! records/<id hex>.json   an image: its config, its layers (id = config digest)
//! refs.json               name:tag -> image id
//! users/<id hex>/         one marker per container made from the image
//! ```
//!
//! Writes go to `.tmp-*` names and are renamed into place, so a crash leaves
//! only temp names and unreferenced blobs and layers, which every load's
//! failure path and `image prune` sweep (under the lock).

pub mod archive;
pub mod bundle;
pub mod commit;
pub mod digest;
pub mod oci;
pub mod pack;
pub mod progress;
pub mod registry;
pub mod save;
pub mod unpack;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::storage::users::{User, Users};
pub use digest::Digest;

/// An image in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The digest of its config (Docker's image id).
    pub id: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    pub layers: Vec<Layer>,
    /// The config's `created`, or when it was loaded.
    pub created: String,
    /// Bytes of file content in its layers.
    pub size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    /// The blob as the archive or registry had it (maybe compressed).
    pub digest: Digest,
    pub media_type: String,
    pub diff_id: Digest,
    pub chain_id: Digest,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerInfo {
    diff_id: Option<Digest>,
    size: u64,
}

pub struct Store {
    dir: PathBuf,
}

/// The store lock, released when dropped.
pub struct Locked(#[allow(dead_code)] Flock<File>);

impl Store {
    pub fn new(data_root: &Path) -> Store {
        Store {
            dir: data_root.join("images"),
        }
    }

    /// The store of `--data-root`.
    pub fn default_store() -> Store {
        Store::new(&crate::storage::data_root())
    }

    fn sub(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn make_dirs(&self) -> Result<()> {
        for d in ["blobs/sha256", "layers", "records", "users"] {
            let p = self.sub(d);
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&p)
                .step_at("create image store", &p)?;
        }
        Ok(())
    }

    fn lock(&self, how: FlockArg) -> Result<Locked> {
        self.make_dirs()?;
        let path = self.sub("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .step_at("open image store lock", &path)?;
        Flock::lock(f, how)
            .map(Locked)
            .map_err(|(_, e)| Error::sys("lock image store", Some(&path), e))
    }

    pub fn lock_exclusive(&self) -> Result<Locked> {
        self.lock(FlockArg::LockExclusive)
    }

    pub fn lock_shared(&self) -> Result<Locked> {
        self.lock(FlockArg::LockShared)
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.sub("blobs/sha256").join(d.hex())
    }

    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.sub("layers").join(chain.hex())
    }

    pub fn users(&self, id: &Digest) -> Users {
        Users::new(self.sub("users").join(id.hex()))
    }

    /// Store what `r` yields as a blob; its digest must be `expected` when
    /// one is given. Returns the digest and size.
    pub fn put_blob(&self, r: impl Read, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let tmp = self.sub("blobs").join(temp_name());
        let mut reader = digest::Hashing::new(r);
        let written = File::create(&tmp)
            .step_at("write blob", &tmp)
            .and_then(|f| copy(&mut reader, f, &tmp));
        let (d, len) = match written.and_then(|()| {
            reader
                .finish()
                .map_err(|e| Error::new("read archive").detail(e.to_string()))
        }) {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e.hint("the archive is corrupt or truncated"));
            }
        };
        if let Some(want) = expected.filter(|want| **want != d) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::new("verify blob")
                .detail(format!("digest mismatch: expected {want}, got {d}"))
                .hint("the archive or registry sent other bytes than its manifest names"));
        }
        let dest = self.blob_path(&d);
        fs::rename(&tmp, &dest).step_at("store blob", &dest)?;
        Ok((d, len))
    }

    /// Store what `write` writes as a blob (hashed on the way).
    pub fn put_blob_from(
        &self,
        write: impl FnOnce(&mut digest::HashingWriter<std::io::BufWriter<File>>) -> Result<()>,
    ) -> Result<(Digest, u64)> {
        let tmp = self.sub("blobs").join(temp_name());
        let file = File::create(&tmp).step_at("write blob", &tmp)?;
        let mut w = digest::HashingWriter::new(std::io::BufWriter::new(file));
        let written = write(&mut w).and_then(|()| {
            let (d, len, buf) = w.finish();
            buf.into_inner()
                .map_err(|e| e.into_error())
                .step_at("write blob", &tmp)?;
            Ok((d, len))
        });
        let (d, len) = match written {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let dest = self.blob_path(&d);
        fs::rename(&tmp, &dest).step_at("store blob", &dest)?;
        Ok((d, len))
    }

    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        fs::read(&p)
            .step_at("read blob", &p)
            .map_err(|e| e.hint("the blob is missing from the store: load or pull the image again"))
    }

    /// Unpack the layer blob `blob` as the top of chain `chain`, unless that
    /// chain is unpacked already; its diff id must be `diff_id`. Caller
    /// holds the exclusive lock, so a layer is unpacked once.
    pub fn add_layer(
        &self,
        chain: &Digest,
        diff_id: &Digest,
        blob: &Digest,
        log: &crate::log::Logger,
    ) -> Result<()> {
        let dir = self.layer_dir(chain);
        if dir.is_dir() {
            return Ok(());
        }
        let tmp = self.sub("layers").join(format!(".tmp-{}", chain.hex()));
        remove_tree(&tmp)?;
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .step_at("create layer dir", &tmp)?;
        log.step("image load: unpack layer");
        let result = File::open(self.blob_path(blob))
            .step_at("open layer blob", &self.blob_path(blob))
            .and_then(|f| unpack::unpack(f, &tmp));
        let unpacked = match result {
            Ok(u) if u.diff_id == *diff_id => u,
            Ok(u) => {
                remove_tree(&tmp)?;
                return Err(Error::new(format!("unpack layer {blob}"))
                    .detail(format!(
                        "diff id mismatch: the config says {diff_id}, the layer is {}",
                        u.diff_id
                    ))
                    .hint("the archive's layers do not belong to its config"));
            }
            Err(e) => {
                remove_tree(&tmp)?;
                return Err(e.within(format!("unpack layer {blob}")));
            }
        };
        let info = LayerInfo {
            diff_id: Some(unpacked.diff_id),
            size: unpacked.size,
        };
        crate::jsonfile::write(
            &self.sub("layers"),
            &format!("{}.json", chain.hex()),
            "layer info",
            &info,
        )?;
        log.step("image load: layer unpacked");
        fs::rename(&tmp, &dir).step_at("store layer", &dir)
    }

    fn layer_size(&self, chain: &Digest) -> u64 {
        crate::jsonfile::read::<LayerInfo>(
            &self.sub("layers"),
            &format!("{}.json", chain.hex()),
            "layer info",
        )
        .ok()
        .flatten()
        .map(|i| i.size)
        .unwrap_or(0)
    }

    pub fn records(&self) -> Vec<Record> {
        let mut out: Vec<Record> = fs::read_dir(self.sub("records"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let hex = name.strip_suffix(".json")?;
                digest::is_hex64(hex).then_some(())?;
                crate::jsonfile::read::<Record>(&self.sub("records"), &name, "image record")
                    .ok()
                    .flatten()
            })
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        out
    }

    pub fn record(&self, id: &Digest) -> Result<Option<Record>> {
        crate::jsonfile::read(
            &self.sub("records"),
            &format!("{}.json", id.hex()),
            "image record",
        )
    }

    /// Write an image's record; its layers are in the store already.
    pub fn put_record(&self, mut record: Record) -> Result<Record> {
        record.size = record
            .layers
            .iter()
            .map(|l| self.layer_size(&l.chain_id))
            .sum();
        let name = format!("{}.json", record.id.hex());
        crate::jsonfile::write(&self.sub("records"), &name, "image record", &record)?;
        Ok(record)
    }

    pub fn refs(&self) -> Result<BTreeMap<String, Digest>> {
        Ok(crate::jsonfile::read(&self.dir, "refs.json", "image references")?.unwrap_or_default())
    }

    pub fn put_refs(&self, refs: &BTreeMap<String, Digest>) -> Result<()> {
        crate::jsonfile::write(&self.dir, "refs.json", "image references", refs)
    }

    /// The references naming `id`.
    pub fn tags_of(refs: &BTreeMap<String, Digest>, id: &Digest) -> Vec<String> {
        refs.iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// `name[:tag]`, a full id (`sha256:<hex>`) or an unambiguous prefix of
    /// an id's hex digits.
    pub fn resolve(&self, what: &str) -> Result<Record> {
        let refs = self.refs()?;
        let by_ref = normalize(what).ok().and_then(|r| refs.get(&r).cloned());
        let id = match by_ref {
            Some(id) => Some(id),
            None => {
                let hex = what.strip_prefix("sha256:").unwrap_or(what);
                let hexlike = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
                let matches: Vec<Digest> = if hexlike {
                    self.records()
                        .into_iter()
                        .map(|r| r.id)
                        .filter(|id| id.hex().starts_with(&hex.to_ascii_lowercase()))
                        .collect()
                } else {
                    Vec::new()
                };
                if matches.len() > 1 {
                    return Err(Error::new(format!("image {what} is ambiguous"))
                        .hint("give more digits of the id, or a name"));
                }
                matches.into_iter().next()
            }
        };
        let not_found = || {
            Error::new(format!("no such image: {what}"))
                .hint("`hull images` lists the images; `hull image load -i FILE` adds one")
        };
        let id = id.ok_or_else(not_found)?;
        self.record(&id)?.ok_or_else(not_found)
    }

    /// Remove an image's record, then what no other image needs: its
    /// layers and blobs. Caller holds the exclusive lock and checked users.
    pub fn remove_record(&self, id: &Digest) -> Result<()> {
        let p = self.sub("records").join(format!("{}.json", id.hex()));
        match fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).step_at("remove image record", &p)
            }
            _ => {}
        }
        let _ = fs::remove_dir_all(self.sub("users").join(id.hex()));
        self.sweep().map(drop)
    }

    /// Remove every blob, layer and temp file no record needs. Caller holds
    /// the exclusive lock. Returns what it removed.
    pub fn sweep(&self) -> Result<Vec<PathBuf>> {
        let records = self.records();
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        let mut chains: BTreeSet<String> = BTreeSet::new();
        for r in &records {
            blobs.insert(r.id.hex().to_string());
            if let Some(m) = &r.manifest {
                blobs.insert(m.hex().to_string());
            }
            for l in &r.layers {
                blobs.insert(l.digest.hex().to_string());
                chains.insert(l.chain_id.hex().to_string());
            }
        }
        let mut removed = Vec::new();
        let mut sweep_dir = |dir: PathBuf, keep: &dyn Fn(&str) -> bool| -> Result<()> {
            for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if keep(&name) {
                    continue;
                }
                remove_tree(&e.path())?;
                removed.push(e.path());
            }
            Ok(())
        };
        sweep_dir(self.sub("blobs/sha256"), &|n| blobs.contains(n))?;
        sweep_dir(self.sub("blobs"), &|n| n == "sha256")?;
        sweep_dir(self.sub("layers"), &|n| {
            chains.contains(n.strip_suffix(".json").unwrap_or(n))
        })?;
        let ids: BTreeSet<String> = records.iter().map(|r| r.id.hex().to_string()).collect();
        sweep_dir(self.sub("users"), &|n| ids.contains(n))?;
        // References to images that are gone (a crash between the two writes).
        let mut refs = self.refs()?;
        let before = refs.len();
        refs.retain(|_, id| ids.contains(id.hex()));
        if refs.len() != before {
            self.put_refs(&refs)?;
        }
        Ok(removed)
    }

    /// The containers made from image `id` that still exist.
    pub fn existing_users(&self, id: &Digest) -> Vec<User> {
        self.users(id).existing()
    }
}

/// A new container id for `run --image` without --name: 64 hex digits, as
/// Docker makes them.
pub fn random_id() -> String {
    let a = crate::storage::volumes::random_name();
    let b = crate::storage::volumes::random_name();
    format!("{a}{b}")
}

/// `std::io::copy`, telling a failed read (a broken archive or stream) from
/// a failed write (the store's disk).
fn copy(from: &mut impl Read, mut to: File, path: &Path) -> Result<()> {
    use std::io::Write;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::new("read archive").detail(e.to_string())),
        };
        to.write_all(&buf[..n]).step_at("write blob", path)?;
    }
}

/// A temp name no other process uses: pid and a counter.
fn temp_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        ".tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).step_at("remove", path),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path).step_at("remove", path)
    } else {
        fs::remove_file(path).step_at("remove", path)
    }
}

/// A reference as the store keys it: `name:tag` (tag `latest` when none),
/// Docker Hub's `docker.io/library/` and `docker.io/` prefixes dropped.
/// Digest references (`name@sha256:...`) are refused.
pub fn normalize(reference: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::new(format!("invalid reference {reference:?}"))
            .detail(why.to_string())
            .hint("write NAME[:TAG], lowercase, e.g. web or registry:5000/team/web:1.0")
    };
    if reference.contains('@') {
        return Err(bad("digest references are not supported here"));
    }
    let slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match reference[slash..].rfind(':') {
        Some(i) => (&reference[..slash + i], &reference[slash + i + 1..]),
        None => (reference, "latest"),
    };
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !tag_ok {
        return Err(bad("bad tag"));
    }
    let (host, path) = match name.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (Some(h), p),
        _ => (None, name),
    };
    let host_ok = host.is_none_or(|h| {
        h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b))
    });
    let path_ok = !path.is_empty()
        && path.len() <= 255
        && path.split('/').all(|part| {
            !part.is_empty()
                && part.as_bytes()[0].is_ascii_alphanumeric()
                && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    if !host_ok || !path_ok {
        return Err(bad("bad name"));
    }
    Ok(format!("{name}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(normalize("web").unwrap(), "web:latest");
        assert_eq!(normalize("web:1.0").unwrap(), "web:1.0");
        assert_eq!(
            normalize("docker.io/library/busybox:1").unwrap(),
            "busybox:1"
        );
        assert_eq!(
            normalize("localhost:5000/team/web").unwrap(),
            "localhost:5000/team/web:latest"
        );
        for bad in [
            "",
            "Web",
            "web:",
            "web@sha256:00",
            "a//b",
            "-a",
            "web:-x",
            "a b",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
