//! The container's output as Docker's json-file log: one JSON object per
//! line, `{"log": "...\n", "stream": "stdout", "time": RFC 3339 nano}`,
//! rotated by size (`--log-opt max-size=10m,max-file=3`): `container.log`
//! is the newest, `container.log.1` the one before, up to `max-file` files.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::info::LOG_FILE;
use crate::error::{Context, Error, Result};

/// A line longer than this is cut into several entries (as Docker does),
/// so one endless line cannot grow the monitor.
const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct LogOptions {
    /// Bytes per file before it is rotated; 0: never rotate.
    pub max_size: u64,
    /// Files kept, the current one included.
    pub max_file: u32,
}

/// The monitor keeps logs in the state dir (often a tmpfs): bounded by default.
impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_size: 10 * 1024 * 1024,
            max_file: 3,
        }
    }
}

impl LogOptions {
    /// `--log-opt` values: `max-size=10m`, `max-file=3`, comma-separated or repeated.
    pub fn parse(opts: &[String]) -> Result<LogOptions> {
        let mut out = LogOptions::default();
        for opt in opts.iter().flat_map(|o| o.split(',')) {
            let bad = |why: &str| {
                Error::new("parse --log-opt")
                    .detail(format!("{opt:?}: {why}"))
                    .hint("use max-size=SIZE (10m, 512k, 1g, -1 for no limit) and max-file=N (N >= 1)")
            };
            let (key, value) = opt.split_once('=').ok_or_else(|| bad("not KEY=VALUE"))?;
            match key {
                "max-size" if value == "-1" => out.max_size = 0,
                "max-size" => out.max_size = parse_size(value).ok_or_else(|| bad("not a size"))?,
                "max-file" => {
                    out.max_file = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| bad("not a number >= 1"))?
                }
                _ => return Err(bad("unknown option")),
            }
        }
        Ok(out)
    }
}

/// "10m", "512k", "1g", "4096" (bytes): Docker's units, powers of 1024.
fn parse_size(text: &str) -> Option<u64> {
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, unit) = match trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => trimmed.split_at(i),
        None => (trimmed, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult).filter(|n| *n > 0)
}

/// The path of log file `n`: 0 is the current one.
pub fn file(dir: &Path, n: u32) -> PathBuf {
    if n == 0 {
        dir.join(LOG_FILE)
    } else {
        dir.join(format!("{LOG_FILE}.{n}"))
    }
}

/// The monitor's end: takes bytes as they come, writes whole lines.
pub struct Writer {
    dir: PathBuf,
    opts: LogOptions,
    file: File,
    size: u64,
    /// Bytes of an unfinished line, per stream.
    pending: [Vec<u8>; 2],
}

impl Writer {
    pub fn open(dir: &Path, opts: LogOptions) -> Result<Writer> {
        let path = file(dir, 0);
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Writer {
            dir: dir.to_path_buf(),
            opts,
            file,
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    pub fn write(&mut self, stream: Stream, mut bytes: &[u8]) {
        let i = stream as usize;
        while let Some(nl) = bytes.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.pending[i]);
            line.extend_from_slice(&bytes[..=nl]);
            self.emit(stream, &line);
            bytes = &bytes[nl + 1..];
        }
        self.pending[i].extend_from_slice(bytes);
        while self.pending[i].len() >= MAX_LINE {
            let rest = self.pending[i].split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.pending[i], rest);
            self.emit(stream, &line);
        }
    }

    /// End of output: what is left of a line is an entry of its own.
    pub fn flush(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.pending[stream as usize]);
            if !line.is_empty() {
                self.emit(stream, &line);
            }
        }
    }

    fn emit(&mut self, stream: Stream, line: &[u8]) {
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream,
            "time": crate::time::rfc3339_now(),
        });
        let mut text = entry.to_string();
        text.push('\n');
        if self.opts.max_size > 0
            && self.size > 0
            && self.size + text.len() as u64 > self.opts.max_size
        {
            self.rotate();
        }
        // A full disk loses log lines, never the container.
        if self.file.write_all(text.as_bytes()).is_ok() {
            self.size += text.len() as u64;
        }
    }

    /// container.log → .1 → .2 …; the oldest beyond max-file goes.
    fn rotate(&mut self) {
        let keep = self.opts.max_file.max(1);
        if keep == 1 {
            let _ = self.file.set_len(0);
            self.size = 0;
            return;
        }
        let _ = std::fs::remove_file(file(&self.dir, keep - 1));
        for n in (0..keep - 1).rev() {
            let _ = std::fs::rename(file(&self.dir, n), file(&self.dir, n + 1));
        }
        if let Ok(f) = open_append(&file(&self.dir, 0)) {
            self.file = f;
            self.size = 0;
        }
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .step_at("open container log", path)
}

/// One entry as `logs` reads it back.
#[derive(Debug, Deserialize, PartialEq)]
pub struct Entry {
    pub log: String,
    pub stream: Stream,
    pub time: String,
}

impl Entry {
    pub fn parse(line: &str) -> Option<Entry> {
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path, files: u32) -> Vec<Entry> {
        (0..files)
            .rev()
            .flat_map(|n| {
                std::fs::read_to_string(file(dir, n))
                    .unwrap_or_default()
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .map(|l| Entry::parse(&l).expect("entry"))
            .collect()
    }

    #[test]
    fn options() {
        let o = LogOptions::parse(&["max-size=10m,max-file=3".into()]).unwrap();
        assert_eq!((o.max_size, o.max_file), (10 << 20, 3));
        let o = LogOptions::parse(&["max-size=512k".into(), "max-file=1".into()]).unwrap();
        assert_eq!((o.max_size, o.max_file), (512 << 10, 1));
        assert_eq!(
            LogOptions::parse(&["max-size=-1".into()]).unwrap().max_size,
            0
        );
        for bad in ["max-size=10x", "max-file=0", "colour=red", "max-size"] {
            assert!(LogOptions::parse(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn lines_streams_partial_and_rotation() {
        let dir = std::env::temp_dir().join(format!("hull-logfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let opts = LogOptions {
            max_size: 300,
            max_file: 2,
        };
        let mut w = Writer::open(&dir, opts).unwrap();
        w.write(Stream::Stdout, b"one\ntw");
        w.write(Stream::Stderr, b"err\n");
        w.write(Stream::Stdout, b"o\n");
        w.write(Stream::Stdout, b"tail");
        w.flush();
        let got = read_all(&dir, 2);
        let logs: Vec<(&str, Stream)> = got.iter().map(|e| (e.log.as_str(), e.stream)).collect();
        assert_eq!(
            logs,
            [
                ("one\n", Stream::Stdout),
                ("err\n", Stream::Stderr),
                ("two\n", Stream::Stdout),
                ("tail", Stream::Stdout)
            ]
        );
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        assert!(file(&dir, 1).exists());
        assert!(!file(&dir, 2).exists());
        let size = std::fs::metadata(file(&dir, 0)).unwrap().len();
        assert!(size <= 300, "{size}");
        let last = read_all(&dir, 2).pop().unwrap();
        assert_eq!(last.log, "line 19\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
