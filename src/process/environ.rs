//! The environment a container process starts with, built as runc builds
//! it: process.env (and, for exec, `--env`) applied in order, so a later
//! `K=V` replaces an earlier one in place, and HOME, when that leaves it
//! unset or empty, taken from the container's /etc/passwd entry for the
//! process's uid, or `/` when there is none.

use std::path::Path;

use super::passwd;
use crate::error::{Error, Result};

/// Where runc looks, inside the container (read after pivot_root/setns).
const PASSWD: &str = "/etc/passwd";

/// `entries` deduplicated (first position, last value), with HOME filled in
/// for `uid`. Runs in the container's mount namespace, before the uid switch.
pub fn build(entries: &[String], uid: u32) -> Result<Vec<String>> {
    let mut env = dedup(entries)?;
    let home_set = env
        .iter()
        .any(|kv| kv.strip_prefix("HOME=").is_some_and(|v| !v.is_empty()));
    if !home_set {
        let home = home_of(uid);
        match env.iter_mut().find(|kv| kv.starts_with("HOME=")) {
            Some(kv) => *kv = format!("HOME={home}"),
            None => env.push(format!("HOME={home}")),
        }
    }
    Ok(env)
}

fn dedup(entries: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(entries.len() + 1);
    for kv in entries {
        let Some((name, _)) = kv.split_once('=') else {
            return Err(Error::new("check process.env")
                .detail(format!("invalid environment variable {kv:?}"))
                .hint("each entry is NAME=VALUE"));
        };
        if name.is_empty() {
            return Err(Error::new("check process.env")
                .detail(format!("environment variable name can't be empty: {kv:?}")));
        }
        match out
            .iter_mut()
            .find(|o| o.split_once('=').is_some_and(|(n, _)| n == name))
        {
            Some(o) => o.clone_from(kv),
            None => out.push(kv.clone()),
        }
    }
    Ok(out)
}

/// The home directory of `uid` in /etc/passwd, `/` when the file or the
/// entry is missing (a first matching entry wins, even with an empty home).
fn home_of(uid: u32) -> String {
    passwd::read_regular(Path::new(PASSWD))
        .and_then(|text| home_in(&text, uid))
        .unwrap_or_else(|| "/".to_string())
}

fn home_in(passwd: &str, uid: u32) -> Option<String> {
    passwd::find_user(passwd, |_, u| u == uid).map(|e| e.home)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn later_entries_replace_earlier_ones_in_place() {
        let env = dedup(&s(&["A=1", "B=2", "A=3", "C="])).unwrap();
        assert_eq!(env, s(&["A=3", "B=2", "C="]));
    }

    #[test]
    fn entries_without_equals_are_refused() {
        assert!(dedup(&s(&["PATH=/bin", "NOEQ"])).is_err());
        assert!(dedup(&s(&["=x"])).is_err());
    }

    #[test]
    fn home_from_passwd() {
        let pw = "root:x:0:0:root:/root:/bin/sh\n\n  alice:x:42:42:Alice:/home/alice:/bin/sh\nbob:x:43:43\nalice2:x:42:1::/second:/bin/sh\n";
        assert_eq!(home_in(pw, 0).as_deref(), Some("/root"));
        assert_eq!(home_in(pw, 42).as_deref(), Some("/home/alice"));
        assert_eq!(home_in(pw, 43).as_deref(), Some(""));
        assert_eq!(home_in(pw, 77), None);
        assert_eq!(home_in("bad:x:notanumber:0::/x:", 0), None);
    }
}
