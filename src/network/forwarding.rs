//! net.ipv4.ip_forward is one switch for every bridge in a network
//! namespace: hull turns it on while any of its bridges has a container and
//! puts back the value it found when the last one goes. The value and the
//! bridges that need it are in `<net root>/sysctl/ip_forward.json` (a
//! directory of its own: the net root's `*.json` are bridges' stores),
//! changed under `ip_forward.lock` there, which is only ever taken inside a
//! bridge's store lock (never the other way round). One record per bridge would
//! restore "0" under a second bridge still in use.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{read_sysctl, store, write_sysctl};
use crate::error::{Context, Result};

const DIR: &str = "sysctl";
const RECORD: &str = "ip_forward.json";
const SYSCTL: &str = "ipv4/ip_forward";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// The value before hull set it to 1.
    prev: String,
    bridges: BTreeSet<String>,
}

/// `bridge` needs forwarding: recorded first, then switched on.
pub fn on(root: &Path, bridge: &str) -> Result<()> {
    let root = &root.join(DIR);
    let _lock = store::lock(root, "ip_forward")?;
    let mut rec: Record = match crate::jsonfile::read(root, RECORD, "ip_forward record")? {
        Some(r) => r,
        None => Record {
            prev: read_sysctl(SYSCTL)?,
            bridges: BTreeSet::new(),
        },
    };
    if rec.bridges.insert(bridge.to_string()) {
        crate::jsonfile::write(root, RECORD, "ip_forward record", &rec)?;
    }
    write_sysctl(SYSCTL, "1")
}

/// `bridge` no longer needs forwarding; the last bridge puts the value
/// back. `legacy` is what a store written before this record kept.
pub fn off(root: &Path, bridge: &str, legacy: Option<&str>) -> Result<()> {
    let root = &root.join(DIR);
    let _lock = store::lock(root, "ip_forward")?;
    let Some(mut rec) = crate::jsonfile::read::<Record>(root, RECORD, "ip_forward record")? else {
        return legacy.map_or(Ok(()), |prev| write_sysctl(SYSCTL, prev));
    };
    rec.bridges.remove(bridge);
    if !rec.bridges.is_empty() {
        return crate::jsonfile::write(root, RECORD, "ip_forward record", &rec);
    }
    write_sysctl(SYSCTL, &rec.prev)?;
    let path = root.join(RECORD);
    std::fs::remove_file(&path).step_at("remove ip_forward record", &path)
}
