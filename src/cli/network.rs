//! Network flags of `create`/`run` (--network, -p, --subnet, --bridge,
//! --net-root), the `port` command and `network create|ls|inspect|rm|prune`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::{Error, Result};
use crate::network::named::{self, Network};
use crate::network::{Extras, Journal};
use crate::state::Store;

/// The network flags of `create` and `run`.
#[derive(Args, Debug, Default, Clone)]
pub struct NetworkArgs {
    /// Network mode: "bridge" (veth on a host bridge, an address, NAT),
    /// "none" (a network namespace of its own, loopback only), "host" (the
    /// caller's network namespace), or the name of a network made with
    /// `hull network create`; repeatable to join several networks (bridge
    /// or names: the first gets eth0, the default route and the published
    /// ports, the others eth1, ...); without it the container gets runc's
    /// behaviour (config.json's linux.namespaces)
    #[arg(long, value_name = "MODE")]
    pub network: Vec<String>,
    /// Publish a port: [[HOSTIP:]HOSTPORT:]CTRPORT[/tcp|/udp], ranges as
    /// 8080-8082:80-82; no host port (80, 127.0.0.1::80): hull picks a free
    /// one (see `hull port ID`); repeatable; implies --network bridge
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Publish every exposed port (--expose, annotation dev.hull.expose) on
    /// a free host port; implies --network bridge
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a container port for -P: CTRPORT[/tcp|/udp] or a range;
    /// repeatable
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Subnet of the bridge when hull creates it (default 10.89.0.0/16)
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Name of the host bridge (default hull0)
    #[arg(long, value_name = "NAME")]
    pub bridge: Option<String>,
    /// Directory of the lease store (default $HULL_NET_ROOT or /run/hull-net)
    #[arg(long, value_name = "DIR")]
    pub net_root: Option<PathBuf>,
    /// Another name the container answers to on a named network; repeatable
    #[arg(long = "network-alias", value_name = "NAME")]
    pub aliases: Vec<String>,
}

impl NetworkArgs {
    pub fn extras(&self) -> Extras {
        Extras {
            mode: (!self.network.is_empty()).then(|| self.network.join(",")),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
            aliases: self.aliases.clone(),
            subnet: self.subnet.clone(),
            bridge: self.bridge.clone(),
            net_root: self.net_root.clone(),
            address: None,
        }
    }
}

/// `hull port ID`: one line per published port, `80/tcp -> 0.0.0.0:8080`.
pub fn port(root: &Path, id: &str) -> Result<()> {
    let container = Store::new(root).peek(id)?;
    if let Some(j) = Journal::read(&container.dir)? {
        for m in &j.ports {
            println!("{}", m.describe());
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct NetworkCmdArgs {
    /// Directory of the lease stores and network definitions (default
    /// $HULL_NET_ROOT or /run/hull-net)
    #[arg(long, value_name = "DIR")]
    net_root: Option<PathBuf>,
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Subcommand)]
enum NetworkCommand {
    /// Define a network: its containers reach each other by name and no
    /// other network's containers
    Create {
        /// Its IPv4 subnet (default: the first free 10.N.0.0/16)
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// No way out: no outbound NAT, nothing forwarded off the subnet
        #[arg(long)]
        internal: bool,
        /// Dual stack: containers also get an IPv6 address
        #[arg(long)]
        ipv6: bool,
        /// Its IPv6 subnet (implies --ipv6; default: the first free
        /// fd68:756c:6c00:N::/64)
        #[arg(long, value_name = "CIDR")]
        subnet6: Option<String>,
        name: String,
    },
    /// List networks (bridge, none and host are built in)
    Ls {
        /// Only the names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print networks as JSON, with their containers
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (refused while a container uses one)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every network no container uses
    Prune {
        /// Accepted for Docker compatibility; hull never asks
        #[arg(short, long)]
        force: bool,
    },
}

/// `hull network …`.
pub fn network(args: NetworkCmdArgs) -> Result<()> {
    if let Some(root) = &args.net_root {
        crate::network::use_net_root(root);
    }
    let root = crate::network::net_root();
    match args.command {
        NetworkCommand::Create {
            subnet,
            internal,
            ipv6,
            subnet6,
            name,
        } => {
            let asked = named::Asked {
                subnet: subnet.as_deref(),
                ipv6,
                subnet6: subnet6.as_deref(),
                internal,
            };
            named::create(&root, &name, asked)?;
            println!("{name}");
        }
        NetworkCommand::Ls { quiet } => {
            let all = named::all(&root);
            if quiet {
                for n in named::BUILTIN
                    .iter()
                    .copied()
                    .chain(all.iter().map(|n| n.name.as_str()))
                {
                    println!("{n}");
                }
                return Ok(());
            }
            println!(
                "{:<24} {:<16} {:<18} {:<9} CONTAINERS",
                "NAME", "BRIDGE", "SUBNET", "INTERNAL"
            );
            let default = crate::network::ipam::DEFAULT_SUBNET;
            let bridge = crate::network::DEFAULT_BRIDGE;
            let on_default = named::users(&root, bridge)?.len();
            println!(
                "{:<24} {bridge:<16} {default:<18} {:<9} {on_default}",
                "bridge", "no"
            );
            println!("{:<24} {:<16} {:<18} {:<9} -", "none", "-", "-", "no");
            println!("{:<24} {:<16} {:<18} {:<9} -", "host", "-", "-", "no");
            for n in &all {
                let users = named::users(&root, &n.bridge)?;
                let internal = if n.internal { "yes" } else { "no" };
                println!(
                    "{:<24} {:<16} {:<18} {internal:<9} {}",
                    n.name,
                    n.bridge,
                    n.subnet,
                    users.len()
                );
            }
        }
        NetworkCommand::Inspect { names } => {
            let mut out = Vec::new();
            for name in &names {
                let n = existing(&root, name, "network inspect")?;
                out.push(describe(&root, &n)?);
            }
            println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        }
        NetworkCommand::Rm { names } => {
            for name in &names {
                named::remove(&root, name)?;
                println!("{name}");
            }
        }
        NetworkCommand::Prune { force: _ } => {
            for n in named::all(&root) {
                if named::users(&root, &n.bridge)?.is_empty()
                    && named::remove(&root, &n.name).is_ok()
                {
                    println!("{}", n.name);
                }
            }
        }
    }
    Ok(())
}

fn existing(root: &Path, name: &str, step: &str) -> Result<Network> {
    named::load(root, name)?.ok_or_else(|| {
        Error::new(step)
            .detail(format!("no network {name:?}"))
            .hint("`hull network ls` lists them")
    })
}

fn describe(root: &Path, n: &Network) -> Result<serde_json::Value> {
    Ok(json!({
        "Name": n.name,
        "Bridge": n.bridge,
        "Subnet": n.subnet,
        "Subnet6": n.subnet6,
        "Gateway": crate::network::ipam::Subnet::parse(&n.subnet)?.gateway().to_string(),
        "Internal": n.internal,
        "Created": n.created,
        "Containers": named::users(root, &n.bridge)?,
    }))
}
