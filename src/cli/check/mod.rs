//! `hull check`: can this host run containers, and what is degraded?
//!
//! Every line is a probe that really tries the thing (an overlay mount in a
//! private mount namespace, a user namespace, a seccomp filter, an `nft`
//! dry run, files in --root), never a guess from the kernel version. What a
//! probe changes lives in a child process that exits (its mount namespace,
//! its filters die with it) or in a temp dir that is removed: nothing is
//! left behind. Cgroups are only read.
//!
//! `fail` means a plain container cannot run here (exit 1); `warn` means a
//! feature some configs ask for is missing.

mod fs;
mod host;
mod kernel;

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::sys::{self, Forked};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// Output format
    #[arg(short, long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One probe's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub name: &'static str,
    pub status: Level,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Line {
    fn ok(name: &'static str, detail: impl Into<String>) -> Line {
        Line {
            name,
            status: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            status: Level::Warn,
            fix: Some(fix.into()),
            ..Line::ok(name, detail)
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            status: Level::Fail,
            ..Line::warn(name, detail, fix)
        }
    }

    fn text(&self) -> String {
        let mut s = format!(
            "{:<5} {:<16} {}",
            self.status.as_str(),
            self.name,
            self.detail
        );
        if let Some(fix) = &self.fix {
            s.push_str(" — ");
            s.push_str(fix);
        }
        s
    }
}

/// `--format json`: the lines in probe order, and the verdict.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report<'a> {
    can_run: bool,
    checks: &'a [Line],
}

pub fn check(root: &Path, args: CheckArgs) -> Result<ExitCode> {
    let data_root = crate::storage::data_root();
    let mut lines = Vec::new();
    lines.push(host::cgroups());
    lines.push(kernel::namespaces());
    let userns = kernel::user_namespace();
    lines.push(userns.line());
    lines.extend(fs::overlay_and_data_root(&data_root, userns.fd.as_ref()));
    lines.extend(kernel::seccomp());
    lines.push(kernel::syscalls());
    lines.push(kernel::capabilities());
    lines.push(kernel::nofile());
    lines.push(host::nftables());
    lines.push(host::ip_forward());
    lines.push(fs::state_root(root));

    let can_run = lines.iter().all(|l| l.status != Level::Fail);
    let out = if args.format == "json" {
        let report = Report {
            can_run,
            checks: &lines,
        };
        serde_json::to_string_pretty(&report).expect("report serialises") + "\n"
    } else {
        lines.iter().map(|l| l.text() + "\n").collect()
    };
    // A closed stdout (`hull check | head -1`) must not turn into a panic.
    let _ = std::io::stdout().write_all(out.as_bytes());
    Ok(if can_run {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Run `probe` in a child cloned with `flags` (new namespaces, or none), so
/// whatever it changes (mounts, seccomp filters, namespaces) goes with it
/// when it exits. Its answer comes back through a pipe; Err says the child
/// could not be made (the errno of clone3) or died before answering.
fn in_child<T: Serialize + DeserializeOwned>(
    flags: CloneFlags,
    probe: impl FnOnce() -> T,
) -> std::result::Result<T, String> {
    let (rx, tx) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    match sys::clone_fork(flags.bits() as u64, None) {
        Err(e) => Err(format!("clone3: {}", e.desc())),
        Ok(Forked::Child) => {
            drop(rx);
            let answer = serde_json::to_vec(&probe()).unwrap_or_default();
            let _ = std::fs::File::from(tx).write_all(&answer);
            std::process::exit(0)
        }
        Ok(Forked::Parent(pid)) => {
            drop(tx);
            let mut buf = Vec::new();
            let read = std::fs::File::from(rx).read_to_end(&mut buf);
            let _ = nix::sys::wait::waitpid(pid, None);
            read.map_err(|e| format!("read probe: {e}"))?;
            serde_json::from_slice(&buf).map_err(|_| "the probe process died".to_string())
        }
    }
}

/// "a, b and c" for a detail line.
fn list(items: &[impl AsRef<str>]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} and {}", init.join(", "), last.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render_status_name_detail_and_fix() {
        assert_eq!(
            Line::warn("nofile", "hard limit 20000", "raise it").text(),
            "warn  nofile           hard limit 20000 — raise it"
        );
        assert!(Line::ok("x", "fine").text().starts_with("ok    x "));
    }

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(list(&["a"]), "a");
        assert_eq!(list(&["a", "b", "c"]), "a, b and c");
    }
}
