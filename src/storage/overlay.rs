//! The copy-on-write rootfs: the bundle's rootfs (and any layers above it)
//! as read-only lowers, a per-container upper and work dir on the host, and
//! the overlay mounted by the init inside the container's mount namespace.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

use crate::error::{Context, Error, Result};
use crate::sys;

#[derive(Debug, Clone)]
pub struct Overlay {
    /// Read-only layers, top-most first; the bundle's rootfs is last.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the init mounts the overlay: the container's rootfs.
    pub merged: PathBuf,
    /// In a new user namespace overlay keeps its xattrs in user.overlay.*.
    pub userxattr: bool,
}

impl Overlay {
    /// Create `<dir>/{upper,work,merged}` (the caller journalled `dir`).
    /// The dirs on the way are 0711: the root of a user namespace (not
    /// the host's) must traverse them to mount the overlay.
    /// The upper's root takes the rootfs root's mode and owner: it is what
    /// the container sees as "/".
    pub fn create(
        dir: &Path,
        lowers: Vec<PathBuf>,
        rootfs: &Path,
        userxattr: bool,
    ) -> Result<Overlay> {
        let parent = dir.parent().expect("data dir has a parent");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(parent)
            .step_at("create data dir", parent)?;
        match std::fs::DirBuilder::new().mode(0o711).create(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::new("create container data dir")
                    .at(dir)
                    .detail("it already exists")
                    .hint("a container of this id under another --root uses it, or a crash left it: remove it"));
            }
            other => other.step_at("create container data dir", dir)?,
        }
        let ov = Overlay {
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            userxattr,
        };
        for d in [&ov.upper, &ov.work, &ov.merged] {
            std::fs::DirBuilder::new()
                .mode(0o755)
                .create(d)
                .step_at("create overlay dir", d)?;
        }
        let meta = std::fs::metadata(rootfs).step_at("stat rootfs", rootfs)?;
        std::fs::set_permissions(
            &ov.upper,
            std::fs::Permissions::from_mode(meta.mode() & 0o7777),
        )
        .step_at("chmod upper dir", &ov.upper)?;
        std::os::unix::fs::chown(&ov.upper, Some(meta.uid()), Some(meta.gid()))
            .step_at("chown upper dir", &ov.upper)?;
        Ok(ov)
    }

    /// The dirs `create` made for an earlier run of the same container.
    pub fn existing(dir: &Path, lowers: Vec<PathBuf>, userxattr: bool) -> Overlay {
        Overlay {
            lowers,
            upper: dir.join("upper"),
            work: dir.join("work"),
            merged: dir.join("merged"),
            userxattr,
        }
    }

    /// Mount the overlay on `merged`. Called in the init: "/" is made a
    /// recursive slave first so the mount can never propagate to the host.
    pub fn mount(&self) -> Result<()> {
        crate::rootfs::isolate_from_host()?;
        match self.mount_new_api() {
            // Kernels before 6.8 have no "lowerdir+" (EINVAL), before 5.2
            // no fsopen (ENOSYS): the one-string mount(2) still works for a
            // stack that fits in a page.
            Err(e) if matches!(e.errno(), Some(Errno::ENOSYS | Errno::EINVAL)) => {
                self.mount_legacy().map_err(|legacy| {
                    if legacy.errno() == Some(Errno::EINVAL) {
                        e
                    } else {
                        legacy
                    }
                })
            }
            r => r,
        }
        .map_err(|e| e.within("mount overlay rootfs"))
    }

    fn options(&self) -> Vec<(&'static str, Option<PathBuf>)> {
        let mut opts = vec![
            ("upperdir", Some(self.upper.clone())),
            ("workdir", Some(self.work.clone())),
        ];
        // No redirects: a renamed lower directory is copied up whole, so the
        // upper (and `hull commit` of it) is a plain layer.
        // (userxattr implies redirect_dir=nofollow and refuses "off".)
        if self.userxattr {
            opts.push(("userxattr", None));
        } else {
            opts.push(("redirect_dir", Some(PathBuf::from("off"))));
        }
        opts.push(("index", Some(PathBuf::from("off"))));
        opts
    }

    pub(crate) fn mount_new_api(&self) -> Result<()> {
        let fs = sys::fsopen(c"overlay").step("fsopen overlay")?;
        let set = |key: &str, value: &Path| -> Result<()> {
            let k = CString::new(key).expect("no NUL");
            let v = CString::new(value.as_os_str().as_bytes())
                .map_err(|_| Error::new("overlay option").at(value).detail("NUL in path"))?;
            sys::fsconfig_set_string(fs.as_fd(), &k, &v).map_err(|e| {
                with_messages(Error::sys(format!("overlay {key}"), Some(value), e), &fs)
            })
        };
        for l in &self.lowers {
            set("lowerdir+", l)?;
        }
        for (key, value) in self.options() {
            match value {
                Some(v) => set(key, &v)?,
                None => {
                    let k = CString::new(key).expect("no NUL");
                    sys::fsconfig_set_flag(fs.as_fd(), &k).map_err(|e| {
                        with_messages(Error::sys(format!("overlay {key}"), None, e), &fs)
                    })?
                }
            }
        }
        sys::fsconfig_create(fs.as_fd())
            .map_err(|e| with_messages(Error::sys("create overlay", None, e), &fs))?;
        let mnt = sys::fsmount(fs.as_fd()).step("fsmount overlay")?;
        let target = CString::new(self.merged.as_os_str().as_bytes())
            .map_err(|_| Error::new("overlay").at(&self.merged).detail("NUL in path"))?;
        sys::move_mount_to(mnt.as_fd(), &target).step_at("move_mount overlay", &self.merged)
    }

    pub(crate) fn mount_legacy(&self) -> Result<()> {
        let mut data = self.legacy_data(&self.lowers);
        // mount(2) copies one page of options and cuts the rest: a long stack
        // fails with ENOENT on a truncated path. Naming each lower by an
        // O_PATH fd (/proc/self/fd/N, resolved by the kernel at mount time)
        // fits some 200 layers in a page on kernels without lowerdir+.
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096) as usize;
        let mut _held = Vec::new();
        if data.len() >= page {
            let mut by_fd = Vec::with_capacity(self.lowers.len());
            for l in &self.lowers {
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
                    .open(l)
                    .step_at("open overlay lower", l)?;
                by_fd.push(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())));
                _held.push(f);
            }
            data = self.legacy_data(&by_fd);
        }
        mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .step_at("mount overlay", &self.merged)
        .map_err(|e| {
            e.hint_if(
                Errno::EINVAL,
                "the lower stack is too long for mount(2) on this kernel (lowerdir+ needs Linux 6.8)",
            )
        })
    }

    /// The one-string options of mount(2), with `lowers` as the lower stack.
    fn legacy_data(&self, lowers: &[PathBuf]) -> String {
        let lowers: Vec<String> = lowers
            .iter()
            .map(|l| {
                l.to_string_lossy()
                    .replace('\\', "\\\\")
                    .replace(':', "\\:")
            })
            .collect();
        let mut data = format!("lowerdir={}", lowers.join(":"));
        for (key, value) in self.options() {
            data.push(',');
            data.push_str(key);
            if let Some(v) = value {
                data.push('=');
                data.push_str(&v.to_string_lossy());
            }
        }
        data
    }
}

/// Append what the filesystem logged on its context fd ("e overlayfs: ...")
/// to an error: the kernel's own reason is clearer than EINVAL.
fn with_messages(err: Error, fs: &std::os::fd::OwnedFd) -> Error {
    let mut msgs = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fs), &mut buf) {
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        let line = line.trim();
        msgs.push(line.strip_prefix("e ").unwrap_or(line).to_string());
    }
    if msgs.is_empty() {
        err
    } else {
        err.detail(msgs.join("; "))
    }
}
