//! Network flags of `create`/`run` (--network, -p, --subnet, --bridge,
//! --net-root) and the `port` command.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::Result;
use crate::network::{Extras, Journal};
use crate::state::Store;

/// The network flags of `create` and `run`.
#[derive(Args, Debug, Default, Clone)]
pub struct NetworkArgs {
    /// Network mode: "bridge" (veth on a host bridge, an address, NAT),
    /// "none" (a network namespace of its own, loopback only), "host" (the
    /// caller's network namespace); without it the container gets runc's
    /// behaviour (config.json's linux.namespaces)
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
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
}

impl NetworkArgs {
    pub fn extras(&self) -> Extras {
        Extras {
            mode: self.network.clone(),
            publish: self.publish.clone(),
            publish_all: self.publish_all,
            expose: self.expose.clone(),
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
