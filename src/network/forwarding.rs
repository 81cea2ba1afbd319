//! net.ipv4.ip_forward (and net.ipv6.conf.all.forwarding, for dual-stack
//! networks) is one switch for every bridge in a network namespace: hull turns it on while any of its bridges has a container and
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

/// One forwarding switch: its sysctl (under /proc/sys/net) and its record.
pub struct Switch {
    name: &'static str,
    sysctl: &'static str,
}

pub const IPV4: Switch = Switch {
    name: "ip_forward",
    sysctl: "ipv4/ip_forward",
};

pub const IPV6: Switch = Switch {
    name: "ipv6_forwarding",
    sysctl: "ipv6/conf/all/forwarding",
};

impl Switch {
    fn record(&self) -> String {
        format!("{}.json", self.name)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// The value before hull set it to 1.
    prev: String,
    bridges: BTreeSet<String>,
}

/// `bridge` needs forwarding: recorded first, then switched on.
pub fn on(root: &Path, bridge: &str, switch: &Switch) -> Result<()> {
    let root = &root.join(DIR);
    let _lock = store::lock(root, switch.name)?;
    let mut rec: Record = match crate::jsonfile::read(root, &switch.record(), switch.name)? {
        Some(r) => r,
        None => Record {
            prev: read_sysctl(switch.sysctl)?,
            bridges: BTreeSet::new(),
        },
    };
    if rec.bridges.insert(bridge.to_string()) {
        crate::jsonfile::write(root, &switch.record(), switch.name, &rec)?;
    }
    write_sysctl(switch.sysctl, "1")
}

/// `bridge` no longer needs forwarding; the last bridge puts the value
/// back. `legacy` is what a store written before this record kept.
pub fn off(root: &Path, bridge: &str, switch: &Switch, legacy: Option<&str>) -> Result<()> {
    let root = &root.join(DIR);
    let _lock = store::lock(root, switch.name)?;
    let record = switch.record();
    let Some(mut rec) = crate::jsonfile::read::<Record>(root, &record, switch.name)? else {
        return legacy.map_or(Ok(()), |prev| write_sysctl(switch.sysctl, prev));
    };
    rec.bridges.remove(bridge);
    if !rec.bridges.is_empty() {
        return crate::jsonfile::write(root, &record, switch.name, &rec);
    }
    write_sysctl(switch.sysctl, &rec.prev)?;
    let path = root.join(&record);
    std::fs::remove_file(&path).step_at("remove forwarding record", &path)
}
