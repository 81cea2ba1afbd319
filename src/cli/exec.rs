//! `hull exec`: run another process in a running container, as runc does:
//! from a process.json (`--process`, what containerd passes) or from the
//! container's own process with the command and overrides given here.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use nix::sys::signal::{sigprocmask, SigmaskHow};
use oci_spec::runtime::{Capability, Process, Spec, User};

use super::foreground;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::process::join;
use crate::signal::pidfd_if_ours;
use crate::state::{Status, Store};

#[derive(Args)]
pub struct ExecArgs {
    /// process.json describing the process (as containerd passes it)
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Give the process a terminal
    #[arg(short, long)]
    tty: bool,
    /// Return once the process is started
    #[arg(short, long)]
    detach: bool,
    /// Write the process's host pid to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Add an environment variable (KEY=VALUE)
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long)]
    user: Option<String>,
    /// Additional group ids
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// Add a capability (e.g. CAP_NET_ADMIN)
    #[arg(short, long = "cap")]
    cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    no_new_privs: bool,
    /// Pass N more fds (3 .. 3+N) to the process
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Start the process even if the container is paused (it runs once resumed)
    #[arg(long)]
    ignore_paused: bool,
    /// Join a sub-cgroup of the container's: [CONTROLLER[,CONTROLLER]:]PATH
    #[arg(long = "cgroup")]
    cgroup: Vec<String>,
    id: String,
    /// The command and its arguments (when no --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// runc's exit status when exec itself fails (not the process): 255, so a
/// caller cannot take it for the process's own exit 1.
const EXEC_FAILED: u8 = 255;

pub fn exec(root: &Path, args: ExecArgs, log: &Logger) -> Result<ExitCode> {
    let id = args.id.clone();
    match run_exec(root, args, log) {
        Ok(code) => Ok(code),
        Err(e) => {
            log.error(&e.within(format!("exec {id}")).to_string());
            Ok(ExitCode::from(EXEC_FAILED))
        }
    }
}

fn run_exec(root: &Path, args: ExecArgs, log: &Logger) -> Result<ExitCode> {
    // Before hull opens any fd of its own.
    let preserve_fds = crate::process::fds::for_exec(args.preserve_fds)?;
    let sub_cgroups = parse_sub_cgroups(&args.cgroup)?;
    let container = Store::new(root).peek(&args.id)?;
    match container.status() {
        Status::Running | Status::Created => {}
        Status::Paused if args.ignore_paused => {}
        Status::Stopped => return Err(Error::new("cannot exec in a stopped container")),
        Status::Paused => {
            return Err(Error::new(
                "cannot exec in a paused container (use --ignore-paused to override)",
            ))
        }
        Status::Creating => {
            return Err(Error::new(
                "cannot exec in a container that is being created",
            ))
        }
    }
    let spec = bundle_spec(&container.record.bundle);
    let process = build_process(&args, spec.as_ref())?;
    check_process(&process)?;
    let terminal = process.terminal().unwrap_or(false);
    console::check_usable(terminal, args.console_socket.as_deref(), args.detach)?;
    log.step("load container and process");

    let init_fd = pidfd_if_ours(container.record.pid, container.record.pid_start)?;
    let forwarded = foreground::forwarded_signals();
    if !args.detach {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).step("block signals")?;
    }
    let joined = join::spawn(
        nix::unistd::Pid::from_raw(container.record.pid),
        init_fd.as_fd(),
        &process,
        spec.as_ref().and_then(|s| s.linux().as_ref()),
        &join::Options {
            preserve_fds,
            sub_cgroups: &sub_cgroups,
            plain_output: !args.detach && args.console_socket.is_none(),
            session_keyring: (!container.record.no_new_keyring)
                .then(|| crate::create::keyring_name(&args.id)),
            log,
        },
    )?;
    log.step("process started");

    let mut pty = joined.pty;
    if let (Some(socket), Some(master)) = (&args.console_socket, &pty) {
        console::send_to_socket(socket, master)?;
        pty = None;
    }
    if let Some(path) = &args.pid_file {
        // Nobody would know the process: it goes, as with runc.
        if let Err(e) = crate::create::write_pid_file(path, joined.pid) {
            let _ = nix::sys::signal::kill(joined.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(joined.pid, None);
            return Err(e);
        }
        log.step("exec: write pid file");
    }
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let raw = pty
        .as_ref()
        .map(|master| console::attach_foreground(master.as_fd()));
    let code = foreground::forward_signals_until_exit(joined.pid, &forwarded, pty)?;
    drop(raw);
    Ok(ExitCode::from(code))
}

/// The process to run: process.json as given, or the container's process
/// with our command and overrides (runc's rules).
fn build_process(args: &ExecArgs, spec: Option<&Spec>) -> Result<Process> {
    if let Some(path) = &args.process {
        return read_process_json(path);
    }
    if args.command.is_empty() {
        return Err(Error::new("exec")
            .detail("no command given")
            .hint("pass the command after the id, or a process.json with --process"));
    }
    // The container's own process supplies the defaults.
    let mut process = spec.and_then(|s| s.process().clone()).unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(args.tty));
    let mut env = process.env().clone().unwrap_or_default();
    env.extend(args.env.iter().cloned());
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        process.set_user(parse_user(user, &args.additional_gids)?);
    } else if !args.additional_gids.is_empty() {
        process
            .user_mut()
            .set_additional_gids(Some(args.additional_gids.clone()));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if !args.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_default();
        for name in &args.cap {
            // As in config.json: CAP_KILL (runc's form) or KILL.
            let cap: Capability = serde_json::from_value(serde_json::Value::from(name.as_str()))
                .map_err(|_| {
                    Error::new("parse --cap").detail(format!("unknown capability {name:?}"))
                })?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        process.set_capabilities(Some(caps));
    }
    Ok(process)
}

/// A process.json as containerd writes it. Without "user" the process runs
/// as uid 0, gid 0 (runc reads it into a zero-valued user).
fn read_process_json(path: &Path) -> Result<Process> {
    let text = std::fs::read(path).step_at("read process.json", path)?;
    let bad = |field: String, what: String| {
        Error::new("parse process.json")
            .at(path)
            .detail(format!("field {field}: {what}"))
    };
    let mut value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(".".into(), e.to_string()))?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("user")
            .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
    }
    serde_path_to_error::deserialize(value)
        .map_err(|e| bad(e.path().to_string(), e.inner().to_string()))
}

/// What runc checks of an exec'd process before it starts one.
fn check_process(process: &Process) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::new("check process").detail("args must not be empty"));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::new("check process")
            .detail(format!("cwd {:?} must be an absolute path", process.cwd())));
    }
    Ok(())
}

/// `--cgroup [CONTROLLER[,CONTROLLER]:]PATH`, repeatable, as runc parses
/// it: controller name to the path below the container's cgroup; "" (no
/// controller, allowed only alone) means every hierarchy.
fn parse_sub_cgroups(args: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for arg in args {
        let bad = || Error::new(format!("invalid --cgroup argument: {arg}"));
        let parts: Vec<&str> = arg.splitn(3, ':').collect();
        match parts[..] {
            [path] => {
                if args.len() != 1 {
                    return Err(bad().detail("missing <controller>: prefix"));
                }
                out.insert(String::new(), PathBuf::from(path));
            }
            [controllers, path] => {
                for c in controllers.split(',') {
                    out.insert(c.to_string(), PathBuf::from(path));
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// The container's config, for the defaults of an exec'd process and the
/// seccomp profile it shares with the init; None when the bundle is gone.
fn bundle_spec(bundle: &Path) -> Option<Spec> {
    let text = std::fs::read(bundle.join("config.json")).ok()?;
    crate::bundle::parse_spec(&text).ok()
}

fn parse_user(text: &str, additional_gids: &[u32]) -> Result<User> {
    let bad = || Error::new("parse --user").detail(format!("{text:?} is not UID[:GID]"));
    let (uid, gid) = match text.split_once(':') {
        Some((u, g)) => (u.parse().map_err(|_| bad())?, g.parse().map_err(|_| bad())?),
        None => (text.parse().map_err(|_| bad())?, 0),
    };
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    if !additional_gids.is_empty() {
        user.set_additional_gids(Some(additional_gids.to_vec()));
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Vec<(String, String)>> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Ok(parse_sub_cgroups(&args)?
            .into_iter()
            .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
            .collect())
    }

    #[test]
    fn sub_cgroups_as_runc_parses_them() {
        let s = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(parse(&["sub"]).unwrap(), [s("", "sub")]);
        assert_eq!(
            parse(&["cpu,cpuacct:a", "memory:b"]).unwrap(),
            [s("cpu", "a"), s("cpuacct", "a"), s("memory", "b")]
        );
        // A later argument for the same controller wins.
        assert_eq!(
            parse(&["memory:a", "memory:b"]).unwrap(),
            [s("memory", "b")]
        );
        assert!(parse(&["a:b:c"]).is_err());
        assert!(parse(&["memory:a", "sub"]).is_err());
    }
}
