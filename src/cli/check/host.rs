//! Host probes: cgroups (read only), nftables, ip_forward.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::unistd::{access, AccessFlags};

use super::{list, Line};
use crate::cgroups::{Host, Mode};
use crate::network::{ipam, ports, rules};

/// The cgroup mode and controllers, and whether hull can make cgroups
/// beneath its own (every container's place). Reads only: no cgroup is
/// created or written, not even beneath hull's own.
pub fn cgroups() -> Line {
    let host = match Host::detect() {
        Ok(h) => h,
        Err(e) => {
            return Line::fail(
                "cgroups",
                format!("cannot read the cgroup setup: {e}"),
                "mount /proc",
            )
        }
    };
    if host.hierarchies.is_empty() {
        return Line::fail(
            "cgroups",
            "no cgroup filesystem is mounted",
            "mount cgroup2 on /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)",
        );
    }
    let mut v1: Vec<&str> = Vec::new();
    let mut v2 = None;
    let mut unwritable = Vec::new();
    for h in &host.hierarchies {
        let own = host.own_dir(h);
        match &own {
            Some(dir) if access(dir.as_path(), AccessFlags::W_OK).is_err() => {
                unwritable.push(dir.display().to_string())
            }
            _ => {}
        }
        if h.v2 {
            v2 = Some((h.mount.clone(), own));
        } else {
            v1.extend(h.controllers.iter().map(String::as_str));
        }
    }
    v1.sort();
    // What a container's cgroup may enable: our own cgroup's controllers.
    let v2_controllers: Vec<String> = v2
        .as_ref()
        .and_then(|(_, own)| own.as_ref())
        .and_then(|dir| std::fs::read_to_string(dir.join("cgroup.controllers")).ok())
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let v2_text = |mount: &Path| {
        let c = if v2_controllers.is_empty() {
            "no controllers".to_string()
        } else {
            v2_controllers.join(" ")
        };
        format!("v2 at {} ({c})", mount.display())
    };
    let detail = match (host.mode, &v2) {
        (Mode::Unified, Some((m, _))) => format!("v2 (unified): {}", v2_text(m)),
        (Mode::Hybrid, Some((m, _))) => {
            format!("hybrid: v1 {}; {}", v1.join(" "), v2_text(m))
        }
        _ => format!("v1 (legacy): {}", v1.join(" ")),
    };
    if !unwritable.is_empty() {
        return Line::fail(
            "cgroups",
            format!("{detail}; cannot create cgroups in {}", list(&unwritable)),
            "cgroupfs is read-only here: mount it read-write, or run hull where its own cgroup is writable",
        );
    }
    // Freezing and device rules are built into cgroup2 (cgroup.freeze, eBPF).
    let mut wanted = vec!["cpu", "cpuset", "memory", "pids"];
    if host.mode != Mode::Unified {
        wanted.extend(["devices", "freezer"]);
    }
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|c| !v1.contains(c) && !v2_controllers.iter().any(|v| v == c))
        .collect();
    if missing.is_empty() {
        Line::ok("cgroups", detail)
    } else {
        Line::warn(
            "cgroups",
            format!("{detail}; no {} controller", list(&missing)),
            "limits on these (linux.resources) cannot be applied: enable the controllers in the parent's cgroup.subtree_control or mount them",
        )
    }
}

/// `--network bridge` and `-p` apply their rules with `nft`: the shared
/// chains and a container's DNAT chains, exactly as hull writes them, are
/// sent to the kernel as a dry run (`nft --check`): checked, never committed.
pub fn nftables() -> Line {
    let Some(nft) = on_path("nft") else {
        return Line::warn(
            "nftables",
            "nft not found on PATH",
            "--network bridge and -p fail: install nftables (apt-get install nftables)",
        );
    };
    let subnet = ipam::Subnet::parse(ipam::DEFAULT_SUBNET).expect("default subnet parses");
    // A single port and a shifted range: both rule shapes hull writes.
    let publish = ports::parse_all(["8080:80", "9000-9001:90-91"]).expect("fixed specs parse");
    let batch = rules::shared("hullcheck0", &subnet, false)
        + &rules::container(
            "hullcheck0",
            "check",
            Ipv4Addr::new(10, 89, 0, 2).into(),
            &publish,
        );
    if let Err(e) = rules::dry_run(&batch) {
        return Line::warn(
            "nftables",
            format!("{} refuses hull's rules: {e}", nft.display()),
            "--network bridge and -p fail: the kernel needs nf_tables with nat, masquerade and fib (CONFIG_NFT_NAT, CONFIG_NFT_MASQ, CONFIG_NFT_FIB_IPV4)",
        );
    }
    if on_path("conntrack").is_none() {
        return Line::warn(
            "nftables",
            format!(
                "{} accepts hull's rules; conntrack not found",
                nft.display()
            ),
            "UDP flows to a removed published port are not flushed: install conntrack",
        );
    }
    Line::ok(
        "nftables",
        format!(
            "{} accepts hull's NAT and DNAT rules (dry run)",
            nft.display()
        ),
    )
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| access(p.as_path(), AccessFlags::X_OK).is_ok() && p.is_file())
}

/// Containers on a bridge reach the outside only with forwarding on; hull
/// turns it on with the first bridge and restores it with the last, so a 0
/// is fine as long as hull may write it.
pub fn ip_forward() -> Line {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    let value = match std::fs::read_to_string(PATH) {
        Ok(v) => v.trim().to_string(),
        Err(e) => {
            return Line::warn(
                "ip_forward",
                format!("cannot read {PATH}: {e}"),
                "--network bridge needs /proc/sys mounted",
            )
        }
    };
    if value == "1" {
        return Line::ok("ip_forward", "net.ipv4.ip_forward = 1");
    }
    if access(PATH, AccessFlags::W_OK).is_ok() {
        Line::ok(
            "ip_forward",
            format!(
                "net.ipv4.ip_forward = {value}: hull turns it on while a bridge network exists"
            ),
        )
    } else {
        Line::warn(
            "ip_forward",
            format!("net.ipv4.ip_forward = {value} and /proc/sys is read-only"),
            "containers on --network bridge cannot reach beyond the host: set net.ipv4.ip_forward=1 (sysctl)",
        )
    }
}
