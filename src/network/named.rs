//! Named networks (`network create NAME`): a definition in
//! `<net root>/networks/<NAME>.json` naming the bridge the network uses, its
//! subnet and whether it is internal. The bridge itself, its lease store and
//! its rules come and go with the network's containers exactly as the
//! default bridge's do; the definition stays until `network rm`. Creates
//! and removals of definitions happen under `networks/.defs.lock`, so
//! two networks never get the same subnet.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ipam::{Subnet, Subnet6, DEFAULT_SUBNET};
use super::store::{self, Locked};
use crate::error::{Context, Error, Result};

/// The modes `--network` takes besides a network's name.
pub const BUILTIN: [&str; 3] = ["bridge", "none", "host"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    /// With `--ipv6`: its IPv6 subnet (dual stack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// No way out: no outbound NAT, nothing forwarded off the bridge.
    #[serde(default)]
    pub internal: bool,
    pub created: String,
}

fn dir(root: &Path) -> PathBuf {
    root.join("networks")
}

/// The bridge of network `name`: `hn-` and 12 hex digits (interface names
/// have 15 characters at most; every hull network bridge matches `hn-*`,
/// which the isolation rules rely on).
pub fn bridge_name(name: &str) -> String {
    format!("hn-{:012x}", super::hash(name) & 0xffff_ffff_ffff)
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok || BUILTIN.contains(&name) || name == "default" {
        return Err(Error::new(format!("network {name:?}"))
            .detail("not a usable network name")
            .hint("up to 64 letters, digits, _ . -, starting with a letter or digit; not bridge, none, host or default"));
    }
    Ok(())
}

/// The definition of network `name`, if there is one.
pub fn load(root: &Path, name: &str) -> Result<Option<Network>> {
    if check_name(name).is_err() {
        return Ok(None);
    }
    crate::jsonfile::read(&dir(root), &format!("{name}.json"), "network definition")
}

/// Every network defined, by name.
pub fn all(root: &Path) -> Vec<Network> {
    let mut names: Vec<String> = std::fs::read_dir(dir(root))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(String::from)
        })
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|n| load(root, n).ok().flatten())
        .collect()
}

/// What `network create` asks for besides the name.
#[derive(Debug, Default)]
pub struct Asked<'a> {
    pub subnet: Option<&'a str>,
    /// Dual stack; implied by `subnet6`.
    pub ipv6: bool,
    pub subnet6: Option<&'a str>,
    pub internal: bool,
}

/// Define network `name`: with the subnet asked for, or the first free
/// 10.N.0.0/16 above the default bridge's (and with `ipv6`, the first free
/// fd68:756c:6c00:N::/64, "hull" in the ULA range). A subnet another
/// network or a route of the host covers is refused.
pub fn create(root: &Path, name: &str, asked: Asked) -> Result<Network> {
    let Asked {
        subnet,
        ipv6,
        subnet6,
        internal,
    } = asked;
    check_name(name)?;
    let _lock = store::lock(&dir(root), ".defs")?;
    if load(root, name)?.is_some() {
        return Err(
            Error::new(format!("network create {name}")).detail("a network of that name exists")
        );
    }
    let mut taken: Vec<(String, Subnet)> = vec![("bridge".into(), Subnet::parse(DEFAULT_SUBNET)?)];
    for n in all(root) {
        taken.push((format!("network {}", n.name), Subnet::parse(&n.subnet)?));
    }
    taken.extend(
        host_routes()
            .into_iter()
            .map(|s| (format!("the host route to {s}"), s)),
    );
    let subnet = match subnet {
        Some(s) => {
            let s = Subnet::parse(s)?;
            if let Some((who, _)) = taken.iter().find(|(_, t)| t.overlaps(&s)) {
                return Err(Error::new(format!("network create {name}"))
                    .detail(format!("subnet {s} overlaps {who}"))
                    .hint("pick another --subnet"));
            }
            s
        }
        None => (90..=254u8)
            .map(|n| Subnet {
                net: Ipv4Addr::new(10, n, 0, 0),
                prefix: 16,
            })
            .find(|s| taken.iter().all(|(_, t)| !t.overlaps(s)))
            .ok_or_else(|| {
                Error::new(format!("network create {name}"))
                    .detail("no free 10.N.0.0/16 subnet")
                    .hint("give one with --subnet")
            })?,
    };
    let subnet6 = if ipv6 || subnet6.is_some() {
        Some(pick_subnet6(root, name, subnet6)?.to_string())
    } else {
        None
    };
    let net = Network {
        name: name.to_string(),
        bridge: bridge_name(name),
        subnet: subnet.to_string(),
        subnet6,
        internal,
        created: crate::time::rfc3339_now(),
    };
    let d = dir(root);
    std::fs::create_dir_all(&d).step_at("create network definitions dir", &d)?;
    crate::jsonfile::write(&d, &format!("{name}.json"), "network definition", &net)?;
    Ok(net)
}

/// The IPv6 subnet for a new network: `asked`, unless another network has
/// it, or the first free fd68:756c:6c00:N::/64.
fn pick_subnet6(root: &Path, name: &str, asked: Option<&str>) -> Result<Subnet6> {
    let taken: Vec<(String, Subnet6)> = all(root)
        .into_iter()
        .filter_map(|n| Some((n.name, Subnet6::parse(n.subnet6.as_deref()?).ok()?)))
        .collect();
    let err = || Error::new(format!("network create {name}"));
    if let Some(s) = asked {
        let s = Subnet6::parse(s)?;
        if let Some((who, _)) = taken.iter().find(|(_, t)| t.overlaps(&s)) {
            return Err(err()
                .detail(format!("subnet {s} overlaps network {who}"))
                .hint("pick another --subnet6"));
        }
        return Ok(s);
    }
    (0..=u16::MAX)
        .map(|n| Subnet6 {
            net: std::net::Ipv6Addr::new(0xfd68, 0x756c, 0x6c00, n, 0, 0, 0, 0),
            prefix: 64,
        })
        .find(|s| taken.iter().all(|(_, t)| !t.overlaps(s)))
        .ok_or_else(|| {
            err()
                .detail("no free fd68:756c:6c00:N::/64")
                .hint("give one with --subnet6")
        })
}

/// The containers on the network of `bridge`, by id.
pub fn users(root: &Path, bridge: &str) -> Result<Vec<String>> {
    if !root.join(format!("{bridge}.json")).exists() {
        return Ok(Vec::new());
    }
    let store = Locked::open(root, bridge)?;
    Ok(store
        .read()?
        .map(|s| s.leases.into_values().collect())
        .unwrap_or_default())
}

/// Remove network `name`: refused while a container uses it.
pub fn remove(root: &Path, name: &str) -> Result<()> {
    let _lock = store::lock(&dir(root), ".defs")?;
    let Some(net) = load(root, name)? else {
        return Err(Error::new(format!("network rm {name}")).detail("no such network"));
    };
    // Under the bridge's lock: no container joins between the check and the removal.
    let store = Locked::open(root, &net.bridge)?;
    let used: Vec<String> = store
        .read()?
        .map(|s| s.leases.into_values().collect())
        .unwrap_or_default();
    if !used.is_empty() {
        return Err(Error::new(format!("network rm {name}"))
            .detail(format!("in use by {}", used.join(", ")))
            .hint("delete those containers first"));
    }
    let path = dir(root).join(format!("{name}.json"));
    std::fs::remove_file(&path).step_at("remove network definition", &path)?;
    let _ = std::fs::remove_file(root.join(format!("{}.lock", net.bridge)));
    Ok(())
}

/// The networks of the host's routing table (default route left out): a
/// network's subnet must not hide one.
fn host_routes() -> Vec<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // Printed as the in-memory (network order) word, read natively.
            let (dest, mask) = (u32::from_be(dest), u32::from_be(mask));
            (mask != 0).then(|| Subnet {
                net: Ipv4Addr::from(dest & mask),
                prefix: mask.leading_ones() as u8,
            })
        })
        .collect()
}
