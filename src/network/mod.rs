//! Container networking beyond runc: `--network bridge` gives the container
//! a veth pair on a host bridge (default `hull0`), an address from a
//! file-locked lease store, a default route, /etc/hosts, /etc/hostname and
//! /etc/resolv.conf, outbound NAT, and published ports (`-p`) through kernel
//! DNAT.
//!
//! A plain bundle pays nothing: `Config::from_spec` finds no annotation and
//! every entry point returns at once, with no file written.
//!
//! A container may join several networks (config.rs): each is one entry of
//! the journal and one pass of what follows; the first network's device is
//! eth0 and has the default routes and the published ports.
//!
//! Order on create (each object is in a journal before it exists):
//! 1. `prepare` (before the init is cloned): under the store locks, check
//!    the host ports, journal `<state dir>/network.json`, then take the lease
//!    and record the ports; write hosts/hostname and bind them in the spec.
//! 2. `attach` (once the init is ready, before `create` returns): bridge
//!    (recorded as made by hull first), sysctls (previous values recorded
//!    first), the veth pair with `eth0` (`eth1`, ...) made directly in the
//!    container's namespace, address and routes there, then one nftables
//!    batch.
//!
//! `cleanup` (from `create::destroy`: failed creates, `delete`, `delete
//! --force` after a crash) undoes whatever exists and ignores the rest. It
//! runs in the network namespace hull ran in at create time, found again
//! (netns.rs) when `delete` runs elsewhere; when that namespace is gone, so
//! are the veth, the bridge and the rules, and only the lease is released. The last container of a bridge takes the bridge, the table and
//! the sysctls with it.
//!
//! In config.json: annotations `dev.hull.network: "bridge"`,
//! `dev.hull.ports: "8080:80,127.0.0.1:5353:53/udp"`,
//! `dev.hull.network.subnet: "10.89.0.0/16"`, `dev.hull.network.bridge`.

mod config;
mod etc;
mod forwarding;
pub mod gc;
pub mod ipam;
pub mod named;
pub mod netlink;
mod netns;
pub mod ports;
pub mod rules;
mod store;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::Container;
use ipam::{Subnet, Subnet6};
use netlink::Netlink;
use ports::Mapping;
use store::{Locked, Shared};

pub use config::{merge_cli, Config, Extras};

pub const ANN_NETWORK: &str = "dev.hull.network";
pub const ANN_PORTS: &str = "dev.hull.ports";
/// Container ports the bundle offers (`--expose`, as an image's
/// ExposedPorts): "80,53/udp". Published only with `-P`.
pub const ANN_EXPOSE: &str = "dev.hull.expose";
/// `-P`: publish every exposed port on a host port hull picks.
pub const ANN_PUBLISH_ALL: &str = "dev.hull.publish-all";
pub const ANN_SUBNET: &str = "dev.hull.network.subnet";
pub const ANN_BRIDGE: &str = "dev.hull.network.bridge";
/// More names for the container on a named network (`--network-alias`): "db,cache".
pub const ANN_ALIASES: &str = "dev.hull.network.aliases";
/// The address a container would like (`restart`: the one it had), taken
/// if it is free.
pub const ANN_ADDRESS: &str = "dev.hull.network.address";
pub const DEFAULT_BRIDGE: &str = "hull0";
pub const DEFAULT_NET_ROOT: &str = "/run/hull-net";
/// Overrides the default network state dir (for tests and private setups).
pub const ENV_NET_ROOT: &str = "HULL_NET_ROOT";
const JOURNAL: &str = "network.json";

static NET_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The container's record of its network objects on one network; the
/// journal file, `<state dir>/network.json`, holds one per network joined,
/// the first network's first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub id: String,
    pub net_root: PathBuf,
    pub bridge: String,
    /// (dev, inode) of the network namespace hull ran in: where the bridge,
    /// the host end of the veth and the rules are.
    pub netns: (u64, u64),
    /// Its cookie, which unlike the inode is never reused (netns.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns_cookie: Option<u64>,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Host end of the veth pair.
    pub veth: String,
    /// Its end in the container: eth0 on the first network, eth1, ... on
    /// the others.
    #[serde(default = "first_dev")]
    pub dev: String,
    pub ports: Vec<Mapping>,
    /// The IPv6 side of a dual-stack network: address, prefix, gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

fn first_dev() -> String {
    "eth0".to_string()
}

/// The journal file: a list, or one record as hull wrote it before a
/// container could join several networks.
#[derive(Deserialize)]
#[serde(untagged)]
enum JournalFile {
    All(Vec<Journal>),
    One(Box<Journal>),
}

impl Journal {
    /// The first network's record (its address and published ports).
    pub fn read(state_dir: &Path) -> Result<Option<Journal>> {
        Ok(Journal::read_all(state_dir)?.into_iter().next())
    }

    /// Every network's record; empty for a plain container.
    pub fn read_all(state_dir: &Path) -> Result<Vec<Journal>> {
        let file: Option<JournalFile> =
            crate::jsonfile::read(state_dir, JOURNAL, "network journal")?;
        Ok(match file {
            None => Vec::new(),
            Some(JournalFile::All(all)) => all,
            Some(JournalFile::One(one)) => vec![*one],
        })
    }

    /// Where the host side of this network is.
    pub fn place(&self) -> netns::Place {
        netns::Place {
            id: self.netns,
            cookie: self.netns_cookie,
        }
    }

    /// The name of a step on this network, as `--debug` prints it and the
    /// failpoints know it: the first network's plain, another's with its
    /// device (`network eth1: rules`).
    fn step(&self, what: &str) -> String {
        match self.dev.as_str() {
            "" | "eth0" => format!("network: {what}"),
            dev => format!("network {dev}: {what}"),
        }
    }

    /// Write `all` (an empty list removes the file).
    fn write_all(state_dir: &Path, all: &[Journal]) -> Result<()> {
        if !all.is_empty() {
            return crate::jsonfile::write(state_dir, JOURNAL, "network journal", &all);
        }
        let path = state_dir.join(JOURNAL);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).step_at("remove network journal", &path)
            }
            _ => Ok(()),
        }
    }
}

/// FNV-1a: short stable names (veth, chains) from a container id.
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Use `root` for the lease stores and network definitions (`--net-root`).
pub fn use_net_root(root: &Path) {
    let _ = NET_ROOT.set(absolute(root));
}

pub fn net_root() -> PathBuf {
    if let Some(r) = NET_ROOT.get() {
        return r.clone();
    }
    std::env::var_os(ENV_NET_ROOT)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_NET_ROOT))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Step 1, before the init exists. Nothing for a plain bundle.
pub fn prepare(bundle: &mut Bundle, container: &Container, log: &Logger) -> Result<()> {
    let Some(configs) = Config::from_spec(&bundle.spec)? else {
        return Ok(());
    };
    let id = &container.record.id;
    let root = net_root();
    let here = netns::here()?;
    let owner_dir =
        std::path::absolute(&container.dir).step_at("resolve state dir", &container.dir)?;
    // Every store stays locked until the /etc/hosts files agree with it;
    // taken in the bridges' order, so creates joining the same networks
    // never wait on each other in a circle.
    let mut bridges: Vec<&str> = configs.iter().map(|c| c.bridge.as_str()).collect();
    bridges.sort_unstable();
    let mut locked = std::collections::BTreeMap::new();
    for b in bridges {
        locked.insert(b, Locked::open(&root, b)?);
    }
    let mut journals: Vec<Journal> = Vec::new();
    let mut stores: Vec<Shared> = Vec::new();
    for (n, cfg) in configs.iter().enumerate() {
        let store = &locked[cfg.bridge.as_str()];
        let mut shared = store.read()?.unwrap_or_else(|| Shared {
            subnet: cfg.subnet.to_string(),
            ..Default::default()
        });
        let Lease {
            ip,
            subnet,
            v6,
            ports,
        } = lease(cfg, &root, &mut shared)?;
        journals.push(Journal {
            id: id.clone(),
            net_root: root.clone(),
            bridge: cfg.bridge.clone(),
            netns: here.id,
            netns_cookie: here.cookie,
            ip,
            prefix: subnet.prefix,
            gateway: subnet.gateway(),
            veth: gc::veth_name(id, n == 0, &cfg.bridge),
            dev: format!("eth{n}"),
            ports: ports.clone(),
            v6,
        });
        Journal::write_all(&container.dir, &journals)?;
        log.step(&journals[n].step("journal"));
        shared.leases.insert(ip, id.clone());
        if let Some((ip6, _, _)) = v6 {
            shared.leases6.insert(ip6, id.clone());
        }
        if shared.netns.is_none() {
            shared.netns = Some(here.id);
            shared.netns_cookie = here.cookie;
        }
        shared.owners.insert(id.clone(), owner_dir.clone());
        shared.ports.extend(ports.iter().map(|m| (id.clone(), *m)));
        if !cfg.aliases.is_empty() {
            shared.aliases.insert(id.clone(), cfg.aliases.clone());
        }
        store.write(&shared)?;
        stores.push(shared);
    }
    // Still under the locks: the peers' files and ours agree.
    let own: Vec<IpAddr> = journals
        .iter()
        .flat_map(|j| std::iter::once(j.ip.into()).chain(j.v6.map(|v| v.0.into())))
        .collect();
    let peers: String = stores
        .iter()
        .zip(&configs)
        .map(|(shared, cfg)| etc::peers(shared, &cfg.bridge, id))
        .collect();
    etc::write(bundle, container, &own, &peers)?;
    for (shared, cfg) in stores.iter().zip(&configs) {
        if shared.named {
            etc::refresh_peers(shared, &cfg.bridge, id);
        }
    }
    drop(locked);
    log.step("network: lease, ports, /etc/hosts, /etc/resolv.conf");
    Ok(())
}

/// Under the store's lock, what container on network `cfg` gets: an
/// address (and an IPv6 one on a dual-stack network) and its published
/// ports, host ports picked where asked; nothing recorded yet.
fn lease(cfg: &Config, root: &Path, shared: &mut Shared) -> Result<Lease> {
    if let Some(n) = &cfg.named {
        // `network rm` takes this lock too: the network cannot go between
        // the check and the lease.
        if named::load(root, &n.name)?.is_none() {
            return Err(Error::new("network").detail(format!("network {:?} was removed", n.name)));
        }
        shared.internal = n.internal;
        shared.named = true;
    }
    let subnet = Subnet::parse(&shared.subnet)?;
    if cfg.subnet_given && subnet != cfg.subnet {
        return Err(Error::new("network")
            .detail(format!(
                "bridge {} already uses subnet {subnet}, not {}",
                cfg.bridge, cfg.subnet
            ))
            .hint("leave out the subnet, or use another bridge"));
    }
    let mut ports = cfg.ports.clone();
    for m in ports.iter().filter(|m| !m.picks_host_port()) {
        if let Some((owner, _)) = shared.ports.iter().find(|(_, p)| p.conflicts(m)) {
            return Err(
                Error::new(format!("publish {}/{}", m.host(), m.proto.as_str()))
                    .detail(format!("host port already published by container {owner}"))
                    .hint("pick another host port, or delete that container"),
            );
        }
        m.check_host_free()?;
    }
    // Under the store's lock: no other create picks the same port meanwhile.
    for i in 0..ports.len() {
        if ports[i].picks_host_port() {
            let taken: Vec<Mapping> = shared
                .ports
                .iter()
                .map(|(_, p)| *p)
                .chain(ports.iter().copied())
                .collect();
            ports[i].pick_host_port(&taken)?;
        }
    }
    let ip = subnet
        .allocate(&shared.leases, cfg.address)
        .ok_or_else(|| {
            Error::new("allocate address")
                .detail(format!("subnet {subnet} of bridge {} is full", cfg.bridge))
        })?;
    let v6 = match cfg.named.as_ref().and_then(|n| n.subnet6.as_deref()) {
        None => None,
        Some(s6) => {
            let sub6 = Subnet6::parse(shared.subnet6.get_or_insert_with(|| s6.to_string()))?;
            let ip6 = sub6.allocate(&shared.leases6).ok_or_else(|| {
                Error::new("allocate address")
                    .detail(format!("subnet {sub6} of bridge {} is full", cfg.bridge))
            })?;
            Some((ip6, sub6.prefix, sub6.gateway()))
        }
    };
    Ok(Lease {
        ip,
        subnet,
        v6,
        ports,
    })
}

struct Lease {
    ip: Ipv4Addr,
    subnet: Subnet,
    v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    ports: Vec<Mapping>,
}

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys/net").join(name)
}

fn read_sysctl(name: &str) -> Result<String> {
    let p = sysctl_path(name);
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .step_at("read sysctl", &p)
}

fn write_sysctl(name: &str, value: &str) -> Result<()> {
    let p = sysctl_path(name);
    std::fs::write(&p, value).step_at("write sysctl", &p)
}

/// Step 2: the init `pid` exists and waits for `start`; wire it up.
pub fn attach(container: &Container, pid: Pid, log: &Logger) -> Result<()> {
    let journals = Journal::read_all(&container.dir)?;
    if journals.is_empty() {
        return Ok(());
    }
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let ns = File::open(&ns_path).step_at("open container netns", &ns_path)?;
    for (n, j) in journals.iter().enumerate() {
        attach_one(j, n == 0, &ns, log)?;
    }
    Ok(())
}

/// Wire the container (its network namespace `ns`) to the network of `j`;
/// only the `first` network gives it default routes.
fn attach_one(j: &Journal, first: bool, ns: &File, log: &Logger) -> Result<()> {
    let store = Locked::open(&j.net_root, &j.bridge)?;
    let mut shared = store.read()?.ok_or_else(|| {
        Error::new("network").detail(format!("the lease store of bridge {} is gone", j.bridge))
    })?;
    let subnet = Subnet::parse(&shared.subnet)?;

    // One batch: the shared chains (idempotent, only while the store does
    // not know them in place) and this container's (none without -p). It
    // names the bridge, not its index, so it goes in while the links are
    // made (rules::apply_started); the guard is in before the bridge is up.
    let mut batch = rules::container(&j.bridge, &j.id, j.ip.into(), &j.ports);
    if let Some((ip6, _, _)) = j.v6 {
        batch += &rules::container(&j.bridge, &j.id, ip6.into(), &j.ports);
    }
    if !shared.rules {
        let mut shared_rules = rules::shared(&j.bridge, &subnet, shared.internal);
        if let Some(s6) = &shared.subnet6 {
            shared_rules += &rules::shared6(&j.bridge, &Subnet6::parse(s6)?, shared.internal);
        }
        batch = shared_rules + &batch;
    }
    let pending = (!batch.is_empty())
        .then(|| rules::apply_started(&batch))
        .transpose()?;
    // Whatever the links do, nft is waited for: a batch landing after a
    // failed create's cleanup would outlive it.
    let linked = link(j, first, ns, &store, &mut shared, log);
    let applied = pending.map_or(Ok(()), rules::Pending::wait);
    linked?;
    applied?;
    if !shared.rules {
        shared.rules = true;
        store.write(&shared)?;
    }
    for m in &j.ports {
        rules::flush_conntrack(m);
    }
    log.step(&j.step("rules"));
    Ok(())
}

/// The links of attachment `j`: the bridge (made if missing, journalled in
/// the store first), its addresses and sysctls, the veth pair with its
/// inner end configured in the container's namespace `ns`.
fn link(
    j: &Journal,
    first: bool,
    ns: &File,
    store: &Locked,
    shared: &mut Shared,
    log: &Logger,
) -> Result<()> {
    let mut nl = Netlink::open()?;
    // The bridge, its address, and what the host must allow.
    let br = match nl.link_index(&j.bridge)? {
        Some(i) => i,
        None => {
            shared.bridge_made = true;
            store.write(shared)?;
            log.step(&j.step("bridge journalled"));
            nl.create_bridge(&j.bridge)?;
            nl.link_index(&j.bridge)?.ok_or_else(|| {
                Error::new(format!("create bridge {}", j.bridge)).detail("it vanished")
            })?
        }
    };
    nl.add_addr(br, j.gateway.into(), j.prefix, &j.bridge)?;
    if let Some((_, prefix6, gateway6)) = j.v6 {
        nl.add_addr(br, gateway6.into(), prefix6, &j.bridge)?;
    }
    nl.set_up(br, &j.bridge)?;
    // 127.0.0.1:HOSTPORT is DNATed out of the bridge; the guard rule (rules.rs)
    // keeps anything arriving on the bridge away from 127.0.0.0/8.
    write_sysctl(&format!("ipv4/conf/{}/route_localnet", j.bridge), "1")?;
    forwarding::on(&j.net_root, &j.bridge, &forwarding::IPV4)?;
    if j.v6.is_some() {
        forwarding::on(&j.net_root, &j.bridge, &forwarding::IPV6)?;
    }
    log.step(&j.step("bridge, sysctls"));

    // The veth pair, its inner end born in the container's namespace.
    nl.create_veth(&j.veth, br, &j.dev, ns)?;
    let host_end = nl
        .link_index(&j.veth)?
        .ok_or_else(|| Error::new(format!("create veth {}", j.veth)).detail("it vanished"))?;
    nl.set_hairpin(host_end, &j.veth)?;
    let mut inner = Netlink::open_in(ns)?;
    let dev = inner.link_index(&j.dev)?.ok_or_else(|| {
        Error::new(format!("configure {}", j.dev)).detail("not in the container namespace")
    })?;
    if first {
        inner.set_up(1, "lo")?;
    }
    inner.add_addr(dev, j.ip.into(), j.prefix, &j.dev)?;
    if let Some((ip6, prefix6, _)) = j.v6 {
        inner.add_addr(dev, ip6.into(), prefix6, &j.dev)?;
    }
    inner.set_up(dev, &j.dev)?;
    log.step(&j.step("veth, address"));
    if first {
        inner.add_default_route(j.gateway.into(), dev)?;
        if let Some((_, _, gateway6)) = j.v6 {
            inner.add_default_route(gateway6.into(), dev)?;
        }
    }
    log.step(&j.step("veth, address, route"));
    Ok(())
}

/// Undo everything `prepare` and `attach` journalled, the last network
/// joined first; whatever is already gone is fine. Nothing to do (no
/// journal) for a plain container.
pub fn cleanup(state_dir: &Path, log: &Logger) -> Result<()> {
    let all = Journal::read_all(state_dir)?;
    let mut left = all.clone();
    let mut first_err = None;
    for j in all.iter().rev() {
        match release(j, log) {
            // What failed stays in the journal for a retry.
            Err(e) => {
                first_err.get_or_insert(e);
            }
            Ok(()) => {
                left.retain(|k| k.bridge != j.bridge);
                Journal::write_all(state_dir, &left)?;
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Undo the objects of journal `j` (also what `gc` rebuilds for a lease
/// whose container is gone). A thread of its own: it may enter another
/// network namespace.
pub fn release(j: &Journal, log: &Logger) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| cleanup_in(j, log))
            .join()
            .map_err(|_| Error::new("network cleanup").detail("thread panicked"))?
    })
}

fn cleanup_in(j: &Journal, log: &Logger) -> Result<()> {
    let reachable = j.place().enter()?;
    let store = Locked::open(&j.net_root, &j.bridge)?;
    let mut shared = store.read()?.unwrap_or_default();
    let mut first_err = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    if shared.leases.get(&j.ip) == Some(&j.id) {
        shared.leases.remove(&j.ip);
        shared.owners.remove(&j.id);
    }
    if let Some((ip6, _, _)) = j.v6 {
        if shared.leases6.get(&ip6) == Some(&j.id) {
            shared.leases6.remove(&ip6);
        }
    }
    shared.ports.retain(|(id, _)| id != &j.id);
    shared.aliases.remove(&j.id);
    let last = shared.leases.is_empty();
    if reachable {
        // The rules go while the links go (rules.rs, apply_started).
        let batch = if last {
            rules::remove_all(&j.bridge)
        } else if !j.ports.is_empty() {
            rules::remove_container(&j.bridge, &j.id, j.v6.is_some())
        } else {
            String::new()
        };
        let pending = (!batch.is_empty())
            .then(|| rules::apply_started(&batch))
            .transpose();
        let mut nl = Netlink::open();
        if let (Ok(nl), false) = (nl.as_mut(), j.veth.is_empty()) {
            // Deleting one end deletes the pair (and it is gone already if
            // the container's namespace died).
            keep(nl.del_link(&j.veth).map(drop));
            log.step(&format!("delete: {}", j.step("veth")));
        }
        keep(pending.and_then(|p| p.map_or(Ok(()), rules::Pending::wait)));
        for m in &j.ports {
            rules::flush_conntrack(m);
        }
        log.step(&format!("delete: {}", j.step("rules")));
        match nl {
            Err(e) => keep(Err(e)),
            Ok(mut nl) if last => {
                if shared.bridge_made {
                    keep(nl.del_link(&j.bridge).map(drop));
                }
                let legacy = shared.ip_forward_prev.as_deref();
                keep(forwarding::off(
                    &j.net_root,
                    &j.bridge,
                    &forwarding::IPV4,
                    legacy,
                ));
                if shared.subnet6.is_some() {
                    keep(forwarding::off(
                        &j.net_root,
                        &j.bridge,
                        &forwarding::IPV6,
                        None,
                    ));
                }
            }
            Ok(_) => {}
        }
    }
    if shared.named {
        etc::refresh_peers(&shared, &j.bridge, &j.id);
    }
    keep(if last {
        store.remove()
    } else {
        store.write(&shared)
    });
    match first_err {
        Some(e) => Err(e.within("network cleanup")),
        None => Ok(()),
    }
}

/// For `state`: the container's address and published ports, if any (the
/// first network's), and with several networks each one's.
pub fn describe(state_dir: &Path) -> Option<serde_json::Value> {
    let all = Journal::read_all(state_dir).ok()?;
    let j = all.first()?;
    let mut out = serde_json::json!({
        "mode": "bridge",
        "bridge": j.bridge,
        "ip": j.ip.to_string(),
        "gateway": j.gateway.to_string(),
        "ip6": j.v6.map(|(ip, _, _)| ip.to_string()),
        "ports": j.ports.iter().map(Mapping::describe).collect::<Vec<_>>(),
    });
    if all.len() > 1 {
        out["networks"] = all
            .iter()
            .map(|j| {
                serde_json::json!({
                    "bridge": j.bridge,
                    "device": j.dev,
                    "ip": j.ip.to_string(),
                    "ip6": j.v6.map(|(ip, _, _)| ip.to_string()),
                })
            })
            .collect();
    }
    Some(out)
}
