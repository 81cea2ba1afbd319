//! `--restart no|on-failure[:N]|always|unless-stopped`, applied by the
//! monitor when the container's process ends, with a doubling backoff.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    #[default]
    No,
    /// At most N restarts (None: no limit) after a non-zero exit.
    OnFailure(Option<u32>),
    Always,
    UnlessStopped,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long counts as healthy: the next backoff starts over.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

impl Policy {
    pub fn parse(text: &str) -> Result<Policy> {
        let bad = || {
            Error::new("parse --restart")
                .detail(format!("invalid restart policy {text:?}"))
                .hint("use no, on-failure[:N], always or unless-stopped")
        };
        Ok(match text.split_once(':') {
            None => match text {
                "no" => Policy::No,
                "on-failure" => Policy::OnFailure(None),
                "always" => Policy::Always,
                "unless-stopped" => Policy::UnlessStopped,
                _ => return Err(bad()),
            },
            Some(("on-failure", n)) => Policy::OnFailure(Some(n.parse().map_err(|_| bad())?)),
            Some(_) => return Err(bad()),
        })
    }

    /// Whether a run that ended with `exit_code`, after `restarts` restarts,
    /// comes back. A user's `stop` (or an ended lease) always wins.
    pub fn should_restart(self, exit_code: i32, restarts: u32, stopped_by_user: bool) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::OnFailure(max) => exit_code != 0 && max.is_none_or(|m| restarts < m),
            Policy::Always | Policy::UnlessStopped => true,
        }
    }
}

/// The wait before restart number `attempt` (0-based): 100 ms, doubling, capped.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
        .min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_names() {
        assert_eq!(Policy::parse("no").unwrap(), Policy::No);
        assert_eq!(
            Policy::parse("on-failure").unwrap(),
            Policy::OnFailure(None)
        );
        assert_eq!(
            Policy::parse("on-failure:2").unwrap(),
            Policy::OnFailure(Some(2))
        );
        assert_eq!(Policy::parse("always").unwrap(), Policy::Always);
        assert_eq!(
            Policy::parse("unless-stopped").unwrap(),
            Policy::UnlessStopped
        );
        for bad in ["", "sometimes", "on-failure:x", "always:3"] {
            assert!(Policy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions() {
        let p = Policy::OnFailure(Some(2));
        assert!(p.should_restart(1, 0, false));
        assert!(p.should_restart(1, 1, false));
        assert!(!p.should_restart(1, 2, false));
        assert!(!p.should_restart(0, 0, false));
        assert!(Policy::Always.should_restart(0, 100, false));
        assert!(!Policy::Always.should_restart(1, 0, true));
        assert!(!Policy::No.should_restart(1, 0, false));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }
}
