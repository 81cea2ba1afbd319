//! `image load`: images from a docker-archive (what `docker save` writes:
//! manifest.json, configs, layer tars) or an OCI image layout (index.json,
//! blobs/sha256), given as a tar (plain or gzip, a file or stdin) or as a
//! directory.
//!
//! Every file of the archive is stored as a blob first (hashed while it is
//! written), then the archive's own manifests say which blobs are configs
//! and layers: each named digest and size is checked, each layer unpacked
//! once and its diff id checked against the config. Runs under the store's
//! exclusive lock; on any error the blobs and layers no record needs are
//! swept again, so a failed load stores nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::digest::Digest;
use super::oci::{
    image, json, pick_platform, Descriptor, Index, Manifest, INDEX_TYPES, MANIFEST_TYPES,
};
use super::progress::Progress;
use super::{normalize, Record, Store};
use crate::error::{Context, Error, Result};
use crate::log::Logger;

/// An image the archive held, once stored.
pub struct Loaded {
    pub record: Record,
    pub tags: Vec<String>,
}

/// Load every image of the archive at `path` (`-` for stdin).
pub fn load(store: &Store, path: &Path, log: &Logger) -> Result<Vec<Loaded>> {
    let _lock = store.lock_exclusive()?;
    log.step("image load: lock store");
    let result = load_locked(store, path, log);
    if result.is_err() {
        let _ = store.sweep();
    }
    result
}

fn load_locked(store: &Store, path: &Path, log: &Logger) -> Result<Vec<Loaded>> {
    let files = if path == Path::new("-") {
        ingest_tar(store, Progress::new(std::io::stdin().lock(), "load", None))?
    } else if path.is_dir() {
        ingest_dir(store, path)?
    } else {
        let f = File::open(path).step_at("open archive", path)?;
        let len = f.metadata().ok().map(|m| m.len());
        ingest_tar(store, Progress::new(f, "load", len))?
    };
    log.step("image load: blobs stored");
    let images = if files.contains_key("manifest.json") {
        docker_archive(store, &files, log)?
    } else if files.contains_key("index.json") {
        oci_layout(store, &files, log)?
    } else {
        return Err(Error::new("read archive")
            .at(path)
            .detail("neither manifest.json (docker save) nor index.json (an OCI layout) in it")
            .hint("give a tar written by `docker save` or an OCI image layout"));
    };
    log.step("image load: layers stored");
    let mut refs = store.refs()?;
    let mut out = Vec::new();
    for (image, tags) in images {
        let record = store.put_record(image)?;
        log.step("image load: record written");
        for t in &tags {
            refs.insert(t.clone(), record.id.clone());
        }
        out.push(Loaded { record, tags });
    }
    store.put_refs(&refs)?;
    log.step("image load: names written");
    store.sweep()?;
    Ok(out)
}

/// Archive path -> the blob its content became.
type Files = BTreeMap<String, (Digest, u64)>;

fn archive_path(raw: &[u8]) -> Result<String> {
    let clean = super::unpack::clean(raw)
        .map_err(|e| e.within(format!("archive entry {:?}", String::from_utf8_lossy(raw))))?;
    Ok(String::from_utf8_lossy(&clean).into_owned())
}

fn ingest_tar(store: &Store, r: impl Read) -> Result<Files> {
    let corrupt = |e| super::unpack::broken("archive", e);
    let mut tar = tar::Archive::new(super::unpack::decompressed(r)?);
    let mut files = Files::new();
    let mut links = Vec::new();
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = archive_path(&entry.path_bytes())?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let want = entry.header().size().unwrap_or(0);
                let blob = store.put_blob(&mut entry, None)?;
                if blob.1 != want {
                    let _ = std::fs::remove_file(store.blob_path(&blob.0));
                    return Err(Error::new("read archive")
                        .detail(format!("{path}: {} of {want} bytes", blob.1))
                        .hint("the archive is corrupt or truncated"));
                }
                files.insert(path, blob);
            }
            // Older `docker save` links a layer shared by two images.
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name_bytes() {
                    links.push((path, entry.header().entry_type(), target.into_owned()));
                }
            }
            _ => {}
        }
    }
    for (path, kind, target) in links {
        let resolved = if kind == tar::EntryType::Symlink {
            let base = Path::new(&path).parent().unwrap_or(Path::new(""));
            let joined = base.join(std::ffi::OsStr::new(&*String::from_utf8_lossy(&target)));
            normal_join(&joined.to_string_lossy())
        } else {
            archive_path(&target).ok()
        };
        if let Some(blob) = resolved.and_then(|t| files.get(&t).cloned()) {
            files.insert(path, blob);
        }
    }
    Ok(files)
}

/// `a/b/../c` -> `a/c`; None if it climbs above the archive's root.
fn normal_join(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

fn ingest_dir(store: &Store, dir: &Path) -> Result<Files> {
    let mut files = Files::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for e in std::fs::read_dir(&here).step_at("read layout", &here)? {
            let e = e.step_at("read layout", &here)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let sub = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().step_at("read layout", &e.path())?;
            if ft.is_dir() {
                stack.push(sub);
            } else if ft.is_file() {
                let f = File::open(e.path()).step_at("read layout", &e.path())?;
                files.insert(sub, store.put_blob(f, None)?);
            }
        }
    }
    Ok(files)
}

/// The blob at `path` in the archive, checked against `want` (a digest and
/// size the archive's own index or manifest gave) when there is one.
fn file<'a>(files: &'a Files, path: &str, want: Option<&Descriptor>) -> Result<&'a Digest> {
    let (d, size) = files.get(path).ok_or_else(|| {
        Error::new("read archive")
            .detail(format!("{path} is missing"))
            .hint("the archive is incomplete: save or copy the image again")
    })?;
    if let Some(want) = want {
        if *d != want.digest {
            return Err(Error::new("verify blob").detail(format!(
                "{path}: digest mismatch: expected {}, got {d}",
                want.digest
            )));
        }
        if want.size.is_some_and(|s| s != *size) {
            return Err(Error::new("verify blob").detail(format!(
                "{path}: size mismatch: expected {}, got {size}",
                want.size.unwrap_or(0)
            )));
        }
    }
    Ok(d)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_archive(
    store: &Store,
    files: &Files,
    log: &Logger,
) -> Result<Vec<(Record, Vec<String>)>> {
    let manifest: Vec<DockerEntry> =
        json(store, file(files, "manifest.json", None)?, "manifest.json")?;
    let mut out = Vec::new();
    for entry in manifest {
        let config = file(files, &archive_path(entry.config.as_bytes())?, None)?.clone();
        let mut layers = Vec::new();
        for l in &entry.layers {
            layers.push(Descriptor {
                media_type: None,
                digest: file(files, &archive_path(l.as_bytes())?, None)?.clone(),
                size: None,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        let tags = entry
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| normalize(t))
            .collect::<Result<Vec<_>>>()?;
        out.push((image(store, &config, None, &layers, log)?, tags));
    }
    Ok(out)
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn oci_layout(store: &Store, files: &Files, log: &Logger) -> Result<Vec<(Record, Vec<String>)>> {
    let index: Index = json(store, file(files, "index.json", None)?, "index.json")?;
    let mut out = Vec::new();
    for desc in index.manifests {
        let tags = match desc
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
        {
            // A bare tag ("latest") names no repository: the image stays untagged.
            Some(name) if name.contains([':', '/']) => vec![normalize(name)?],
            _ => Vec::new(),
        };
        let manifest = pick_manifest(store, files, desc)?;
        let m: Manifest = json(store, &manifest.digest, "image manifest")?;
        let config = file(files, &blob_path(&m.config.digest), Some(&m.config))?.clone();
        m.check_layer_types()?;
        for l in &m.layers {
            file(files, &blob_path(&l.digest), Some(l))?;
        }
        out.push((
            image(store, &config, Some(manifest.digest), &m.layers, log)?,
            tags,
        ));
    }
    Ok(out)
}

/// Follow an index (a multi-platform image) down to the manifest for this
/// machine's platform.
fn pick_manifest(store: &Store, files: &Files, mut desc: Descriptor) -> Result<Descriptor> {
    for _ in 0..4 {
        let mt = desc.media_type.clone().unwrap_or_default();
        file(files, &blob_path(&desc.digest), Some(&desc))?;
        if MANIFEST_TYPES.contains(&mt.as_str()) {
            return Ok(desc);
        }
        if !INDEX_TYPES.contains(&mt.as_str()) {
            return Err(Error::new("read index")
                .detail(format!("{}: unknown media type {mt:?}", desc.digest))
                .hint("hull reads OCI and Docker schema 2 manifests and indexes"));
        }
        let index: Index = json(store, &desc.digest, "image index")?;
        desc = pick_platform(index, |d| files.contains_key(&blob_path(d)))?;
    }
    Err(Error::new("read index").detail("indexes nested too deep"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_stay_inside() {
        assert_eq!(
            normal_join("a/../b/layer.tar").as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(normal_join("../x"), None);
    }
}
