//! Paths inside the container's rootfs, resolved by the kernel as if the
//! rootfs were "/" (openat2 RESOLVE_IN_ROOT): an absolute symlink or a ".."
//! in the image can never lead hull to create or mount anything outside it.
//!
//! Everything is created relative to a directory fd that was itself resolved
//! in the root, one component at a time, so no step follows a path string
//! the image controls.

use std::ffi::{CString, OsStr, OsString};
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::readlinkat;
use nix::sys::stat::{mkdirat, Mode};

use crate::error::{Context, Error, Result};
use crate::sys;

const RESOLVE: u64 = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;

/// The rootfs as an O_PATH directory fd: the anchor of every lookup.
pub struct InRoot {
    root: OwnedFd,
    /// Where the root is on the host, to name an fd's path inside it.
    host: PathBuf,
}

/// Dangling symlinks followed while creating one path (the kernel's limit).
const MAX_LINKS: usize = 40;

/// The path through which mount(2) and friends reach what `fd` refers to.
/// Valid while the host /proc is mounted at /proc (i.e. before pivot_root).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The components of a container path, lexically cleaned: "." dropped, ".."
/// pops (never above "/"), so what is left are plain names. This matches
/// runc, which cleans destinations before resolving them.
pub fn clean(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn join(components: &[OsString]) -> PathBuf {
    components.iter().collect()
}

fn cstr(path: &Path) -> std::result::Result<CString, Errno> {
    let bytes = path.as_os_str().as_bytes();
    // The root itself is "." for openat2.
    let bytes = if bytes.is_empty() { b"." } else { bytes };
    CString::new(bytes).map_err(|_| Errno::EINVAL)
}

impl InRoot {
    /// Open the rootfs. Call it after the rootfs is bind-mounted onto itself:
    /// the fd must sit on the top-most mount so that mounts made through it
    /// are the ones pivot_root later takes along.
    pub fn open(rootfs: &Path) -> Result<Self> {
        let root = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(rootfs)
            .step_at("open rootfs", rootfs)?;
        let root: OwnedFd = root.into();
        let host = std::fs::read_link(fd_path(&root)).step_at("readlink rootfs", rootfs)?;
        Ok(InRoot { root, host })
    }

    /// The container path of a directory fd resolved in this root.
    fn container_path(&self, fd: &OwnedFd) -> Option<PathBuf> {
        let real = std::fs::read_link(fd_path(fd)).ok()?;
        Some(Path::new("/").join(real.strip_prefix(&self.host).ok()?))
    }

    /// Where the dangling symlink `name` in `dir` points, as a container
    /// path. Creating through it is what runc (securejoin) does, e.g. for an
    /// image's /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf;
    /// the new path is created by the same in-root machinery, so it stays in.
    fn dangling_target(&self, dir: &OwnedFd, name: &OsStr) -> Option<PathBuf> {
        let target = PathBuf::from(readlinkat(Some(dir.as_raw_fd()), name).ok()?);
        if target.is_absolute() {
            Some(target)
        } else {
            Some(self.container_path(dir)?.join(target))
        }
    }

    fn openat2(&self, rel: &Path, flags: i32) -> std::result::Result<OwnedFd, Errno> {
        sys::openat2(self.root.as_fd(), &cstr(rel)?, flags, 0, RESOLVE)
    }

    /// An O_PATH fd for an existing container path (symlinks followed, in
    /// the root). Crosses mount points, so after a mount it names the new
    /// mount's root, not the directory underneath.
    pub fn resolve(&self, path: &Path) -> std::result::Result<OwnedFd, Errno> {
        self.openat2(&join(&clean(path)), libc::O_PATH)
    }

    /// Like `resolve`, but the error already names the step and path.
    pub fn open_path(&self, step: &str, path: &Path) -> Result<OwnedFd> {
        self.resolve(path).step_at(step, path)
    }

    /// The directory `path`, created (mode `mode`, minus umask) with every
    /// missing parent. Returns an O_PATH fd of the directory.
    pub fn mkdir_all(&self, path: &Path, mode: Mode) -> Result<OwnedFd> {
        self.mkdir_all_in(path, mode, 0)
    }

    fn mkdir_all_in(&self, path: &Path, mode: Mode, links: usize) -> Result<OwnedFd> {
        let parts = clean(path);
        let mut cur = self.root.try_clone().step_at("dup rootfs fd", path)?;
        for i in 0..parts.len() {
            let prefix = join(&parts[..=i]);
            let dir_flags = libc::O_PATH | libc::O_DIRECTORY;
            cur = match self.openat2(&prefix, dir_flags) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    // `cur` was resolved in the root and the name is a plain
                    // component: mkdirat cannot leave the rootfs. EEXIST is a
                    // race we lost or a dangling symlink; re-resolving tells.
                    match mkdirat(Some(cur.as_raw_fd()), parts[i].as_os_str(), mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(Error::sys("mkdir", Some(path), e)),
                    }
                    match self.openat2(&prefix, dir_flags) {
                        Err(Errno::ENOENT) if links < MAX_LINKS => {
                            if let Some(t) = self.dangling_target(&cur, &parts[i]) {
                                let rest = join(&parts[i + 1..]);
                                return self.mkdir_all_in(&t.join(rest), mode, links + 1);
                            }
                        }
                        _ => {}
                    }
                    self.openat2(&prefix, dir_flags).map_err(|e| {
                        Error::sys("mkdir", Some(&Path::new("/").join(&prefix)), e).hint_if(
                            Errno::ENOENT,
                            "a dangling symlink in the rootfs is in the way",
                        )
                    })?
                }
                Err(e) => {
                    return Err(Error::sys("mkdir", Some(&Path::new("/").join(&prefix)), e)
                        .hint_if(Errno::ENOTDIR, "a file in the rootfs is in the way"))
                }
            };
        }
        Ok(cur)
    }

    /// The parent directory of `path` (created if missing) and the last
    /// name: for mknodat/symlinkat/unlinkat, which never follow that name.
    pub fn parent_of(&self, path: &Path) -> Result<(OwnedFd, OsString)> {
        let mut parts = clean(path);
        let name = parts.pop().ok_or_else(|| {
            Error::new("resolve in rootfs")
                .at(path)
                .detail("no file name")
        })?;
        let parent = self.mkdir_all(&join(&parts), Mode::from_bits_truncate(0o755))?;
        Ok((parent, name))
    }

    /// An O_PATH fd of `path`, created as an empty file (with its parents)
    /// if missing: the target of a file bind mount.
    pub fn create_file(&self, path: &Path) -> Result<OwnedFd> {
        self.create_file_in(path, 0)
    }

    fn create_file_in(&self, path: &Path, links: usize) -> Result<OwnedFd> {
        match self.resolve(path) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys("resolve in rootfs", Some(path), e)),
        }
        let (parent, name) = self.parent_of(path)?;
        // O_EXCL never follows a symlink, and a single component relative to
        // a resolved parent cannot leave the root.
        let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOCTTY;
        let cname = cstr(Path::new(&name)).step_at("create file", path)?;
        match sys::openat2(parent.as_fd(), &cname, flags, 0o644, RESOLVE) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys("create file", Some(path), e)),
        }
        match self.resolve(path) {
            Err(Errno::ENOENT) if links < MAX_LINKS => {
                if let Some(t) = self.dangling_target(&parent, &name) {
                    return self.create_file_in(&t, links + 1);
                }
            }
            Ok(fd) => return Ok(fd),
            _ => {}
        }
        self.resolve(path)
            .step_at("create file", path)
            .map_err(|e| {
                e.hint_if(
                    Errno::ENOENT,
                    "a dangling symlink in the rootfs is in the way",
                )
            })
    }
}

/// `name` as a relative path for the *at calls.
pub fn name_path(name: &OsStr) -> &Path {
    Path::new(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A scratch directory holding `root/` (the rootfs) and `outside/`.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "hull-resolve-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("root")).unwrap();
            std::fs::create_dir_all(dir.join("outside")).unwrap();
            Scratch(dir)
        }
        fn root(&self) -> PathBuf {
            self.0.join("root")
        }
        fn outside(&self) -> PathBuf {
            self.0.join("outside")
        }
        fn outside_is_empty(&self) -> bool {
            std::fs::read_dir(self.outside()).unwrap().next().is_none()
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Where an fd really points, as the host sees it.
    fn real(fd: &OwnedFd) -> PathBuf {
        std::fs::read_link(fd_path(fd)).unwrap()
    }

    fn mode() -> Mode {
        Mode::from_bits_truncate(0o755)
    }

    #[test]
    fn clean_drops_dots_and_clamps_at_root() {
        let c = |p: &str| join(&clean(Path::new(p)));
        assert_eq!(c("/a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(c("/../../etc"), PathBuf::from("etc"));
        assert_eq!(c("relative/x"), PathBuf::from("relative/x"));
        assert_eq!(c("/"), PathBuf::new());
    }

    #[test]
    fn mkdir_all_creates_inside() {
        let s = Scratch::new("plain");
        let fd = InRoot::open(&s.root())
            .unwrap()
            .mkdir_all(Path::new("/a/b/c"), mode())
            .unwrap();
        assert_eq!(real(&fd), s.root().join("a/b/c"));
        assert!(s.root().join("a/b/c").is_dir());
    }

    #[test]
    fn absolute_symlink_stays_in_root() {
        let s = Scratch::new("abs");
        // /evil -> <host>/outside: on the host it would escape.
        symlink(s.outside(), s.root().join("evil")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        // The link target does not exist inside the root: created there, or
        // refused, but never outside.
        let res = r.mkdir_all(Path::new("/evil/x"), mode());
        if let Ok(fd) = res {
            assert!(real(&fd).starts_with(s.root()));
        }
        assert!(s.outside_is_empty());
    }

    #[test]
    fn absolute_symlink_to_existing_dir_resolves_in_root() {
        let s = Scratch::new("abs2");
        std::fs::create_dir_all(s.root().join("data")).unwrap();
        symlink("/data", s.root().join("link")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let fd = r.mkdir_all(Path::new("/link/sub"), mode()).unwrap();
        assert_eq!(real(&fd), s.root().join("data/sub"));
    }

    #[test]
    fn dotdot_symlink_is_clamped() {
        let s = Scratch::new("dotdot");
        symlink("../../../../outside", s.root().join("up")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        // "../../outside" from the root clamps to "/outside" inside the root.
        std::fs::create_dir(s.root().join("outside")).unwrap();
        let fd = r.mkdir_all(Path::new("/up/x"), mode()).unwrap();
        assert_eq!(real(&fd), s.root().join("outside/x"));
        assert!(s.outside_is_empty());
    }

    #[test]
    fn dangling_symlink_is_created_inside() {
        let s = Scratch::new("dangling");
        symlink("/nowhere/deep", s.root().join("d")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let fd = r.mkdir_all(Path::new("/d/x"), mode()).unwrap();
        assert_eq!(real(&fd), s.root().join("nowhere/deep/x"));
        assert!(s.outside_is_empty());
    }

    #[test]
    fn dangling_symlink_to_host_path_is_created_inside() {
        let s = Scratch::new("dangling-host");
        let host_target = s.outside().join("made");
        symlink(&host_target, s.root().join("d")).unwrap();
        symlink("../../../../../..", s.root().join("up")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let fd = r.mkdir_all(Path::new("/d/x"), mode()).unwrap();
        assert!(real(&fd).starts_with(s.root()));
        let fd = r.create_file(Path::new("/up/up/f")).unwrap();
        assert_eq!(real(&fd), s.root().join("f"));
        assert!(!host_target.exists());
        assert!(s.outside_is_empty());
    }

    #[test]
    fn dangling_resolv_conf_like_docker_images() {
        let s = Scratch::new("resolv");
        std::fs::create_dir(s.root().join("etc")).unwrap();
        symlink(
            "../run/systemd/resolve/stub-resolv.conf",
            s.root().join("etc/resolv.conf"),
        )
        .unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let fd = r.create_file(Path::new("/etc/resolv.conf")).unwrap();
        assert_eq!(
            real(&fd),
            s.root().join("run/systemd/resolve/stub-resolv.conf")
        );
    }

    #[test]
    fn symlink_loop_is_an_error() {
        let s = Scratch::new("loop");
        symlink("/b", s.root().join("a")).unwrap();
        symlink("/a", s.root().join("b")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        assert!(r.mkdir_all(Path::new("/a/x"), mode()).is_err());
        assert!(r.create_file(Path::new("/a")).is_err());
    }

    #[test]
    fn create_file_through_symlinked_parent() {
        let s = Scratch::new("file");
        symlink(s.outside(), s.root().join("etc")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let res = r.create_file(Path::new("/etc/resolv.conf"));
        if let Ok(fd) = res {
            assert!(real(&fd).starts_with(s.root()));
        }
        assert!(s.outside_is_empty());
    }

    #[test]
    fn create_file_dangling_final_symlink_does_not_escape() {
        let s = Scratch::new("finallink");
        let target = s.outside().join("pwned");
        symlink(&target, s.root().join("f")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let _ = r.create_file(Path::new("/f"));
        assert!(!target.exists());
        assert!(s.outside_is_empty());
    }

    #[test]
    fn create_file_makes_parents_and_file() {
        let s = Scratch::new("mkfile");
        let r = InRoot::open(&s.root()).unwrap();
        let fd = r.create_file(Path::new("/etc/hosts")).unwrap();
        assert_eq!(real(&fd), s.root().join("etc/hosts"));
        assert!(s.root().join("etc/hosts").is_file());
        // Existing files are reused, not truncated.
        std::fs::write(s.root().join("etc/hosts"), "x").unwrap();
        r.create_file(Path::new("/etc/hosts")).unwrap();
        assert_eq!(std::fs::read(s.root().join("etc/hosts")).unwrap(), b"x");
    }

    #[test]
    fn file_in_the_way_is_enotdir() {
        let s = Scratch::new("notdir");
        std::fs::write(s.root().join("f"), "").unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let err = r.mkdir_all(Path::new("/f/x"), mode()).unwrap_err();
        assert_eq!(err.errno(), Some(Errno::ENOTDIR));
    }

    #[test]
    fn parent_of_gives_resolved_dir_and_name() {
        let s = Scratch::new("parent");
        std::fs::create_dir(s.root().join("real")).unwrap();
        symlink("/real", s.root().join("dev")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        let (dir, name) = r.parent_of(Path::new("/dev/null")).unwrap();
        assert_eq!(real(&dir), s.root().join("real"));
        assert_eq!(name, OsString::from("null"));
        assert!(r.parent_of(Path::new("/")).is_err());
    }

    #[test]
    fn magic_links_are_refused() {
        let s = Scratch::new("magic");
        symlink("/proc/self/root", s.root().join("m")).unwrap();
        let r = InRoot::open(&s.root()).unwrap();
        // Inside the root there is no /proc: the lookup fails rather than
        // jumping to the host's root.
        assert!(r.resolve(Path::new("/m/etc")).is_err());
    }
}
