//! The OCI image spec's objects as hull reads them from archives and
//! registries alike: descriptors, manifests, indexes, the media types hull
//! accepts, the platform it picks, and the step both end in: checking an
//! image's config and unpacking its layers into the store.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;

use serde::Deserialize;
use serde_json::Value;

use super::digest::{chain_ids, Digest};
use super::{Layer, Record, Store};
use crate::error::{Context, Error, Result};
use crate::log::Logger;

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: Option<String>,
    pub digest: Digest,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Clone)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

impl Manifest {
    /// Every layer is a tar hull can read.
    pub fn check_layer_types(&self) -> Result<()> {
        for l in &self.layers {
            let mt = l.media_type.as_deref().unwrap_or("");
            if !LAYER_TYPES.contains(&mt) {
                return Err(Error::new("read image manifest")
                    .detail(format!("layer {}: unknown media type {mt:?}", l.digest))
                    .hint("hull reads tar layers, plain, gzip or zstd"));
            }
        }
        Ok(())
    }
}

pub const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
pub const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
pub const LAYER_TYPES: [&str; 7] = [
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// The architecture name images use for this machine.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// Check the config, unpack the layers it lists (each chain once) and make
/// the record.
pub fn image(
    store: &Store,
    config: &Digest,
    manifest: Option<Digest>,
    layers: &[Descriptor],
    log: &Logger,
) -> Result<Record> {
    let cfg: Value = json(store, config, "image config")?;
    let os = cfg["os"].as_str().unwrap_or("linux");
    if os != "linux" {
        return Err(Error::new("read image config").detail(format!("an image for {os}, not linux")));
    }
    let diff_ids: Vec<Digest> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| Digest::parse(v.as_str().unwrap_or("")))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()
        .map_err(|e| e.within("read image config: rootfs.diff_ids"))?
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(Error::new("read image config").detail(format!(
            "it lists {} layers, the manifest {}",
            diff_ids.len(),
            layers.len()
        )));
    }
    if layers.is_empty() {
        return Err(Error::new("read image config").detail("the image has no layers"));
    }
    let chains = chain_ids(&diff_ids);
    let mut out = Vec::new();
    for ((l, diff_id), chain) in layers.iter().zip(&diff_ids).zip(&chains) {
        store.add_layer(chain, diff_id, &l.digest, log)?;
        out.push(Layer {
            digest: l.digest.clone(),
            media_type: match &l.media_type {
                Some(t) => t.clone(),
                None => sniff_type(store, &l.digest)?.into(),
            },
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
        });
    }
    Ok(Record {
        id: config.clone(),
        manifest,
        layers: out,
        created: cfg["created"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(crate::time::rfc3339_now),
        size: 0,
    })
}

/// A docker-archive names no layer types: the blob's first bytes tell.
fn sniff_type(store: &Store, d: &Digest) -> Result<&'static str> {
    let p = store.blob_path(d);
    let mut head = [0u8; 4];
    let n = File::open(&p)
        .and_then(|mut f| f.read(&mut head))
        .step_at("read layer", &p)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => LAYER_TYPES[1],
        [0x28, 0xb5, 0x2f, 0xfd] => LAYER_TYPES[2],
        _ => LAYER_TYPES[0],
    })
}

/// An index's entry for this machine (linux/<arch>; an entry without a
/// platform matches any), among those `available` says can be had.
pub fn pick_platform(index: Index, available: impl Fn(&Digest) -> bool) -> Result<Descriptor> {
    let arch = host_arch();
    index
        .manifests
        .into_iter()
        .filter(|m| {
            m.platform
                .as_ref()
                .is_none_or(|p| p.os == "linux" && p.architecture == arch)
        })
        .find(|m| available(&m.digest))
        .ok_or_else(|| {
            Error::new("read index")
                .detail(format!("no linux/{arch} image in it"))
                .hint("save or pull the image for this platform")
        })
}

/// A JSON blob of the store.
pub fn json<T: serde::de::DeserializeOwned>(store: &Store, d: &Digest, what: &str) -> Result<T> {
    serde_json::from_slice(&store.read_blob(d)?).map_err(|e| {
        Error::new(format!("parse {what}"))
            .detail(format!("{d}: {e}"))
            .hint("the archive or registry sent a broken object")
    })
}
