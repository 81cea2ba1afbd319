//! `hull gc` for `--network bridge`. In each lease store of the net root:
//! the leases of containers whose state dir (under the --root given) is
//! gone, with their veths and rule chains, and the bridge with the last of
//! them; and the veths on the bridge and the per-container chains in its
//! table that no lease accounts for. A lease with no recorded owner (an older
//! store) and a bridge without a store are never touched.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;

use super::ipam::Subnet;
use super::netlink::Netlink;
use super::netns::{self, Place};
use super::store::Locked;
use super::{net_root, release, rules, Journal};
use crate::error::{Error, Result};
use crate::log::Logger;

/// Leftovers `gc` found: one line per object, and how to remove them.
pub struct Found {
    pub lines: Vec<String>,
    fix: Fix,
}

enum Fix {
    /// A lease, its veth and chains; the bridge and table with the last.
    Release(Journal),
    Links {
        netns: Place,
        names: Vec<String>,
    },
    Chains {
        netns: Place,
        bridge: String,
        names: Vec<String>,
    },
}

impl Found {
    pub fn remove(self, log: &Logger) -> Result<()> {
        match self.fix {
            Fix::Release(j) => release(&j, log),
            Fix::Links { netns, names } => in_netns(netns, || {
                let mut nl = Netlink::open()?;
                names.iter().try_for_each(|n| nl.del_link(n).map(drop))
            })
            .map(drop),
            Fix::Chains {
                netns,
                bridge,
                names,
            } => in_netns(netns, || {
                rules::apply(&rules::remove_chains(&bridge, &names))
            })
            .map(drop),
        }
    }
}

/// The host end of container `id`'s veth pair on `bridge`: named after the
/// id alone on its first network, after id and bridge on any other.
pub fn veth_name(id: &str, first: bool, bridge: &str) -> String {
    let h = if first {
        super::hash(id)
    } else {
        super::hash(&format!("{id}@{bridge}"))
    };
    format!("hv{:08x}", h as u32)
}

/// The names container `id`'s veth on `bridge` can have: gc sees one
/// bridge at a time and cannot tell whether it was the first network.
fn veth_names(id: &str, bridge: &str) -> [String; 2] {
    [veth_name(id, true, bridge), veth_name(id, false, bridge)]
}

/// Run `f` in a thread inside the network namespace `place`: None when that
/// namespace is gone (and with it whatever was in it).
fn in_netns<T: Send>(place: Place, f: impl FnOnce() -> Result<T> + Send) -> Result<Option<T>> {
    std::thread::scope(|s| {
        s.spawn(|| {
            if !place.enter()? {
                return Ok(None);
            }
            f().map(Some)
        })
        .join()
        .map_err(|_| Error::new("network gc").detail("thread panicked"))?
    })
}

/// What is on the host side of one bridge.
struct Seen {
    bridge: bool,
    /// hull's veths (`hv…`) that are ports of the bridge.
    veths: Vec<String>,
    /// The chains of the bridge's table; None without a table.
    chains: Option<Vec<String>>,
}

fn look(bridge: &str) -> Result<Seen> {
    let links = Netlink::open()?.links()?;
    let index = links.iter().find(|l| l.name == bridge).map(|l| l.index);
    let veths = links
        .iter()
        .filter(|l| index.is_some() && l.master == index && is_veth_name(&l.name))
        .map(|l| l.name.clone())
        .collect();
    Ok(Seen {
        bridge: index.is_some(),
        veths,
        chains: rules::list_chains(bridge)?,
    })
}

fn is_veth_name(name: &str) -> bool {
    name.len() == 10 && name.starts_with("hv") && name[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// For a container gc removes whole (its state dir exists): the network
/// objects of its journal that exist.
pub fn inventory(j: &Journal) -> Result<Vec<String>> {
    let store = Locked::open(&j.net_root, &j.bridge)?;
    let mut lines = Vec::new();
    if store.read()?.unwrap_or_default().leases.get(&j.ip) == Some(&j.id) {
        lines.push(format!("lease {} of {} (bridge {})", j.ip, j.id, j.bridge));
    }
    drop(store);
    if let Some(seen) = in_netns(j.place(), || look(&j.bridge))? {
        lines.extend(objects_of(&j.id, &j.bridge, &seen));
    }
    Ok(lines)
}

/// The veth and chains of container `id` that `seen` holds.
fn objects_of(id: &str, bridge: &str, seen: &Seen) -> Vec<String> {
    let mut lines = Vec::new();
    for veth in veth_names(id, bridge) {
        if seen.veths.contains(&veth) {
            lines.push(format!("veth {veth}"));
        }
    }
    let chains: Vec<String> = rules::chains(id)
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| seen.chains.iter().flatten().any(|x| x == c))
        .collect();
    if !chains.is_empty() {
        lines.push(format!(
            "nft chains {} (table ip {})",
            chains.join(", "),
            rules::table(bridge)
        ));
    }
    lines
}

/// Every lease store under the net root (`net_root`, else the default).
pub fn find(root: &Path, net_root_arg: Option<&Path>) -> Result<Vec<Found>> {
    let dir = net_root_arg.map_or_else(net_root, Path::to_path_buf);
    let mut bridges: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".json").map(str::to_string)
        })
        .collect();
    bridges.sort();
    let mut found = Vec::new();
    for bridge in bridges {
        found.extend(find_bridge(root, &dir, &bridge)?);
    }
    Ok(found)
}

fn find_bridge(root: &Path, net_root: &Path, bridge: &str) -> Result<Vec<Found>> {
    // Creates and deletes change the store only under its lock.
    let store = Locked::open(net_root, bridge)?;
    let Some(shared) = store.read()? else {
        return Ok(Vec::new());
    };
    let netns = match shared.netns {
        Some(id) => Place {
            id,
            cookie: shared.netns_cookie,
        },
        None => netns::here()?,
    };
    let orphans: Vec<(Ipv4Addr, String)> = shared
        .leases
        .iter()
        .filter(|(_, id)| {
            shared
                .owners
                .get(*id)
                .is_some_and(|d| crate::owner::orphan(d.clone(), root).is_some())
        })
        .map(|(ip, id)| (*ip, id.clone()))
        .collect();
    let seen = in_netns(netns, || look(bridge))?;
    let mut out = Vec::new();

    // Strays first: the release of the last lease takes the table with it.
    if let Some(seen) = &seen {
        let veths: BTreeSet<String> = shared
            .leases
            .values()
            .flat_map(|id| veth_names(id, bridge))
            .collect();
        let names: Vec<String> = seen
            .veths
            .iter()
            .filter(|v| !veths.contains(*v))
            .cloned()
            .collect();
        if !names.is_empty() {
            out.push(Found {
                lines: names
                    .iter()
                    .map(|n| format!("veth {n} (bridge {bridge}, no lease)"))
                    .collect(),
                fix: Fix::Links { netns, names },
            });
        }
        let chains: BTreeSet<String> = shared
            .leases
            .values()
            .flat_map(|id| rules::chains(id).map(|(c, _)| c))
            .collect();
        let names: Vec<String> = seen
            .chains
            .iter()
            .flatten()
            .filter(|c| c.starts_with("c-") && !chains.contains(*c))
            .cloned()
            .collect();
        if !names.is_empty() {
            out.push(Found {
                lines: names
                    .iter()
                    .map(|c| {
                        format!(
                            "nft chain {c} (table ip {}, no lease)",
                            rules::table(bridge)
                        )
                    })
                    .collect(),
                fix: Fix::Chains {
                    netns,
                    bridge: bridge.to_string(),
                    names,
                },
            });
        }
    }

    let subnet = Subnet::parse(&shared.subnet)?;
    let subnet6 = shared
        .subnet6
        .as_deref()
        .map(super::ipam::Subnet6::parse)
        .transpose()?;
    let v6_of = |id: &str| {
        let sub6 = subnet6?;
        let (ip6, _) = shared.leases6.iter().find(|(_, o)| *o == id)?;
        Some((*ip6, sub6.prefix, sub6.gateway()))
    };
    let journal = |id: &str, ip: Ipv4Addr| Journal {
        id: id.to_string(),
        net_root: net_root.to_path_buf(),
        bridge: bridge.to_string(),
        netns: netns.id,
        netns_cookie: netns.cookie,
        ip,
        prefix: subnet.prefix,
        gateway: subnet.gateway(),
        // The one on the bridge (either is fine when none is left).
        veth: if id.is_empty() {
            String::new()
        } else {
            let [first, other] = veth_names(id, bridge);
            let on_bridge = seen.as_ref().is_some_and(|s| s.veths.contains(&other));
            if on_bridge {
                other
            } else {
                first
            }
        },
        dev: String::new(),
        ports: shared
            .ports
            .iter()
            .filter(|(o, _)| o == id)
            .map(|(_, m)| *m)
            .collect(),
        v6: v6_of(id),
    };
    let bridge_goes = orphans.len() == shared.leases.len();
    let store_path = net_root.join(format!("{bridge}.json"));
    for (ip, id) in &orphans {
        let mut lines = vec![format!("lease {ip} of {id} (bridge {bridge})")];
        if let Some(seen) = &seen {
            lines.extend(objects_of(id, bridge, seen));
        }
        out.push(Found {
            lines,
            fix: Fix::Release(journal(id, *ip)),
        });
    }
    if bridge_goes {
        // What the release of the last lease takes with it (or, with no
        // lease left at all, a release of nobody's).
        let mut lines = Vec::new();
        if let Some(seen) = &seen {
            if shared.bridge_made && seen.bridge {
                lines.push(format!("bridge {bridge}"));
            }
            if seen.chains.is_some() {
                lines.push(format!("nft table ip {}", rules::table(bridge)));
            }
        }
        lines.push(format!("lease store {}", store_path.display()));
        match out.last_mut() {
            Some(last) if !orphans.is_empty() => last.lines.extend(lines),
            _ => out.push(Found {
                lines,
                fix: Fix::Release(journal("", Ipv4Addr::UNSPECIFIED)),
            }),
        }
    }
    Ok(out)
}
