//! /etc/hosts, /etc/hostname and /etc/resolv.conf of a networked container,
//! as Docker makes them: written in the container's state dir and
//! bind-mounted over the image's, so nothing is written into the bundle's
//! rootfs (a bundle mount of the same path wins).
//!
//! On a named network every container's /etc/hosts also names the others
//! (id and aliases), in a part of its own per network, below a marker line
//! naming the network's bridge: `refresh_peers` rewrites that part in each
//! of them, under the network's store lock, as containers come and go. In
//! place, not by rename: the file is bind-mounted, and a rename would leave
//! the container looking at the old inode.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oci_spec::runtime::MountBuilder;

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::rootfs::resolve::InRoot;
use crate::state::Container;

use super::store::Shared;

const HOST_RESOLV: &str = "/etc/resolv.conf";
/// Begins each network's part; the bridge's name and "(hull rewrites this
/// part)" follow.
const PEERS_MARKER: &str = "# the other containers of network ";

fn marker(bridge: &str) -> String {
    format!("{PEERS_MARKER}{bridge} (hull rewrites this part)\n")
}

/// A name /etc/hosts can hold: RFC 1123 labels.
pub fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The /etc/hosts part naming every container of `shared`'s network (on
/// `bridge`) but `id`: nothing unless it is a named network.
pub fn peers(shared: &Shared, bridge: &str, id: &str) -> String {
    if !shared.named {
        return String::new();
    }
    let mut out = marker(bridge);
    let v4 = shared.leases.iter().map(|(ip, p)| (IpAddr::from(*ip), p));
    let v6 = shared.leases6.iter().map(|(ip, p)| (IpAddr::from(*ip), p));
    for (ip, peer) in v4.chain(v6).filter(|(_, p)| *p != id) {
        let mut names = vec![peer.as_str()];
        if let Some(aliases) = shared.aliases.get(peer) {
            names.extend(aliases.iter().map(String::as_str));
        }
        out.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    out
}

/// Rewrite the part of network `bridge` in the /etc/hosts of its every
/// container but `except` (a container that joins has its own written
/// whole; one that leaves is gone). A container without hull's /etc/hosts
/// (a bundle mount of its own) is left alone; so is a file that cannot be
/// written, which only costs that container a name.
pub fn refresh_peers(shared: &Shared, bridge: &str, except: &str) {
    let marker = marker(bridge);
    for (id, dir) in shared.owners.iter().filter(|(id, _)| *id != except) {
        let path = dir.join("hosts");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(at) = text.find(&marker) else {
            continue;
        };
        // The part ends where another network's begins.
        let end = text[at + marker.len()..]
            .find(PEERS_MARKER)
            .map_or(text.len(), |n| at + marker.len() + n);
        let new = format!(
            "{}{}{}",
            &text[..at],
            peers(shared, bridge, id),
            &text[end..]
        );
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, new.as_bytes()));
    }
}

/// Write the container's files (`own`: its addresses, `peers`: the parts of
/// its named networks) and bind them over the image's.
pub fn write(
    bundle: &mut Bundle,
    container: &Container,
    own: &[IpAddr],
    peers: &str,
) -> Result<()> {
    let id = &container.record.id;
    let name = bundle
        .spec
        .hostname()
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| id.chars().take(63).collect());
    let host_resolv = crate::process::passwd::read_regular(Path::new(HOST_RESOLV));
    let own: String = own.iter().map(|ip| format!("{ip}\t{name}\n")).collect();
    let files = [
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{own}{peers}"
            ),
        ),
        ("hostname", format!("{name}\n")),
        ("resolv.conf", resolv_conf(host_resolv.as_deref())),
    ];
    // A missing mount target would be created in the rootfs: fine for a
    // writable one (runc does it for any bind), never for a read-only one,
    // which then goes without the file.
    let readonly_rootfs = bundle.storage.overlay.is_none()
        && bundle.spec.root().as_ref().and_then(|r| r.readonly()) == Some(true);
    let in_root = InRoot::open(&bundle.rootfs)?;
    let mut mounts = bundle.spec.mounts().clone().unwrap_or_default();
    for (file, text) in files {
        let dest = PathBuf::from("/etc").join(file);
        if mounts.iter().any(|m| m.destination() == &dest) {
            continue;
        }
        if readonly_rootfs && in_root.resolve(&dest).is_err() {
            continue;
        }
        let path = container.dir.join(file);
        std::fs::write(&path, text).step_at("write", &path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .step_at("chmod", &path)?;
        mounts.push(
            MountBuilder::default()
                .typ("bind")
                .source(path)
                .destination(dest)
                .options(vec!["bind".to_string(), "rw".to_string()])
                .build()
                .map_err(|e| Error::new("build mount").detail(e.to_string()))?,
        );
    }
    bundle.spec.set_mounts(Some(mounts));
    Ok(())
}

/// The host's resolv.conf without its loopback nameservers, which mean the
/// host's own resolver and are unreachable from the container's namespace
/// (Docker drops them too). Unlike Docker, no public resolver is put in
/// their place: a host with only a local resolver gives a container none.
fn resolv_conf(host: Option<&str>) -> String {
    let mut out = String::new();
    for line in host.unwrap_or("").lines() {
        let mut words = line.split_whitespace();
        let loopback = words.next() == Some("nameserver")
            && words
                .next()
                .and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_loopback());
        if !loopback {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn peers_of_a_named_network() {
        let mut shared = Shared::default();
        shared
            .leases
            .insert(Ipv4Addr::new(10, 90, 0, 2), "web".into());
        shared
            .leases
            .insert(Ipv4Addr::new(10, 90, 0, 3), "db".into());
        shared.aliases.insert("db".into(), vec!["postgres".into()]);
        assert_eq!(
            peers(&shared, "hull0", "web"),
            "",
            "the default bridge names nobody"
        );
        shared.named = true;
        assert_eq!(
            peers(&shared, "hn-a", "web"),
            format!("{}10.90.0.3\tdb postgres\n", marker("hn-a"))
        );
        assert_eq!(
            peers(&shared, "hn-a", "db"),
            format!("{}10.90.0.2\tweb\n", marker("hn-a"))
        );
        assert!(is_host_name("db") && is_host_name("a-b.example"));
        assert!(!is_host_name("-x") && !is_host_name("a b") && !is_host_name(""));
    }

    #[test]
    fn loopback_nameservers_dropped() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        assert_eq!(
            resolv_conf(Some(host)),
            "# generated\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\n"
        );
        assert_eq!(resolv_conf(None), "");
    }

    /// A container on two networks: the refresh of one network's part
    /// leaves the other's and the lines above alone.
    #[test]
    fn refresh_rewrites_one_network_part() {
        let dir = std::env::temp_dir().join(format!("hull-etc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let net = |peer: &str, ip: [u8; 4]| {
            let mut s = Shared {
                named: true,
                ..Default::default()
            };
            s.leases.insert(Ipv4Addr::from(ip), peer.into());
            s.leases.insert(Ipv4Addr::new(10, 99, 0, 9), "me".into());
            s.owners.insert("me".into(), dir.clone());
            s
        };
        let (mut a, mut b) = (net("x", [10, 90, 0, 2]), net("y", [10, 91, 0, 2]));
        let head = "127.0.0.1\tlocalhost\n10.90.0.9\tme\n";
        let hosts = format!(
            "{head}{}{}",
            peers(&a, "hn-a", "me"),
            peers(&b, "hn-b", "me")
        );
        std::fs::write(dir.join("hosts"), &hosts).unwrap();
        a.leases.remove(&Ipv4Addr::new(10, 90, 0, 2));
        refresh_peers(&a, "hn-a", "nobody");
        b.leases.insert(Ipv4Addr::new(10, 91, 0, 3), "z".into());
        refresh_peers(&b, "hn-b", "nobody");
        let after = std::fs::read_to_string(dir.join("hosts")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            after,
            format!(
                "{head}{}{}",
                peers(&a, "hn-a", "me"),
                peers(&b, "hn-b", "me")
            )
        );
        assert!(!after.contains("\tx\n") && after.contains("10.91.0.2\ty\n10.91.0.3\tz\n"));
    }
}
