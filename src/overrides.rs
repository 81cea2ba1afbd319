//! Docker's `run` overrides of the bundle's process, for `run` and `create`
//! (hull-only): a command after the id, `-e`/`--env-file`, `-w`, `-u`,
//! `--hostname`, `-t`. Everything that depends on the caller (hull's own
//! environment, env files) is resolved on the command line, so a recorded
//! set applies the same again on `restart`; `apply` edits the spec right
//! after the bundle loads, before anything exists on the host. Without
//! these flags the spec is left exactly as it is.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::process::passwd;
use crate::rootfs::resolve::{fd_path, InRoot};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Overrides {
    /// Replaces process.args when not empty.
    pub args: Vec<String>,
    /// `K=V` entries added after process.env (a later one wins): the env
    /// files' first, then `-e`, in command-line order.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `USER[:GROUP]`, resolved in the image's /etc/passwd and /etc/group.
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// Forces process.terminal on or off.
    pub terminal: Option<bool>,
    /// `-i`: keep stdin attached (a foreground run always does).
    pub interactive: bool,
}

pub fn apply(bundle: &mut Bundle, o: &Overrides) -> Result<()> {
    if let Some(name) = &o.hostname {
        check_uts(bundle, name)?;
        bundle.spec.set_hostname(Some(name.clone()));
    }
    let ids = match &o.user {
        Some(spec) => Some(user_ids(bundle, spec)?),
        None => None,
    };
    if let Some(cwd) = &o.cwd {
        if !cwd.is_absolute() {
            return Err(Error::new("--workdir")
                .at(cwd)
                .detail("not an absolute path")
                .hint("give the container path as /path"));
        }
    }
    bundle.add_env(&o.env);
    let Some(process) = bundle.spec.process_mut() else {
        return Ok(());
    };
    if !o.args.is_empty() {
        process.set_args(Some(o.args.clone()));
    }
    if let Some(cwd) = &o.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(terminal) = o.terminal {
        process.set_terminal(Some(terminal));
    }
    if let Some(ids) = ids {
        let mut user = process.user().clone();
        user.set_uid(ids.uid);
        user.set_gid(ids.gid);
        user.set_additional_gids((!ids.additional_gids.is_empty()).then_some(ids.additional_gids));
        process.set_user(user);
    }
    Ok(())
}

/// A hostname is only the container's own in a new UTS namespace.
fn check_uts(bundle: &Bundle, name: &str) -> Result<()> {
    let own_uts = bundle.spec.linux().as_ref().is_some_and(|l| {
        l.namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_none())
    });
    if own_uts {
        return Ok(());
    }
    Err(Error::new(format!("--hostname {name}"))
        .detail("the bundle has no UTS namespace of its own")
        .hint("add {\"type\": \"uts\"} to linux.namespaces in config.json"))
}

/// `--user` against the image's own /etc/passwd and /etc/group, resolved in
/// the rootfs (a symlink in the image cannot make hull read a host file);
/// with overlay layers, in the top-most layer that has the file.
fn user_ids(bundle: &Bundle, spec: &str) -> Result<passwd::Ids> {
    user_ids_in(&crate::storage::layers_top_first(bundle)?, spec)
}

fn user_ids_in(layers: &[PathBuf], spec: &str) -> Result<passwd::Ids> {
    let roots = layers
        .iter()
        .map(|l| InRoot::open(l))
        .collect::<Result<Vec<_>>>()?;
    let read = |path: &str| {
        let fd = roots
            .iter()
            .find_map(|root| root.resolve(Path::new(path)).ok())?;
        // Reopened through /proc: an O_PATH fd cannot be read.
        passwd::read_regular(&fd_path(&fd))
    };
    passwd::resolve(
        spec,
        read("/etc/passwd").as_deref(),
        read("/etc/group").as_deref(),
    )
}

/// `-e K=V` as given; `-e K` takes K from `lookup` (hull's environment), as
/// Docker does, and is dropped when K is unset there.
pub fn env_entry(
    arg: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> std::result::Result<Option<String>, String> {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    if name.is_empty() {
        return Err(format!("invalid environment variable {arg:?}: no name"));
    }
    if name.chars().any(char::is_whitespace) {
        return Err(format!("variable {name:?} contains whitespace"));
    }
    if arg.contains('=') {
        return Ok(Some(arg.to_string()));
    }
    Ok(lookup(arg).map(|v| format!("{arg}={v}")))
}

/// Docker's env file: one `K=V` (or `K`, taken from `lookup`) per line,
/// leading blanks ignored, blank lines and `#` comments skipped, the value
/// taken as written (no quotes or escapes). A bad line is an error naming
/// `file:line`.
pub fn parse_env_file(
    file: &Path,
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let entry = env_entry(line, &lookup).map_err(|what| {
            Error::new("read env file")
                .detail(format!("{}:{}: {what}", file.display(), n + 1))
                .hint("each line is NAME=VALUE, NAME, or a # comment")
        })?;
        out.extend(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "FROM_HOST").then(|| "h v".to_string())
    }

    #[test]
    fn env_flag_forms() {
        assert_eq!(env_entry("A=1=2", env).unwrap().as_deref(), Some("A=1=2"));
        assert_eq!(env_entry("A=", env).unwrap().as_deref(), Some("A="));
        assert_eq!(
            env_entry("FROM_HOST", env).unwrap().as_deref(),
            Some("FROM_HOST=h v")
        );
        assert_eq!(env_entry("UNSET", env).unwrap(), None);
        assert!(env_entry("=x", env).is_err());
        assert!(env_entry("A B=x", env).is_err());
    }

    #[test]
    fn env_file_format() {
        let text = "# comment\n\n  A=1\nB=two words \"quoted\"\nFROM_HOST\nUNSET\n\tC=\n";
        let got = parse_env_file(Path::new("f.env"), text, env).unwrap();
        assert_eq!(
            got,
            vec!["A=1", "B=two words \"quoted\"", "FROM_HOST=h v", "C="]
        );
    }

    #[test]
    fn env_file_bad_line_names_file_and_line() {
        let e = parse_env_file(Path::new("/x/f.env"), "A=1\n\nBAD NAME=2\n", env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/x/f.env:3"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn user_from_the_images_files_never_the_hosts() {
        let dir = std::env::temp_dir().join(format!("hull-overrides-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:500:501::/app:/bin/sh\n",
        )
        .unwrap();
        // /etc/group points out of the rootfs: resolved inside, it is missing.
        std::fs::write(outside.join("group"), "grp:x:77:app\n").unwrap();
        std::os::unix::fs::symlink("../../outside/group", root.join("etc/group")).unwrap();
        let one = [root.clone()];
        let ids = user_ids_in(&one, "app").unwrap();
        assert_eq!((ids.uid, ids.gid), (500, 501));
        assert!(ids.additional_gids.is_empty());
        assert!(user_ids_in(&one, "app:grp").is_err());
        std::fs::remove_file(root.join("etc/group")).unwrap();
        std::fs::write(root.join("etc/group"), "grp:x:77:app\n").unwrap();
        let ids = user_ids_in(&one, "app:grp").unwrap();
        assert_eq!((ids.uid, ids.gid), (500, 77));
        let ids = user_ids_in(&one, "app").unwrap();
        assert_eq!(ids.additional_gids, vec![77]);
        // Layers: the top-most that has the file wins.
        let top = dir.join("top");
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/passwd"), "app:x:600:601::/app:/bin/sh\n").unwrap();
        let ids = user_ids_in(&[top, root.clone()], "app").unwrap();
        assert_eq!((ids.uid, ids.gid), (600, 601));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_is_empty_and_round_trips() {
        let o = Overrides {
            args: vec!["ls".into()],
            env: vec!["A=1".into()],
            user: Some("1:2".into()),
            terminal: Some(false),
            ..Default::default()
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<Overrides>(&json).unwrap(), o);
        assert_eq!(
            serde_json::from_str::<Overrides>("{}").unwrap(),
            Overrides::default()
        );
    }
}
