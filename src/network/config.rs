//! What a bundle asks of the network: annotations, with the command line's
//! extras (`--network`, `-p`, ...) merged into them first, so config.json
//! can say the same. `Config::from_spec` is the one reader; a plain bundle
//! (no annotation) gives None and pays nothing.
//!
//! `dev.hull.network` is `bridge`, `none`, `host`, or one or more networks
//! (`bridge` or names from `network create`) joined by commas: the first
//! gets eth0, the default routes and the published ports; each other one
//! an eth1, eth2, ... with its address and names but no route out.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use super::ipam::{self, Subnet};
use super::ports::{self, Mapping};
use super::{etc, named, net_root, use_net_root};
use super::{ANN_ADDRESS, ANN_ALIASES, ANN_BRIDGE, ANN_EXPOSE, ANN_NETWORK, ANN_PORTS};
use super::{ANN_PUBLISH_ALL, ANN_SUBNET, DEFAULT_BRIDGE};
use crate::bundle::Bundle;
use crate::error::{Error, Result};

/// The network extras of `create`/`run`, as given on the command line.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Extras {
    /// `--network`: one mode or network name, or several names joined by
    /// commas (`--network a --network b`), as in the annotation.
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

/// One network a bundle joins, from its annotations.
#[derive(Debug)]
pub struct Config {
    pub bridge: String,
    pub subnet: Subnet,
    /// The subnet was asked for (not the default): it must match the bridge's.
    pub subnet_given: bool,
    /// Published ports: the first network's only.
    pub ports: Vec<Mapping>,
    /// The address to take again: the first network's only.
    pub address: Option<Ipv4Addr>,
    /// A named network (`network create`): its containers find each other
    /// by name, and it is isolated from every other hull network.
    pub named: Option<named::Network>,
    /// Other names the container answers to on a named network.
    pub aliases: Vec<String>,
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
    /// The networks of a bundle, in order; None for a bundle that keeps
    /// runc's behaviour (no network, `none`, `host`).
    pub fn from_spec(spec: &Spec) -> Result<Option<Vec<Config>>> {
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
        let modes: Vec<&str> = get(ANN_NETWORK)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect();
        let runc_like = |m: &str| matches!(m, "none" | "default" | "host");
        if modes.iter().all(|m| runc_like(m)) {
            if modes.len() > 1 {
                return Err(Error::new("network")
                    .detail(format!(
                        "{ANN_NETWORK} {:?} names several modes",
                        modes.join(",")
                    ))
                    .hint("give one of none, host, or networks (bridge or names)"));
            }
            if !ports_spec.is_empty() || publish_all {
                return Err(Error::new("publish")
                    .detail("published ports need a bridge network")
                    .hint("add --network bridge (annotation dev.hull.network: \"bridge\")"));
            }
            return Ok(None);
        }
        if let Some(m) = modes.iter().find(|m| runc_like(m)) {
            return Err(Error::new("network")
                .detail(format!("{m} cannot be combined with other networks"))
                .hint("give either none or host alone, or only networks (bridge or names)"));
        }
        if let Some((i, m)) = modes
            .iter()
            .enumerate()
            .find(|(i, m)| modes[..*i].contains(m))
        {
            return Err(Error::new("network")
                .detail(format!(
                    "network {m:?} given twice (at {} and {})",
                    i,
                    i + 1
                ))
                .hint("join each network once"));
        }
        let bridge_given = get(ANN_BRIDGE).is_some_and(|b| !b.is_empty());
        if bridge_given && !modes.contains(&"bridge") {
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
        let mut configs: Vec<Config> = Vec::with_capacity(modes.len());
        for mode in modes {
            let cfg = Config::one(mode, get(ANN_BRIDGE), get(ANN_SUBNET), &aliases)?;
            if configs.iter().any(|c| c.bridge == cfg.bridge) {
                return Err(Error::new("network")
                    .detail(format!("two networks on one bridge {}", cfg.bridge))
                    .hint("join each network once"));
            }
            configs.push(cfg);
        }
        configs[0].ports = ports;
        configs[0].address = address;
        Ok(Some(configs))
    }

    /// Network `mode` (`bridge` or a name) without ports or address.
    fn one(
        mode: &str,
        bridge: Option<&str>,
        subnet: Option<&str>,
        aliases: &[String],
    ) -> Result<Config> {
        let named = match mode {
            "bridge" => None,
            name => Some(named::load(&net_root(), name)?.ok_or_else(|| {
                Error::new("network")
                    .detail(format!("no network {name:?}"))
                    .hint("create it with `hull network create NAME`, or use bridge, none or host")
            })?),
        };
        let bridge = match &named {
            Some(n) => n.bridge.clone(),
            None => bridge
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
        let (subnet, subnet_given) = match (&named, subnet.filter(|s| !s.is_empty())) {
            (Some(n), _) => (Subnet::parse(&n.subnet)?, true),
            (None, Some(s)) => (Subnet::parse(s)?, true),
            (None, None) => (Subnet::parse(ipam::DEFAULT_SUBNET)?, false),
        };
        Ok(Config {
            bridge,
            subnet,
            subnet_given,
            ports: Vec::new(),
            address: None,
            named,
            aliases: aliases.to_vec(),
        })
    }
}
