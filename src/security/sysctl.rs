//! linux.sysctl: only keys the kernel namespaces, and only when the container
//! has that namespace (runc's rules); written through a verified procfs fd.

use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::{LinuxNamespaceType as Ns, Spec};

use super::procfs::Procfs;
use crate::error::{Error, Result};

/// IPC-namespaced keys besides fs.mqueue.*.
const IPC: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// Does the container get its own namespace of type `ty` (new, or a joined
/// one that is not the host's)?
fn has_own(spec: &Spec, ty: Ns) -> bool {
    let Some(ns) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|v| v.iter().find(|n| n.typ() == ty))
    else {
        return false;
    };
    let Some(path) = ns.path() else {
        return true;
    };
    let name = match ty {
        Ns::Network => "net",
        Ns::Ipc => "ipc",
        Ns::Uts => "uts",
        _ => return true,
    };
    let ino = |p: &std::path::Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    ino(path) != ino(std::path::Path::new(&format!("/proc/1/ns/{name}")))
}

/// Refuse, before anything is created, a key the container may not set.
pub fn validate(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let k = key.replace('/', ".");
        let bad = |why: &str, hint: &str| {
            Err(Error::new("linux.sysctl")
                .detail(format!("{key}: {why}"))
                .hint(hint.to_string()))
        };
        if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
            if !has_own(spec, Ns::Ipc) {
                return bad(
                    "not allowed in the host's IPC namespace",
                    "add {\"type\": \"ipc\"} to linux.namespaces",
                );
            }
        } else if k.starts_with("net.") {
            if !has_own(spec, Ns::Network) {
                return bad(
                    "not allowed in the host's network namespace",
                    "add {\"type\": \"network\"} to linux.namespaces",
                );
            }
        } else if k == "kernel.domainname" && has_own(spec, Ns::Uts) {
        } else if k == "kernel.hostname" && has_own(spec, Ns::Uts) {
            return bad(
                "conflicts with the OCI \"hostname\" field",
                "set \"hostname\" instead",
            );
        } else {
            return bad(
                "is not in a separate kernel namespace",
                "only IPC (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), \
                 net.* and kernel.domainname can be set per container",
            );
        }
    }
    Ok(())
}

/// In the init, after pivot_root and before /proc/sys turns read-only.
pub fn apply(spec: &Spec) -> Result<()> {
    let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Ok(());
    };
    if map.is_empty() {
        return Ok(());
    }
    let proc = Procfs::open().map_err(|e| e.within("linux.sysctl"))?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let rel = format!("sys/{}", key.replace('.', "/"));
        proc.write(&rel, map[key].as_bytes())
            .map_err(|e| e.within(format!("linux.sysctl {key}")))?;
    }
    Ok(())
}
