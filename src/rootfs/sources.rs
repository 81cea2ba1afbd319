//! Bind mount sources opened by hull on the host side.
//!
//! * With a user namespace the init, root only there, may not reach a
//!   source (below a directory only the host's root may enter); runc 1.1
//!   opens them in its privileged parent for the same reason.
//! * An idmapped bind ("idmap", "ridmap", or the mount's own uid/gid
//!   mappings) is a detached copy of the source whose ids are mapped through
//!   a user namespace; only the host's root may make one.
//!
//! The fds must name mounts of the container's mount namespace (a bind from
//! a mount of another namespace is EINVAL), so a short-lived thread of hull
//! enters that namespace to open them. Opened or copied there, the sources
//! keep the flags the kernel locked when the namespace was made for the
//! container.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::{Pid, Uid};
use oci_spec::runtime::{Mount, Spec};

use super::mounts::{bind_source, idmap_of, is_bind};
use super::options;
use crate::error::{Context, Error, Result};
use crate::process::sync::{Channel, Msg};
use crate::sys::{self, Forked};

/// The sources hull sent, by index in `spec.mounts`.
#[derive(Default)]
pub struct Sources(HashMap<usize, OwnedFd>);

impl Sources {
    pub fn get(&self, index: usize) -> Option<&OwnedFd> {
        self.0.get(&index)
    }
}

/// Does the init need hull's help with the mounts of `spec`?
fn wanted(spec: &Spec, in_userns: bool) -> bool {
    let mounts = || spec.mounts().iter().flatten();
    (in_userns && mounts().any(is_bind)) || mounts().any(|m| idmap_of(m).is_some())
}

/// Init side, in its user and mount namespaces, before any mount: ask hull
/// for the bind sources. Without a user namespace or an idmapped mount the
/// init reaches every source itself, and nothing is asked.
pub fn receive(chan: &Channel, spec: &Spec, in_userns: bool) -> Result<Sources> {
    let mut out = Sources::default();
    if !wanted(spec, in_userns) {
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
/// mount namespace (idmapped ones as detached copies) and send the fds. A
/// hull that is not root cannot enter it (nor reach more than the init): it
/// sends none, and the init opens the sources itself.
pub fn send(chan: &Channel, init: Pid, spec: &Spec, bundle: &Path) -> Result<()> {
    if Uid::effective().is_root() {
        for (i, fd) in open_in(init, spec, bundle)? {
            chan.send_with_fd(&Msg::Source(i as u32), Some(fd.as_raw_fd()))?;
        }
    }
    chan.send(&Msg::SourcesDone)
}

/// One source to open: where, for which mount, and the idmapping if any.
struct Wanted {
    index: usize,
    source: PathBuf,
    dest: PathBuf,
    /// (recursive bind, recursive idmap, the user namespace of the mapping)
    idmap: Option<(bool, bool, OwnedFd)>,
}

fn open_in(init: Pid, spec: &Spec, bundle: &Path) -> Result<Vec<(usize, OwnedFd)>> {
    let ns_path = PathBuf::from(format!("/proc/{init}/ns/mnt"));
    let ns = File::open(&ns_path).step_at("open mount namespace", &ns_path)?;
    let mut wanted = Vec::new();
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        let Some(source) = bind_source(m, bundle).filter(|_| is_bind(m)) else {
            continue;
        };
        let within = |e: Error| e.within(format!("mount {}", m.destination().display()));
        let idmap = match idmap_of(m) {
            None => None,
            Some(recursive_map) => {
                let opts = options::parse(m.options().as_deref().unwrap_or(&[]));
                let userns = mapping_userns(init, spec, m).map_err(within)?;
                Some((opts.is_recursive(), recursive_map, userns))
            }
        };
        wanted.push(Wanted {
            index,
            source,
            dest: m.destination().clone(),
            idmap,
        });
    }
    std::thread::spawn(move || -> Result<Vec<(usize, OwnedFd)>> {
        // setns into a mount namespace refuses a thread sharing its root
        // and cwd with others; this thread gets its own, then ends.
        unshare(CloneFlags::CLONE_FS).step("unshare fs attributes")?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNS)
            .step_at("enter the container's mount namespace", &ns_path)?;
        wanted
            .into_iter()
            .map(|w| {
                open_one(&w)
                    .map(|fd| (w.index, fd))
                    .map_err(|e| e.within(format!("mount {}", w.dest.display())))
            })
            .collect()
    })
    .join()
    .map_err(|_| Error::new("open bind sources").detail("thread panicked"))?
}

fn open_one(w: &Wanted) -> Result<OwnedFd> {
    let missing = |e: Error| e.hint_if(Errno::ENOENT, "the source does not exist on the host");
    let Some((recursive_bind, recursive_map, userns)) = &w.idmap else {
        let fd = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&w.source)
            .step_at("bind source", &w.source)
            .map_err(missing)?;
        return Ok(fd.into());
    };
    let path = CString::new(w.source.as_os_str().as_bytes()).map_err(|_| {
        Error::new("bind source")
            .at(&w.source)
            .detail("NUL in the path")
    })?;
    let tree = sys::open_tree_clone(&path, *recursive_bind)
        .step_at("copy bind source", &w.source)
        .map_err(missing)?;
    sys::mount_setattr_idmap(tree.as_fd(), *recursive_map, userns.as_fd())
        .step_at("idmap bind source", &w.source)
        .map_err(|e| {
            e.hint_if(
                Errno::EINVAL,
                "the source's filesystem may not support idmapped mounts",
            )
        })?;
    Ok(tree)
}

/// The user namespace whose mapping an idmapped mount shows ids through:
/// one made for the mount's own uid/gid mappings, else the container's.
fn mapping_userns(init: Pid, spec: &Spec, m: &Mount) -> Result<OwnedFd> {
    match (m.uid_mappings(), m.gid_mappings()) {
        (Some(uids), Some(gids)) => userns_with(uids, gids),
        (None, None) => {
            let in_userns = spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().as_ref())
                .is_some_and(|ns| {
                    ns.iter()
                        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
                });
            if !in_userns {
                return Err(Error::new("idmapped mount")
                    .detail("no uidMappings/gidMappings on the mount, and no user namespace to take them from")
                    .hint("give the container a user namespace, or the mount uidMappings and gidMappings"));
            }
            let path = PathBuf::from(format!("/proc/{init}/ns/user"));
            Ok(File::open(&path)
                .step_at("open user namespace", &path)?
                .into())
        }
        _ => Err(Error::new("idmapped mount")
            .detail("uidMappings and gidMappings go together")
            .hint("give the mount both, or neither")),
    }
}

/// A user namespace with these mappings, held by a child that exists only
/// until its namespace file is open. hull is single-threaded here.
fn userns_with(
    uids: &[oci_spec::runtime::LinuxIdMapping],
    gids: &[oci_spec::runtime::LinuxIdMapping],
) -> Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).step("create pipe")?;
    match sys::clone_fork(libc::CLONE_NEWUSER as u64, None).step("make a user namespace")? {
        Forked::Child => {
            drop(w);
            // Wait until hull has opened our namespace (end of file).
            let _ = nix::unistd::read(r.as_raw_fd(), &mut [0u8; 1]);
            std::process::exit(0)
        }
        Forked::Parent(child) => {
            drop(r);
            let made = crate::process::namespaces::write_maps(child, uids, gids).and_then(|()| {
                let path = PathBuf::from(format!("/proc/{child}/ns/user"));
                File::open(&path).step_at("open user namespace", &path)
            });
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            Ok(made?.into())
        }
    }
}
