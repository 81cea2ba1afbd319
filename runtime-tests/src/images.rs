//! Images built by hand for the image tests: a tar writer that writes any
//! header (the bad inputs need names and links no tar tool writes), and
//! docker-archive and OCI-layout builders on top of it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A ustar archive in memory.
#[derive(Default, Clone)]
pub struct Tar {
    bytes: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    fn entry(&mut self, name: &str, kind: u8, mode: u32, uid: u32, link: &str, data: &[u8]) {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, len: usize, v: &[u8]| {
            h[at..at + v.len().min(len)].copy_from_slice(&v[..v.len().min(len)]);
        };
        let octal = |v: u64, len: usize| format!("{v:0w$o}\0", w = len - 1).into_bytes();
        assert!(name.len() <= 100, "test tar names stay short: {name}");
        put(&mut h, 0, 100, name.as_bytes());
        put(&mut h, 100, 8, &octal(mode as u64, 8));
        put(&mut h, 108, 8, &octal(uid as u64, 8));
        put(&mut h, 116, 8, &octal(uid as u64, 8));
        put(&mut h, 124, 12, &octal(data.len() as u64, 12));
        put(&mut h, 136, 12, &octal(0, 12));
        h[156] = kind;
        put(&mut h, 157, 100, link.as_bytes());
        put(&mut h, 257, 6, b"ustar\0");
        put(&mut h, 263, 2, b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| *b as u32).sum();
        put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        self.bytes.extend_from_slice(&h);
        self.bytes.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.bytes.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn file(mut self, name: &str, mode: u32, data: &[u8]) -> Tar {
        self.entry(name, b'0', mode, 0, "", data);
        self
    }

    pub fn file_owned(mut self, name: &str, mode: u32, uid: u32, data: &[u8]) -> Tar {
        self.entry(name, b'0', mode, uid, "", data);
        self
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Tar {
        self.entry(name, b'5', mode, 0, "", b"");
        self
    }

    pub fn symlink(mut self, name: &str, target: &str) -> Tar {
        self.entry(name, b'2', 0o777, 0, target, b"");
        self
    }

    pub fn hardlink(mut self, name: &str, target: &str) -> Tar {
        self.entry(name, b'1', 0o644, 0, target, b"");
        self
    }

    /// Every file, directory and symlink under `root`, as `./path`.
    pub fn tree(mut self, root: &Path) -> std::io::Result<Tar> {
        fn walk(t: &mut Tar, root: &Path, rel: &str) -> std::io::Result<()> {
            let path = if rel.is_empty() {
                root.to_path_buf()
            } else {
                root.join(rel)
            };
            let m = std::fs::symlink_metadata(&path)?;
            let name = format!("./{rel}");
            if m.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                t.entry(&name, b'2', 0o777, m.uid(), &target.to_string_lossy(), b"");
            } else if m.is_file() {
                t.entry(
                    &name,
                    b'0',
                    m.mode() & 0o7777,
                    m.uid(),
                    "",
                    &std::fs::read(&path)?,
                );
            } else if m.is_dir() {
                t.entry(&name, b'5', m.mode() & 0o7777, m.uid(), "", b"");
                let mut names: Vec<String> = std::fs::read_dir(&path)?
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<Result<_, _>>()?;
                names.sort();
                for n in names {
                    let sub = if rel.is_empty() {
                        n
                    } else {
                        format!("{rel}/{n}")
                    };
                    walk(t, root, &sub)?;
                }
            }
            Ok(())
        }
        walk(&mut self, root, "")?;
        Ok(self)
    }

    /// The archive with its two end blocks.
    pub fn finish(&self) -> Vec<u8> {
        let mut out = self.bytes.clone();
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

/// An image config for these layers (their diff ids) with `config` as
/// its runtime part.
pub fn image_config(layers: &[Vec<u8>], config: Value) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("JSON")
}

/// `docker save`'s format: manifest.json, `<id>.json`, `lN/layer.tar`.
/// `config` is the whole config blob (see `image_config`).
pub fn docker_archive(tags: &[&str], config: &[u8], layers: &[Vec<u8>]) -> Vec<u8> {
    let id = sha256(config);
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    let manifest = json!([{"Config": format!("{id}.json"), "RepoTags": tags, "Layers": names}]);
    let mut t = Tar::new()
        .file(
            "manifest.json",
            0o644,
            &serde_json::to_vec(&manifest).expect("JSON"),
        )
        .file(&format!("{id}.json"), 0o644, config);
    for (name, l) in names.iter().zip(layers) {
        t = t.file(name, 0o644, l);
    }
    t.finish()
}

/// An OCI image layout as a tar (see `oci_layout_files`).
pub fn oci_layout(name: &str, config: &[u8], layers: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut t = Tar::new();
    for (path, bytes) in oci_layout_files(name, config, layers) {
        t = t.file(&path, 0o644, &bytes);
    }
    t.finish()
}

/// The files of an OCI image layout: oci-layout, index.json (naming
/// `name`), blobs/sha256/*. Layer blobs are given with their media types
/// (compressed ones as they are).
pub fn oci_layout_files(
    name: &str,
    config: &[u8],
    layers: &[(&str, Vec<u8>)],
) -> Vec<(String, Vec<u8>)> {
    let blob = |b: &[u8]| json!({"digest": format!("sha256:{}", sha256(b)), "size": b.len()});
    let mut ls = Vec::new();
    for (mt, l) in layers {
        let mut d = blob(l);
        d["mediaType"] = json!(mt);
        ls.push(d);
    }
    let mut cfg = blob(config);
    cfg["mediaType"] = json!("application/vnd.oci.image.config.v1+json");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg, "layers": ls,
    }))
    .expect("JSON");
    let mut m = blob(&manifest);
    m["mediaType"] = json!("application/vnd.oci.image.manifest.v1+json");
    m["annotations"] = json!({"io.containerd.image.name": name});
    let index = json!({"schemaVersion": 2, "manifests": [m]});
    let mut files = vec![
        (
            "oci-layout".to_string(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_string(),
            serde_json::to_vec(&index).expect("JSON"),
        ),
        (format!("blobs/sha256/{}", sha256(&manifest)), manifest),
        (format!("blobs/sha256/{}", sha256(config)), config.to_vec()),
    ];
    for (_, l) in layers {
        files.push((format!("blobs/sha256/{}", sha256(l)), l.clone()));
    }
    files
}
