//! A new process inside a running container (`hull exec`).
//!
//! hull enters the init's pid namespace for its children only (setns on a
//! pid namespace moves nobody), so one clone3 gives a child that is already
//! in it: no double fork. The child joins every other namespace of the init
//! at once through the init's pidfd, then gets exactly what the init's
//! process got (finalize.rs).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{self, Pid};
use oci_spec::runtime::{Linux, Process};

use super::finalize;
use super::sync::{self, Channel, Msg};
use crate::console;
use crate::error::{Context, Error, Result};
use crate::sys::{self, Forked};

pub struct Joined {
    pub pid: Pid,
    pub pty: Option<OwnedFd>,
}

pub struct Options<'a> {
    /// Fds 3 .. 3+preserve_fds go to the process.
    pub preserve_fds: u32,
    /// `exec --cgroup`: sub-cgroups to join instead of the init's own.
    pub sub_cgroups: &'a std::collections::BTreeMap<String, std::path::PathBuf>,
    /// hull will relay the terminal in the foreground: the pty passes
    /// output on untranslated from the first byte (console::attach_foreground).
    pub plain_output: bool,
    /// The container's session keyring to join (None: --no-new-keyring).
    pub session_keyring: Option<String>,
    /// The exec child traces its own steps here too (`--debug`).
    pub log: &'a crate::log::Logger,
}

/// Namespaces of `init` that differ from ours: the ones to join.
fn namespaces_of(init: Pid) -> Result<CloneFlags> {
    let kinds = [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("net", CloneFlags::CLONE_NEWNET),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("time", super::namespaces::CLONE_NEWTIME),
    ];
    let mut flags = CloneFlags::empty();
    for (name, flag) in kinds {
        let theirs = std::fs::read_link(format!("/proc/{init}/ns/{name}")).step_at(
            "read namespace of the container init",
            std::path::Path::new(&format!("/proc/{init}/ns/{name}")),
        )?;
        let ours = std::fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if ours.as_ref() != Some(&theirs) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Start `process` inside the container whose init is `init` (held by
/// `init_fd`). Returns once the process is about to exec, or with the
/// error that stopped it.
pub fn spawn(
    init: Pid,
    init_fd: BorrowedFd<'_>,
    process: &Process,
    linux: Option<&Linux>,
    opts: &Options,
) -> Result<Joined> {
    let flags = namespaces_of(init)?;
    if flags.contains(CloneFlags::CLONE_NEWPID) {
        setns(init_fd, CloneFlags::CLONE_NEWPID).step("enter the container's pid namespace")?;
    }
    let (ours, theirs) = sync::pair()?;
    let cgroups = crate::cgroups::open_join_of(init, opts.sub_cgroups)?;
    let child = match sys::clone_fork(0, cgroups.clone_into()).step("clone exec process")? {
        Forked::Child => {
            drop(ours);
            let err = match join_and_prepare(
                init_fd,
                flags,
                process,
                linux,
                &theirs,
                &cgroups.tasks,
                opts,
            ) {
                Ok((exec, pty)) => {
                    let sent =
                        theirs.send_with_fd(&Msg::Ready, pty.as_ref().map(|p| p.as_raw_fd()));
                    drop(pty);
                    match sent {
                        Ok(()) => match finalize::exec(&exec, opts.preserve_fds) {
                            Err(e) => {
                                eprintln!("hull: error: {e}");
                                std::process::exit(127)
                            }
                        },
                        Err(_) => std::process::exit(1),
                    }
                }
                Err(e) => e,
            };
            let _ = theirs.send(&Msg::Failed(err.to_string()));
            std::process::exit(1)
        }
        Forked::Parent(pid) => pid,
    };
    drop(theirs);
    ours.send(&Msg::Go)?;
    match ours.recv()? {
        Some((Msg::Ready, pty)) => Ok(Joined { pid: child, pty }),
        Some((Msg::Failed(msg), _)) => {
            let _ = waitpid(child, None);
            Err(Error::new(msg))
        }
        Some((other, _)) => {
            Err(Error::new("sync protocol")
                .detail(format!("unexpected {other:?} from exec process")))
        }
        None => {
            let _ = waitpid(child, None);
            Err(Error::new("exec").detail("the process ended during setup"))
        }
    }
}

/// The child: become undumpable (so no container process can open our
/// /proc/PID/exe, the hull binary, while we are inside), join, finalize.
fn join_and_prepare(
    init_fd: BorrowedFd<'_>,
    flags: CloneFlags,
    process: &Process,
    linux: Option<&Linux>,
    chan: &Channel,
    cgroup_tasks: &[(OwnedFd, std::path::PathBuf)],
    opts: &Options,
) -> Result<(finalize::Exec, Option<OwnedFd>)> {
    prctl::set_dumpable(false).step("make exec process undumpable")?;
    prctl::set_pdeathsig(Signal::SIGKILL).step("set parent death signal")?;
    match chan.recv()? {
        Some((Msg::Go, _)) => {}
        _ => return Err(Error::new("wait for placement").detail("hull went away")),
    }
    // Into the init's cgroups (v2 already, at clone) before joining its cgroup namespace.
    crate::cgroups::join_self(cgroup_tasks)?;
    let rest = flags - CloneFlags::CLONE_NEWPID;
    if !rest.is_empty() {
        setns(init_fd, rest).step("join the container's namespaces")?;
    }
    unistd::setsid().step("setsid")?;
    if let Some(name) = &opts.session_keyring {
        crate::security::keyring::join_named(name)?;
    }
    opts.log.step("exec: joined");
    let pty = console::open_if_terminal(process, false)?;
    if let Some(master) = pty.as_ref().filter(|_| opts.plain_output) {
        console::clear_onlcr(master.as_fd());
    }
    // The container's seccomp profile and personality apply to exec'd processes too, as in runc.
    let exec = finalize::apply_with(process, linux)?;
    opts.log.step("exec: process settings");
    prctl::set_pdeathsig(None).step("clear parent death signal")?;
    Ok((exec, pty))
}
