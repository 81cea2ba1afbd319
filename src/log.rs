//! Where messages go: one line on stderr for a person, and, with `--log`,
//! records in a file for a program (containerd reads the last
//! `{"level":"error","msg":...}` line of log.json and shows it to its user).
//!
//! Every line carries its level word (`hull: error: ...`, `hull: warning:
//! ...`), as runc's `level=error` does: engines and people grep for it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::error::{Context, Result};

pub struct Logger {
    /// Opened when hull starts: a --log that cannot be opened is an error
    /// before anything else happens, not a record lost at the end.
    file: Option<File>,
    path: Option<std::path::PathBuf>,
    json: bool,
    debug: bool,
    started: Instant,
}

impl Logger {
    pub fn new(file: Option<&Path>, json: bool, debug: bool) -> Result<Self> {
        let file_arg = file;
        let file = file
            .map(|path| {
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .step_at("open log file", path)
                    .map_err(|e| e.hint("--log names a file hull can create or append to"))
            })
            .transpose()?;
        crate::failpoint::arm();
        Ok(Logger {
            file,
            path: file_path(file_arg),
            json,
            debug,
            started: Instant::now(),
        })
    }

    /// A logger that writes to stderr only (for when --log itself failed).
    pub fn stderr_only() -> Self {
        Logger {
            file: None,
            path: None,
            json: false,
            debug: false,
            started: Instant::now(),
        }
    }

    /// The --log file and its format, for a process that re-executes hull.
    pub fn file(&self) -> Option<(&Path, bool)> {
        self.path.as_deref().map(|p| (p, self.json))
    }

    pub fn error(&self, msg: &str) {
        eprintln!("hull: error: {msg}");
        self.record("error", msg);
    }

    /// Something went wrong but the command goes on (a failing poststop hook).
    pub fn warning(&self, msg: &str) {
        eprintln!("hull: warning: {msg}");
        self.record("warning", msg);
    }

    /// A step of a command and the time since the command began: with
    /// `--debug` this is the trace that shows which step is slow. Every step
    /// is also a failpoint (failpoint.rs; nothing in a normal build).
    pub fn step(&self, what: &str) {
        if self.debug {
            let ms = self.started.elapsed().as_secs_f64() * 1000.0;
            let msg = format!("{ms:8.3} ms  {what}");
            eprintln!("hull: debug: {msg}");
            self.record("debug", &msg);
        }
        crate::failpoint::hit(what);
    }

    fn record(&self, level: &str, msg: &str) {
        let Some(mut file) = self.file.as_ref() else {
            return;
        };
        let line = if self.json {
            let record = serde_json::json!({
                "level": level,
                "msg": msg,
                "time": crate::time::rfc3339_now(),
            });
            format!("{record}\n")
        } else {
            format!("{} {level}: {msg}\n", crate::time::rfc3339_now())
        };
        // One write per record (O_APPEND): records of concurrent hulls do not
        // interleave. A failed write must not hide the message itself, which
        // has already gone to stderr.
        let _ = file.write_all(line.as_bytes());
    }
}

/// `--log` as given, made absolute (a re-executed hull may run elsewhere).
fn file_path(file: Option<&Path>) -> Option<std::path::PathBuf> {
    let file = file?;
    Some(if file.is_absolute() {
        file.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(file)
    })
}
