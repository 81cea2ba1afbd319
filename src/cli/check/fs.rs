//! Filesystem probes: overlayfs (and `lowerdir+`), idmapped mounts, and
//! whether --root and --data-root can hold what hull puts there.
//!
//! Each probe works in a temp dir made in the directory itself (or, when it
//! does not exist yet, in its nearest existing parent: the filesystem it
//! will be created on) and removed afterwards. Mounts are made only by a
//! child in a mount namespace of its own, so they vanish with it.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use super::{in_child, Line};
use crate::error::{Context, Result};
use crate::storage::overlay::Overlay;
use crate::sys;

/// A temp dir for one probe, removed when dropped. Only a probe child's
/// (dead) mount namespace ever had mounts in it, so a plain removal is safe.
struct Scratch(PathBuf);

impl Scratch {
    fn new(base: &Path) -> Result<Scratch> {
        nix::unistd::mkdtemp(&base.join(".hull-check-XXXXXX"))
            .step_at("create a directory", base)
            .map(Scratch)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `path` itself if it exists, else its nearest existing parent.
fn existing_base(path: &Path) -> &Path {
    path.ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"))
}

/// The filesystem type of the mount holding `path` (the last of the
/// longest mount points above it: later mounts cover earlier ones).
fn fs_type(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = crate::rootfs::mountinfo::read_mountinfo().unwrap_or_default();
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
        .map(|m| m.fstype.clone())
        .unwrap_or_else(|| "unknown filesystem".into())
}

/// How `dir` reads in a detail line: "/run/hull (tmpfs)", with ", created
/// on first use" when it does not exist yet.
fn describe(dir: &Path, base: &Path) -> String {
    let later = if base == dir {
        ""
    } else {
        ", created on first use"
    };
    format!("{} ({}{later})", dir.display(), fs_type(base))
}

/// --root: hull keeps a directory per container there, writes state.json
/// atomically (a rename), serialises commands with flock and makes the
/// exec fifo. A root where any of that fails cannot hold a container.
pub fn state_root(root: &Path) -> Line {
    let base = existing_base(root);
    if base == root && !root.is_dir() {
        return Line::fail(
            "root",
            format!("{} is not a directory", root.display()),
            "pass --root a directory (the default is /run/hull)",
        );
    }
    match state_files(base) {
        Ok(()) => Line::ok(
            "root",
            format!(
                "{}: state files, flock and exec fifo work",
                describe(root, base)
            ),
        ),
        Err(e) => Line::fail(
            "root",
            format!("{}: {e}", describe(root, base)),
            "no container can be created: pass a --root on a writable local filesystem (e.g. /run/hull on tmpfs)",
        ),
    }
}

fn state_files(base: &Path) -> Result<()> {
    let dir = Scratch::new(base)?;
    let tmp = dir.0.join(".state.json.tmp");
    std::fs::write(&tmp, b"{}").step_at("write", &tmp)?;
    let state = dir.0.join("state.json");
    std::fs::rename(&tmp, &state).step_at("rename", &state)?;
    let file = File::open(&dir.0).step_at("open", &dir.0)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .step_at("flock", &dir.0)?;
    let fifo = dir.0.join(crate::state::EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622)).step_at("mkfifo", &fifo)
}

/// What the overlay child found.
#[derive(Serialize, Deserialize)]
struct OverlayProbe {
    /// The new mount API with `lowerdir+` (what hull tries first).
    lowerdir_plus: std::result::Result<(), String>,
    /// mount(2) with one lowerdir= string, tried when the above failed.
    legacy: Option<std::result::Result<(), String>>,
    /// An upper and work dir on the data root (None: not tried).
    upper: Option<std::result::Result<(), String>>,
}

/// Lines "overlayfs", "idmapped mounts" and "data-root".
pub fn overlay_and_data_root(data_root: &Path, userns: Option<&OwnedFd>) -> Vec<Line> {
    let base = existing_base(data_root);
    let on_data_root = Scratch::new(base);
    // The kernel probe needs only a directory to mount a tmpfs on.
    let elsewhere = match &on_data_root {
        Ok(_) => None,
        Err(_) => Scratch::new(&std::env::temp_dir()).ok(),
    };
    let Some(scratch) = on_data_root.as_ref().ok().or(elsewhere.as_ref()) else {
        let err = on_data_root
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return vec![
            Line::warn(
                "overlayfs",
                "not probed: no writable temp dir",
                "check /tmp",
            ),
            data_root_line(data_root, base, Err(err), None),
        ];
    };
    let upper = on_data_root.as_ref().ok().map(|s| s.0.join("u"));
    let probe = in_child(CloneFlags::CLONE_NEWNS, || {
        overlay_child(&scratch.0.join("t"), upper.as_deref())
    })
    .unwrap_or_else(|e| OverlayProbe {
        lowerdir_plus: Err(e.clone()),
        legacy: Some(Err(e)),
        upper: None,
    });
    let writable = on_data_root.as_ref().map(drop).map_err(|e| e.to_string());
    vec![
        overlay_line(&probe),
        idmapped(&scratch.0, userns),
        data_root_line(data_root, base, writable, probe.upper),
    ]
}

/// In the child, in its own mount namespace: a tmpfs with two lowers, an
/// upper and a work dir, overlaid with `lowerdir+`, else mount(2); then an
/// upper on the data root over the same lowers.
fn overlay_child(tmp: &Path, data: Option<&Path>) -> OverlayProbe {
    let err = |e: crate::error::Error| Err(e.to_string());
    let setup = (|| {
        // Nothing mounted here may propagate to the host's mounts.
        crate::rootfs::isolate_from_host()?;
        std::fs::create_dir(tmp).step_at("mkdir", tmp)?;
        mount(
            Some("tmpfs"),
            tmp,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .step_at("mount tmpfs", tmp)?;
        for (dir, file) in [("l1", "base"), ("l2", "top")] {
            std::fs::create_dir(tmp.join(dir)).step_at("mkdir", tmp)?;
            std::fs::write(tmp.join(dir).join(file), file).step_at("write", tmp)?;
        }
        Ok(())
    })();
    if let Err(e) = setup {
        return OverlayProbe {
            lowerdir_plus: err(e),
            legacy: None,
            upper: None,
        };
    }
    let lowers = vec![tmp.join("l2"), tmp.join("l1")];
    let kernel = overlay_in(&tmp.join("u"), lowers.clone(), false);
    let legacy = kernel
        .is_err()
        .then(|| overlay_in(&tmp.join("u2"), lowers.clone(), true));
    let use_legacy = matches!(legacy, Some(Ok(())));
    let works = kernel.is_ok() || use_legacy;
    let upper = data
        .filter(|_| works)
        .map(|d| overlay_in(d, lowers, use_legacy).map_err(|e| e.to_string()));
    OverlayProbe {
        lowerdir_plus: kernel.map_err(|e| e.to_string()),
        legacy: legacy.map(|r| r.map_err(|e| e.to_string())),
        upper,
    }
}

/// Mount an overlay with its upper, work and merged dirs in `dir`, and see
/// it do its job: both lowers visible, a new file copied into the upper.
fn overlay_in(dir: &Path, lowers: Vec<PathBuf>, legacy: bool) -> Result<()> {
    let ov = Overlay {
        lowers,
        upper: dir.join("upper"),
        work: dir.join("work"),
        merged: dir.join("merged"),
        userxattr: false,
    };
    std::fs::create_dir_all(dir).step_at("mkdir", dir)?;
    for d in [&ov.upper, &ov.work, &ov.merged] {
        std::fs::create_dir(d).step_at("mkdir", d)?;
    }
    if legacy {
        ov.mount_legacy()?;
    } else {
        ov.mount_new_api()?;
    }
    for f in ["base", "top"] {
        std::fs::metadata(ov.merged.join(f)).step_at("read through", &ov.merged)?;
    }
    std::fs::write(ov.merged.join("new"), b"x").step_at("write through", &ov.merged)?;
    std::fs::metadata(ov.upper.join("new")).step_at("copy up", &ov.upper)?;
    Ok(())
}

fn overlay_line(p: &OverlayProbe) -> Line {
    match (&p.lowerdir_plus, &p.legacy) {
        (Ok(()), _) => Line::ok("overlayfs", "mounts with lowerdir+ (any number of --layer)"),
        (Err(e), Some(Ok(()))) => Line::warn(
            "overlayfs",
            format!("mount(2) only, no lowerdir+ ({e})"),
            "--layer stacks longer than one page of mount options fail: lowerdir+ needs Linux 6.8+",
        ),
        (Err(e), legacy) => {
            let e = match legacy {
                Some(Err(l)) if l != e => format!("{e}; mount(2): {l}"),
                _ => e.clone(),
            };
            Line::warn(
                "overlayfs",
                format!("cannot mount an overlay: {e}"),
                "--overlay and --layer fail: the kernel needs overlayfs (CONFIG_OVERLAY_FS)",
            )
        }
    }
}

/// An idmapped mount of `dir`'s filesystem: a detached clone of the mount
/// (open_tree) given the probe's user namespace; closing the fd drops it.
fn idmapped(dir: &Path, userns: Option<&OwnedFd>) -> Line {
    let fix = "user-namespaced containers must own their rootfs files (chown): idmapped mounts need Linux 5.12+ and a filesystem that supports them";
    let Some(userns) = userns else {
        return Line::warn("idmapped mounts", "not probed: no user namespace", fix);
    };
    let parent = dir.parent().unwrap_or(dir);
    let path = CString::new(dir.as_os_str().as_bytes()).expect("temp path has no NUL");
    let r = sys::open_tree_clone(&path, false)
        .and_then(|m| sys::mount_setattr_idmap(m.as_fd(), false, userns.as_fd()));
    match r {
        Ok(()) => Line::ok(
            "idmapped mounts",
            format!("work on {} (tried in {})", fs_type(dir), parent.display()),
        ),
        Err(e) => Line::warn(
            "idmapped mounts",
            format!(
                "not on {} (tried in {}): {e}",
                fs_type(dir),
                parent.display()
            ),
            fix,
        ),
    }
}

fn data_root_line(
    dir: &Path,
    base: &Path,
    writable: std::result::Result<(), String>,
    upper: Option<std::result::Result<(), String>>,
) -> Line {
    let what = describe(dir, base);
    if let Err(e) = writable {
        return Line::warn(
            "data-root",
            format!("{what}: {e}"),
            "--overlay, --layer and volumes fail: pass a --data-root on a writable filesystem",
        );
    }
    match upper {
        Some(Err(e)) => {
            let fix = if fs_type(base) == "overlay" {
                "an overlay's upper dir cannot be on overlayfs: --overlay fails; put --data-root on ext4, xfs, btrfs or tmpfs (in a container: a volume)"
            } else {
                "--overlay fails: put --data-root on ext4, xfs, btrfs or tmpfs (needs trusted.* xattrs and d_type)"
            };
            Line::warn(
                "data-root",
                format!("{what}: an overlay upper dir does not work here: {e}"),
                fix,
            )
        }
        Some(Ok(())) => Line::ok(
            "data-root",
            format!("{what}: writable, overlay upper dirs work"),
        ),
        None => Line::ok("data-root", format!("{what}: writable")),
    }
}
