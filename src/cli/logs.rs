//! `logs`: a detached container's output from its monitor's log
//! (monitor/logfile.rs), stdout to stdout and stderr to stderr; `-f`
//! follows it, across rotations, until the monitor is done.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::error::{Context, Error, Result};
use crate::monitor::logfile::{self, Entry, Stream};
use crate::monitor::Info;
use crate::state::Store;

/// Rotated files are numbered from 1; more than this is not ours.
const MAX_FILES: u32 = 1000;

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing new output until the container's monitor is done
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines ("all": every line)
    #[arg(short = 'n', long, default_value = "all", value_name = "N")]
    tail: String,
    /// Prefix each line with the time it was written (RFC 3339)
    #[arg(short, long)]
    timestamps: bool,
    /// Only lines written since T: RFC 3339, Unix seconds, or a time ago (10m, 1h30m, 45s)
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Only lines written before T (same forms as --since)
    #[arg(long, value_name = "T")]
    until: Option<String>,
    id: String,
}

struct Filter {
    since: Option<i128>,
    until: Option<i128>,
    timestamps: bool,
}

pub fn logs(root: &Path, args: LogsArgs) -> Result<ExitCode> {
    let within = |e: Error| e.within(format!("logs {}", args.id));
    let c = Store::new(root).peek(&args.id).map_err(within)?;
    let tail = match args.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse::<usize>().map_err(|_| {
            within(
                Error::new("parse --tail")
                    .detail(format!("{n:?} is not a number"))
                    .hint("use a line count, or all"),
            )
        })?),
    };
    let now = crate::time::now_nanos();
    let filter = Filter {
        since: args
            .since
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .map_err(within)?,
        until: args
            .until
            .as_deref()
            .map(|t| parse_time(t, now))
            .transpose()
            .map_err(within)?,
        timestamps: args.timestamps,
    };
    // The monitor, if it still runs: -f follows until it is gone.
    let monitor = Info::read(&c.dir)?
        .filter(Info::monitor_alive)
        .and_then(|i| crate::signal::pidfd_if_ours(i.pid, i.pid_start).ok());
    // Watch before reading, so nothing written in between is missed.
    let watch = if args.follow && monitor.is_some() {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .step("inotify_init")
            .map_err(within)?;
        ino.add_watch(
            &c.dir,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )
        .step_at("watch state dir", &c.dir)
        .map_err(within)?;
        Some(ino)
    } else {
        None
    };
    let mut reader = Reader::default();
    let mut lines = Vec::new();
    for n in (1..=MAX_FILES).rev() {
        if let Ok(text) = std::fs::read_to_string(logfile::file(&c.dir, n)) {
            lines.extend(text.lines().map(String::from));
        }
    }
    let current = File::open(logfile::file(&c.dir, 0)).ok();
    if let Some(f) = current {
        reader.file = Some(f);
        lines.extend(reader.read_lines());
    }
    let mut entries: Vec<Entry> = lines
        .iter()
        .filter_map(|l| Entry::parse(l))
        .filter(|e| filter.wants(e))
        .collect();
    if let Some(n) = tail {
        entries.drain(..entries.len().saturating_sub(n));
    }
    for e in &entries {
        filter.print(e)?;
    }
    let (Some(ino), Some(monitor)) = (watch, monitor) else {
        return Ok(ExitCode::SUCCESS);
    };
    loop {
        let mut fds = [
            PollFd::new(ino.as_fd(), PollFlags::POLLIN),
            PollFd::new(monitor.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other.step("wait for output").map_err(within)?,
        };
        let done = fds[1].revents().is_some_and(|r| !r.is_empty());
        while let Ok(events) = ino.read_events() {
            if events.is_empty() {
                break;
            }
        }
        reader.follow(&logfile::file(&c.dir, 0), &filter)?;
        if done {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// The current log file, read to its end; on rotation, the rest of the
/// old one and then the new one from its start.
#[derive(Default)]
struct Reader {
    file: Option<File>,
    partial: String,
}

impl Reader {
    fn read_lines(&mut self) -> Vec<String> {
        let Some(f) = &mut self.file else {
            return Vec::new();
        };
        let mut text = String::new();
        let _ = f.read_to_string(&mut text);
        self.partial.push_str(&text);
        let Some(end) = self.partial.rfind('\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(end + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        whole.lines().map(String::from).collect()
    }

    fn follow(&mut self, path: &Path, filter: &Filter) -> Result<()> {
        loop {
            for line in self.read_lines() {
                if let Some(e) = Entry::parse(&line).filter(|e| filter.wants(e)) {
                    filter.print(&e)?;
                }
            }
            // Rotated: `path` is a new file now; ours was read to its end.
            let ours = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            let now = std::fs::metadata(path).ok().map(|m| m.ino());
            if now.is_none() || ours == now {
                return Ok(());
            }
            let Ok(mut f) = File::open(path) else {
                return Ok(());
            };
            let _ = f.seek(SeekFrom::Start(0));
            self.file = Some(f);
            self.partial.clear();
        }
    }
}

impl Filter {
    fn wants(&self, e: &Entry) -> bool {
        let t = crate::time::parse_rfc3339_nanos(&e.time).unwrap_or(0);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    fn print(&self, e: &Entry) -> Result<()> {
        let text = if self.timestamps {
            format!("{} {}", e.time, e.log)
        } else {
            e.log.clone()
        };
        match e.stream {
            Stream::Stdout => super::out::print(&text),
            Stream::Stderr => {
                let _ = std::io::stderr().write_all(text.as_bytes());
                Ok(())
            }
        }
    }
}

/// `--since`/`--until`: RFC 3339, Unix seconds (with a fraction), or a
/// duration before `now` such as 90s, 10m, 1h30m.
fn parse_time(text: &str, now: i128) -> Result<i128> {
    if let Some(t) = crate::time::parse_rfc3339_nanos(text) {
        return Ok(t);
    }
    let bad = || {
        Error::new("parse time")
            .detail(format!("{text:?} is not a time"))
            .hint("use RFC 3339 (2026-11-30T12:00:00Z), Unix seconds, or a time ago like 10m")
    };
    if let Some((secs, frac)) = text.split_once('.').or(Some((text, ""))) {
        if !secs.is_empty()
            && secs.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            let s: i128 = secs.parse().map_err(|_| bad())?;
            let f: i128 = format!("{:0<9}", &frac[..frac.len().min(9)])
                .parse()
                .map_err(|_| bad())?;
            return Ok(s * 1_000_000_000 + f);
        }
    }
    let mut total: i128 = 0;
    let mut num = String::new();
    let mut chars = text.chars().peekable();
    if chars.peek().is_none() {
        return Err(bad());
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i128 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit: i128 = match c {
            'h' => 3_600_000_000_000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1_000_000
            }
            'm' => 60_000_000_000,
            's' => 1_000_000_000,
            _ => return Err(bad()),
        };
        total += n * unit;
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(now - total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 1_000_000 * 1_000_000_000;
        assert_eq!(parse_time("10m", now).unwrap(), now - 600 * 1_000_000_000);
        assert_eq!(
            parse_time("1h30m", now).unwrap(),
            now - 5400 * 1_000_000_000
        );
        assert_eq!(parse_time("500ms", now).unwrap(), now - 500_000_000);
        assert_eq!(parse_time("42", now).unwrap(), 42 * 1_000_000_000);
        assert_eq!(parse_time("42.5", now).unwrap(), 42_500_000_000);
        assert_eq!(
            parse_time("1970-01-01T00:00:01Z", now).unwrap(),
            1_000_000_000
        );
        for bad in ["", "x", "10q", "m"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
