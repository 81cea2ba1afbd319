//! The network store, shared by every container of one bridge:
//! `<net root>/<bridge>.json` (leases, published ports, what hull made for
//! the bridge) guarded by a flock on `<net root>/<bridge>.lock`. Every
//! decision that depends on other containers (which address is free, is
//! this host port taken, is this the last container) is made under it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::ports::Mapping;
use crate::error::{Context, Error, Result};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shared {
    pub subnet: String,
    /// hull created the bridge (and deletes it with the last container).
    #[serde(default)]
    pub bridge_made: bool,
    /// The value net.ipv4.ip_forward had before hull set it to 1, as
    /// stores written before forwarding.rs kept it (read, never written).
    #[serde(default)]
    pub ip_forward_prev: Option<String>,
    /// The shared chains of the bridge are in place (set after they were
    /// applied; a later container then sends only its own chains).
    #[serde(default)]
    pub rules: bool,
    /// Address → container id.
    #[serde(default)]
    pub leases: BTreeMap<Ipv4Addr, String>,
    /// (container id, mapping) for every published port.
    #[serde(default)]
    pub ports: Vec<(String, Mapping)>,
    /// Container id → its state dir: `gc` releases the lease of a
    /// container whose state dir is gone.
    #[serde(default)]
    pub owners: BTreeMap<String, PathBuf>,
    /// The bridge is a named network's: its containers' /etc/hosts name
    /// each other.
    #[serde(default)]
    pub named: bool,
    /// The network is internal (no way out).
    #[serde(default)]
    pub internal: bool,
    /// The bridge's IPv6 subnet (a named network with `--ipv6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<String>,
    /// IPv6 address → container id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leases6: BTreeMap<Ipv6Addr, String>,
    /// Container id → the other names it answers to (`--network-alias`).
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// (dev, inode) of the network namespace the bridge is in.
    #[serde(default)]
    pub netns: Option<(u64, u64)>,
    /// Its cookie (netns.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
}

/// An exclusive flock on `<root>/<name>.lock` (the directory made if
/// needed), held while the value lives.
pub fn lock(root: &Path, name: &str) -> Result<Flock<File>> {
    fs::create_dir_all(root).step_at("create network state dir", root)?;
    let lock_path = root.join(format!("{name}.lock"));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .step_at("open network lock", &lock_path)?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys("lock network state", Some(&lock_path), e))
}

/// The store of one bridge, locked while this value lives.
pub struct Locked {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Locked {
    pub fn open(root: &Path, bridge: &str) -> Result<Locked> {
        Ok(Locked {
            path: root.join(format!("{bridge}.json")),
            _lock: lock(root, bridge)?,
        })
    }

    pub fn read(&self) -> Result<Option<Shared>> {
        match fs::read(&self.path) {
            Ok(text) => serde_json::from_slice(&text).map(Some).map_err(|e| {
                Error::new("parse network state")
                    .at(&self.path)
                    .detail(e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).step_at("read network state", &self.path),
        }
    }

    pub fn write(&self, shared: &Shared) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(shared).expect("network state serialises");
        fs::write(&tmp, json).step_at("write network state", &tmp)?;
        fs::rename(&tmp, &self.path).step_at("write network state", &self.path)
    }

    /// The last container of the bridge is gone: forget the bridge.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).step_at("remove network state", &self.path)
            }
            _ => Ok(()),
        }
    }
}
