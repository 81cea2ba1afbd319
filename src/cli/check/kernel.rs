//! Kernel probes: namespaces, user namespaces, seccomp (and notify), the
//! syscalls hull cannot do without, capabilities and the NOFILE limit.

use std::os::fd::{AsFd, OwnedFd};

use caps::{CapSet, Capability};
use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::resource::{getrlimit, Resource};
use nix::unistd::Pid;

use super::{in_child, list, Line};
use crate::sys::{self, Forked};

/// Every namespace kind a config can ask for, with its name in config.json.
const NAMESPACES: &[(CloneFlags, &str)] = &[
    (CloneFlags::CLONE_NEWNS, "mount"),
    (CloneFlags::CLONE_NEWPID, "pid"),
    (CloneFlags::CLONE_NEWNET, "network"),
    (CloneFlags::CLONE_NEWUTS, "uts"),
    (CloneFlags::CLONE_NEWIPC, "ipc"),
    (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    (CLONE_NEWTIME, "time"),
];
const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(0x80);

/// One child in all of them at once (the usual answer: all work); only if
/// that fails, one child per kind to name the missing ones.
pub fn namespaces() -> Line {
    let all = NAMESPACES
        .iter()
        .fold(CloneFlags::empty(), |acc, (f, _)| acc | *f);
    let missing: Vec<(&str, String)> = if in_child(all, || ()).is_ok() {
        Vec::new()
    } else {
        NAMESPACES
            .iter()
            .filter_map(|(f, name)| in_child(*f, || ()).err().map(|e| (*name, e)))
            .collect()
    };
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    if missing.is_empty() {
        let all: Vec<&str> = NAMESPACES.iter().map(|(_, n)| *n).collect();
        return Line::ok("namespaces", format!("{} can be created", list(&all)));
    }
    let why = format!("cannot create {} ({})", list(&names), missing[0].1);
    if names.contains(&"mount") {
        // The rootfs is set up in the init's own mount namespace.
        Line::fail(
            "namespaces",
            why,
            "run hull as root on the host, or in a container allowed to unshare (CAP_SYS_ADMIN, no seccomp block on clone3/unshare)",
        )
    } else {
        Line::warn(
            "namespaces",
            why,
            "configs that list these in linux.namespaces fail; the kernel lacks them or a sandbox blocks them",
        )
    }
}

/// The user-namespace probe: its line, and the namespace (for idmapped mounts).
pub struct UserNs {
    result: std::result::Result<(), String>,
    pub fd: Option<OwnedFd>,
}

impl UserNs {
    pub fn line(&self) -> Line {
        match &self.result {
            Ok(()) => Line::ok(
                "user namespaces",
                "a user namespace with uid/gid maps can be created",
            ),
            Err(e) => Line::warn(
                "user namespaces",
                format!("cannot create one: {e}"),
                "configs with a user namespace (uidMappings) fail: check user.max_user_namespaces and that no sandbox blocks CLONE_NEWUSER",
            ),
        }
    }
}

/// Clone a child into a new user namespace, map ids into it as hull does
/// for a container (uid_map, gid_map), and keep an fd of the namespace.
/// The child only waits for the pipe to close, then exits.
pub fn user_namespace() -> UserNs {
    let fail = |e: String| UserNs {
        result: Err(e),
        fd: None,
    };
    let (rx, tx) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail(format!("pipe: {}", e.desc())),
    };
    let pid = match sys::clone_fork(CloneFlags::CLONE_NEWUSER.bits() as u64, None) {
        Err(e) => return fail(format!("clone3(CLONE_NEWUSER): {e}: {}", e.desc())),
        Ok(Forked::Child) => {
            drop(tx);
            let _ = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&rx), &mut [0u8; 1]);
            std::process::exit(0)
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(rx);
    let result = map_and_open(pid);
    drop(tx);
    let _ = nix::sys::wait::waitpid(pid, None);
    match result {
        Ok(fd) => UserNs {
            result: Ok(()),
            fd: Some(fd),
        },
        Err(e) => fail(e),
    }
}

fn map_and_open(pid: Pid) -> std::result::Result<OwnedFd, String> {
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, "0 100000 65536\n").map_err(|e| format!("write {path}: {e}"))?;
    }
    let path = format!("/proc/{pid}/ns/user");
    std::fs::File::open(&path)
        .map(OwnedFd::from)
        .map_err(|e| format!("open {path}: {e}"))
}

/// A filter is loaded in a child (filters cannot be unloaded): one rule
/// that makes getpgid fail with EXDEV, checked by calling it; then a
/// filter with a SCMP_ACT_NOTIFY rule and its listener fd.
pub fn seccomp() -> Vec<Line> {
    type Probe = (
        std::result::Result<(), String>,
        std::result::Result<(), String>,
    );
    let probe = || -> Probe {
        let plain = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
            let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Allow)?;
            ctx.add_rule(
                ScmpAction::Errno(libc::EXDEV),
                ScmpSyscall::from_name("getpgid")?,
            )?;
            ctx.load()?;
            match nix::unistd::getpgid(None) {
                Err(Errno::EXDEV) => Ok(()),
                other => Err(format!("the filter did not act (getpgid gave {other:?})").into()),
            }
        })()
        .map_err(|e| e.to_string());
        let notify = (|| -> std::result::Result<(), Box<dyn std::error::Error>> {
            let mut ctx = ScmpFilterContext::new_filter(ScmpAction::Allow)?;
            ctx.add_rule(ScmpAction::Notify, ScmpSyscall::from_name("getpriority")?)?;
            ctx.load()?;
            ctx.get_notify_fd()?;
            Ok(())
        })()
        .map_err(|e| e.to_string());
        (plain, notify)
    };
    let (plain, notify) = match in_child(CloneFlags::empty(), probe) {
        Ok(r) => r,
        Err(e) => (Err(e.clone()), Err(e)),
    };
    let plain = match plain {
        Ok(()) => Line::ok("seccomp", "a filter loads and acts (SCMP_ACT_ERRNO)"),
        Err(e) => Line::warn(
            "seccomp",
            format!("cannot load a filter: {e}"),
            "configs with linux.seccomp (Docker's default profile) fail: the kernel needs CONFIG_SECCOMP_FILTER",
        ),
    };
    let notify = match notify {
        Ok(()) => Line::ok("seccomp notify", "SCMP_ACT_NOTIFY gives a listener fd"),
        Err(e) => Line::warn(
            "seccomp notify",
            format!("no listener: {e}"),
            "profiles with SCMP_ACT_NOTIFY (seccomp agents) fail: needs Linux 5.0+ and libseccomp 2.5+",
        ),
    };
    vec![plain, notify]
}

/// The syscalls the create path makes for every container (clone3, pidfd,
/// openat2, close_range) and mount_setattr, which recursive mount options
/// ("rro", "rnosuid", ...) need.
pub fn syscalls() -> Line {
    let text = |r: std::result::Result<(), Errno>| r.map_err(|e| e.to_string());
    let pidfd = sys::pidfd_open(nix::unistd::getpid());
    let root = std::fs::File::open("/").map(OwnedFd::from);
    let required = [
        (
            "clone3",
            in_child(CloneFlags::empty(), || ())
                .map_err(|e| e.trim_start_matches("clone3: ").to_string()),
        ),
        ("pidfd_open", text(pidfd.as_ref().map(drop).map_err(|e| *e))),
        (
            "pidfd_send_signal",
            // Signal 0: permission and existence check, nothing is delivered.
            match &pidfd {
                Ok(fd) => text(sys::pidfd_send_signal(fd.as_fd(), 0)),
                Err(_) => Err("no pidfd".into()),
            },
        ),
        (
            "openat2",
            match &root {
                Ok(root) => text(
                    sys::openat2(root.as_fd(), c".", libc::O_PATH, 0, sys::RESOLVE_IN_ROOT)
                        .map(drop),
                ),
                Err(e) => Err(format!("open /: {e}")),
            },
        ),
        // From a fd far above any open one: changes nothing in hull.
        ("close_range", text(sys::cloexec_from(1 << 30))),
    ];
    // A detached copy of "/" (no namespace sees it; closing drops it).
    let setattr = sys::open_tree_clone(c"/", false)
        .and_then(|m| sys::mount_setattr(m.as_fd(), false, sys::MOUNT_ATTR_NOSUID, 0));
    let optional = [("mount_setattr", text(setattr))];
    let failed = |probes: &[(&str, std::result::Result<(), String>)]| -> Vec<String> {
        probes
            .iter()
            .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name} ({e})")))
            .collect()
    };
    let (required, optional) = (failed(&required), failed(&optional));
    let missing: Vec<&String> = required.iter().chain(&optional).collect();
    let names = "clone3, pidfd_open, pidfd_send_signal, openat2, close_range, mount_setattr";
    if missing.is_empty() {
        Line::ok("syscalls", format!("{names} work"))
    } else if !required.is_empty() {
        Line::fail(
            "syscalls",
            format!("missing: {}", list(&missing)),
            "hull needs Linux 5.12+ (clone3 5.3, pidfd 5.3, openat2 5.6, close_range 5.11), and no seccomp sandbox blocking them",
        )
    } else {
        Line::warn(
            "syscalls",
            format!("missing: {}", list(&missing)),
            "recursive mount options (rro, rnosuid, ...) fail: needs Linux 5.12+",
        )
    }
}

/// hull runs as root with the capabilities it gives containers; one that is
/// not in the bounding set cannot be given (the config fails with EPERM).
pub fn capabilities() -> Line {
    if !nix::unistd::geteuid().is_root() {
        return Line::fail(
            "capabilities",
            format!("hull runs as uid {}", nix::unistd::geteuid()),
            "run hull as root (rootless containers are not supported)",
        );
    }
    let bounding = match caps::read(None, CapSet::Bounding) {
        Ok(b) => b,
        Err(e) => {
            return Line::warn(
                "capabilities",
                format!("cannot read the bounding set: {e}"),
                "check /proc/self/status",
            )
        }
    };
    let mut absent: Vec<String> = caps::runtime::thread_all_supported()
        .into_iter()
        .filter(|c| !bounding.contains(c))
        .map(|c| c.to_string())
        .collect();
    absent.sort();
    if absent.is_empty() {
        return Line::ok("capabilities", "root, every capability in the bounding set");
    }
    Line::warn(
        "capabilities",
        format!("not in hull's bounding set: {}", list(&absent)),
        "configs that ask for these fail with EPERM; give hull's caller the full set (docker run --privileged, systemd CapabilityBoundingSet=)",
    )
}

/// Containers' RLIMIT_NOFILE cannot exceed hull's hard limit unless hull
/// may raise it (CAP_SYS_RESOURCE). `hull spec` asks for 1024; Docker and
/// podman default to 1048576.
pub fn nofile() -> Line {
    const SPEC_DEFAULT: u64 = 1024;
    const ENGINES: u64 = 1_048_576;
    let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return Line::warn("nofile", "cannot read RLIMIT_NOFILE", "check ulimit -Hn");
    };
    let can_raise =
        caps::has_cap(None, CapSet::Effective, Capability::CAP_SYS_RESOURCE).unwrap_or(false);
    let shown = if hard == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    if can_raise || hard >= ENGINES {
        let how = if can_raise && hard < ENGINES {
            " (hull may raise it: CAP_SYS_RESOURCE)"
        } else {
            ""
        };
        return Line::ok("nofile", format!("hard limit {shown}{how}"));
    }
    let raise = "raise the hard limit of hull's caller (ulimit -Hn, systemd LimitNOFILE=) or give it CAP_SYS_RESOURCE";
    if hard < SPEC_DEFAULT {
        Line::fail(
            "nofile",
            format!("hard limit {shown}, below the {SPEC_DEFAULT} of a default config"),
            raise,
        )
    } else {
        Line::warn(
            "nofile",
            format!("hard limit {shown}, no CAP_SYS_RESOURCE: configs asking for more fail (Docker and podman ask for {ENGINES})"),
            raise,
        )
    }
}
