//! Container networking beyond runc: `--network bridge` gives the container
//! a veth pair on a host bridge (default `hull0`), an address from a
//! file-locked lease store, a default route, /etc/hosts, /etc/hostname and
//! /etc/resolv.conf, outbound NAT, and published ports (`-p`) through kernel
//! DNAT.
//!
//! A plain bundle pays nothing: `Config::from_spec` finds no annotation and
//! every entry point returns at once, with no file written.
//!
//! Order on create (each object is in a journal before it exists):
//! 1. `prepare` (before the init is cloned): under the store lock, check the
//!    host ports, journal `<state dir>/network.json`, then take the lease
//!    and record the ports; write hosts/hostname and bind them in the spec.
//! 2. `attach` (once the init is ready, before `create` returns): bridge
//!    (recorded as made by hull first), sysctls (previous values recorded
//!    first), the veth pair with `eth0` made directly in the container's
//!    namespace, address and routes there, then one nftables batch.
//!
//! `cleanup` (from `create::destroy`: failed creates, `delete`, `delete
//! --force` after a crash) undoes whatever exists and ignores the rest. It
//! runs in the network namespace hull ran in at create time, found again
//! through /run/netns when `delete` runs elsewhere; when that namespace is
//! gone, so are the veth, the bridge and the rules, and only the lease is
//! released. The last container of a bridge takes the bridge, the table and
//! the sysctls with it.
//!
//! In config.json: annotations `dev.hull.network: "bridge"`,
//! `dev.hull.ports: "8080:80,127.0.0.1:5353:53/udp"`,
//! `dev.hull.network.subnet: "10.89.0.0/16"`, `dev.hull.network.bridge`.

mod etc;
mod forwarding;
pub mod gc;
pub mod ipam;
pub mod named;
pub mod netlink;
pub mod ports;
pub mod rules;
mod store;

use std::fs::File;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::state::Container;
use ipam::{Subnet, Subnet6};
use netlink::Netlink;
use ports::Mapping;
use store::{Locked, Shared};

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
const PEER: &str = "eth0";

static NET_ROOT: OnceLock<PathBuf> = OnceLock::new();

/// The network extras of `create`/`run`, as given on the command line.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Extras {
    pub mode: Option<String>,
    pub publish: Vec<String>,
    #[serde(default)]
    pub publish_all: bool,
    #[serde(default)]
    pub expose: Vec<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub subnet: Option<String>,
    pub bridge: Option<String>,
    pub net_root: Option<PathBuf>,
    /// The address to take again if it is free (`restart`).
    pub address: Option<Ipv4Addr>,
}

/// What a bundle asks for, from its annotations.
#[derive(Debug)]
pub struct Config {
    pub bridge: String,
    pub subnet: Subnet,
    /// The subnet was asked for (not the default): it must match the bridge's.
    pub subnet_given: bool,
    pub ports: Vec<Mapping>,
    pub address: Option<Ipv4Addr>,
    /// A named network (`network create`): its containers find each other
    /// by name, and it is isolated from every other hull network.
    pub named: Option<named::Network>,
    /// Other names the container answers to on a named network.
    pub aliases: Vec<String>,
}

/// The container's record of its network objects: `<state dir>/network.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    pub id: String,
    pub net_root: PathBuf,
    pub bridge: String,
    /// (dev, inode) of the network namespace hull ran in: where the bridge,
    /// the host end of the veth and the rules are.
    pub netns: (u64, u64),
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Host end of the veth pair.
    pub veth: String,
    pub ports: Vec<Mapping>,
    /// The IPv6 side of a dual-stack network: address, prefix, gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
}

impl Journal {
    pub fn read(state_dir: &Path) -> Result<Option<Journal>> {
        crate::jsonfile::read(state_dir, JOURNAL, "network journal")
    }

    fn write(&self, state_dir: &Path) -> Result<()> {
        crate::jsonfile::write(state_dir, JOURNAL, "network journal", self)
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

/// Merge `--network`, `-p`, `--subnet`, `--bridge` into the annotations
/// (so a bundle can say the same in config.json) and check the result.
/// `-p` without `--network` means bridge, as in Docker.
pub fn merge_cli(bundle: &mut Bundle, extras: &Extras) -> Result<()> {
    if let Some(root) = &extras.net_root {
        use_net_root(root);
    }
    let mut ann = bundle.spec.annotations().clone().unwrap_or_default();
    let before = ann.clone();
    let publishes = !extras.publish.is_empty() || extras.publish_all;
    if let Some(mode) = &extras.mode {
        ann.insert(ANN_NETWORK.into(), mode.clone());
    } else if publishes && !ann.contains_key(ANN_NETWORK) {
        ann.insert(ANN_NETWORK.into(), "bridge".into());
    }
    for (key, more) in [(ANN_PORTS, &extras.publish), (ANN_EXPOSE, &extras.expose)] {
        if more.is_empty() {
            continue;
        }
        let mut list: Vec<String> = ann
            .get(key)
            .map(|p| p.split(',').map(String::from).collect())
            .unwrap_or_default();
        list.extend(more.iter().cloned());
        list.retain(|s| !s.trim().is_empty());
        ann.insert(key.into(), list.join(","));
    }
    if extras.publish_all {
        ann.insert(ANN_PUBLISH_ALL.into(), "true".into());
    }
    if let Some(s) = &extras.subnet {
        ann.insert(ANN_SUBNET.into(), s.clone());
    }
    if let Some(b) = &extras.bridge {
        ann.insert(ANN_BRIDGE.into(), b.clone());
    }
    if !extras.aliases.is_empty() {
        ann.insert(ANN_ALIASES.into(), extras.aliases.join(","));
    }
    if let Some(ip) = extras.address {
        ann.insert(ANN_ADDRESS.into(), ip.to_string());
    }
    let mode = ann.get(ANN_NETWORK).map(|m| m.trim().to_string());
    if ann != before {
        bundle.spec.set_annotations(Some(ann));
    }
    match mode.as_deref() {
        Some("none") => set_network_namespace(&mut bundle.spec, true)?,
        Some("host") => set_network_namespace(&mut bundle.spec, false)?,
        _ => {}
    }
    Config::from_spec(&bundle.spec).map(drop)
}

/// Docker's `--network none` (`own`: a network namespace of the container's
/// own, loopback only) and `--network host` (none: the caller's), whatever
/// linux.namespaces said about the network. Without a `linux` section the
/// bundle is refused later anyway.
fn set_network_namespace(spec: &mut Spec, own: bool) -> Result<()> {
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Network);
    if own {
        let ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .build()
            .map_err(|e| Error::new("network").detail(e.to_string()))?;
        namespaces.push(ns);
    }
    linux.set_namespaces(Some(namespaces));
    spec.set_linux(Some(linux));
    Ok(())
}

impl Config {
    /// None for a bundle that keeps runc's behaviour.
    pub fn from_spec(spec: &Spec) -> Result<Option<Config>> {
        let ann = spec.annotations().as_ref();
        let get = |k: &str| ann.and_then(|a| a.get(k)).map(|v| v.trim());
        let ports_spec = get(ANN_PORTS).unwrap_or("");
        let publish_all = match get(ANN_PUBLISH_ALL) {
            None | Some("" | "false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::new("publish")
                    .detail(format!("{ANN_PUBLISH_ALL} {other:?} is not true or false")))
            }
        };
        let named = match get(ANN_NETWORK) {
            None | Some("" | "none" | "default" | "host") => {
                if !ports_spec.is_empty() || publish_all {
                    return Err(Error::new("publish")
                        .detail("published ports need a bridge network")
                        .hint("add --network bridge (annotation dev.hull.network: \"bridge\")"));
                }
                return Ok(None);
            }
            Some("bridge") => None,
            Some(other) => match named::load(&net_root(), other)? {
                Some(n) => Some(n),
                None => return Err(Error::new("network")
                    .detail(format!("no network {other:?}"))
                    .hint(
                        "create it with `hull network create NAME`, or use bridge, none or host",
                    )),
            },
        };
        if named.is_some() && get(ANN_BRIDGE).is_some_and(|b| !b.is_empty()) {
            return Err(Error::new("network")
                .detail("--bridge names the default network's bridge, not a named network's")
                .hint("leave out --bridge (annotation dev.hull.network.bridge)"));
        }
        let aliases: Vec<String> = get(ANN_ALIASES)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        if let Some(bad) = aliases.iter().find(|a| !etc::is_host_name(a)) {
            return Err(Error::new("network alias")
                .detail(format!("{bad:?} is not a host name"))
                .hint("letters, digits, - and ., up to 253 characters"));
        }
        let bridge = match &named {
            Some(n) => n.bridge.clone(),
            None => get(ANN_BRIDGE)
                .filter(|b| !b.is_empty())
                .unwrap_or(DEFAULT_BRIDGE)
                .to_string(),
        };
        let ok_name = bridge.len() <= 15
            && bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok_name {
            return Err(Error::new("network")
                .detail(format!("bad bridge name {bridge:?}"))
                .hint("up to 15 letters, digits, _ and -"));
        }
        let (subnet, subnet_given) = match (&named, get(ANN_SUBNET).filter(|s| !s.is_empty())) {
            (Some(n), _) => (Subnet::parse(&n.subnet)?, true),
            (None, Some(s)) => (Subnet::parse(s)?, true),
            (None, None) => (Subnet::parse(ipam::DEFAULT_SUBNET)?, false),
        };
        let mut ports = ports::parse_all(ports_spec.split(','))?;
        let exposed: Vec<Mapping> = get(ANN_EXPOSE)
            .unwrap_or("")
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(ports::parse_exposed)
            .collect::<Result<_>>()?;
        if publish_all {
            // A port `-p` maps already keeps that mapping.
            for e in exposed {
                let mapped = ports.iter().any(|m| {
                    m.proto == e.proto
                        && m.container_port <= e.container_end()
                        && e.container_port <= m.container_end()
                });
                if !mapped {
                    ports.push(e);
                }
            }
            ports::check_count(&ports, "-P")?;
        }
        let address = match get(ANN_ADDRESS).filter(|s| !s.is_empty()) {
            None => None,
            Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| {
                Error::new("network").detail(format!("{ANN_ADDRESS} {a:?} is not an IPv4 address"))
            })?),
        };
        let new_netns = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
            .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none());
        if !new_netns {
            return Err(Error::new("network")
                .detail("a bridge network needs a new network namespace")
                .hint("add {\"type\": \"network\"} without a path to linux.namespaces"));
        }
        Ok(Some(Config {
            bridge,
            subnet,
            subnet_given,
            ports,
            address,
            named,
            aliases,
        }))
    }
}

fn netns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn own_netns() -> Result<(u64, u64)> {
    let p = Path::new("/proc/thread-self/ns/net");
    netns_id(p).ok_or_else(|| Error::new("identify network namespace").at(p))
}

/// Step 1, before the init exists. Nothing for a plain bundle.
pub fn prepare(bundle: &mut Bundle, container: &Container, log: &Logger) -> Result<()> {
    let Some(cfg) = Config::from_spec(&bundle.spec)? else {
        return Ok(());
    };
    let id = container.record.id.clone();
    let root = net_root();
    let store = Locked::open(&root, &cfg.bridge)?;
    let mut shared = store.read()?.unwrap_or_else(|| Shared {
        subnet: cfg.subnet.to_string(),
        ..Default::default()
    });
    if let Some(n) = &cfg.named {
        // `network rm` takes this lock too: the network cannot go between
        // the check and the lease.
        if named::load(&root, &n.name)?.is_none() {
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
    let journal = Journal {
        id: id.clone(),
        net_root: root,
        bridge: cfg.bridge.clone(),
        netns: own_netns()?,
        ip,
        prefix: subnet.prefix,
        gateway: subnet.gateway(),
        veth: gc::veth_name(&id),
        ports: ports.clone(),
        v6,
    };
    journal.write(&container.dir)?;
    log.step("network: journal");
    shared.leases.insert(ip, id.clone());
    if let Some((ip6, _, _)) = v6 {
        shared.leases6.insert(ip6, id.clone());
    }
    shared.netns.get_or_insert(journal.netns);
    shared.owners.insert(
        id.clone(),
        std::path::absolute(&container.dir).step_at("resolve state dir", &container.dir)?,
    );
    shared.ports.extend(ports.iter().map(|m| (id.clone(), *m)));
    if !cfg.aliases.is_empty() {
        shared.aliases.insert(id.clone(), cfg.aliases.clone());
    }
    store.write(&shared)?;
    // Still under the lock: the peers' files and ours agree.
    etc::write(
        bundle,
        container,
        ip,
        v6.map(|v| v.0),
        &etc::peers(&shared, &id),
    )?;
    if shared.named {
        etc::refresh_peers(&shared, &id);
    }
    drop(store);
    log.step("network: lease, ports, /etc/hosts, /etc/resolv.conf");
    Ok(())
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
    let Some(j) = Journal::read(&container.dir)? else {
        return Ok(());
    };
    let store = Locked::open(&j.net_root, &j.bridge)?;
    let mut shared = store.read()?.ok_or_else(|| {
        Error::new("network").detail(format!("the lease store of bridge {} is gone", j.bridge))
    })?;
    let subnet = Subnet::parse(&shared.subnet)?;
    let mut nl = Netlink::open()?;

    // The bridge, its address, and what the host must allow.
    let br = match nl.link_index(&j.bridge)? {
        Some(i) => i,
        None => {
            shared.bridge_made = true;
            store.write(&shared)?;
            log.step("network: bridge journalled");
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
    log.step("network: bridge, sysctls");

    // The veth pair, eth0 born in the container's namespace.
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let ns = File::open(&ns_path).step_at("open container netns", &ns_path)?;
    nl.create_veth(&j.veth, br, PEER, &ns)?;
    let host_end = nl
        .link_index(&j.veth)?
        .ok_or_else(|| Error::new(format!("create veth {}", j.veth)).detail("it vanished"))?;
    nl.set_hairpin(host_end, &j.veth)?;
    let mut inner = Netlink::open_in(&ns)?;
    let eth0 = inner
        .link_index(PEER)?
        .ok_or_else(|| Error::new("configure eth0").detail("not in the container namespace"))?;
    inner.set_up(1, "lo")?;
    inner.add_addr(eth0, j.ip.into(), j.prefix, PEER)?;
    if let Some((ip6, prefix6, _)) = j.v6 {
        inner.add_addr(eth0, ip6.into(), prefix6, PEER)?;
    }
    inner.set_up(eth0, PEER)?;
    log.step("network: veth, eth0");
    inner.add_default_route(j.gateway.into(), eth0)?;
    if let Some((_, _, gateway6)) = j.v6 {
        inner.add_default_route(gateway6.into(), eth0)?;
    }
    log.step("network: veth, eth0, route");

    // One batch: the shared chains (idempotent, only while the store does
    // not know them in place) and this container's (none without -p).
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
    if !batch.is_empty() {
        rules::apply(&batch)?;
    }
    if !shared.rules {
        shared.rules = true;
        store.write(&shared)?;
    }
    for m in &j.ports {
        rules::flush_conntrack(m);
    }
    log.step("network: rules");
    Ok(())
}

/// Find the named network namespace (under /run/netns) whose identity is
/// `id`. Only named ones: nsfs inode numbers are reused once a namespace
/// dies, and an unnamed match could be some container's namespace.
fn find_netns(id: (u64, u64)) -> Option<File> {
    std::fs::read_dir("/run/netns")
        .ok()?
        .flatten()
        .find(|e| netns_id(&e.path()) == Some(id))
        .and_then(|e| File::open(e.path()).ok())
}

/// Undo everything `prepare` and `attach` journalled; whatever is already
/// gone is fine. Nothing to do (no journal) for a plain container.
pub fn cleanup(state_dir: &Path, log: &Logger) -> Result<()> {
    let Some(j) = Journal::read(state_dir)? else {
        return Ok(());
    };
    release(&j, log)?;
    // Only once everything is undone: a failure keeps the journal for a retry.
    let path = state_dir.join(JOURNAL);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).step_at("remove network journal", &path)
        }
        _ => Ok(()),
    }
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

/// Move the calling thread into the network namespace `id` (hull's own, or
/// a named one). False when it is gone, and with it veths, bridge and rules.
fn enter_netns(id: (u64, u64)) -> Result<bool> {
    if own_netns().ok() == Some(id) {
        Ok(true)
    } else if let Some(ns) = find_netns(id) {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .step("enter network namespace of the container's host side")?;
        Ok(true)
    } else {
        Ok(false)
    }
}

fn cleanup_in(j: &Journal, log: &Logger) -> Result<()> {
    let reachable = enter_netns(j.netns)?;
    let store = Locked::open(&j.net_root, &j.bridge)?;
    let mut shared = store.read()?.unwrap_or_default();
    let mut first_err = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    };
    let mut nl = if reachable {
        Some(Netlink::open()?)
    } else {
        None
    };
    if let Some(nl) = nl.as_mut().filter(|_| !j.veth.is_empty()) {
        // Deleting one end deletes the pair (and it is gone already if the
        // container's namespace died).
        keep(nl.del_link(&j.veth).map(drop));
        log.step("delete: network: veth");
    }
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
    if shared.named {
        etc::refresh_peers(&shared, &j.id);
    }
    let last = shared.leases.is_empty();
    if let Some(nl) = nl.as_mut() {
        if last {
            keep(rules::apply(&rules::remove_all(&j.bridge)));
        } else if !j.ports.is_empty() {
            keep(rules::apply(&rules::remove_container(
                &j.bridge,
                &j.id,
                j.v6.is_some(),
            )));
        }
        for m in &j.ports {
            rules::flush_conntrack(m);
        }
        log.step("delete: network: rules");
        if last {
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

/// For `state`: the container's address and published ports, if any.
pub fn describe(state_dir: &Path) -> Option<serde_json::Value> {
    let j = Journal::read(state_dir).ok()??;
    Some(serde_json::json!({
        "mode": "bridge",
        "bridge": j.bridge,
        "ip": j.ip.to_string(),
        "gateway": j.gateway.to_string(),
        "ip6": j.v6.map(|(ip, _, _)| ip.to_string()),
        "ports": j.ports.iter().map(Mapping::describe).collect::<Vec<_>>(),
    }))
}
