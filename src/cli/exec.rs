//! `hull exec`: run another process in a running container, as runc does:
//! from a process.json (`--process`, what containerd passes) or from the
//! container's own process with the command and overrides given here.

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
    id: String,
    /// The command and its arguments (when no --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn exec(root: &Path, args: ExecArgs, log: &Logger) -> Result<ExitCode> {
    let id = args.id.clone();
    run_exec(root, args, log).map_err(|e| e.within(format!("exec {id}")))
}

fn run_exec(root: &Path, args: ExecArgs, log: &Logger) -> Result<ExitCode> {
    let container = Store::new(root).peek(&args.id)?;
    match container.status() {
        Status::Running | Status::Created => {}
        Status::Stopped => return Err(Error::new("cannot exec in a stopped container")),
        Status::Paused => return Err(Error::new("cannot exec in a paused container")),
        Status::Creating => {
            return Err(Error::new(
                "cannot exec in a container that is being created",
            ))
        }
    }
    let spec = bundle_spec(&container.record.bundle);
    let process = build_process(&args, spec.as_ref())?;
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
        args.preserve_fds,
        log,
    )?;
    log.step("process started");

    let mut pty = joined.pty;
    if let (Some(socket), Some(master)) = (&args.console_socket, &pty) {
        console::send_to_socket(socket, master)?;
        pty = None;
    }
    if let Some(path) = &args.pid_file {
        crate::create::write_pid_file(path, joined.pid)?;
        log.step("exec: write pid file");
    }
    if args.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let raw = pty.as_ref().map(|master| {
        console::copy_window_size(master.as_fd());
        console::RawMode::enter()
    });
    let code = foreground::forward_signals_until_exit(joined.pid, &forwarded, pty)?;
    drop(raw);
    Ok(ExitCode::from(code))
}

/// The process to run: process.json as given, or the container's process
/// with our command and overrides (runc's rules).
fn build_process(args: &ExecArgs, spec: Option<&Spec>) -> Result<Process> {
    if let Some(path) = &args.process {
        let text = std::fs::read(path).step_at("read process.json", path)?;
        let mut de = serde_json::Deserializer::from_slice(&text);
        return serde_path_to_error::deserialize(&mut de).map_err(|e| {
            Error::new("parse process.json").at(path).detail(format!(
                "field {}: {}",
                e.path(),
                e.inner()
            ))
        });
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
            let cap: Capability = name.parse().map_err(|_| {
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
