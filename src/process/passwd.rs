//! /etc/passwd and /etc/group of an image: read safely (a regular file only,
//! never blocking on a planted FIFO, bounded in size) and looked up the way
//! Docker resolves `--user NAME[:GROUP]`.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// The text of `path` if it is a regular file, opened without blocking: a
/// FIFO planted at /etc/passwd must not hang hull or the container's start.
pub fn read_regular(path: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    // A passwd file is small; a huge one is not worth reading whole.
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    Some(text)
}

/// One line of passwd or group, split on ':' (blank and `#` lines skipped).
fn records(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').collect())
}

/// name, uid, gid and home of the first passwd entry matching `pred`.
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

pub fn find_user(passwd: &str, pred: impl Fn(&str, u32) -> bool) -> Option<PasswdEntry> {
    records(passwd).find_map(|f| {
        let uid = f.get(2)?.parse::<u32>().ok()?;
        if !pred(f[0], uid) {
            return None;
        }
        Some(PasswdEntry {
            name: f[0].to_string(),
            uid,
            gid: f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
            home: f.get(5).unwrap_or(&"").to_string(),
        })
    })
}

/// The gid of group `name`.
fn group_gid(group: &str, name: &str) -> Option<u32> {
    records(group).find_map(|f| (f[0] == name).then(|| f.get(2)?.parse().ok())?)
}

/// The gids of the groups listing `user` as a member.
fn member_gids(group: &str, user: &str) -> Vec<u32> {
    records(group)
        .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|u| u == user)))
        .filter_map(|f| f.get(2)?.parse().ok())
        .collect()
}

/// The ids `--user` gives the process.
#[derive(Debug, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// `USER[:GROUP]`, each a name or a number, against the image's passwd and
/// group text (None: the file is missing), as Docker does: a user found in
/// passwd brings its primary gid and the groups listing it; a number not
/// found runs with gid 0; an explicit GROUP replaces the primary gid.
pub fn resolve(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Ids> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let bad = |what: String, hint: &str| {
        Error::new(format!("--user {spec}"))
            .detail(what)
            .hint(hint.to_string())
    };
    if user.is_empty() || grp.is_some_and(str::is_empty) {
        return Err(bad("empty user or group".into(), "write USER[:GROUP]"));
    }
    let (passwd, group) = (passwd.unwrap_or(""), group.unwrap_or(""));
    let entry = match user.parse::<u32>() {
        Ok(uid) => find_user(passwd, |_, u| u == uid),
        Err(_) => Some(find_user(passwd, |n, _| n == user).ok_or_else(|| {
            bad(
                format!("no user {user:?} in the image's /etc/passwd"),
                "give a numeric uid, or add the user to the image",
            )
        })?),
    };
    let uid = entry
        .as_ref()
        .map_or_else(|| user.parse().unwrap_or(0), |e| e.uid);
    let gid = match grp {
        None => entry.as_ref().map_or(0, |e| e.gid),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_gid(group, g).ok_or_else(|| {
                bad(
                    format!("no group {g:?} in the image's /etc/group"),
                    "give a numeric gid, or add the group to the image",
                )
            })?,
        },
    };
    let mut additional_gids = Vec::new();
    if let Some(e) = &entry {
        for g in member_gids(group, &e.name) {
            if g != gid && !additional_gids.contains(&g) {
                additional_gids.push(g);
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# comment\n\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice,bob\naudio:x:29:alice\n";

    fn ids(spec: &str) -> Result<Ids> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn user_name_brings_primary_and_member_groups() {
        let i = ids("alice").unwrap();
        assert_eq!((i.uid, i.gid), (1000, 1000));
        assert_eq!(i.additional_gids, vec![50, 29]);
    }

    #[test]
    fn explicit_group_by_name_or_number() {
        let i = ids("alice:staff").unwrap();
        assert_eq!((i.uid, i.gid), (1000, 50));
        assert_eq!(i.additional_gids, vec![29]);
        let i = ids("bob:7").unwrap();
        assert_eq!((i.uid, i.gid), (1001, 7));
        assert_eq!(i.additional_gids, vec![50]);
    }

    #[test]
    fn numbers_found_or_not() {
        let i = ids("1001").unwrap();
        assert_eq!((i.uid, i.gid), (1001, 1001));
        let i = ids("4242").unwrap();
        assert_eq!((i.uid, i.gid, i.additional_gids.len()), (4242, 0, 0));
        let i = resolve("5:6", None, None).unwrap();
        assert_eq!((i.uid, i.gid), (5, 6));
    }

    #[test]
    fn unknown_names_are_one_line_errors() {
        let e = ids("carol").unwrap_err().to_string();
        assert!(e.contains("carol") && e.contains("/etc/passwd"), "{e}");
        assert!(!e.contains('\n'));
        let e = ids("alice:wheel").unwrap_err().to_string();
        assert!(e.contains("wheel") && e.contains("/etc/group"), "{e}");
        assert!(resolve("alice", None, None).is_err());
        assert!(ids(":5").is_err() && ids("alice:").is_err());
    }

    #[test]
    fn find_user_by_uid() {
        let e = find_user(PASSWD, |_, u| u == 1001).unwrap();
        assert_eq!((e.name.as_str(), e.home.as_str()), ("bob", "/home/bob"));
        assert!(find_user("bad:x:notanumber:0::/x:", |_, _| true).is_none());
    }
}
