//! The command-line extras of create/run: `-p` (published ports, also the
//! comma-separated `dev.hull.ports` annotation), `-v` and `--tmpfs`. The
//! first byte picks the parser, the rest is the flag's value.
#![no_main]

use hull::network::ports::{self, Mapping, Proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 4 {
        0 => publish(text),
        1 => {
            let _ = ports::parse_all(text.split(','));
        }
        2 => volume(text),
        _ => tmpfs(text),
    }
});

/// An accepted `-p` reads back as itself when written out.
fn publish(text: &str) {
    let Ok(m) = ports::parse(text) else {
        return;
    };
    assert!(m.host_port > 0 && m.container_port > 0 && m.span > 0, "{m:?}");
    assert!(m.host_end() >= m.host_port && m.container_end() >= m.container_port);
    let proto = match m.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let again = format!("{}/{proto}", canonical(&m));
    assert_eq!(ports::parse(&again).unwrap(), m, "{again}");
}

fn canonical(m: &Mapping) -> String {
    let ports = format!(
        "{}:{}-{}",
        m.host_ports(),
        m.container_port,
        m.container_end()
    );
    match m.host_ip {
        Some(ip) => format!("{ip}:{ports}"),
        None => ports,
    }
}

fn volume(text: &str) {
    let Ok(v) = hull::storage::parse_volume(text) else {
        return;
    };
    assert!(v.dest.starts_with('/') && v.dest.len() > 1, "{v:?}");
    // An empty source is an anonymous volume, written as the bare `/path`.
    assert!(!v.source.is_empty() || (v.is_anonymous() && text == v.dest), "{v:?}");
}

fn tmpfs(text: &str) {
    let Ok(m) = hull::storage::tmpfs_mount(text) else {
        return;
    };
    assert_eq!(m.typ().as_deref(), Some("tmpfs"));
    assert!(m.destination().is_absolute());
    // Docker's defaults come first, so the user's options win.
    let opts = m.options().as_deref().unwrap_or_default();
    assert_eq!(&opts[..3], ["nosuid", "nodev", "noexec"]);
}
