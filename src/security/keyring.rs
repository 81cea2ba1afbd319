//! The session keyring. Kernel keys are not namespaced: a container process
//! that kept the caller's session keyring could read and use its keys. As
//! runc does, the init joins a new keyring named `_ses.<id>`, searchable so
//! that processes exec'd later join the same one; `--no-new-keyring` keeps
//! the caller's.

use nix::errno::Errno;

use crate::error::{Context, Error, Result};
use crate::sys;

/// Search permission for the keyring's user, or, in a user namespace (where
/// the container's uids are not the keyring's), for everyone.
const USER_SEARCH: u32 = 0x0008_0000;
const OTHER_SEARCH: u32 = 0x0000_0008;

/// Join a new session keyring `name` and make it searchable. A kernel without
/// keyrings (ENOSYS) is not an error: there is nothing to share then.
pub fn join_new(name: &str, in_userns: bool) -> Result<()> {
    let Some(id) = join_named(name)? else {
        return Ok(());
    };
    let perm = sys::keyring_perm(id).step("read session keyring permissions")?;
    let search = if in_userns { OTHER_SEARCH } else { USER_SEARCH };
    sys::keyring_set_perm(id, perm | search).step("make session keyring searchable")
}

/// Join the keyring `name` (the one `join_new` made for the container, or a
/// new one if it is gone); None where the kernel has no keyrings.
pub fn join_named(name: &str) -> Result<Option<i32>> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| Error::new("join session keyring").detail("name holds a NUL byte"))?;
    match sys::join_session_keyring(&cname) {
        Ok(id) => Ok(Some(id)),
        Err(Errno::ENOSYS) => Ok(None),
        Err(e) => Err(Error::sys("join session keyring", None, e).detail(name.to_string())),
    }
}
