//! The lifecycle commands: create, start, run, kill, delete.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use nix::sys::signal::{sigprocmask, SigmaskHow};

use super::foreground;
use crate::console;
use crate::create::{self, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::signal as signals;
use crate::state::{Status, Store};

/// What `create` and `run` share: the bundle, its extras, how the init is made.
#[derive(Args)]
pub struct CreateArgs {
    /// Path to the bundle directory (holds config.json)
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Write the init's host pid to this file
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root (for an initramfs root)
    #[arg(long)]
    no_pivot: bool,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Keep the caller's session keyring (by default the container gets one of its own)
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass N more fds (after stdio and any LISTEN_FDS) to the process
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[command(flatten)]
    storage: super::storage::StorageArgs,
    #[command(flatten)]
    network: super::network::NetworkArgs,
    #[command(flatten)]
    overrides: super::overrides::OverrideArgs,
    /// Make the container from this image (NAME[:TAG] or id) instead of a
    /// bundle; every word after the options is then the command, replacing
    /// the image's Cmd (hull-only)
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// With --image: the container's id (default: 64 random hex digits,
    /// printed)
    #[arg(long, value_name = "ID", requires = "image")]
    name: Option<String>,
    #[arg(required_unless_present = "image")]
    id: Option<String>,
    /// A command and its arguments replacing process.args (hull-only)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

impl CreateArgs {
    /// The container's id. With --image the first word is the command's,
    /// not an id, and the id is --name or a new random one (Docker's way).
    fn id(&mut self) -> String {
        if self.image.is_some() && self.name.is_none() {
            self.name = Some(crate::image::random_id());
        }
        if let Some(name) = &self.name {
            if let Some(first) = self.id.take() {
                self.command.insert(0, first);
            }
            self.id = Some(name.clone());
        }
        self.id
            .clone()
            .expect("clap requires an id without --image")
    }

    /// Whether hull chose the id (it is printed then, as Docker does).
    fn id_is_new(&self) -> bool {
        self.image.is_some()
    }
    /// `io`: who serves the process's stdio and terminal. First thing a command does: the fds passed on are checked before
    /// hull opens any of its own.
    fn options(self, io: console::Io) -> Result<CreateOptions> {
        let passed = crate::process::fds::for_init(self.preserve_fds)?;
        Ok(CreateOptions {
            keep_fds: passed.count,
            no_new_keyring: self.no_new_keyring,
            extra_env: passed.env,
            id: self.id.expect("CreateArgs::id ran first"),
            bundle: self.bundle,
            pid_file: self.pid_file,
            no_pivot: self.no_pivot,
            console_socket: self.console_socket,
            io,
            storage: self.storage.extras(),
            network: self.network.extras(),
            overrides: self.overrides.overrides(self.command)?,
            image: self.image,
        })
    }
}

#[derive(Args)]
pub struct RunArgs {
    /// Return once the container is started, leave it running
    #[arg(short, long)]
    detach: bool,
    /// Keep the stopped container's state after a foreground run
    #[arg(long)]
    keep: bool,
    /// Do not become the subreaper of the container's orphans (runc's flag)
    #[arg(long)]
    no_subreaper: bool,
    /// Delete the container when it ends (a foreground run always does, unless --keep)
    #[arg(long)]
    rm: bool,
    /// With -d: no, on-failure[:N], always or unless-stopped
    #[arg(long, value_name = "POLICY", default_value = "no")]
    restart: String,
    /// With -d: the log's rotation, max-size=10m,max-file=3 (the default)
    #[arg(long = "log-opt", value_name = "OPT")]
    log_opt: Vec<String>,
    /// With -d: stop and remove the container (and its anonymous volumes)
    /// when process PID ends (default: the process that started hull)
    #[arg(long, value_name = "PID", num_args = 0..=1, require_equals = true, default_missing_value = "0")]
    lease: Option<i32>,
    #[command(flatten)]
    create: CreateArgs,
}

/// runc's `kill [-a] ID [SIGNAL]`; with `-s SIGNAL` every positional is an
/// id (`kill -s KILL a b c`).
#[derive(Args)]
#[command(
    after_help = "Without -s: ID [SIGNAL] (runc's form, default SIGTERM).\n\
                        With -s SIGNAL: ID... (every argument is a container)."
)]
pub struct KillArgs {
    /// Signal every process of the container, not just its init
    #[arg(short, long)]
    all: bool,
    /// The signal for every id given; name (TERM, SIGTERM) or number
    #[arg(short, long, value_name = "SIGNAL")]
    signal: Option<String>,
    /// ID [SIGNAL], or ID... with -s
    #[arg(required = true, value_name = "ID")]
    args: Vec<String>,
}

impl KillArgs {
    /// The ids and the signal the positionals mean.
    fn targets(&self) -> Result<(&[String], &str)> {
        match (&self.signal, self.args.as_slice()) {
            (Some(sig), ids) => Ok((ids, sig.as_str())),
            (None, [_]) => Ok((&self.args[..1], "SIGTERM")),
            (None, [_, sig]) => Ok((&self.args[..1], sig.as_str())),
            (None, _) => Err(Error::new("kill: too many arguments")
                .hint("to signal several containers, name the signal with -s: kill -s TERM ID...")),
        }
    }
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running
    #[arg(short, long)]
    force: bool,
    #[arg(required = true, value_name = "ID")]
    ids: Vec<String>,
}

pub fn create(root: &Path, mut args: CreateArgs, log: &Logger) -> Result<()> {
    let id = args.id();
    let print_id = args.id_is_new();
    let opts = args
        .options(console::Io::Detached)
        .map_err(|e| e.within(format!("create {id}")))?;
    create::create(&Store::new(root), &opts, log)
        .map_err(|e| e.within(format!("create {}", opts.id)))?;
    if print_id {
        super::out::print(&format!("{id}\n"))?;
    }
    Ok(())
}

pub fn start(root: &Path, id: &str, log: &Logger) -> Result<()> {
    let container = Store::new(root).load(id)?;
    log.step("start: load container");
    let within = |e: Error| e.within(format!("start {id}"));
    crate::start::start_container(&container, log).map_err(within)?;
    // A failing poststart hook fails the start and destroys the container,
    // as runc does.
    if let Err(e) = crate::security::poststart(&container) {
        create::destroy(container, log);
        return Err(within(e));
    }
    Ok(())
}

pub fn run(root: &Path, mut args: RunArgs, log: &Logger) -> Result<ExitCode> {
    let store = Store::new(root);
    let id = args.create.id();
    let within = |e: Error| e.within(format!("run {id}"));
    if args.detach {
        let farewell = if args.create.id_is_new() {
            format!("{id}\n")
        } else {
            String::new()
        };
        let launch = launch(args).map_err(within)?;
        return crate::monitor::run_detached(&store, launch, false, farewell.as_bytes(), log);
    }
    if args.restart != "no" || !args.log_opt.is_empty() || args.lease.is_some() {
        return Err(within(
            Error::new("--restart, --log-opt and --lease need a monitor")
                .hint("add -d: a foreground run is watched by hull itself"),
        ));
    }
    let opts = args
        .create
        .options(console::Io::Foreground)
        .map_err(within)?;
    // Block the signals we forward before the init exists, so none is lost
    // between its birth and our signalfd (the init unblocks them before exec).
    let forwarded = foreground::forwarded_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None).step("block signals")?;
    // As runc: processes the container leaves behind (without a pid
    // namespace) come to us, not to the host's init, while we run.
    if !args.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true).step("become child subreaper")?;
    }
    let created = create::create(&store, &opts, log).map_err(|e| e.within(format!("run {id}")))?;
    let (container, pid) = (created.container, created.pid);
    // In the foreground, our terminal drives the container's.
    let raw = created
        .pty
        .as_ref()
        .map(|master| console::attach_foreground(master.as_fd()));
    if let Err(e) = crate::start::start_container(&container, log)
        .and_then(|()| crate::security::poststart(&container))
    {
        create::destroy(container, log);
        return Err(e.within(format!("run {id}")));
    }
    log.step("started");
    // Let `state`, `kill` and `delete` reach the container while it runs.
    drop(container);
    let code = foreground::forward_signals_until_exit(pid, &forwarded, created.pty)?;
    drop(raw);
    log.step("process exited");
    if !args.keep {
        if let Ok(container) = store.load(&id) {
            create::destroy(container, log);
            log.step("deleted");
        }
    }
    Ok(ExitCode::from(code))
}

/// `run -d`: what the monitor needs to run (and rerun) the container.
fn launch(args: RunArgs) -> Result<crate::monitor::Launch> {
    use crate::monitor::{logfile::LogOptions, policy::Policy, Launch, Lease};
    let restart = Policy::parse(&args.restart)?;
    let log = LogOptions::parse(&args.log_opt)?;
    let lease = match args.lease {
        None => None,
        Some(0) => Some(Lease::of(nix::unistd::getppid().as_raw())?),
        Some(pid) => Some(Lease::of(pid)?),
    };
    let create = args.create.options(console::Io::Detached)?;
    Ok(Launch {
        interactive: create.overrides.interactive,
        create,
        restart,
        auto_remove: args.rm,
        log,
        lease,
    })
}

/// Each id in turn; a failure is reported (one line) and the others still
/// go. One id fails as any command fails.
pub fn each(
    ids: &[String],
    log: &Logger,
    mut one: impl FnMut(&str) -> Result<()>,
) -> Result<ExitCode> {
    if let [id] = ids {
        return one(id).map(|()| ExitCode::SUCCESS);
    }
    let mut code = ExitCode::SUCCESS;
    for id in ids {
        if let Err(e) = one(id) {
            log.error(&e.to_string());
            code = ExitCode::from(1);
        }
    }
    Ok(code)
}

pub fn kill(root: &Path, args: KillArgs, log: &Logger) -> Result<ExitCode> {
    let (ids, signal) = args.targets()?;
    each(ids, log, |id| kill_one(root, id, signal, args.all))
}

fn kill_one(root: &Path, id: &str, signal: &str, all: bool) -> Result<()> {
    // As runc: an unknown id is reported before a bad signal.
    let container = Store::new(root).load(id)?;
    let signal = signals::parse(signal)?;
    // --all: every process in the container's cgroups (cgroup.kill on v2),
    // whatever the init's state: processes may outlive an init that had no
    // pid namespace, and with none left there is nothing to do (runc 1.1).
    if all && !container.record.cgroups.is_empty() {
        return crate::cgroups::signal_all(&container.record.cgroups, signal)
            .map_err(|e| e.within(format!("kill {id}")));
    }
    match container.status() {
        Status::Created | Status::Running | Status::Paused => {}
        _ => return Err(Error::new("container not running").within(format!("kill {id}"))),
    }
    signals::send(container.record.pid, container.record.pid_start, signal)
        .map_err(|e| e.within(format!("kill {id}")))
}

pub fn delete(root: &Path, args: DeleteArgs, log: &Logger) -> Result<ExitCode> {
    each(&args.ids, log, |id| {
        delete_one(root, id, args.force, log).map(drop)
    })
}

/// runc's `delete [--force] ID`; true if there was a container to remove
/// (`--force` of an unknown id succeeds with nothing done).
pub fn delete_one(root: &Path, id: &str, force: bool, log: &Logger) -> Result<bool> {
    let store = Store::new(root);
    let container = match store.load(id) {
        Ok(c) => c,
        Err(e) if e.to_string().contains("does not exist") => {
            // A create killed before its first write leaves a bare dir.
            store.remove_stale(id);
            return if force { Ok(false) } else { Err(e) };
        }
        Err(e) => return Err(e),
    };
    match container.status() {
        s @ (Status::Running | Status::Paused) if !force => Err(Error::new(format!(
            "cannot delete container {id} that is not stopped: {}",
            s.as_str()
        ))
        .hint("stop it with `hull kill`, or use `delete --force`")),
        _ => create::destroy_checked(container, log)
            .map(|()| true)
            .map_err(|e| e.within(format!("delete {id}"))),
    }
}
