//! Commands that only look: `state` and `list`. They take no lock, so they
//! never wait behind a create or a start in progress.

use std::path::Path;

use clap::Args;

use super::out;
use crate::error::Result;
use crate::state::Store;

pub fn state(root: &Path, id: &str) -> Result<()> {
    let container = Store::new(root).peek(id)?;
    let mut state = container.state_json();
    // --network bridge: the container's address and published ports.
    if let Some(net) = crate::network::describe(&container.dir) {
        state["network"] = net;
    }
    out::line(&serde_json::to_string_pretty(&state).expect("json"))
}

#[derive(Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Print only the container ids
    #[arg(short, long)]
    quiet: bool,
}

pub fn list(root: &Path, args: ListArgs) -> Result<()> {
    let store = Store::new(root);
    let containers = store.list();
    if args.quiet {
        let ids: String = containers
            .iter()
            .map(|(record, _, _)| format!("{}\n", record.id))
            .collect();
        return out::print(&ids);
    }
    if args.format == "json" {
        // runc's `list` (unlike its `state`) names the owner of each
        // container: the user owning its state directory.
        let all: Vec<_> = containers
            .iter()
            .filter_map(|(record, _, uid)| {
                let mut state = store.peek(&record.id).ok()?.state_json();
                state["owner"] = user_name(*uid).into();
                Some(state)
            })
            .collect();
        return out::line(&serde_json::Value::Array(all).to_string());
    }
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
        .map(String::from)
        .to_vec()];
    for (record, status, uid) in &containers {
        let pid = if *status == crate::state::Status::Stopped {
            0
        } else {
            record.pid
        };
        rows.push(vec![
            record.id.clone(),
            pid.to_string(),
            status.as_str().to_string(),
            record.bundle.display().to_string(),
            record.created.clone(),
            user_name(*uid),
        ]);
    }
    out::print(&columns(&rows))
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| format!("#{uid}"), |u| u.name)
}

/// Left-aligned columns, at least 12 wide, as runc's tabwriter prints them.
fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(11) + 1)
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| {
                if i + 1 == n {
                    cell.clone()
                } else {
                    format!("{cell:<w$}")
                }
            })
            .collect();
        out.push_str(&cells.concat());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_pad_to_runc_widths() {
        let rows = vec![
            vec!["ID".to_string(), "PID".to_string()],
            vec!["web".to_string(), "42".to_string()],
        ];
        assert_eq!(super::columns(&rows), "ID          PID\nweb         42\n");
    }
}
