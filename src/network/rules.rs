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
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::ipam::{Subnet, Subnet6};
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
    shared_in(Family::V4, bridge, &subnet.to_string(), internal)
}

/// The same for the `ip6` table of a dual-stack network (no loopback
/// guard: IPv6 has no route_localnet, so hull publishes no [::1]).
pub fn shared6(bridge: &str, subnet: &Subnet6, internal: bool) -> String {
    shared_in(Family::V6, bridge, &subnet.to_string(), internal)
}

/// The nftables family of a table, which is also the keyword of its
/// addresses (`ip daddr`, `ip6 daddr`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: IpAddr) -> Family {
        if ip.is_ipv6() {
            Family::V6
        } else {
            Family::V4
        }
    }

    fn word(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
}

fn shared_in(family: Family, bridge: &str, subnet: &str, internal: bool) -> String {
    let f = family.word();
    let t = table(bridge);
    let c = format!("comment \"hull:bridge:{bridge}\"");
    let default = super::DEFAULT_BRIDGE;
    let mut out = format!("add table {f} {t}\n");
    if family == Family::V4 {
        out += &format!(
            "add chain ip {t} guard {{ type filter hook prerouting priority -300; }}
flush chain ip {t} guard
add rule ip {t} guard iifname \"{bridge}\" ip daddr 127.0.0.0/8 drop {c}
"
        );
    }
    out += &format!(
        "add chain {f} {t} forward {{ type filter hook forward priority 0; }}
flush chain {f} {t} forward
"
    );
    if internal {
        out += &format!(
            "add rule {f} {t} forward iifname \"{bridge}\" {f} daddr != {subnet} drop {c}
add rule {f} {t} forward oifname \"{bridge}\" {f} saddr != {subnet} drop {c}
"
        );
    }
    out += &format!(
        "add rule {f} {t} forward iifname \"{bridge}\" ct status dnat accept {c}
add rule {f} {t} forward iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"hn-*\" drop {c}
add rule {f} {t} forward iifname \"{bridge}\" oifname != \"{bridge}\" oifname \"{default}\" drop {c}
add rule {f} {t} forward iifname \"{bridge}\" accept {c}
add rule {f} {t} forward oifname \"{bridge}\" accept {c}
add chain {f} {t} postrouting {{ type nat hook postrouting priority 100; }}
flush chain {f} {t} postrouting
"
    );
    if !internal {
        out += &format!(
            "add rule {f} {t} postrouting {f} saddr {subnet} oifname != \"{bridge}\" masquerade {c}\n"
        );
    }
    out += &format!(
        "add rule {f} {t} postrouting ct status dnat {f} saddr {subnet} oifname \"{bridge}\" masquerade {c}\n"
    );
    if family == Family::V4 {
        out += &format!(
            "add rule ip {t} postrouting ip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade {c}\n"
        );
    }
    out
}

pub(super) fn chains(id: &str) -> [(String, &'static str); 2] {
    let h = format!("c-{:012x}", super::hash(id) & 0xffff_ffff_ffff);
    [
        (format!("{h}-pre"), "prerouting"),
        (format!("{h}-out"), "output"),
    ]
}

/// The DNAT rules of one container to its address `ip`, in its own chains
/// of the table of that address's family. Over IPv6 a mapping bound to an
/// IPv4 host address, and a shifted range (its port map), are left out:
/// they are IPv4's.
pub fn container(bridge: &str, id: &str, ip: IpAddr, ports: &[Mapping]) -> String {
    let family = Family::of(ip);
    let f = family.word();
    let t = table(bridge);
    let tag = tag(id);
    let ports: Vec<&Mapping> = ports
        .iter()
        .filter(|m| {
            family == Family::V4
                || (m.host_ip.is_none() && (m.span == 1 || m.host_port == m.container_port))
        })
        .collect();
    let mut out = String::new();
    if ports.is_empty() {
        return out;
    }
    for (chain, hook) in chains(id) {
        out.push_str(&format!(
            "add chain {f} {t} {chain} {{ type nat hook {hook} priority -100; }}\n"
        ));
        for m in &ports {
            let dst = match m.host_ip {
                Some(hip) => format!("ip daddr {hip}"),
                None => "fib daddr type local".to_string(),
            };
            let proto = m.proto.as_str();
            out.push_str(&format!(
                "add rule {f} {t} {chain} {dst} {proto} dport {} dnat to {} comment \"{tag}\"\n",
                m.host_ports(),
                dnat_target(ip, m)
            ));
        }
    }
    out
}

/// Where a mapping's packets go: one rule for a whole range. Equal ports
/// keep their port; shifted ones are looked up in a map built with the rule.
fn dnat_target(ip: IpAddr, m: &Mapping) -> String {
    let addr = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    if m.span == 1 {
        return format!("{addr}:{}", m.container_port);
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

/// Remove the chains of one container (in the `ip6` table too for a
/// dual-stack one), whether or not they exist.
pub fn remove_container(bridge: &str, id: &str, v6: bool) -> String {
    let t = table(bridge);
    let families: &[&str] = if v6 { &["ip", "ip6"] } else { &["ip"] };
    let mut out = String::new();
    for f in families {
        out.push_str(&format!("add table {f} {t}\n"));
        for (chain, hook) in chains(id) {
            out.push_str(&format!(
                "add chain {f} {t} {chain} {{ type nat hook {hook} priority -100; }}\n\
                 flush chain {f} {t} {chain}\n\
                 delete chain {f} {t} {chain}\n"
            ));
        }
    }
    out
}

/// Remove the whole table of a bridge (its last container is gone).
pub fn remove_all(bridge: &str) -> String {
    let t = table(bridge);
    format!("add table ip {t}\ndelete table ip {t}\nadd table ip6 {t}\ndelete table ip6 {t}\n")
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
    spawn(&["-f", "-"], batch)?.wait()
}

/// Start applying a batch and return at once: the caller does its netlink
/// work meanwhile and then waits. Each half mostly waits for the kernel
/// (a deletion costs nf_tables an RCU grace period, a veth's unregister
/// another), so the two overlap instead of adding up.
pub fn apply_started(batch: &str) -> Result<Pending> {
    spawn(&["-f", "-"], batch)
}

/// Let the kernel check a batch without committing it (`nft --check`):
/// nothing is created, yet a kernel without a needed expression refuses.
pub fn dry_run(batch: &str) -> Result<()> {
    spawn(&["--check", "-f", "-"], batch)?.wait()
}

/// An `nft` run that has its batch and has not been waited for.
#[must_use = "wait for the batch, or the rules may not be there yet"]
pub struct Pending {
    child: std::process::Child,
    written: std::io::Result<()>,
}

impl Pending {
    pub fn wait(self) -> Result<()> {
        let out = self.child.wait_with_output().step("run nft")?;
        self.written.step("write nft batch")?;
        if out.status.success() {
            return Ok(());
        }
        let msg = String::from_utf8_lossy(&out.stderr);
        let first = msg
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        Err(Error::new("apply nftables rules").detail(first.trim().to_string()))
    }
}

fn spawn(args: &[&str], batch: &str) -> Result<Pending> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .step("run nft")
        .map_err(|e| e.hint("install nftables (`make deps`)"))?;
    // A batch is far below a pipe's buffer: the write does not wait for nft.
    let mut stdin = child.stdin.take().expect("piped");
    let written = stdin.write_all(batch.as_bytes());
    drop(stdin);
    Ok(Pending { child, written })
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
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn container_rules_are_tagged_and_in_own_chains() {
        let p = ports::parse_all(["18080:80", "127.0.0.1:5353:53/udp"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2).into(), &p);
        let rules: Vec<&str> = b.lines().filter(|l| l.starts_with("add rule")).collect();
        assert_eq!(rules.len(), 4);
        assert!(rules.iter().all(|r| r.ends_with("comment \"hull:web\"")));
        assert!(b.contains("fib daddr type local tcp dport 18080 dnat to 10.89.0.2:80"));
        assert!(b.contains("ip daddr 127.0.0.1 udp dport 5353 dnat to 10.89.0.2:53"));
        assert!(b.contains("type nat hook output"));
        assert_eq!(
            container("hull0", "web", Ipv4Addr::LOCALHOST.into(), &[]),
            ""
        );
        let same = ports::parse_all(["1-1024:1-1024/udp"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2).into(), &same);
        assert_eq!(b.lines().filter(|l| l.starts_with("add rule")).count(), 2);
        assert!(
            b.contains("udp dport 1-1024 dnat to 10.89.0.2 comment"),
            "{b}"
        );
        let shifted = ports::parse_all(["8080-8081:80-81"]).unwrap();
        let b = container("hull0", "web", Ipv4Addr::new(10, 89, 0, 2).into(), &shifted);
        assert!(
            b.contains(
                "tcp dport 8080-8081 dnat to 10.89.0.2 : tcp dport map { 8080 : 80, 8081 : 81 }"
            ),
            "{b}"
        );
        let r = remove_container("hull0", "web", false);
        for (chain, _) in chains("web") {
            assert!(r.contains(&format!("delete chain ip hull-hull0 {chain}")));
        }
        assert!(!r.contains("ip6"), "{r}");
        let r = remove_container("hull0", "web", true);
        assert!(r.contains("delete chain ip6 hull-hull0"), "{r}");
        // Over IPv6: in the ip6 table, bracketed, without what is IPv4's
        // (a v4 host address, a shifted range).
        let ip6: IpAddr = "fd68:756c:6c00::2".parse::<Ipv6Addr>().unwrap().into();
        let mixed =
            ports::parse_all(["18080:80", "127.0.0.1:5353:53/udp", "8080-8081:80-81"]).unwrap();
        let b = container("hn-x", "web", ip6, &mixed);
        assert!(b.contains("add rule ip6 hull-hn-x"), "{b}");
        assert!(
            b.contains("tcp dport 18080 dnat to [fd68:756c:6c00::2]:80"),
            "{b}"
        );
        assert_eq!(
            b.lines().filter(|l| l.starts_with("add rule")).count(),
            2,
            "{b}"
        );
        assert_ne!(chains("web")[0].0, chains("web2")[0].0);
    }

    #[test]
    fn long_ids_get_a_short_tag() {
        let id = "x".repeat(300);
        assert!(tag(&id).len() < 110);
        assert_eq!(tag("a"), "hull:a");
    }
}
