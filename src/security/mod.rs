//! Process security and hooks: capabilities, seccomp, no_new_privs (set in
//! process/finalize.rs), sysctl, oom_score_adj, scheduler, I/O priority,
//! personality, AppArmor/SELinux, and the six kinds of OCI hooks.
//!
//! Where each piece runs:
//! * `validate` — in `create`, before anything exists on the host.
//! * `sysctl::apply` — in the init, after pivot_root, before /proc/sys is
//!   made read-only.
//! * `finalize::apply_with` — every container process: oom_score_adj,
//!   scheduler, ioprio, personality, LSM label, capabilities, and the
//!   seccomp filter compiled (not loaded).
//! * `Late::finish` — load the filter, hand its notify fd to the agent,
//!   drop what the load needed: for the init before it reports ready (runc's
//!   order, `finish_early`), for an exec'd process in `finalize::exec`, just
//!   before execve.
//! * hooks — see hooks.rs.

pub mod caps;
pub mod enosys;
pub mod hooks;
pub mod keyring;
pub mod lsm;
pub mod procfs;
pub mod sched;
pub mod seccomp;
pub mod sysctl;

use std::os::fd::{AsRawFd, OwnedFd};

use oci_spec::runtime::Spec;

use crate::error::Result;
use crate::process::sync::{Channel, Msg};
use crate::state::Container;

/// Every check that reads nothing but the spec: a config hull cannot honour
/// fails here with one line, and nothing is left behind. (Whether the host
/// has the LSM a config names is `lsm::validate`, called by Bundle::load.)
pub fn validate(spec: &Spec) -> Result<()> {
    sysctl::validate(spec)?;
    if let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        seccomp::validate(s)?;
    }
    Ok(())
}

/// What a container process carries from `apply` to execve.
#[derive(Default)]
pub struct Late {
    pub caps: caps::Final,
    pub seccomp: Option<seccomp::Filter>,
    /// The init's: what hull sent before pivot_root (for startContainer).
    pub from_hull: Option<FromHull>,
}

impl Late {
    /// Load the filter (and hand over its notify fd), then drop
    /// CAP_SYS_ADMIN if it was kept only for that load.
    pub fn finish(&self) -> Result<()> {
        if let Some(filter) = &self.seccomp {
            filter.load()?;
        }
        self.caps.apply_last()
    }

    /// `finish` now, in the init before it reports ready, as runc does: the
    /// agent gets the notify fd during `create` (it may wait for it before
    /// calling `start`), and startContainer hooks run under the filter.
    /// What `finalize::exec` finishes later is then nothing.
    pub fn finish_early(&mut self) -> Result<()> {
        self.finish()?;
        self.seccomp = None;
        self.caps = self.caps.settled();
        Ok(())
    }

    /// The seccomp agent's socket and the state it is told about.
    pub fn set_agent(&mut self, sock: OwnedFd, spec: &Spec, state: &serde_json::Value) {
        let cfg = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        if let (Some(filter), Some(cfg)) = (self.seccomp.as_mut(), cfg) {
            filter.set_agent(sock, cfg, state);
        }
    }
}

/// Does the init need hull between its mounts and pivot_root (hooks that
/// run then, or the state JSON for later hooks or the seccomp agent)?
pub fn init_needs_hull(spec: &Spec) -> bool {
    hooks::init_needs_state(spec) || agent_path(spec).is_some()
}

fn agent_path(spec: &Spec) -> Option<&std::path::Path> {
    let s = spec.linux().as_ref()?.seccomp().as_ref()?;
    if seccomp::uses_notify(s) {
        s.listener_path().as_deref()
    } else {
        None
    }
}

/// What the init got from hull: the state JSON and the agent's socket.
pub struct FromHull {
    pub state: serde_json::Value,
    pub agent: Option<OwnedFd>,
}

/// Init side, after the mounts and before pivot_root: let hull run the
/// prestart and createRuntime hooks, get the state, run createContainer in
/// the rootfs directory.
pub fn init_before_pivot(
    chan: &Channel,
    spec: &Spec,
    rootfs: &std::path::Path,
) -> Result<Option<FromHull>> {
    if !init_needs_hull(spec) {
        return Ok(None);
    }
    chan.send(&Msg::Hooks)?;
    let (state, agent) = match chan.recv()? {
        Some((Msg::State(json), fd)) => (json, fd),
        Some((msg, _)) => {
            return Err(crate::error::Error::new("wait for hooks")
                .detail(format!("unexpected {msg:?} from hull")))
        }
        None => return Err(crate::error::Error::new("wait for hooks").detail("hull went away")),
    };
    let state: serde_json::Value = serde_json::from_str(&state)
        .map_err(|e| crate::error::Error::new("read state from hull").detail(e.to_string()))?;
    let at = hooks::Launch {
        cwd: Some(rootfs),
        env: process_env(spec),
    };
    let kind = hooks::Kind::CreateContainer;
    hooks::run(hooks::list(spec, kind), kind, &state, at)?;
    Ok(Some(FromHull { state, agent }))
}

/// The environment of hooks the init runs and that list none.
fn process_env(spec: &Spec) -> Option<&[String]> {
    spec.process().as_ref()?.env().as_deref()
}

/// hull side of `Msg::Hooks`: run prestart then createRuntime in the bundle
/// directory (runc's create runs there), connect to the seccomp agent, and
/// return the state JSON ("creating") and the agent socket for the init.
pub fn on_init_hooks(
    spec: &Spec,
    container: &Container,
    init: i32,
) -> Result<(String, Option<OwnedFd>)> {
    let at = hooks::Launch {
        cwd: Some(&container.record.bundle),
        env: None,
    };
    for (kind, status) in [
        (hooks::Kind::Prestart, "created"),
        (hooks::Kind::CreateRuntime, "creating"),
    ] {
        let state = container.oci_state(status, init);
        hooks::run(hooks::list(spec, kind), kind, &state, at)?;
    }
    let agent = agent_path(spec)
        .map(seccomp::connect_listener)
        .transpose()?;
    Ok((container.oci_state("creating", init).to_string(), agent))
}

/// Init side, after `start` released it, before execve: startContainer.
pub fn init_before_exec(spec: &Spec, from_hull: Option<&FromHull>) -> Result<()> {
    let list = hooks::list(spec, hooks::Kind::StartContainer);
    match from_hull {
        Some(h) if !list.is_empty() => {
            let mut state = h.state.clone();
            state["status"] = "created".into();
            let at = hooks::Launch {
                cwd: None,
                env: process_env(spec),
            };
            hooks::run(list, hooks::Kind::StartContainer, &state, at)
        }
        _ => Ok(()),
    }
}

/// `start`/`run`, once the process runs: poststart hooks, in the bundle
/// directory. The caller destroys the container when they fail (runc).
pub fn poststart(container: &Container) -> Result<()> {
    let list = hooks::saved(&container.dir, hooks::Kind::Poststart)?;
    if list.is_empty() {
        return Ok(());
    }
    let state = container.oci_state("running", container.record.pid);
    let at = hooks::Launch {
        cwd: Some(container.record.bundle.as_path()).filter(|b| b.is_dir()),
        env: None,
    };
    hooks::run(&list, hooks::Kind::Poststart, &state, at)
}

/// `delete`, after the process is gone and before the state is removed:
/// every poststop hook, whatever the others did. A failure is a warning
/// and deletion goes on (runtime spec), or a container whose hook fails
/// could never be deleted.
pub fn poststop(container: &Container, log: &crate::log::Logger) {
    let list = match hooks::saved(&container.dir, hooks::Kind::Poststop) {
        Ok(list) => list,
        Err(e) => return log.warning(&e.to_string()),
    };
    let state = container.oci_state("stopped", 0);
    for e in hooks::run_all(&list, hooks::Kind::Poststop, &state) {
        log.warning(
            &e.within(format!("delete {}", container.record.id))
                .to_string(),
        );
    }
}

/// The raw fd to pass along with a message, if any.
pub fn raw(fd: &Option<OwnedFd>) -> Option<std::os::fd::RawFd> {
    fd.as_ref().map(|f| f.as_raw_fd())
}
