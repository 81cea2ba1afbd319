//! `save`: images as an OCI image layout in a tar (oci-layout, index.json,
//! blobs/sha256), which `image load` and skopeo (`oci-archive:`) read back.
//! The blobs are the stored ones, byte for byte; an image loaded from a
//! docker-archive has no manifest blob, so one is written for it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;

use serde_json::{json, Value};

use super::{Digest, Record, Store};
use crate::error::{Context, Error, Result};

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// Write the images (each with the references given for it) to `out`.
pub fn save(store: &Store, images: &[(Record, Vec<String>)], out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    let mut index = Vec::new();
    add_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for (record, tags) in images {
        let manifest = manifest_of(store, record)?;
        let manifest_digest = Digest::of(&manifest);
        let mut blobs = vec![record.id.clone()];
        blobs.extend(record.layers.iter().map(|l| l.digest.clone()));
        for d in blobs {
            if written.insert(d.clone()) {
                add_blob(&mut tar, store, &d)?;
            }
        }
        if written.insert(manifest_digest.clone()) {
            add_bytes(
                &mut tar,
                &format!("blobs/sha256/{}", manifest_digest.hex()),
                &manifest,
            )?;
        }
        let names: Vec<Option<&String>> = if tags.is_empty() {
            vec![None]
        } else {
            tags.iter().map(Some).collect()
        };
        for name in names {
            let mut desc = json!({
                "mediaType": MANIFEST_TYPE,
                "digest": manifest_digest.to_string(),
                "size": manifest.len(),
            });
            if let Some(name) = name {
                desc["annotations"] = json!({
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or("latest", |(_, t)| t),
                });
            }
            index.push(desc);
        }
    }
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": index});
    add_bytes(
        &mut tar,
        "index.json",
        &serde_json::to_vec(&index).expect("JSON"),
    )?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .step("write archive")
}

/// The stored manifest if it is an OCI one, else one made from the record.
pub fn manifest_of(store: &Store, record: &Record) -> Result<Vec<u8>> {
    if let Some(m) = &record.manifest {
        let bytes = store.read_blob(m)?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if v["mediaType"] == MANIFEST_TYPE {
            return Ok(bytes);
        }
    }
    let size = |d: &Digest| -> Result<u64> {
        let p = store.blob_path(d);
        Ok(std::fs::metadata(&p).step_at("stat blob", &p)?.len())
    };
    let layers = record
        .layers
        .iter()
        .map(|l| {
            Ok(json!({
                "mediaType": oci_layer_type(&l.media_type),
                "digest": l.digest.to_string(),
                "size": size(&l.digest)?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": record.id.to_string(), "size": size(&record.id)?},
        "layers": layers,
    });
    Ok(serde_json::to_vec(&m).expect("JSON"))
}

/// The OCI name of a layer blob's type; a docker-archive's layers are
/// sniffed when unpacked, so their blob says what they are.
fn oci_layer_type(media_type: &str) -> &'static str {
    if media_type.ends_with("gzip") {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if media_type.ends_with("zstd") {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

fn add_bytes(tar: &mut tar::Builder<impl Write>, path: &str, bytes: &[u8]) -> Result<()> {
    tar.append_data(&mut header(bytes.len() as u64), path, bytes)
        .step("write archive")
}

fn add_blob(tar: &mut tar::Builder<impl Write>, store: &Store, d: &Digest) -> Result<()> {
    let p = store.blob_path(d);
    let f = File::open(&p)
        .step_at("open blob", &p)
        .map_err(|e| e.hint("the image's blobs are not all in the store: load or pull it again"))?;
    let len = f.metadata().step_at("stat blob", &p)?.len();
    tar.append_data(&mut header(len), format!("blobs/sha256/{}", d.hex()), f)
        .step("write archive")
        .map_err(|e: Error| e.within(format!("blob {d}")))
}
