//! Fds beyond stdio that a container process gets from whoever started
//! hull, as runc passes them: systemd socket activation (LISTEN_FDS, when
//! LISTEN_PID names hull itself; create and run only) first, then
//! `--preserve-fds N` more. Checked before hull opens any fd of its own, so
//! a hole in the range can never be filled by one of hull's.

use crate::error::{Error, Result};

/// First fd after stdio (SD_LISTEN_FDS_START).
const FIRST: u32 = 3;

pub struct Passed {
    /// Fds 3 .. 3+count go to the process.
    pub count: u32,
    /// Added to process.env: LISTEN_FDS=n and LISTEN_PID=1 under activation.
    pub env: Vec<String>,
}

/// For create and run: activation fds, then `preserve` more.
pub fn for_init(preserve: u32) -> Result<Passed> {
    let listen = activation_fds(
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    check_open(FIRST, listen, "socket activation fd (LISTEN_FDS)")?;
    check_open(FIRST + listen, preserve, "--preserve-fds fd")?;
    let env = if listen > 0 {
        vec![format!("LISTEN_FDS={listen}"), "LISTEN_PID=1".to_string()]
    } else {
        Vec::new()
    };
    Ok(Passed {
        count: listen + preserve,
        env,
    })
}

/// For exec: `--preserve-fds N` only (runc passes no activation fds to exec).
pub fn for_exec(preserve: u32) -> Result<u32> {
    check_open(FIRST, preserve, "--preserve-fds fd")?;
    Ok(preserve)
}

/// sd_listen_fds(): the count, when the variables are meant for this process.
fn activation_fds(pid: Option<&str>, fds: Option<&str>, ours: u32) -> u32 {
    if pid.and_then(|p| p.parse::<u32>().ok()) != Some(ours) {
        return 0;
    }
    fds.and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn check_open(first: u32, count: u32, what: &str) -> Result<()> {
    for fd in first..first.saturating_add(count) {
        if let Err(e) = nix::fcntl::fcntl(fd as i32, nix::fcntl::FcntlArg::F_GETFD) {
            return Err(Error::sys(format!("check {what} {fd}"), None, e)
                .hint("the caller must have this fd open when it starts hull"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_only_for_our_pid() {
        assert_eq!(activation_fds(Some("42"), Some("2"), 42), 2);
        assert_eq!(activation_fds(Some("41"), Some("2"), 42), 0);
        assert_eq!(activation_fds(None, Some("2"), 42), 0);
        assert_eq!(activation_fds(Some("42"), None, 42), 0);
        assert_eq!(activation_fds(Some("42"), Some("x"), 42), 0);
    }
}
