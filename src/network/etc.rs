//! /etc/hosts, /etc/hostname and /etc/resolv.conf of a networked container,
//! as Docker makes them: written in the container's state dir and
//! bind-mounted over the image's, so nothing is written into the bundle's
//! rootfs (a bundle mount of the same path wins).
//!
//! On a named network every container's /etc/hosts also names the others
//! (id and aliases), below a marker line: `refresh_peers` rewrites that part
//! in each of them, under the network's store lock, as containers come and
//! go. In place, not by rename: the file is bind-mounted, and a rename would
//! leave the container looking at the old inode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use oci_spec::runtime::MountBuilder;

use crate::bundle::Bundle;
use crate::error::{Context, Error, Result};
use crate::rootfs::resolve::InRoot;
use crate::state::Container;

use super::store::Shared;

const HOST_RESOLV: &str = "/etc/resolv.conf";
const PEERS_MARKER: &str = "# the other containers of the network (hull rewrites what follows)\n";

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

/// The /etc/hosts lines naming every container of `shared`'s network but
/// `id`: nothing unless it is a named network.
pub fn peers(shared: &Shared, id: &str) -> String {
    if !shared.named {
        return String::new();
    }
    let mut out = String::from(PEERS_MARKER);
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

/// Rewrite the peer lines of every container of the network but `except`
/// (a container that joins has its own written whole; one that leaves is
/// gone). A container without hull's /etc/hosts (a bundle mount of its
/// own) is left alone; so is a file that cannot be written, which only
/// costs that container a name.
pub fn refresh_peers(shared: &Shared, except: &str) {
    for (id, dir) in shared.owners.iter().filter(|(id, _)| *id != except) {
        let path = dir.join("hosts");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some(at) = text.find(PEERS_MARKER) else {
            continue;
        };
        let new = format!("{}{}", &text[..at], peers(shared, id));
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, new.as_bytes()));
    }
}

pub fn write(
    bundle: &mut Bundle,
    container: &Container,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
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
    let own6 = ip6
        .map(|ip6| format!("{ip6}\t{name}\n"))
        .unwrap_or_default();
    let files = [
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{name}\n{own6}{peers}"
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
        assert_eq!(peers(&shared, "web"), "", "the default bridge names nobody");
        shared.named = true;
        assert_eq!(
            peers(&shared, "web"),
            format!("{PEERS_MARKER}10.90.0.3\tdb postgres\n")
        );
        assert_eq!(
            peers(&shared, "db"),
            format!("{PEERS_MARKER}10.90.0.2\tweb\n")
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
}
