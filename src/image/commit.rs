//! `commit ID IMAGE[:TAG]`: a new image from a container with a
//! copy-on-write root. Its layers are the image the container was made
//! from, or, for a bundle run with `--overlay`/`--layer`, its lowers packed
//! as layers (rootfs first); then the container's upper as the top layer.
//! The config is the image's (or one made from the bundle's process), with
//! `-c` changes in Dockerfile syntax, the author, and a history entry.
//! Each new layer is stored as an uncompressed tar blob and unpacked back
//! into the store through the same checks as a loaded one.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::digest::{chain_ids, Digest};
use super::{normalize, pack, Layer, Record, Store};
use crate::error::{Error, Result};
use crate::log::Logger;

pub struct CommitOptions {
    pub message: Option<String>,
    pub author: Option<String>,
    /// Dockerfile instructions: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL,
    /// EXPOSE, STOPSIGNAL, VOLUME.
    pub changes: Vec<String>,
}

/// What commit needs to know of the container.
pub struct Source {
    pub id: String,
    /// The image it was made from (annotation dev.hull.image), if any.
    pub image: Option<Digest>,
    /// Its writable layer.
    pub upper: PathBuf,
    /// Its read-only layers, top-most first (the bundle's rootfs last).
    pub lowers: Vec<PathBuf>,
    /// The bundle's process: args, env, cwd (for a container not made
    /// from an image).
    pub process: Value,
}

/// Make the image and name it `target`; returns its id.
pub fn commit(
    store: &Store,
    src: &Source,
    target: &str,
    opts: &CommitOptions,
    log: &Logger,
) -> Result<Digest> {
    let target = normalize(target)?;
    let mut changes = Vec::new();
    for c in &opts.changes {
        changes.push(parse_change(c)?);
    }
    let _lock = store.lock_exclusive()?;
    log.step("commit: lock store");
    let (mut config, mut layers) = match &src.image {
        Some(id) => {
            let parent = store.record(id)?.ok_or_else(|| {
                Error::new(format!(
                    "the image {} of container {} is gone",
                    id.short(),
                    src.id
                ))
                .hint("load or pull it again")
            })?;
            let cfg: Value = serde_json::from_slice(&store.read_blob(&parent.id)?)
                .map_err(|e| Error::new("parse image config").detail(e.to_string()))?;
            (cfg, parent.layers)
        }
        None => (config_from_process(&src.process), Vec::new()),
    };
    let result = (|| {
        let mut dirs: Vec<&PathBuf> = Vec::new();
        if src.image.is_none() {
            dirs.extend(src.lowers.iter().rev());
        }
        dirs.push(&src.upper);
        let mut diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        for dir in dirs {
            let (blob, _) = store.put_blob_from(|w| pack::pack(dir, w))?;
            log.step("commit: layer packed");
            diff_ids.push(blob.clone());
            let chain = chain_ids(&diff_ids).pop().expect("one layer at least");
            store.add_layer(&chain, &blob, &blob, log)?;
            layers.push(Layer {
                digest: blob.clone(),
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                diff_id: blob,
                chain_id: chain,
            });
        }
        let now = crate::time::rfc3339_now();
        for change in &changes {
            change.apply(&mut config["config"]);
        }
        config["created"] = json!(now);
        config["os"] = json!("linux");
        if config["architecture"].is_null() {
            config["architecture"] = json!(super::oci::host_arch());
        }
        if let Some(a) = &opts.author {
            config["author"] = json!(a);
        }
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()});
        let mut entry = json!({"created": now, "created_by": format!("hull commit {}", src.id)});
        if let Some(m) = &opts.message {
            entry["comment"] = json!(m);
        }
        if let Some(a) = &opts.author {
            entry["author"] = json!(a);
        }
        match config["history"].as_array_mut() {
            Some(h) => h.push(entry),
            None => config["history"] = json!([entry]),
        }
        let bytes = serde_json::to_vec(&config).expect("JSON");
        let (id, _) = store.put_blob(&bytes[..], None)?;
        let record = store.put_record(Record {
            id: id.clone(),
            manifest: None,
            layers: layers.clone(),
            created: now,
            size: 0,
        })?;
        log.step("commit: record written");
        let mut refs = store.refs()?;
        refs.insert(target.clone(), record.id.clone());
        store.put_refs(&refs)?;
        Ok(id)
    })();
    if result.is_err() {
        let _ = store.sweep();
    }
    result
}

/// An image config for a bundle's container: its command, env and cwd.
fn config_from_process(process: &Value) -> Value {
    let mut c = json!({});
    for (from, to) in [("args", "Cmd"), ("env", "Env"), ("cwd", "WorkingDir")] {
        if !process[from].is_null() {
            c[to] = process[from].clone();
        }
    }
    json!({"os": "linux", "architecture": super::oci::host_arch(), "config": c})
}

#[derive(Debug, PartialEq)]
enum Change {
    Set(&'static str, Value),
    Env(String, String),
    Label(String, String),
    Expose(String),
    Volume(Vec<String>),
}

impl Change {
    fn apply(&self, config: &mut Value) {
        if !config.is_object() {
            *config = json!({});
        }
        match self {
            Change::Set(key, v) => config[*key] = v.clone(),
            Change::Env(k, v) => {
                let mut env: Vec<String> = config["Env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .filter(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k)
                    .collect();
                env.push(format!("{k}={v}"));
                config["Env"] = json!(env);
            }
            Change::Label(k, v) => {
                if !config["Labels"].is_object() {
                    config["Labels"] = json!({});
                }
                config["Labels"][k] = json!(v);
            }
            Change::Expose(p) => {
                if !config["ExposedPorts"].is_object() {
                    config["ExposedPorts"] = json!({});
                }
                config["ExposedPorts"][p] = json!({});
            }
            Change::Volume(paths) => {
                if !config["Volumes"].is_object() {
                    config["Volumes"] = json!({});
                }
                for p in paths {
                    config["Volumes"][p] = json!({});
                }
            }
        }
    }
}

/// A JSON array of strings (exec form), or words (shell form: `sh -c`).
fn command(text: &str) -> Value {
    if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(text) {
        if a.iter().all(Value::is_string) {
            return Value::Array(a);
        }
    }
    json!(["/bin/sh", "-c", text])
}

fn parse_change(text: &str) -> Result<Change> {
    let bad = |why: &str| {
        Error::new(format!("--change {text:?}"))
            .detail(why.to_string())
            .hint("give a Dockerfile instruction: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL or VOLUME")
    };
    let (word, rest) = text
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((text.trim(), ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(bad("no value"));
    }
    let pair = |sep: char| -> Result<(String, String)> {
        let (k, v) = rest
            .split_once(sep)
            .or_else(|| rest.split_once(char::is_whitespace))
            .ok_or_else(|| bad("write KEY=VALUE"))?;
        let v = v.trim().trim_matches('"');
        Ok((k.trim().to_string(), v.to_string()))
    };
    Ok(match word.to_ascii_uppercase().as_str() {
        "CMD" => Change::Set("Cmd", command(rest)),
        "ENTRYPOINT" => Change::Set("Entrypoint", command(rest)),
        "WORKDIR" => Change::Set("WorkingDir", json!(rest)),
        "USER" => Change::Set("User", json!(rest)),
        "STOPSIGNAL" => Change::Set("StopSignal", json!(rest)),
        "ENV" => {
            let (k, v) = pair('=')?;
            Change::Env(k, v)
        }
        "LABEL" => {
            let (k, v) = pair('=')?;
            Change::Label(k, v)
        }
        "EXPOSE" => {
            let port = if rest.contains('/') {
                rest.to_string()
            } else {
                format!("{rest}/tcp")
            };
            let (num, proto) = port.split_once('/').unwrap_or(("", ""));
            if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                return Err(bad("write PORT[/tcp|udp|sctp]"));
            }
            Change::Expose(port)
        }
        "VOLUME" => {
            let paths: Vec<String> = serde_json::from_str(rest)
                .unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
            if paths.iter().any(|p| !p.starts_with('/')) {
                return Err(bad("a volume is an absolute container path"));
            }
            Change::Volume(paths)
        }
        _ => return Err(bad("unsupported instruction")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerfile_changes() {
        assert_eq!(
            parse_change(r#"CMD ["httpd", "-f"]"#).unwrap(),
            Change::Set("Cmd", json!(["httpd", "-f"]))
        );
        assert_eq!(
            parse_change("cmd echo hi").unwrap(),
            Change::Set("Cmd", json!(["/bin/sh", "-c", "echo hi"]))
        );
        assert_eq!(
            parse_change("ENV A=1 2").unwrap(),
            Change::Env("A".into(), "1 2".into())
        );
        assert_eq!(
            parse_change("ENV B x").unwrap(),
            Change::Env("B".into(), "x".into())
        );
        assert_eq!(
            parse_change("EXPOSE 80").unwrap(),
            Change::Expose("80/tcp".into())
        );
        assert_eq!(
            parse_change("VOLUME /a /b").unwrap(),
            Change::Volume(vec!["/a".into(), "/b".into()])
        );
        for bad in ["RUN ls", "CMD", "EXPOSE http", "ENV", "EXPOSE 80/xyz"] {
            assert!(parse_change(bad).is_err(), "{bad}");
        }
        let mut cfg = json!({"Env": ["A=0", "PATH=/bin"]});
        parse_change("ENV A=1").unwrap().apply(&mut cfg);
        parse_change("LABEL k=v").unwrap().apply(&mut cfg);
        assert_eq!(cfg["Env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(cfg["Labels"]["k"], "v");
    }
}
