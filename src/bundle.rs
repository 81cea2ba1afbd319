//! An OCI bundle: config.json and the rootfs it names, loaded and checked
//! before anything is created, so a bad bundle leaves nothing behind.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{Context, Error, Result};

pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute, canonical path of the rootfs on the host.
    pub rootfs: PathBuf,
    /// Filled in by storage::prepare (overlay rootfs) for the init.
    pub storage: crate::storage::Plan,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::fs::canonicalize(dir)
            .step_at("open bundle", dir)
            .map_err(|e| {
                e.hint("pass the bundle directory with --bundle (it holds config.json)")
            })?;
        let config = dir.join("config.json");
        let text = std::fs::read(&config)
            .step_at("read config", &config)
            .map_err(|e| {
                e.hint("a bundle needs a config.json; `hull spec` writes a default one")
            })?;
        let spec = parse_spec(&text).map_err(|e| e.at(&config))?;
        let rootfs = rootfs_path(&dir, &spec)?;
        validate(&spec, &config)?;
        if let Some(process) = spec.process() {
            crate::security::lsm::validate(process)?;
        }
        Ok(Bundle {
            dir,
            spec,
            rootfs,
            storage: Default::default(),
        })
    }

    /// Variables the runtime adds after process.env's own (a later entry
    /// replaces an earlier one of the same name, see process::environ).
    pub fn add_env(&mut self, extra: &[String]) {
        if extra.is_empty() {
            return;
        }
        if let Some(process) = self.spec.process_mut() {
            let mut env = process.env().clone().unwrap_or_default();
            env.extend(extra.iter().cloned());
            process.set_env(Some(env));
        }
    }

    pub fn process(&self) -> &Process {
        // validate() refused a config without one.
        self.spec
            .process()
            .as_ref()
            .expect("validated: process present")
    }
}

/// Parse config.json, naming the field that is wrong, e.g.
/// `process.args: invalid type: string "ls", expected a sequence`.
pub fn parse_spec(text: &[u8]) -> Result<Spec> {
    let text = crate::security::sched::spec_flag_spelling(text);
    let mut de = serde_json::Deserializer::from_slice(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let what = if inner.is_syntax() || inner.is_eof() {
            format!("not valid JSON: {inner}")
        } else if field == "." {
            inner.to_string()
        } else {
            format!("field {field}: {}", without_echo(&inner.to_string()))
        };
        Error::new("parse config").detail(what)
    })
}

/// oci-spec names a bad capability twice ("no variant for CAP_X (converted
/// to X)"): once is enough, the value may be huge.
fn without_echo(msg: &str) -> String {
    match (msg.find(" (converted to "), msg.rfind(')')) {
        (Some(start), Some(end)) if end > start => format!("{}{}", &msg[..start], &msg[end + 1..]),
        _ => msg.to_string(),
    }
}

fn rootfs_path(dir: &Path, spec: &Spec) -> Result<PathBuf> {
    let root = spec.root().as_ref().ok_or_else(|| {
        Error::new("check config")
            .detail("root is missing")
            .hint("set root.path, e.g. \"rootfs\"")
    })?;
    let path = dir.join(root.path());
    let rootfs = std::fs::canonicalize(&path)
        .step_at("open rootfs", &path)
        .map_err(|e| {
            e.hint("root.path must name a directory (relative to the bundle or absolute)")
        })?;
    if !rootfs.is_dir() {
        return Err(Error::new("open rootfs")
            .at(&rootfs)
            .detail("not a directory"));
    }
    Ok(rootfs)
}

/// The checks runc makes before creating anything, so that the kernel is
/// never the first to notice a config that cannot work. Pure: it reads
/// nothing but the spec (the host-dependent LSM check is `load`'s), so the
/// fuzz target `config` drives it; `config` only names the file in errors.
pub fn validate(spec: &Spec, config: &Path) -> Result<()> {
    let bad = |what: String| Error::new("check config").at(config).detail(what);
    check_oci_version(spec.version()).map_err(|what| {
        bad(what).hint(format!(
            "hull implements runtime-spec {}: set \"ociVersion\" to a 1.x version",
            crate::state::SPEC_VERSION
        ))
    })?;
    let process = spec.process().as_ref().ok_or_else(|| {
        bad("process is missing".into()).hint("a container needs process.args and process.cwd")
    })?;
    match process.args() {
        Some(args) if !args.is_empty() => {}
        _ => return Err(bad("process.args must name a program".into())),
    }
    if !process.cwd().is_absolute() {
        return Err(bad(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    // No `linux` section means no namespaces: the mount check below refuses
    // it rather than set up (and pivot) the caller's own root.
    let mut no_linux = oci_spec::runtime::Linux::default();
    no_linux.set_namespaces(None);
    let linux = spec.linux().as_ref().unwrap_or(&no_linux);
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let mut seen = Vec::new();
    for ns in namespaces {
        if seen.contains(&ns.typ()) {
            return Err(bad(format!("namespace {:?} is listed twice", ns.typ())));
        }
        seen.push(ns.typ());
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let new_user = namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    if new_user && !maps {
        return Err(bad(
            "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
        ));
    }
    if maps && !has(LinuxNamespaceType::User) {
        return Err(bad("uidMappings/gidMappings need a user namespace".into()));
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(bad("hostname needs a uts namespace".into())
            .hint("add {\"type\": \"uts\"} to linux.namespaces"));
    }
    // The rootfs is mounted and pivoted inside the container's mount
    // namespace. Without a new one that would be the caller's (or, joined by
    // path, every process's in that namespace): the host's root would move.
    if !has(LinuxNamespaceType::Mount) {
        return Err(bad(
            "no mount namespace: the rootfs would be set up over the caller's own root".into(),
        )
        .hint("add {\"type\": \"mount\"} to linux.namespaces"));
    }
    if let Some(path) = namespaces
        .iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::Mount)
        .and_then(|ns| ns.path().as_ref())
    {
        return Err(bad(format!(
            "mount namespace path {}: joining a mount namespace would pivot the root of every process in it",
            path.display()
        ))
        .hint("use {\"type\": \"mount\"} without a path; share files with bind mounts"));
    }
    if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
        return Err(bad("timeOffsets need a time namespace".into()));
    }
    crate::security::validate(spec)
}

/// `ociVersion` is required (oci-spec reads a missing one as ""), is
/// SemVer, and only major version 1 (the one hull implements) is accepted:
/// a 2.x config may mean things hull does not know about.
fn check_oci_version(version: &str) -> std::result::Result<(), String> {
    if version.is_empty() {
        return Err("ociVersion is missing".into());
    }
    let core = version.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<Option<u64>> = core.split('.').map(|n| n.parse().ok()).collect();
    match parts.as_slice() {
        [Some(1), Some(_), Some(_)] => Ok(()),
        [Some(major), Some(_), Some(_)] => Err(format!(
            "ociVersion {version:?}: major version {major} is not supported"
        )),
        _ => Err(format!("ociVersion {version:?} is not a SemVer version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_of_a_wrong_type() {
        let err = parse_spec(
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},"args":"ls"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("process.args"), "{err}");
    }

    #[test]
    fn oci_version_must_be_1_x() {
        for ok in ["1.0.0", "1.0.2-dev", "1.2.0", "1.3.0+build"] {
            assert!(check_oci_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2.0.0", "0.9.0", "1", "1.0", "banana", "1.x.0"] {
            assert!(check_oci_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn says_when_it_is_not_json() {
        let err = parse_spec(b"{ nope").unwrap_err().to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
