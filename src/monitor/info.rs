//! What the monitor knows and `ps`, `state`, `stop`, `logs` read:
//! `<state dir>/monitor.json`, written by the monitor alone (temp + rename,
//! no lock: a reader sees the old or the new record).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

pub const INFO_FILE: &str = "monitor.json";
/// The container's output as JSON lines (Docker's json-file format);
/// rotated copies are `container.log.1` (newest) .. `.N`.
pub const LOG_FILE: &str = "container.log";
/// Unix socket of the monitor: `attach` connects here.
pub const ATTACH_SOCKET: &str = "attach.sock";
/// Written by `stop` before it signals: the restart policy does not bring
/// a container back that a user stopped.
pub const STOP_REQUESTED: &str = "stop-requested";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// The monitor process (pid and start time, as for the init).
    pub pid: i32,
    #[serde(default)]
    pub pid_start: u64,
    /// When the current run of the container started (RFC 3339).
    #[serde(default)]
    pub started: Option<String>,
    /// The last run's exit code (128+N for signal N); None while it runs,
    /// or when the monitor died before it could see the end.
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub finished: Option<String>,
    #[serde(default)]
    pub oom_killed: bool,
    /// How many times the restart policy brought the container back.
    #[serde(default)]
    pub restart_count: u32,
    /// Waiting out the restart backoff.
    #[serde(default)]
    pub restarting: bool,
}

impl Info {
    /// None when the container never had a monitor (runc-style create/start).
    pub fn read(state_dir: &Path) -> Result<Option<Info>> {
        crate::jsonfile::read(state_dir, INFO_FILE, "monitor record")
    }

    pub fn write(&self, state_dir: &Path) -> Result<()> {
        crate::jsonfile::write(state_dir, INFO_FILE, "monitor record", self)
    }

    /// The monitor process is still there (not a reused pid).
    pub fn monitor_alive(&self) -> bool {
        self.pid > 0
            && matches!(crate::state::proc_start_time(self.pid),
                Some((start, false)) if start == self.pid_start)
    }
}

/// Lend our priority to the container's monitor (see `Info::hurry`), if
/// it has one.
pub fn hurry_monitor(state_dir: &Path) {
    if let Ok(Some(info)) = Info::read(state_dir) {
        info.hurry();
    }
}

impl Info {
    /// Lend our priority to this monitor before waiting on it: `delete`
    /// and `stop` wait for it to reap the init (a zombie keeps its cgroups
    /// busy), and a monitor still starting its new image runs at a lower
    /// priority (serve.rs) that a loaded machine may starve. Only ever
    /// raises the monitor's priority, never lowers it.
    pub fn hurry(&self) {
        if self.pid == std::process::id() as i32 || !self.monitor_alive() {
            return;
        }
        let ours = crate::sys::nice_of(0);
        if crate::sys::nice_of(self.pid) > ours {
            let _ = crate::sys::set_nice_of(self.pid, ours);
        }
    }
}
