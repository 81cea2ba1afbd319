//! `hull ps` without an id: Docker's container table (`docker ps`), over
//! the containers of one --root. With an id, `ps` stays runc's process list
//! (cli/cgroups.rs). Every cell is a pure function of what state.json,
//! monitor.json and the network journal hold, and of "now".

use std::path::Path;

use clap::Args;
use serde_json::json;

use super::out;
use crate::error::{Error, Result};
use crate::monitor::Info;
use crate::state::{Record, Status, Store};
use crate::time;

/// The flags of the table (they mean nothing with an id).
#[derive(Args, Debug, Default)]
pub struct TableArgs {
    /// Table: show every container, stopped ones too
    #[arg(short, long)]
    all: bool,
    /// Table: print only the (full) container ids
    #[arg(short, long)]
    quiet: bool,
    /// Table: do not truncate ids and commands
    #[arg(long)]
    no_trunc: bool,
    /// Table: status=created|running|paused|restarting|exited, name=SUBSTRING
    /// or id=PREFIX; repeatable, all must match (a status filter implies --all)
    #[arg(long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
}

impl TableArgs {
    /// With an id, `-a` and `-q` right after it are ps(1)'s (runc passes
    /// everything after the id to ps): what clap took for ours, given back
    /// in front of the rest. The table's other flags mean nothing there.
    pub fn ps_flags(&self) -> Result<Vec<String>> {
        if self.no_trunc || !self.filter.is_empty() {
            return Err(Error::new("ps ID")
                .detail("--no-trunc and --filter are for the container table")
                .hint("leave out the id to list containers"));
        }
        let flags = [(self.all, "-a"), (self.quiet, "-q")];
        Ok(flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| f.to_string())
            .collect())
    }
}

/// What one row is made of.
#[derive(Debug, Clone)]
pub struct Row {
    pub record: Record,
    pub status: Status,
    pub info: Option<Info>,
    /// Start of the init (unix secs), from its /proc start time.
    pub init_started: Option<i64>,
    pub ports: Vec<crate::network::ports::Mapping>,
}

#[derive(Debug, Clone, PartialEq)]
enum Filter {
    State(String),
    Name(String),
    Id(String),
}

const STATES: [&str; 5] = ["created", "running", "paused", "restarting", "exited"];

fn parse_filter(text: &str) -> Result<Filter> {
    let bad = || {
        Error::new(format!("--filter {text}")).hint(
            "use status=created|running|paused|restarting|exited, name=SUBSTRING or id=PREFIX",
        )
    };
    let (key, value) = text.split_once('=').ok_or_else(bad)?;
    match key {
        "status" if STATES.contains(&value) => Ok(Filter::State(value.into())),
        "name" => Ok(Filter::Name(value.into())),
        "id" => Ok(Filter::Id(value.into())),
        _ => Err(bad()),
    }
}

impl Row {
    /// Docker's State: created, running, paused, restarting, exited.
    pub fn state(&self) -> &'static str {
        if self.info.as_ref().is_some_and(|i| i.restarting) {
            return "restarting";
        }
        match self.status {
            Status::Creating | Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "exited",
        }
    }

    /// What `ps` shows without --all: containers that are not over.
    fn is_live(&self) -> bool {
        self.state() != "exited"
    }

    fn matches(&self, filter: &Filter) -> bool {
        match filter {
            Filter::State(s) => self.state() == s,
            Filter::Name(n) => self.record.id.contains(n.as_str()),
            Filter::Id(p) => self.record.id.starts_with(p.as_str()),
        }
    }

    pub fn id_cell(&self, no_trunc: bool) -> String {
        if no_trunc {
            self.record.id.clone()
        } else {
            self.record.id.chars().take(12).collect()
        }
    }

    /// The image column; a bundle until hull runs images.
    pub fn bundle_cell(&self) -> String {
        self.record.bundle.display().to_string()
    }

    pub fn command_cell(&self, no_trunc: bool) -> String {
        command_text(&self.record.command, no_trunc)
    }

    pub fn created_cell(&self, now: i64) -> String {
        match time::parse_rfc3339(&self.record.created) {
            Some(t) => format!("{} ago", time::human_duration(now - t)),
            None => String::new(),
        }
    }

    pub fn status_cell(&self, now: i64) -> String {
        status_text(self.status, self.info.as_ref(), self.init_started, now)
    }

    /// Published ports while the container runs, in Docker's form.
    pub fn ports_cell(&self) -> String {
        if self.status == Status::Stopped {
            return String::new();
        }
        let all: Vec<String> = self.ports.iter().map(|m| m.docker_form()).collect();
        all.join(", ")
    }

    fn json(&self, no_trunc: bool, now: i64) -> serde_json::Value {
        let created = time::parse_rfc3339(&self.record.created);
        json!({
            "ID": self.id_cell(no_trunc),
            "Names": self.record.id,
            "Bundle": self.bundle_cell(),
            "Command": self.command_cell(no_trunc),
            "CreatedAt": created.map(time::go_utc).unwrap_or_default(),
            "RunningFor": self.created_cell(now),
            "Status": self.status_cell(now),
            "State": self.state(),
            "Ports": self.ports_cell(),
        })
    }
}

/// process.args as Docker shows a command: joined, cut at 20 characters
/// with "…" (unless `no_trunc`), then quoted.
pub fn command_text(args: &[String], no_trunc: bool) -> String {
    let joined = args.join(" ");
    let cut = if !no_trunc && joined.chars().count() > 20 {
        let mut s: String = joined.chars().take(19).collect();
        s.push('…');
        s
    } else {
        joined
    };
    format!("{cut:?}")
}

/// Docker's STATUS: "Created", "Up 3 minutes (Paused)", "Exited (137) 14
/// hours ago", "Restarting (1) 3 seconds ago". The monitor's record says
/// how a container ended; without one, nobody saw its exit code.
pub fn status_text(
    status: Status,
    info: Option<&Info>,
    init_started: Option<i64>,
    now: i64,
) -> String {
    let ago = |t: &Option<String>| {
        t.as_deref()
            .and_then(time::parse_rfc3339)
            .map(|t| format!(" {} ago", time::human_duration(now - t)))
            .unwrap_or_default()
    };
    if let Some(i) = info.filter(|i| i.restarting) {
        return format!(
            "Restarting ({}){}",
            i.exit_code.unwrap_or(0),
            ago(&i.finished)
        );
    }
    match status {
        Status::Creating | Status::Created => "Created".into(),
        Status::Running | Status::Paused => {
            let started = info
                .and_then(|i| i.started.as_deref())
                .and_then(time::parse_rfc3339)
                .or(init_started);
            let up = started.map_or_else(String::new, |t| {
                format!(" {}", time::human_duration(now - t))
            });
            let paused = if status == Status::Paused {
                " (Paused)"
            } else {
                ""
            };
            format!("Up{up}{paused}")
        }
        Status::Stopped => match info.and_then(|i| i.exit_code.map(|c| (c, &i.finished))) {
            Some((code, finished)) => format!("Exited ({code}){}", ago(finished)),
            None => "Exited (unknown)".into(),
        },
    }
}

/// Docker's layout: each column as wide as its widest cell, three spaces
/// between columns, the last one unpadded.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..n)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < n {
                let pad = widths[i] - cell.chars().count() + 3;
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

const HEADER: [&str; 7] = [
    "CONTAINER ID",
    "BUNDLE",
    "COMMAND",
    "CREATED",
    "STATUS",
    "PORTS",
    "NAMES",
];

/// The rows `ps` prints for these flags, newest first as Docker lists
/// them (hull's timestamps are fixed-width UTC: the text order is the time
/// order).
fn select(mut rows: Vec<Row>, args: &TableArgs) -> Result<Vec<Row>> {
    rows.sort_by(|a, b| {
        b.record
            .created
            .cmp(&a.record.created)
            .then(a.record.id.cmp(&b.record.id))
    });
    let filters = args
        .filter
        .iter()
        .map(|f| parse_filter(f))
        .collect::<Result<Vec<_>>>()?;
    let all = args.all || filters.iter().any(|f| matches!(f, Filter::State(_)));
    Ok(rows
        .into_iter()
        .filter(|r| all || r.is_live())
        .filter(|r| filters.iter().all(|f| r.matches(f)))
        .collect())
}

/// The whole output of `ps` (table, ids or JSON lines).
pub fn render(rows: &[Row], args: &TableArgs, json: bool, now: i64) -> String {
    if args.quiet {
        return rows.iter().map(|r| format!("{}\n", r.record.id)).collect();
    }
    if json {
        return rows
            .iter()
            .map(|r| format!("{}\n", r.json(args.no_trunc, now)))
            .collect();
    }
    let mut table = vec![HEADER.map(String::from).to_vec()];
    for r in rows {
        table.push(vec![
            r.id_cell(args.no_trunc),
            r.bundle_cell(),
            r.command_cell(args.no_trunc),
            r.created_cell(now),
            r.status_cell(now),
            r.ports_cell(),
            r.record.id.clone(),
        ]);
    }
    columns(&table)
}

/// What the host says about one container.
fn row(root: &Path, record: Record, status: Status) -> Row {
    let dir = root.join(&record.id);
    let init_started = if matches!(status, Status::Running | Status::Paused) {
        time::from_boot_ticks(record.pid_start)
    } else {
        None
    };
    Row {
        info: Info::read(&dir).ok().flatten(),
        ports: crate::network::Journal::read(&dir)
            .ok()
            .flatten()
            .map(|j| j.ports)
            .unwrap_or_default(),
        init_started,
        record,
        status,
    }
}

/// `hull ps [-a] [-q] [--no-trunc] [--filter K=V]... [--format table|json]`.
pub fn ps(root: &Path, args: &TableArgs, format: &str) -> Result<()> {
    let rows = Store::new(root)
        .list()
        .into_iter()
        .map(|(record, status, _)| row(root, record, status))
        .collect();
    let rows = select(rows, args).map_err(|e| e.within("ps"))?;
    out::print(&render(&rows, args, format == "json", time::now_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_305_600;

    fn record(id: &str, command: &[&str], created: i64) -> Record {
        Record {
            oci_version: crate::state::OCI_VERSION.into(),
            id: id.into(),
            pid: 1,
            pid_start: 0,
            bundle: "/b/web".into(),
            rootfs: "/b/web/rootfs".into(),
            created: time::rfc3339(created, 0),
            annotations: Default::default(),
            owner: String::new(),
            cgroups: Default::default(),
            no_new_keyring: false,
            command: command.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn row_of(id: &str, status: Status, info: Option<Info>) -> Row {
        Row {
            record: record(id, &["sleep", "600"], NOW - 120),
            status,
            info,
            init_started: Some(NOW - 65),
            ports: Vec::new(),
        }
    }

    #[test]
    fn status_cells() {
        let ended = Info {
            exit_code: Some(137),
            finished: Some(time::rfc3339(NOW - 14 * 3600, 0)),
            started: Some(time::rfc3339(NOW - 15 * 3600, 0)),
            ..Info::default()
        };
        assert_eq!(
            status_text(Status::Stopped, Some(&ended), None, NOW),
            "Exited (137) 14 hours ago"
        );
        assert_eq!(
            status_text(Status::Stopped, None, None, NOW),
            "Exited (unknown)"
        );
        let restarting = Info {
            exit_code: Some(1),
            finished: Some(time::rfc3339(NOW - 3, 0)),
            restarting: true,
            ..Info::default()
        };
        assert_eq!(
            status_text(Status::Stopped, Some(&restarting), None, NOW),
            "Restarting (1) 3 seconds ago"
        );
        assert_eq!(status_text(Status::Created, None, None, NOW), "Created");
        assert_eq!(
            status_text(Status::Running, None, Some(NOW - 180), NOW),
            "Up 3 minutes"
        );
        // The monitor's start of the current run wins over the init's.
        let run = Info {
            started: Some(time::rfc3339(NOW - 2, 0)),
            ..Info::default()
        };
        assert_eq!(
            status_text(Status::Paused, Some(&run), Some(NOW - 180), NOW),
            "Up 2 seconds (Paused)"
        );
        let r = row_of("x", Status::Stopped, Some(restarting));
        assert_eq!(r.state(), "restarting");
    }

    #[test]
    fn command_is_cut_and_quoted_like_docker() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_text(&args(&["sleep", "600"]), false),
            "\"sleep 600\""
        );
        let long = args(&["sh", "-c", "while true; do sleep 1; done"]);
        assert_eq!(command_text(&long, false), "\"sh -c while true; d…\"");
        assert_eq!(
            command_text(&long, true),
            "\"sh -c while true; do sleep 1; done\""
        );
        assert_eq!(
            command_text(&args(&["echo", "\"hi\""]), false),
            r#""echo \"hi\"""#
        );
    }

    #[test]
    fn table_layout_and_cells() {
        let mut r = row_of("0123456789abcdef", Status::Running, None);
        r.ports = vec![
            crate::network::ports::parse("8080:80").unwrap(),
            crate::network::ports::parse("9000-9001:9000-9001/udp").unwrap(),
        ];
        let text = render(&[r.clone()], &TableArgs::default(), false, NOW);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "CONTAINER ID   BUNDLE   COMMAND       CREATED         STATUS              \
             PORTS                                                    NAMES"
        );
        assert_eq!(
            lines[1],
            "0123456789ab   /b/web   \"sleep 600\"   2 minutes ago   Up About a minute   \
             0.0.0.0:8080->80/tcp, 0.0.0.0:9000-9001->9000-9001/udp   0123456789abcdef"
        );
        let args = TableArgs {
            no_trunc: true,
            ..TableArgs::default()
        };
        let json = render(&[r.clone()], &args, true, NOW);
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["ID"], "0123456789abcdef");
        assert_eq!(v["State"], "running");
        assert_eq!(v["CreatedAt"], "2026-11-21 23:58:00 +0000 UTC");
        r.status = Status::Stopped;
        assert_eq!(r.ports_cell(), "");
    }

    #[test]
    fn selection_by_state_and_filters() {
        let rows = vec![
            row_of("web-1", Status::Running, None),
            row_of("web-2", Status::Stopped, None),
            row_of("db-1", Status::Created, None),
            row_of("db-2", Status::Paused, None),
        ];
        let mut rows = rows;
        rows[3].record.created = time::rfc3339(NOW - 1, 0);
        let ids = |args: TableArgs| -> Vec<String> {
            select(rows.clone(), &args)
                .unwrap()
                .into_iter()
                .map(|r| r.record.id)
                .collect()
        };
        let f = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Newest first, then by id.
        assert_eq!(ids(TableArgs::default()), ["db-2", "db-1", "web-1"]);
        let all = TableArgs {
            all: true,
            ..TableArgs::default()
        };
        assert_eq!(ids(all).len(), 4);
        let exited = TableArgs {
            filter: f(&["status=exited"]),
            ..TableArgs::default()
        };
        assert_eq!(ids(exited), ["web-2"]);
        let both = TableArgs {
            all: true,
            filter: f(&["name=web", "status=running"]),
            ..TableArgs::default()
        };
        assert_eq!(ids(both), ["web-1"]);
        let id = TableArgs {
            filter: f(&["id=db"]),
            ..TableArgs::default()
        };
        assert_eq!(ids(id), ["db-2", "db-1"]);
        for bad in ["status=gone", "nokey", "label=x"] {
            let args = TableArgs {
                filter: f(&[bad]),
                ..TableArgs::default()
            };
            assert!(select(rows.clone(), &args).is_err(), "{bad}");
        }
    }
}
