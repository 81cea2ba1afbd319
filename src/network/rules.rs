//! Packet rules, through nftables (`nft -f -`, one atomic batch per
//! container). hull keeps all of its rules in a table of its own per bridge
//! (`ip hull-<bridge>`), so it never touches a rule it does not own:
//!
//! * shared chains (made with the first container, the table goes with the
//!   last): masquerade of the subnet going out, of hairpin traffic (a
//!   container reaching a published port through a host address) and of
//!   127.0.0.1 clients; accept forwarding to and from the bridge; and the
//!   guard for `route_localnet` on the bridge: nothing arriving from the
//!   bridge may reach 127.0.0.0/8.
//! * per container: `c-<hash>-pre` (prerouting) and `c-<hash>-out`
//!   (output, for clients on the host itself, 127.0.0.1 included), whose
//!   every rule carries the comment `hull:<id>`. Removing them needs no
//!   listing: `add` then `flush` then `delete` in one batch is a no-op on
//!   a chain that is already gone.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use super::ipam::Subnet;
use super::ports::{Mapping, Proto};
use crate::error::{Context, Error, Result};

pub fn table(bridge: &str) -> String {
    format!("hull-{bridge}")
}

/// The tag every rule of container `id` carries (comments are short).
pub fn tag(id: &str) -> String {
    if id.len() <= 100 {
        format!("hull:{id}")
    } else {
        format!("hull:{}~{:016x}", &id[..80], super::hash(id))
    }
}

/// The shared chains, rebuilt (flush + add, idempotent) in every batch.
///
/// Networks are isolated from each other: nothing is forwarded from this
/// bridge to another hull bridge (the default one, or a named network's
/// `hn-*`) unless it was DNATed to a published port, which every network
/// may reach through a host address, as in Docker. An `internal` network
/// forwards nothing off its subnet, either way, and has no outbound NAT.
pub fn shared(bridge: &str, subnet: &Subnet, internal: bool) -> String {
    let t = table(bridge);
    let c = format!("comment \"hull:bridge:{bridge}\"");
    let default = super::DEFAULT_BRIDGE;
    let mut forward = String::new();
    if internal {
        forward = format!(
            "add rule ip {t} forward iifname \"{bridge}\" ip daddr != {subnet} drop {c}
add rule ip {t} forward oifname \"{bridge}\" ip saddr != {subnet} drop {c}
"
        );
    }
    forward += &format!(
        "add rule ip {t} forward iifname \"{bridge}\" ct status dnat accept {c}
add rule ip {t} forward iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"hn-*\" drop {c}
add rule ip {t} forward iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"{default}\" drop {c}
"
    );
    let outbound = if internal {
        String::new()
    } else {
        format!("add rule ip {t} postrouting ip saddr {subnet} oifname != \"{bridge}\" masquerade {c}\n")
    };
    format!(
        "add table ip {t}
add chain ip {t} guard {{ type filter hook prerouting priority -300; }}
flush chain ip {t} guard
add rule ip {t} guard iifname \"{bridge}\" ip daddr 127.0.0.0/8 drop {c}
add chain ip {t} forward {{ type filter hook forward priority 0; }}
flush chain ip {t} forward
{forward}add rule ip {t} forward iifname \"{bridge}\" accept {c}
add rule ip {t} forward oifname \"{bridge}\" accept {c}
add chain ip {t} postrouting {{ type nat hook postrouting priority 100; }}
flush chain ip {t} postrouting
{outbound}add rule ip {t} postrouting ct status dnat ip saddr {subnet} oifname \"{bridge}\" masquerade {c}
add rule ip {t} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade {c}
"
    )
}

pub(super) fn chains(id: &str) -> [(String, &'static str); 2] {
    let h = format!("c-{:012x}", super::hash(id) & 0xffff_ffff_ffff);
    [
        (format!("{h}-pre"), "prerouting"),
        (format!("{h}-out"), "output"),
    ]
}

/// The DNAT rules of one container, in its own chains.
pub fn container(bridge: &str, id: &str, ip: Ipv4Addr, ports: &[Mapping]) -> String {
    let t = table(bridge);
    let tag = tag(id);
    let mut out = String::new();
    if ports.is_empty() {
        return out;
    }
    for (chain, hook) in chains(id) {
        out.push_str(&format!(
            "add chain ip {t} {chain} {{ type nat hook {hook} priority -100; }}\n"
        ));
        for m in ports {
            let dst = match m.host_ip {
                Some(hip) => format!("ip daddr {hip}"),
                None => "fib daddr type local".to_string(),
            };
            let proto = m.proto.as_str();
            out.push_str(&format!(
                "add rule ip {t} {chain} {dst} {proto} dport {} dnat to {} comment \"{tag}\"\n",
                m.host_ports(),
                dnat_target(ip, m)
            ));
        }
    }
    out
}

/// Where a mapping's packets go: one rule for a whole range. Equal ports
/// keep their port; shifted ones are looked up in a map built with the rule.
fn dnat_target(ip: Ipv4Addr, m: &Mapping) -> String {
    if m.span == 1 {
        return format!("{ip}:{}", m.container_port);
    }
    if m.host_port == m.container_port {
        return ip.to_string();
    }
    let pairs: Vec<String> = (0..m.span)
        .map(|i| format!("{} : {}", m.host_port + i, m.container_port + i))
        .collect();
    format!(
        "{ip} : {} dport map {{ {} }}",
        m.proto.as_str(),
        pairs.join(", ")
    )
}

/// Remove the chains of one container, whether or not they exist.
pub fn remove_container(bridge: &str, id: &str) -> String {
    let t = table(bridge);
    let mut out = format!("add table ip {t}\n");
    for (chain, hook) in chains(id) {
        out.push_str(&format!(
            "add chain ip {t} {chain} {{ type nat hook {hook} priority -100; }}\n\
             flush chain ip {t} {chain}\n\
             delete chain ip {t} {chain}\n"
        ));
    }
    out
}

/// Remove the whole table of a bridge (its last container is gone).
pub fn remove_all(bridge: &str) -> String {
    let t = table(bridge);
    format!("add table ip {t}\ndelete table ip {t}\n")
}

/// Delete chains of the bridge's table by name (`gc`: chains no lease
/// accounts for). They exist: `list_chains` just named them.
pub fn remove_chains(bridge: &str, names: &[String]) -> String {
    let t = table(bridge);
    names
        .iter()
        .map(|c| format!("flush chain ip {t} {c}\ndelete chain ip {t} {c}\n"))
        .collect()
}

/// The chains of the bridge's table, or None when there is no table.
pub fn list_chains(bridge: &str) -> Result<Option<Vec<String>>> {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "ip", &table(bridge)])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .step("run nft")?;
    if !out.status.success() {
        return Ok(None);
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::new("list nftables chains").detail(e.to_string()))?;
    let names = doc["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["chain"]["name"].as_str())
        .map(str::to_string)
        .collect();
    Ok(Some(names))
}

/// Apply one batch atomically: all of it or none of it.
pub fn apply(batch: &str) -> Result<()> {
    run_nft(&["-f", "-"], batch)
}

/// Let the kernel check a batch without committing it (`nft --check`):
/// nothing is created, yet a kernel without a needed expression refuses.
pub fn dry_run(batch: &str) -> Result<()> {
    run_nft(&["--check", "-f", "-"], batch)
}

fn run_nft(args: &[&str], batch: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .step("run nft")
        .map_err(|e| e.hint("install nftables (`make deps`)"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(batch.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().step("run nft")?;
    written.step("write nft batch")?;
    if out.status.success() {
        Ok(())
    } else {
        let msg = String::from_utf8_lossy(&out.stderr);
        let first = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(Error::new("apply nftables rules").detail(first.trim().to_string()))
    }
}

/// Forget the UDP conntrack entries of a host port, so a flow that was
/// tracked before (or after) the mapping existed does not keep using a
/// stale translation. Best effort: no conntrack tool, no entries, fine.
pub fn flush_conntrack(m: &Mapping) {
    if m.proto != Proto::Udp {
        return;
    }
    // conntrack takes one port at a time; ranges are bounded by MAX_PORTS.
    for port in m.host_port..=m.host_end() {
        let mut cmd = Command::new("conntrack");
        cmd.args(["-D", "-p", "udp", "--orig-port-dst", &port.to_string()]);
        if let Some(ip) = m.host_ip {
            cmd.args(["--orig-dst", &ip.to_string()]);
        }
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::ports;

    #[test]
    fn container_rules_are_tagged_and_in_own_chains() {
        let p = ports::parse_all(["18080:80", "127.0.0.1:5353:53/udp"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2), &p);
        let rules: Vec<&str> = b.lines().filter(|l| l.starts_with("add rule")).collect();
        assert_eq!(rules.len(), 4);
        assert!(rules.iter().all(|r| r.ends_with("comment \"hull:web\"")));
        assert!(b.contains("fib daddr type local tcp dport 18080 dnat to 10.89.0.2:80"));
        assert!(b.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.89.0.2:53"));
        assert!(b.contains("type nat hook output"));
        assert_eq!(container("hull0", "web", Ipv4Addr::LOCALHOST, &[]), "");
        let same = ports::parse_all(["1-1024:1-1024/udp"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2), &same);
        assert_eq!(b.lines().filter(|l| l.starts_with("add rule")).count(), 2);
        assert!(
            b.contains("udp dport 1-1024 dnat to 10.89.0.2 comment"),
            "{b}"
        );
        let shifted = ports::parse_all(["8080-8081:80-81"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2), &shifted);
        assert!(
            b.contains(
                "tcp dport 8080-8081 dnat to 10.89.0.2 : tcp dport map { 8080 : 80, 8081 : 81 }"
            ),
            "{b}"
        );
        let r = remove_container("hull0", "web");
        for (chain, _) in chains("web") {
            assert!(r.contains(&format!("delete chain ip hull-hull0 {chain}")));
        }
        assert_ne!(chains("web")[0].0, chains("web2")[0].0);
    }

    #[test]
    fn long_ids_get_a_short_tag() {
        let id = "x".repeat(300);
        assert!(tag(&id).len() < 110);
        assert_eq!(tag("a"), "hull:a");
    }
}
