//! `hull spec`: a default config.json to start a bundle from, the same
//! defaults `runc spec` writes (a busybox-style `sh` with a terminal): a
//! cgroup namespace only where /sys/fs/cgroup is cgroup2, and with
//! `--rootless` runc's changes for a container run by an unprivileged user.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use crate::error::{Context, Error, Result};

#[derive(Args)]
pub struct SpecArgs {
    /// Directory to write config.json into
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// A spec for a container run by an unprivileged user (as `runc spec --rootless`)
    #[arg(long)]
    rootless: bool,
}

pub fn spec(args: SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::new("write spec")
                .at(&path)
                .detail("file exists")
                .hint("remove it first, or pass another directory with --bundle"))
        }
        other => other.step_at("write spec", &path)?,
    };
    let mut spec = crate::template::default_spec(crate::template::unified_host());
    if args.rootless {
        to_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        );
    }
    let text = serde_json::to_string_pretty(&spec).expect("static JSON");
    file.write_all(text.as_bytes()).step_at("write spec", &path)
}

/// runc's `spec --rootless`: a user namespace mapping only the caller, no
/// network namespace (an unprivileged user could not configure one), /sys
/// bound from the host (sysfs cannot be mounted without owning the network
/// namespace), no uid=/gid= mount options (the ids are not mapped), and no
/// cgroup settings (the user has no cgroup to write them to).
fn to_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = &mut spec["linux"];
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "network" && n["type"] != "user");
        ns.push(json!({"type": "user"}));
    }
    linux["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    linux["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    if let Some(l) = linux.as_object_mut() {
        l.remove("resources");
    }
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            continue;
        }
        if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| {
                let o = o.as_str().unwrap_or("");
                !o.starts_with("uid=") && !o.starts_with("gid=")
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::default_spec;

    #[test]
    fn default_spec_is_a_valid_config() {
        for unified in [false, true] {
            let text = serde_json::to_vec(&default_spec(unified)).unwrap();
            let spec = crate::bundle::parse_spec(&text).unwrap();
            assert_eq!(
                spec.process().as_ref().unwrap().args().as_ref().unwrap(),
                &["sh"]
            );
        }
        let has_cgroup_ns = |s: &Value| {
            s["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "cgroup")
        };
        assert!(!has_cgroup_ns(&default_spec(false)));
        assert!(has_cgroup_ns(&default_spec(true)));
    }

    #[test]
    fn rootless_is_runcs() {
        let mut s = default_spec(true);
        to_rootless(&mut s, 1000, 1001);
        let types: Vec<&str> = s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["pid", "ipc", "uts", "mount", "cgroup", "user"]);
        assert_eq!(s["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(s["linux"]["gidMappings"][0]["hostID"], 1001);
        assert!(s["linux"].get("resources").is_none());
        let text = s.to_string();
        assert!(!text.contains("gid=5") && text.contains("rbind"), "{text}");
        crate::bundle::parse_spec(text.as_bytes()).unwrap();
    }
}
