//! Docker's ways of removing containers: `rm [-f] [-v] ID...` and `prune`.
//! Each container goes as `delete` removes it (cli/lifecycle.rs).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::lifecycle::{delete_one, each};
use super::out;
use crate::error::{Error, Result};
use crate::log::Logger;
use crate::state::{Status, Store};
use crate::storage::{self, volumes};

#[derive(Args)]
pub struct RmArgs {
    /// Kill and remove running containers too (as `delete --force`)
    #[arg(short, long)]
    force: bool,
    /// Also remove the containers' anonymous volumes (made by `-v /path`)
    #[arg(short, long)]
    volumes: bool,
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

#[derive(Args)]
pub struct PruneArgs {
    /// Also remove every volume no container uses
    #[arg(long)]
    volumes: bool,
    /// Accepted for Docker compatibility; hull never asks
    #[arg(short, long)]
    force: bool,
}

/// Remove each container (a failure is one line on stderr, the others
/// still go, exit 1); print each id removed, as Docker does.
pub fn rm(root: &Path, args: RmArgs, log: &Logger) -> Result<ExitCode> {
    let code = each(&args.ids, log, |id| {
        // The journal goes with the container: read it first.
        let anonymous = if args.volumes {
            storage::anonymous_volumes(&root.join(id))
        } else {
            Vec::new()
        };
        if !delete_one(root, id, args.force, log).map_err(|e| e.within(format!("rm {id}")))? {
            return Ok(());
        }
        out::line(id)?;
        storage::remove_volumes(&anonymous).map_err(|e| e.within(format!("rm -v {id}")))
    })?;
    Ok(code)
}

/// Remove every stopped container, and with --volumes every volume no
/// container uses.
pub fn prune(root: &Path, args: PruneArgs, log: &Logger) -> Result<()> {
    let stopped: Vec<String> = Store::new(root)
        .list()
        .into_iter()
        .filter(|(_, status, _)| *status == Status::Stopped)
        .map(|(record, _, _)| record.id)
        .collect();
    let mut removed = 0;
    let mut failed = None;
    for id in &stopped {
        // Started again (or deleted) since the list, or waiting for its
        // monitor to restart it: leave it.
        let still_stopped = Store::new(root)
            .load(id)
            .is_ok_and(|c| c.status() == Status::Stopped);
        let restarting = crate::monitor::Info::read(&root.join(id))
            .ok()
            .flatten()
            .is_some_and(|i| i.restarting && i.monitor_alive());
        if !still_stopped || restarting {
            continue;
        }
        match delete_one(root, id, false, log) {
            Ok(true) => {
                out::line(id)?;
                removed += 1;
            }
            Ok(false) => {}
            Err(e) => {
                log.error(&e.within(format!("prune {id}")).to_string());
                failed = Some(id.clone());
            }
        }
    }
    out::line(&format!("Total reclaimed: {removed} containers"))?;
    if args.volumes {
        let store = volumes::Store::new(&storage::data_root());
        let mut n = 0;
        super::storage::prune_volumes(&store, |name| {
            let _ = out::line(name);
            n += 1;
        })?;
        out::line(&format!("Total reclaimed: {n} volumes"))?;
    }
    match failed {
        Some(id) => Err(Error::new("prune").detail(format!(
            "container {id} (and maybe others) could not be removed"
        ))),
        None => Ok(()),
    }
}
