//! A container's cgroups as whole subtrees. The container (given a writable
//! cgroup mount) or a runtime nested in it may make child cgroups below its
//! own, in any hierarchy: its processes are found, signalled and waited for
//! in the whole subtree, and `destroy` removes every directory of it,
//! deepest first, as runc does.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::{freeze, is_frozen, read, write, Paths};
use crate::error::{Error, Result};

/// `dir` and every cgroup below it, children before their parent; empty
/// when `dir` does not exist.
pub fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}

/// The pids listed in cgroup.procs of `dirs` and of every cgroup below them.
pub fn pids_below<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> Vec<i32> {
    let mut out: Vec<i32> = dirs
        .into_iter()
        .flat_map(subtree)
        .flat_map(|d| {
            read(&d, "cgroup.procs")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Every pid in the container's cgroups, child cgroups included. All
/// hierarchies are read: on v1 a process moved into a child cgroup of one
/// hierarchy stays in the container's own directory only in the others.
pub fn pids(paths: &Paths) -> Vec<i32> {
    pids_below(paths.dirs.iter().map(|d| d.path.as_path()))
}

/// Send `signal` (0: only probe) to every process of the container, child
/// cgroups included (cgroup.kill for SIGKILL on v2). A frozen container is
/// thawed afterwards so SIGKILL takes effect.
pub fn signal_all(paths: &Paths, signal: i32) -> Result<()> {
    if signal == libc::SIGKILL && paths.v2_only() {
        if let Some(u) = paths.unified() {
            if u.join("cgroup.kill").exists() {
                return write(u, "cgroup.kill", "1");
            }
        }
    }
    let sig = nix::sys::signal::Signal::try_from(signal).ok();
    for pid in pids(paths) {
        // A process that exited meanwhile is not an error (runc warns only).
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
    }
    if signal == libc::SIGKILL {
        thaw_all(paths);
    }
    Ok(())
}

/// Thaw the container and any child cgroup it froze itself: on v1 a child
/// frozen on its own stays frozen when its parent thaws, and a frozen task
/// cannot act on SIGKILL.
fn thaw_all(paths: &Paths) {
    if is_frozen(paths) {
        let _ = freeze(paths, false);
    }
    let below = |d: &Path| {
        subtree(d)
            .into_iter()
            .filter(|s| s != d)
            .collect::<Vec<_>>()
    };
    if let Some(dir) = paths.v1("freezer") {
        for d in below(dir) {
            if read(&d, "freezer.state").as_deref() != Some("THAWED") {
                let _ = write(&d, "freezer.state", "THAWED");
            }
        }
    }
    if let Some(dir) = paths.unified() {
        for d in below(dir) {
            if read(&d, "cgroup.freeze").as_deref() == Some("1") {
                let _ = write(&d, "cgroup.freeze", "0");
            }
        }
    }
}

/// SIGKILL every process in the container's cgroups and wait until each has
/// exited: through pidfds, so a pid reused meanwhile is never signalled and
/// the wait ends the moment the last process goes (no polling). Repeats while
/// new processes appear (a fork racing the kill), until `patience` runs out
/// for what is left.
fn kill_all_and_wait(paths: &Paths, patience: &Patience) {
    use std::os::fd::AsFd;
    let mut last = Vec::new();
    loop {
        let now = pids(paths);
        let until = patience.until(&now);
        if now.is_empty() || now == last || Instant::now() >= until {
            return;
        }
        thaw_all(paths);
        let fds: Vec<OwnedFd> = now
            .iter()
            .filter_map(|p| crate::sys::pidfd_open(Pid::from_raw(*p)).ok())
            .collect();
        for fd in &fds {
            let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
        }
        for fd in &fds {
            let left = until.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut pfd = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut pfd, nix::poll::PollTimeout::from(ms));
        }
        last = now;
    }
}

/// How long `destroy` waits for the container's processes to leave its
/// cgroups: [`SETTLE`] (and a little) for the wait as a whole, up to
/// [`DYING_LIMIT`] while every process left is dying.
struct Patience {
    settle: Instant,
    dying: Instant,
}

impl Patience {
    fn new() -> Self {
        let now = Instant::now();
        Patience {
            settle: now + SETTLE + Duration::from_secs(2),
            dying: now + DYING_LIMIT,
        }
    }

    /// Until when to wait for `pids` to go.
    fn until(&self, pids: &[i32]) -> Instant {
        if !pids.is_empty() && pids.iter().all(|p| dying(*p)) {
            self.dying.max(self.settle)
        } else {
            self.settle
        }
    }
}

/// How long processes that are dying may take to leave. They will leave, but
/// the kernel decides when: with 50 containers killed at once on 2 vCPUs under
/// stress-ng, killed inits sat for over a minute in their exit, in the mount
/// namespace's teardown waiting for an RCU grace period (runc's `delete
/// --force` fails there with "container init still running"). A process
/// that is not dying — one a signal cannot reach — gets [`SETTLE`] only.
const DYING_LIMIT: Duration = Duration::from_secs(300);

/// Whether `pid` is on its way out: a zombie, gone, or with SIGKILL pending
/// (which it keeps, shared, through its exit).
fn dying(pid: i32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    if field("State:").is_some_and(|s| s.starts_with('Z') || s.starts_with('X')) {
        return true;
    }
    let sigkill = 1u64 << (libc::SIGKILL - 1);
    ["SigPnd:", "ShdPnd:"].iter().any(|f| {
        field(f)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .is_some_and(|mask| mask & sigkill != 0)
    })
}

/// How long an empty cgroup may stay busy: the threads of a killed process
/// leave their cgroups a moment after the process is reported gone, and on
/// a loaded machine that moment is long: a killed init whose parent is the
/// host's init stays a zombie, and so keeps its cgroup busy, until that init
/// reaps it — more than 3 s with 50 parallel deletes under stress-ng. Only a
/// cgroup held by something else (a mount on it) waits this long before the
/// error.
const SETTLE: Duration = Duration::from_secs(10);

/// rmdir `dir`, retrying while it is busy with processes that are dying.
fn remove(paths: &Paths, dir: &Path, patience: &Patience) -> std::result::Result<(), Errno> {
    let settle = Instant::now() + SETTLE;
    let mut pause = Duration::from_millis(1);
    loop {
        let err = match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        };
        let left = pids_below([dir]);
        let now = Instant::now();
        if err != Errno::EBUSY || now >= patience.until(&left) || (left.is_empty() && now >= settle)
        {
            return Err(err);
        }
        if !left.is_empty() {
            kill_all_and_wait(paths, patience);
        }
        // Exited but not yet gone from the cgroup: no event tells when.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Kill what is left in the container's cgroups and remove, in every
/// hierarchy, its directory with every child cgroup in it (deepest first),
/// then the parents hull made for it. Missing directories are fine (a
/// partial record). What cannot be removed is an error naming it.
pub fn destroy(paths: &Paths) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let patience = Patience::new();
    kill_all_and_wait(paths, &patience);
    let mut left: Vec<(PathBuf, Errno)> = Vec::new();
    for d in &paths.dirs {
        // The leaf is the container's even when it existed before (a
        // leftover of a crash); everything below it is the container's.
        for dir in subtree(&d.path) {
            if let Err(e) = remove(paths, &dir, &patience) {
                left.push((dir, e));
            }
        }
        // A parent hull made may be shared by another container: it stays
        // while that one uses it.
        for dir in d.created.iter().rev().filter(|p| **p != d.path) {
            let _ = fs::remove_dir(dir);
        }
    }
    let Some((first, errno)) = left.first() else {
        return Ok(());
    };
    let mut err = Error::sys("remove cgroup", Some(first), *errno);
    if left.len() > 1 {
        let rest: Vec<String> = left[1..]
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        err = err.detail(format!("also left: {}", rest.join(", ")));
    }
    Err(err.hint(
        "something hull cannot end still holds it (a mount on it, or an unkillable process); \
         remove that, then `delete --force` again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_lists_children_before_parents() {
        let base = std::env::temp_dir().join(format!("hull-tree-{}", std::process::id()));
        fs::create_dir_all(base.join("a/b")).unwrap();
        fs::create_dir_all(base.join("c")).unwrap();
        fs::write(base.join("a/file"), "x").unwrap();
        let t = subtree(&base);
        let pos = |p: &str| t.iter().position(|x| *x == base.join(p)).unwrap();
        assert_eq!(t.len(), 4, "{t:?}");
        assert!(pos("a/b") < pos("a"));
        assert_eq!(t.last(), Some(&base));
        assert!(subtree(&base.join("missing")).is_empty());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn dying_tells_killed_and_gone_from_alive() {
        assert!(!dying(std::process::id() as i32), "this test is not dying");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!dying(pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(dying(pid), "a reaped child is gone, so dying");
        assert!(dying(i32::MAX), "no such process");
    }
}
