//! Where messages go: one line on stderr for a person, and, with `--log`,
//! records in a file for a program (containerd reads the last
//! `{"level":"error","msg":...}` line of log.json and shows it to its user).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
    started: Instant,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, json: bool, debug: bool) -> Self {
        crate::failpoint::arm();
        Logger {
            file,
            json,
            debug,
            started: Instant::now(),
        }
    }

    pub fn error(&self, msg: &str) {
        eprintln!("hull: {msg}");
        self.record("error", msg);
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
        let Some(path) = &self.file else { return };
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
        // A log file we cannot write must not hide the error itself, which
        // has already gone to stderr.
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}
