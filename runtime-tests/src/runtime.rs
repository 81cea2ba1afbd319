//! Wrapper around the runtime binary: `$RUNTIME --root <suite root> <args>`.
//!
//! stdout and stderr of every invocation go to files, never to pipes: after `create` or
//! `run -d` the container process inherits the runtime's stdio, so reading a pipe to EOF
//! would wait for the container to exit. Files also let a test poll what the container
//! prints (e.g. a "ready" marker) while it runs.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{guard, wait_until, Outcome};

/// Hang guard for a single runtime invocation.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// Result of one runtime invocation.
#[derive(Debug, Clone)]
pub struct Output {
    /// What was run (for messages).
    pub desc: String,
    /// Exit code; 128+N when killed by signal N; -1 when it could not be spawned or hung.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// File the invocation's stdout went to (containers started by it may keep writing).
    pub stdout_path: PathBuf,
}

impl Output {
    /// Fail unless the command exited 0.
    pub fn ok(self) -> Result<Output, Outcome> {
        if self.code == 0 {
            Ok(self)
        } else {
            Err(Outcome::Fail(format!(
                "`{}` exited {}, expected 0; stderr: {}",
                self.desc,
                self.code,
                self.stderr.trim()
            )))
        }
    }

    /// Fail if the command exited 0.
    pub fn failed(self) -> Result<Output, Outcome> {
        if self.code != 0 {
            Ok(self)
        } else {
            Err(Outcome::Fail(format!(
                "`{}` succeeded, expected a failure; stdout: {}",
                self.desc,
                self.stdout.trim()
            )))
        }
    }

    /// Fail unless the command exited with `code`.
    pub fn code(self, code: i32) -> Result<Output, Outcome> {
        if self.code == code {
            Ok(self)
        } else {
            Err(Outcome::Fail(format!(
                "`{}` exited {}, expected {code}; stdout: {}; stderr: {}",
                self.desc,
                self.code,
                self.stdout.trim(),
                self.stderr.trim()
            )))
        }
    }

    /// Fail unless stderr contains `needle`.
    pub fn stderr_has(self, needle: &str) -> Result<Output, Outcome> {
        if self.stderr.contains(needle) {
            Ok(self)
        } else {
            Err(Outcome::Fail(format!(
                "`{}`: stderr does not contain {needle:?}; stderr: {}",
                self.desc,
                self.stderr.trim()
            )))
        }
    }
}

/// A runtime process started in the background.
pub struct Spawned {
    pub desc: String,
    pub child: Child,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Wait for the runtime process to exit (hang guard `limit`, scaled by
    /// [`guard`]: kill it and report -1).
    pub fn wait(mut self, limit: Duration) -> Output {
        let limit = guard(limit);
        let start = Instant::now();
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)),
                Ok(None) if start.elapsed() > limit => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let mut out = self.collect(-1);
                    out.stderr = format!("(hang guard: killed after {limit:?}) {}", out.stderr);
                    return out;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => {
                    let mut out = self.collect(-1);
                    out.stderr = format!("(wait failed: {e}) {}", out.stderr);
                    return out;
                }
            }
        };
        self.collect(code)
    }

    fn collect(&self, code: i32) -> Output {
        Output {
            desc: self.desc.clone(),
            code,
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
            stdout_path: self.stdout_path.clone(),
        }
    }
}

/// The runtime binary plus the suite's `--root`.
pub struct Runtime {
    pub bin: PathBuf,
    pub root: PathBuf,
    io_dir: PathBuf,
    counter: AtomicU64,
}

impl Runtime {
    pub fn new(bin: PathBuf, root: PathBuf, io_dir: PathBuf) -> Runtime {
        Runtime {
            bin,
            root,
            io_dir,
            counter: AtomicU64::new(0),
        }
    }

    /// Whether the binary under test is hull (its file name is `hull`).
    pub fn is_hull(&self) -> bool {
        self.bin.file_name().and_then(|n| n.to_str()) == Some("hull")
    }

    /// The version of a runc under test ("runc version 1.1.5+ds1"), None for
    /// other runtimes.
    pub fn runc_version(&self) -> Option<(u32, u32, u32)> {
        if self.is_hull() {
            return None;
        }
        let out = self.exec(&["--version"]).stdout;
        let v = out.lines().find_map(|l| l.strip_prefix("runc version "))?;
        let n: Vec<u32> = v
            .split(|ch: char| !ch.is_ascii_digit())
            .filter_map(|x| x.parse().ok())
            .take(3)
            .collect();
        Some((
            n.first().copied().unwrap_or(0),
            n.get(1).copied().unwrap_or(0),
            n.get(2).copied().unwrap_or(0),
        ))
    }

    /// Start `$RUNTIME --root <root> <args>` in the background, in `cwd` if given.
    pub fn spawn_in(&self, args: &[&str], cwd: Option<&Path>) -> std::io::Result<Spawned> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let stdout_path = self.io_dir.join(format!("{n}.out"));
        let stderr_path = self.io_dir.join(format!("{n}.err"));
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root).args(args);
        cmd.stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path)?)
            .stderr(std::fs::File::create(&stderr_path)?);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let child = cmd.spawn()?;
        Ok(Spawned {
            desc: format!("{} {}", self.bin.display(), args.join(" ")),
            child,
            stdout_path,
            stderr_path,
        })
    }

    pub fn spawn(&self, args: &[&str]) -> std::io::Result<Spawned> {
        self.spawn_in(args, None)
    }

    /// Run a command to completion in `cwd`.
    pub fn exec_in(&self, args: &[&str], cwd: Option<&Path>) -> Output {
        self.exec_within(args, cwd, COMMAND_LIMIT)
    }

    /// Run a command to completion in `cwd`, with a hang guard of `limit`.
    pub fn exec_within(&self, args: &[&str], cwd: Option<&Path>, limit: Duration) -> Output {
        match self.spawn_in(args, cwd) {
            Ok(s) => s.wait(limit),
            Err(e) => Output {
                desc: format!("{} {}", self.bin.display(), args.join(" ")),
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot spawn runtime: {e}"),
                stdout_path: PathBuf::new(),
            },
        }
    }

    /// Run a command to completion.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_in(args, None)
    }

    pub fn create(&self, id: &str, bundle: &Path) -> Output {
        self.exec(&["create", "--bundle", &bundle.to_string_lossy(), id])
    }

    pub fn start(&self, id: &str) -> Output {
        self.exec(&["start", id])
    }

    /// `run --bundle B ID` in the foreground.
    pub fn run(&self, id: &str, bundle: &Path) -> Output {
        self.exec(&["run", "--bundle", &bundle.to_string_lossy(), id])
    }

    pub fn kill(&self, id: &str, sig: &str) -> Output {
        self.exec(&["kill", id, sig])
    }

    pub fn delete(&self, id: &str) -> Output {
        self.exec(&["delete", id])
    }

    pub fn delete_force(&self, id: &str) -> Output {
        self.exec(&["delete", "--force", id])
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> Result<Value, Outcome> {
        let out = self.exec(&["state", id]).ok()?;
        serde_json::from_str(&out.stdout).map_err(|e| {
            Outcome::Fail(format!(
                "`state {id}` printed invalid JSON ({e}): {}",
                out.stdout
            ))
        })
    }

    /// The `status` field of `state ID`.
    pub fn status(&self, id: &str) -> Result<String, Outcome> {
        let st = self.state(id)?;
        Ok(st["status"].as_str().unwrap_or("").to_owned())
    }

    /// The init pid from `state ID`.
    pub fn pid(&self, id: &str) -> Result<i32, Outcome> {
        let st = self.state(id)?;
        st["pid"]
            .as_i64()
            .map(|p| p as i32)
            .ok_or_else(|| Outcome::Fail(format!("state of {id} has no pid: {st}")))
    }

    /// Poll `state` every 10 ms until the status is `want` (hang guard 10 s).
    pub fn wait_status(&self, id: &str, want: &str) -> Result<(), Outcome> {
        let mut last = String::new();
        wait_until(
            &format!("container {id} to be {want:?}"),
            Duration::from_secs(10),
            || {
                last = self
                    .status(id)
                    .unwrap_or_else(|e| format!("(state failed: {e})"));
                last == want
            },
        )
        .map_err(|e| Outcome::Fail(format!("{e}; last status: {last}")))
    }

    /// Whether `state ID` reports that the container does not exist.
    pub fn is_gone(&self, id: &str) -> bool {
        let out = self.exec(&["state", id]);
        out.code != 0 && out.stderr.contains("does not exist")
    }
}
