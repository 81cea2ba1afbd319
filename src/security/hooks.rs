//! OCI hooks: each runs with the container's state JSON on stdin (the
//! runtime spec's state: ociVersion, id, status, pid, bundle, annotations),
//! its own args (args[0] is argv[0]) and env, and its timeout in seconds. A
//! hook that lists no env gets the environment of whoever runs it, as with
//! runc's Go exec: hull's for the hooks hull runs, process.env for those the
//! init runs (runc's init has taken process.env as its own by then). A hook
//! fails when it exits non-zero, is killed, or runs past its timeout; the
//! error is one line naming the hook and carrying what it printed.
//!
//! Who runs what, where, and when (runc's order):
//! * prestart, createRuntime — hull, in the runtime namespace and the bundle
//!   directory, after the init's namespaces and mounts exist, before
//!   pivot_root. Status "created" for prestart (as crun reports it: the
//!   runtime environment exists), "creating" for createRuntime (runc).
//! * createContainer — the init, in the container's namespaces, before
//!   pivot_root, in the rootfs directory (rootfs-relative paths work).
//! * startContainer — the init, inside the container as its user, in
//!   process.cwd, under the seccomp filter, just before execve.
//! * poststart — `start`/`run`, after the process is executed; a failure
//!   destroys the container and fails the command (runc).
//! * poststop — `delete`; a failing hook is a warning and the others still
//!   run, and the container is deleted all the same (runtime spec).
//!
//! The hooks `start` and `delete` need are saved in the state directory at
//! create (hooks.json), so a bundle edited later cannot change them.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Hooks, Spec};

use crate::error::{Context, Error, Result};
use crate::sys;

const SAVED: &str = "hooks.json";
/// Output kept from a failing hook, for its error line.
const KEEP_OUTPUT: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    fn of(self, hooks: &Hooks) -> &[Hook] {
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// The hooks of `kind` in the spec (empty when there are none).
pub fn list(spec: &Spec, kind: Kind) -> &[Hook] {
    spec.hooks()
        .as_ref()
        .map(|h| kind.of(h))
        .unwrap_or_default()
}

/// Does the init need to stop before pivot_root for hull (prestart,
/// createRuntime) or need the state JSON (createContainer, startContainer)?
pub fn init_needs_state(spec: &Spec) -> bool {
    [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
    ]
    .iter()
    .any(|k| !list(spec, *k).is_empty())
}

/// Where hooks run: their working directory (else the caller's), and the
/// environment of a hook that lists none (else the caller's).
#[derive(Clone, Copy, Default)]
pub struct Launch<'a> {
    pub cwd: Option<&'a Path>,
    pub env: Option<&'a [String]>,
}

/// Run every hook of `kind`, in order; the first failure stops the rest.
pub fn run(hooks: &[Hook], kind: Kind, state: &serde_json::Value, at: Launch) -> Result<()> {
    let input = state.to_string().into_bytes();
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, &input, at).map_err(|e| e.within(format!("{} hook #{i}", kind.name())))?;
    }
    Ok(())
}

/// Run every hook of `kind`, in order, whatever happens to the others;
/// the failures, for the caller to report.
pub fn run_all(hooks: &[Hook], kind: Kind, state: &serde_json::Value) -> Vec<Error> {
    let input = state.to_string().into_bytes();
    hooks
        .iter()
        .enumerate()
        .filter_map(|(i, hook)| {
            run_one(hook, &input, Launch::default())
                .err()
                .map(|e| e.within(format!("{} hook #{i}", kind.name())))
        })
        .collect()
}

/// At create: keep poststart and poststop hooks in the state dir.
pub fn save(spec: &Spec, state_dir: &Path) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    if Kind::Poststart.of(hooks).is_empty() && Kind::Poststop.of(hooks).is_empty() {
        return Ok(());
    }
    let path = state_dir.join(SAVED);
    let json = serde_json::to_vec(hooks).expect("hooks serialise");
    std::fs::write(&path, json).step_at("save hooks", &path)
}

/// The saved hooks of `kind` (none when nothing was saved).
pub fn saved(state_dir: &Path, kind: Kind) -> Result<Vec<Hook>> {
    let path = state_dir.join(SAVED);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).step_at("read saved hooks", &path),
    };
    let hooks: Hooks = serde_json::from_slice(&text).map_err(|e| {
        Error::new("read saved hooks")
            .at(&path)
            .detail(e.to_string())
    })?;
    Ok(kind.of(&hooks).to_vec())
}

fn run_one(hook: &Hook, input: &[u8], at: Launch) -> Result<()> {
    let path = hook.path();
    let mut cmd = Command::new(path);
    if let Some((first, rest)) = hook.args().as_deref().and_then(|a| a.split_first()) {
        cmd.arg0(first).args(rest);
    }
    if let Some(env) = hook.env().as_deref().or(at.env) {
        cmd.env_clear();
        for kv in env {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            cmd.env(k, v);
        }
    }
    if let Some(dir) = at.cwd {
        cmd.current_dir(dir);
    }
    // Its own process group: a timeout kills the hook and what it started.
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .step_at("run", path)
        .map_err(|e| e.hint("a hook's path must be an absolute path to an executable"))?;
    let pid = Pid::from_raw(child.id() as i32);
    let pidfd = sys::pidfd_open(pid).step("open pidfd of hook")?;
    let mut stdin = child.stdin.take();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    for fd in [out.as_raw_fd(), err.as_raw_fd()]
        .into_iter()
        .chain(stdin.as_ref().map(|s| s.as_raw_fd()))
    {
        fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).step("set hook pipe non-blocking")?;
    }
    let deadline = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let mut written = 0;
    let mut output = Vec::new();
    let mut open = [true, true];
    let exited = loop {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break false;
                }
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let mut fds = vec![PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if open[0] {
            fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
        }
        if open[1] {
            fds.push(PollFd::new(err.as_fd(), PollFlags::POLLIN));
        }
        if let Some(s) = &stdin {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
        }
        match poll(&mut fds, wait) {
            Err(Errno::EINTR) | Ok(0) => continue,
            other => other.step("wait for hook")?,
        };
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 1;
        for (k, pipe) in [&mut out as &mut dyn Read, &mut err as &mut dyn Read]
            .into_iter()
            .enumerate()
        {
            if open[k] {
                if ready[i] {
                    open[k] = drain(pipe, &mut output);
                }
                i += 1;
            }
        }
        if let Some(s) = stdin.as_mut() {
            if ready[i] {
                match s.write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // The hook closed its stdin (EPIPE): it did not want it all.
                    Err(_) => written = input.len(),
                }
                if written >= input.len() {
                    stdin = None;
                }
            }
        }
        if ready[0] {
            break true;
        }
    };
    if !exited {
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
        return Err(Error::new("run")
            .at(path)
            .detail(format!(
                "ran past its timeout of {}s",
                hook.timeout().unwrap_or(0)
            ))
            .hint("the hook was killed; raise its timeout or make it faster"));
    }
    // What is still buffered in the pipes (a daemon child may keep them open).
    drain(&mut out, &mut output);
    drain(&mut err, &mut output);
    let status = child.wait().step_at("wait for hook", path)?;
    if status.success() {
        return Ok(());
    }
    let printed = String::from_utf8_lossy(&output);
    let printed: String = printed.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut e = Error::new("run").at(path).detail(format!("{status}"));
    if !printed.is_empty() {
        e = e.detail(format!("{status}: output: {printed}"));
    }
    Err(e)
}

/// Read what is available; false at end of file.
fn drain(pipe: &mut dyn Read, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                let room = KEEP_OUTPUT.saturating_sub(into.len());
                into.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}
