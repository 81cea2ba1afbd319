//! hull's mark on host objects that could outlive their journal: the state
//! dir of the container that made them, in the extended attribute
//! `trusted.hull.owner` of its cgroup and overlay directories. `hull gc`
//! removes a marked object whose state dir is gone, and never an object
//! without the mark. Best effort: where the file system keeps no trusted
//! xattrs the object is simply unmarked (one syscall per object otherwise).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const XATTR: &std::ffi::CStr = c"trusted.hull.owner";

/// Mark `path` as made for the container whose state dir is `state_dir`.
pub fn mark(path: &Path, state_dir: &Path) {
    let Ok(owner) = std::path::absolute(state_dir) else {
        return;
    };
    if let Ok(p) = CString::new(path.as_os_str().as_bytes()) {
        let _ = crate::sys::lsetxattr(&p, XATTR, owner.as_os_str().as_bytes());
    }
}

/// The state dir `path` was marked with, if any.
pub fn of(path: &Path) -> Option<PathBuf> {
    let p = CString::new(path.as_os_str().as_bytes()).ok()?;
    let v = crate::sys::lgetxattr(&p, XATTR).ok()?;
    (!v.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&v)))
}

/// `of(path)` when it names a container of `root` whose state dir is gone:
/// the object is a leftover of a container `gc` may remove.
pub fn orphan_of(path: &Path, root: &Path) -> Option<PathBuf> {
    orphan(of(path)?, root)
}

/// `state_dir` when it is a container dir of `root` that no longer exists.
pub fn orphan(state_dir: PathBuf, root: &Path) -> Option<PathBuf> {
    let root = std::path::absolute(root).ok()?;
    let abs = std::path::absolute(&state_dir).ok()?;
    (abs.parent() == Some(root.as_path()) && !abs.exists()).then_some(state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_orphans() {
        let base = std::env::temp_dir().join(format!("hull-owner-test-{}", std::process::id()));
        let (root, obj) = (base.join("root"), base.join("obj"));
        std::fs::create_dir_all(root.join("live")).unwrap();
        std::fs::create_dir_all(&obj).unwrap();
        assert_eq!(of(&obj), None);
        mark(&obj, &root.join("live"));
        // Not root (tmpfs and ext4 keep trusted xattrs only for CAP_SYS_ADMIN).
        if of(&obj).is_some() {
            assert_eq!(of(&obj), Some(root.join("live")));
            assert_eq!(orphan_of(&obj, &root), None);
            mark(&obj, &root.join("gone"));
            assert_eq!(orphan_of(&obj, &root), Some(root.join("gone")));
            assert_eq!(orphan_of(&obj, &base.join("other")), None);
        }
        std::fs::remove_dir_all(&base).unwrap();
    }
}
