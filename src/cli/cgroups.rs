//! The commands that work through a container's cgroups: pause, resume,
//! ps, update, events.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;

use super::out;
use crate::cgroups::{self, resources, Resources};
use crate::error::{Context, Error, Result};
use crate::state::{Container, Status, Store};

fn no_cgroups(id: &str) -> Error {
    Error::new(format!("container {id} has no cgroups"))
        .hint("it was created by an older hull or is already deleted")
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let c = Store::new(root).load(id)?;
    let within = |e: Error| e.within(format!("pause {id}"));
    match c.status() {
        Status::Running | Status::Created => {}
        Status::Paused => return Err(within(Error::new("container already paused"))),
        _ => return Err(within(Error::new("container not running"))),
    }
    if c.record.cgroups.is_empty() {
        return Err(within(no_cgroups(id)));
    }
    cgroups::freeze(&c.record.cgroups, true).map_err(within)
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let c = Store::new(root).load(id)?;
    let within = |e: Error| e.within(format!("resume {id}"));
    if c.status() != Status::Paused {
        return Err(within(Error::new("container not paused")));
    }
    cgroups::freeze(&c.record.cgroups, false).map_err(within)
}

/// `ps ID` is runc's process list; `ps` alone is Docker's container table
/// (cli/table.rs), whose flags go before any id.
#[derive(Args)]
pub struct PsArgs {
    /// With an id: table (ps -ef rows) or json (an array of host pids);
    /// without: the container table, or json (one object per container)
    #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    #[command(flatten)]
    table: super::table::TableArgs,
    /// The container whose processes to list; none: list the containers
    id: Option<String>,
    /// Options for ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn ps(root: &Path, args: PsArgs) -> Result<()> {
    let Some(id) = &args.id else {
        return super::table::ps(root, &args.table, &args.format);
    };
    let c = Store::new(root).peek(id)?;
    let pids = cgroups::pids(&c.record.cgroups);
    if args.format == "json" {
        return out::line(&json!(pids).to_string());
    }
    let mut ps_args = args.table.ps_flags()?;
    ps_args.extend(args.ps_args.iter().cloned());
    if ps_args.is_empty() {
        ps_args.push("-ef".to_string());
    }
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .step("run ps")?;
    if !out.status.success() {
        return Err(
            Error::new("run ps").detail(String::from_utf8_lossy(&out.stderr).trim().to_string())
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::new("run ps").detail("no PID column in the output of ps"))?;
    let mut table = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            table.push_str(line);
            table.push('\n');
        }
    }
    out::print(&table)
}

#[derive(Args)]
pub struct UpdateArgs {
    /// linux.resources as JSON, from FILE or - (stdin)
    #[arg(short, long)]
    resources: Option<PathBuf>,
    /// Memory limit (bytes, or with k/m/g suffix)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Accepted for runc compatibility; kernel memory limits are ignored
    #[arg(long, hide = true)]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer limit (v1 kernels that still have it)
    #[arg(long, hide = true, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// CPU CFS period (µs)
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPU CFS quota (µs per period; -1: none)
    #[arg(long, allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(long)]
    cpu_share: Option<u64>,
    /// Realtime period (µs)
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// Realtime runtime (µs)
    #[arg(long)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (e.g. 0-1)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Block I/O weight (10..1000)
    #[arg(long)]
    blkio_weight: Option<u16>,
    id: String,
}

pub fn update(root: &Path, args: UpdateArgs) -> Result<()> {
    let id = args.id.clone();
    let within = |e: Error| e.within(format!("update {id}"));
    let c = Store::new(root).load(&args.id)?;
    if c.status() == Status::Stopped {
        return Err(within(Error::new("container not running")));
    }
    if c.record.cgroups.is_empty() {
        return Err(within(no_cgroups(&id)));
    }
    let res = update_resources(&args).map_err(within)?;
    cgroups::update(&c.record.cgroups, &res).map_err(within)
}

fn update_resources(args: &UpdateArgs) -> Result<Resources> {
    let mut res = match &args.resources {
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .step("read resources from stdin")?;
            } else {
                text = std::fs::read_to_string(path).step_at("read resources", path)?;
            }
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::new("parse resources").detail(e.to_string()))?;
            Resources::from_json(value)?
        }
        None => Resources::default(),
    };
    let size = |s: &Option<String>| s.as_deref().map(resources::parse_size).transpose();
    let (limit, reservation, swap, tcp) = (
        size(&args.memory)?,
        size(&args.memory_reservation)?,
        size(&args.memory_swap)?,
        size(&args.kernel_memory_tcp)?,
    );
    if limit.is_some() || reservation.is_some() || swap.is_some() || tcp.is_some() {
        let m = res.memory.get_or_insert_with(Default::default);
        m.limit = limit.or(m.limit);
        m.reservation = reservation.or(m.reservation);
        m.swap = swap.or(m.swap);
        m.kernel_tcp = tcp.or(m.kernel_tcp);
    }
    let cpu_given = args.cpu_period.is_some()
        || args.cpu_quota.is_some()
        || args.cpu_share.is_some()
        || args.cpu_rt_period.is_some()
        || args.cpu_rt_runtime.is_some()
        || args.cpuset_cpus.is_some()
        || args.cpuset_mems.is_some();
    if cpu_given {
        let c = res.cpu.get_or_insert_with(Default::default);
        c.period = args.cpu_period.or(c.period);
        c.quota = args.cpu_quota.or(c.quota);
        c.shares = args.cpu_share.or(c.shares);
        c.realtime_period = args.cpu_rt_period.or(c.realtime_period);
        c.realtime_runtime = args.cpu_rt_runtime.or(c.realtime_runtime);
        c.cpus = args.cpuset_cpus.clone().or(c.cpus.take());
        c.mems = args.cpuset_mems.clone().or(c.mems.take());
    }
    if let Some(l) = args.pids_limit {
        res.pids = Some(resources::Pids { limit: l });
    }
    if let Some(w) = args.blkio_weight {
        res.block_io.get_or_insert_with(Default::default).weight = Some(w);
    }
    Ok(res)
}

#[derive(Args)]
pub struct EventsArgs {
    /// Print the statistics once and exit
    #[arg(long)]
    stats: bool,
    /// How often to print statistics (e.g. 5s, 500ms)
    #[arg(long, default_value = "5s")]
    interval: String,
    id: String,
}

fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::new(format!("invalid interval {s:?}")).hint("use e.g. 5s or 500ms");
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| bad())?;
    if v <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(v * mult))
}

fn emit(value: serde_json::Value) -> Result<()> {
    out::line(&value.to_string())
}

fn stats_event(c: &Container) -> serde_json::Value {
    json!({"type": "stats", "id": c.record.id, "data": cgroups::stats::collect(&c.record.cgroups)})
}

pub fn events(root: &Path, args: EventsArgs) -> Result<()> {
    let store = Store::new(root);
    let c = store.peek(&args.id)?;
    let within = |e: Error| e.within(format!("events {}", args.id));
    if c.record.cgroups.is_empty() {
        return Err(within(no_cgroups(&args.id)));
    }
    if args.stats {
        return emit(stats_event(&c));
    }
    if c.status() == Status::Stopped {
        return Err(within(Error::new("container not running")));
    }
    let interval = parse_duration(&args.interval).map_err(within)?;
    let mut ooms = cgroups::oom_kills(&c.record.cgroups);
    let mut next = Instant::now();
    loop {
        let now_ooms = cgroups::oom_kills(&c.record.cgroups);
        if now_ooms > ooms {
            ooms = now_ooms;
            emit(json!({"type": "oom", "id": c.record.id}))?;
        }
        let stopped = c.status() == Status::Stopped;
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(stats_event(&c))?;
            next = Instant::now() + interval;
        }
        std::thread::sleep(Duration::from_millis(50).min(interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("x").is_err());
    }
}
