//! Bind mount sources of a container with a user namespace, opened by hull
//! on the host side. The init, root only in its own user namespace, may not
//! be able to reach a source (below a directory only the host's root may
//! enter); runc 1.1 opens them in its privileged parent for the same reason.
//!
//! The fds must name mounts of the container's mount namespace (a bind from
//! a mount of another namespace is EINVAL), so a short-lived thread of hull
//! enters that namespace to open them. Opened there, the sources keep the
//! flags the kernel locked when the namespace was copied for the container.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{Pid, Uid};
use oci_spec::runtime::Spec;

use super::mounts::{bind_source, is_bind};
use crate::error::{Context, Error, Result};
use crate::process::sync::{Channel, Msg};

/// The sources hull opened, by index in `spec.mounts`.
#[derive(Default)]
pub struct Sources(HashMap<usize, OwnedFd>);

impl Sources {
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(&index)
    }
}

fn has_binds(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(is_bind)
}

/// Init side, in its user and mount namespaces, before any mount: ask hull
/// for the bind sources. Without a user namespace the init reaches every
/// source itself, and nothing is asked.
pub fn receive(chan: &Channel, spec: &Spec, in_userns: bool) -> Result<Sources> {
    let mut out = Sources::default();
    if !in_userns || !has_binds(spec) {
        return Ok(out);
    }
    chan.send(&Msg::OpenSources)?;
    loop {
        match chan.recv()? {
            Some((Msg::Source(i), Some(fd))) => {
                out.0.insert(i as usize, fd);
            }
            Some((Msg::SourcesDone, _)) => return Ok(out),
            Some((msg, _)) => {
                return Err(Error::new("receive bind sources")
                    .detail(format!("unexpected {msg:?} from hull")))
            }
            None => return Err(Error::new("receive bind sources").detail("hull went away")),
        }
    }
}

/// hull side, on the init's request: open every bind source in the init's
/// mount namespace and send the fds. A hull that is not root cannot enter
/// it (nor reach more than the init): it sends none, and the init opens the
/// sources itself.
pub fn send(chan: &Channel, init: Pid, spec: &Spec, bundle: &Path) -> Result<()> {
    if Uid::effective().is_root() {
        for (i, fd) in open_in(init, spec, bundle)? {
            chan.send_with_fd(&Msg::Source(i as u32), Some(fd.as_raw_fd()))?;
        }
    }
    chan.send(&Msg::SourcesDone)
}

fn open_in(init: Pid, spec: &Spec, bundle: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let ns_path = format!("/proc/{init}/ns/mnt");
    let ns = File::open(&ns_path).step_at("open mount namespace", Path::new(&ns_path))?;
    let mut wanted = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if is_bind(m) {
            if let Some(source) = bind_source(m, bundle) {
                wanted.push((i, source, m.destination().clone()));
            }
        }
    }
    std::thread::spawn(move || -> Result<Vec<(usize, OwnedFd)>> {
        // setns into a mount namespace refuses a thread sharing its root
        // and cwd with others; this thread gets its own, then ends.
        unshare(CloneFlags::CLONE_FS).step("unshare fs attributes")?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)
            .step_at("enter the container's mount namespace", Path::new(&ns_path))?;
        let mut fds = Vec::new();
        for (i, source, dest) in wanted {
            let fd = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                .open(&source)
                .step_at("bind source", &source)
                .map_err(|e| {
                    e.hint_if(Errno::ENOENT, "the source does not exist on the host")
                        .within(format!("mount {}", dest.display()))
                })?;
            fds.push((i, OwnedFd::from(fd)));
        }
        Ok(fds)
    })
    .join()
    .map_err(|_| Error::new("open bind sources").detail("thread panicked"))?
}
