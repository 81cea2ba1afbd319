//! `create`/`run --image`: the bundle of a container made from an image,
//! written from the image's config the way Docker reads it: Entrypoint +
//! Cmd (the command line's words replace Cmd), Env, WorkingDir, User (a
//! name is looked up in the image's /etc/passwd by crate::overrides),
//! Labels as annotations, StopSignal for `stop`, Volumes as anonymous
//! volumes, ExposedPorts for `-P`; Docker's default capabilities; the image's layers as the
//! overlay lowers of a copy-on-write root. The rest is an ordinary bundle:
//! everything after this goes through the same create path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{Record, Store};
use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};

/// The image a container was made from (information, for `inspect`-like
/// tools; the use marker goes through storage::Plan).
pub const ANNOTATION_IMAGE: &str = "dev.hull.image";
pub const ANNOTATION_IMAGE_NAME: &str = "dev.hull.image.name";

/// Docker's default capability set for a container's process.
const DOCKER_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The parts of an image config a container needs (OCI image spec,
/// `config` object; Docker writes the same keys).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    pub user: Option<String>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub labels: Option<HashMap<String, String>>,
    pub stop_signal: Option<String>,
    pub volumes: Option<HashMap<String, Value>>,
    pub exposed_ports: Option<HashMap<String, Value>>,
}

/// What the image gives a container beyond its spec.
pub struct FromImage {
    pub bundle: Bundle,
    /// The config's User, for crate::overrides to resolve (unless `-u`).
    pub user: Option<String>,
    /// Container paths of the config's Volumes (anonymous volumes).
    pub volumes: Vec<String>,
}

pub fn run_config(store: &Store, record: &Record) -> Result<RunConfig> {
    let cfg: Value = serde_json::from_slice(&store.read_blob(&record.id)?)
        .map_err(|e| Error::new("parse image config").detail(e.to_string()))?;
    match cfg.get("config") {
        None | Some(Value::Null) => Ok(RunConfig::default()),
        Some(c) => serde_json::from_value(c.clone()).map_err(|e| {
            Error::new("parse image config")
                .detail(format!("{}: {e}", record.id))
                .hint("the image's config is not what the OCI image spec describes")
        }),
    }
}

/// The bundle of container `id` from `image` (a name or id), to live in
/// `dir` (its state dir, not made yet); `command` replaces the image's Cmd.
/// Reads the store under its shared lock; touches nothing.
pub fn from_image(image: &str, dir: &Path, id: &str, command: &[String]) -> Result<FromImage> {
    let store = Store::default_store();
    let _lock = store.lock_shared()?;
    let record = store.resolve(image)?;
    let cfg = run_config(&store, &record)?;
    let mut layers: Vec<PathBuf> = record
        .layers
        .iter()
        .map(|l| store.layer_dir(&l.chain_id))
        .collect();
    if let Some(missing) = layers.iter().find(|l| !l.is_dir()) {
        return Err(Error::new(format!("image {image}"))
            .at(missing)
            .detail("a layer is missing from the store")
            .hint("load or pull the image again"));
    }
    let base = layers.remove(0);

    let mut spec = crate::template::default_spec(crate::template::unified_host());
    let process = &mut spec["process"];
    let entry = cfg.entrypoint.clone().unwrap_or_default();
    let tail = if command.is_empty() {
        cfg.cmd.clone().unwrap_or_default()
    } else {
        command.to_vec()
    };
    let args: Vec<String> = entry.into_iter().chain(tail).collect();
    if args.is_empty() {
        return Err(Error::new(format!("image {image}"))
            .detail("no command: the image has no Entrypoint or Cmd")
            .hint("give the command after the options: hull run --image IMAGE COMMAND..."));
    }
    process["args"] = json!(args);
    process["terminal"] = json!(false);
    let mut env = cfg.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    process["env"] = json!(env);
    process["cwd"] = json!(cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into()));
    process["capabilities"] =
        json!({"bounding": DOCKER_CAPS, "effective": DOCKER_CAPS, "permitted": DOCKER_CAPS});
    process["noNewPrivileges"] = json!(false);
    if let Some(p) = process.as_object_mut() {
        p.remove("rlimits");
    }
    spec["root"] = json!({"path": base, "readonly": false});
    spec["hostname"] = json!(&id[..id.len().min(12)]);

    let mut ann: serde_json::Map<String, Value> = cfg
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    // ExposedPorts: what `-P` publishes.
    let mut exposed: Vec<&String> = cfg.exposed_ports.iter().flatten().map(|(k, _)| k).collect();
    exposed.sort();
    if !exposed.is_empty() {
        let list: Vec<&str> = exposed.iter().map(|s| s.as_str()).collect();
        ann.insert(crate::network::ANN_EXPOSE.into(), json!(list.join(",")));
    }
    if let Some(sig) = &cfg.stop_signal {
        ann.insert("org.opencontainers.image.stopSignal".into(), json!(sig));
    }
    ann.insert(crate::storage::ANNOTATION_OVERLAY.into(), json!("true"));
    if !layers.is_empty() {
        let joined: Vec<String> = layers
            .iter()
            .map(|l| l.to_string_lossy().into_owned())
            .collect();
        ann.insert(
            crate::storage::ANNOTATION_LAYERS.into(),
            json!(joined.join(":")),
        );
    }
    ann.insert(ANNOTATION_IMAGE.into(), json!(record.id.to_string()));
    ann.insert(ANNOTATION_IMAGE_NAME.into(), json!(image));
    spec["annotations"] = Value::Object(ann);

    let text = serde_json::to_vec(&spec).expect("JSON value serialises");
    let spec = crate::bundle::parse_spec(&text)?;
    let rootfs = std::fs::canonicalize(&base).step_at("open image layer", &base)?;
    let mut volumes: Vec<String> = cfg
        .volumes
        .iter()
        .flatten()
        .map(|(k, _)| k.clone())
        .collect();
    volumes.sort();
    Ok(FromImage {
        bundle: Bundle {
            dir: std::path::absolute(dir).step_at("state dir", dir)?,
            spec,
            rootfs,
            // storage::prepare leaves the container's marker in the image,
            // so `rmi` knows it is in use.
            storage: crate::storage::Plan {
                image_users: Some(store.users(&record.id)),
                ..Default::default()
            },
        },
        user: cfg.user.filter(|u| !u.is_empty()),
        volumes,
    })
}

/// `create --image`: the bundle, and the command line's extras with what the
/// image adds: its Volumes as anonymous volumes, its User unless `-u` was
/// given, and no command (it is in the bundle already).
pub fn load(
    image: &str,
    dir: &Path,
    id: &str,
    storage: &crate::storage::Extras,
    overrides: &crate::overrides::Overrides,
) -> Result<(Bundle, crate::storage::Extras, crate::overrides::Overrides)> {
    let made = from_image(image, dir, id, &overrides.args)?;
    let mut storage = storage.clone();
    for v in made.volumes {
        let given = storage
            .volumes
            .iter()
            .any(|s| crate::storage::parse_volume(s).is_ok_and(|a| a.dest == v));
        if !given {
            storage.volumes.push(v);
        }
    }
    let mut overrides = overrides.clone();
    overrides.args.clear();
    if overrides.user.is_none() {
        overrides.user = made.user;
    }
    Ok((made.bundle, storage, overrides))
}

/// After the container's state dir exists: its bundle's config.json, for
/// whoever reads the bundle a container's state names (hooks, tools).
/// Nothing for a container made from a bundle.
pub fn write_config(bundle: &Bundle) -> Result<()> {
    if bundle.storage.image_users.is_none() {
        return Ok(());
    }
    let path = bundle.dir.join("config.json");
    let text = serde_json::to_vec_pretty(&bundle.spec).expect("spec serialises");
    std::fs::write(&path, text).step_at("write config", &path)
}
