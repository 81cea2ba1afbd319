//! hull: a runc-compatible container runtime. This file is the command line:
//! runc's global flags and commands, each mapped to one function in cli/.

use hull::{cgroups, cli, error, log, storage};

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hull",
    about = "A fast, runc-compatible Linux container runtime",
    disable_version_flag = true,
    after_help = IMAGES_HELP
)]
struct Cli {
    /// Print the version, commit, spec and libseccomp versions (runc's shape)
    #[arg(short = 'v', long)]
    version: bool,
    /// Directory for the state of containers
    #[arg(long, global = true, default_value = "/run/hull")]
    root: PathBuf,
    /// Also write log records to this file
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of the log file records
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Log each step of the command with its duration
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for runc compatibility; hull manages cgroups through cgroupfs only
    #[arg(long, global = true, hide = true)]
    systemd_cgroup: bool,
    /// Directory for overlay upper dirs, named volumes and images
    #[arg(long, global = true, default_value = storage::DEFAULT_DATA_ROOT)]
    data_root: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`
    Create(cli::lifecycle::CreateArgs),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container; in the foreground, wait for its exit
    Run(cli::lifecycle::RunArgs),
    /// Run a new process inside a running container
    Exec(cli::exec::ExecArgs),
    /// Print what this build supports (runtime-spec features JSON)
    Features,
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to a container's init (ID [SIGNAL]; with -s SIGNAL, several ids)
    Kill(cli::lifecycle::KillArgs),
    /// Delete containers and everything they hold on the host
    Delete(cli::lifecycle::DeleteArgs),
    /// Remove containers (-f: running ones too, -v: their anonymous volumes)
    Rm(cli::remove::RmArgs),
    /// Remove every stopped container (--volumes: and unused volumes)
    Prune(cli::remove::PruneArgs),
    /// List containers
    List(cli::inspect::ListArgs),
    /// Write a default config.json for a new bundle
    Spec(cli::spec::SpecArgs),
    /// Freeze every process of the container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List the processes of a container; without an id, list containers (Docker's table)
    Ps(cli::cgroups::PsArgs),
    /// Change the resource limits of a running container
    Update(cli::cgroups::UpdateArgs),
    /// Print resource statistics and OOM events as JSON lines
    Events(cli::cgroups::EventsArgs),
    /// Manage named volumes
    Volume(cli::storage::VolumeArgs),
    /// List what a container with an overlay rootfs changed (A, C, D)
    Diff { id: String },
    /// Make an image (or a layer directory) of a container's changes
    Commit(cli::storage::CommitArgs),
    /// List the published ports of a container
    Port { id: String },
    /// Manage named networks
    Network(cli::network::NetworkCmdArgs),
    /// Probe whether this host can run containers and what is degraded
    Check(cli::check::CheckArgs),
    /// Remove what crashed or vanished containers left on the host
    Gc(cli::gc::GcArgs),
    /// Stop containers: a signal, a grace period, then SIGKILL
    Stop(cli::stop::StopArgs),
    /// Stop (if running) and start containers again, same files and ports
    Restart(cli::stop::RestartArgs),
    /// Print a detached container's output
    Logs(cli::logs::LogsArgs),
    /// Connect to a detached container's terminal or stdio (detach: ctrl-p ctrl-q)
    Attach(cli::attach::AttachArgs),
    /// The image commands (see IMAGES), parsed by cli::image_cli: their
    /// definitions are built only when one of them runs, so the command
    /// line of `run` and the others costs what it did before images.
    #[command(external_subcommand)]
    Other(Vec<OsString>),
}

const IMAGES_HELP: &str = "Images and registries (`hull COMMAND --help` for each):
  image       Manage images: load, ls, inspect, rm, prune, tag, save
  images      List images
  rmi         Remove images
  tag         Give an image another name
  save        Write images to an OCI layout tar
  pull        Download an image from a registry
  push        Upload an image to a registry
  login       Keep credentials for a registry (checked first)
  logout      Forget the credentials for a registry";

fn main() -> ExitCode {
    // A detached container's monitor, re-executed: no command line to parse.
    if let Some(code) = hull::monitor::exec_entry() {
        return code;
    }
    // `println!` to a closed pipe panics; end quietly instead (cli::out).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if cli::out::is_closed_stdout_panic(info) {
            cli::out::reader_gone();
        }
        default_hook(info)
    }));
    let cli = Cli::parse();
    if cli.version {
        return match cli::out::print(&version()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&log::Logger::stderr_only(), e),
        };
    }
    if cli.command.is_none() {
        Cli::command()
            .error(ErrorKind::MissingSubcommand, "a command is required")
            .exit();
    }
    let logger = match log::Logger::new(cli.log.as_deref(), cli.log_format == "json", cli.debug) {
        Ok(logger) => logger,
        Err(e) => return fail(&log::Logger::stderr_only(), e),
    };
    match run(cli, &logger) {
        Ok(code) => code,
        Err(e) => fail(&logger, e),
    }
}

fn fail(logger: &log::Logger, err: error::Error) -> ExitCode {
    logger.error(&err.to_string());
    ExitCode::from(1)
}

/// runc's `--version` shape, which dockerd parses for `docker info`: the
/// first line holds "version", then `commit:`, `spec:` and `libseccomp:`.
fn version() -> String {
    let seccomp = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_else(|_| "unknown".to_string());
    format!(
        "hull version {}\ncommit: {}\nspec: {}\nlibseccomp: {seccomp}\n",
        env!("CARGO_PKG_VERSION"),
        env!("HULL_COMMIT"),
        hull::state::SPEC_VERSION,
    )
}

fn run(cli: Cli, logger: &log::Logger) -> error::Result<ExitCode> {
    let root = cli.root;
    let ok = |_| ExitCode::SUCCESS;
    let Some(command) = cli.command else {
        unreachable!("main checked that a command was given");
    };
    if let Command::Other(argv) = command {
        let name = argv.first().map(|n| n.to_string_lossy().into_owned());
        let Some((command, data_root)) = cli::image_cli::parse(argv) else {
            let name = name.unwrap_or_default();
            Cli::command()
                .error(
                    ErrorKind::InvalidSubcommand,
                    format!("unrecognized subcommand '{name}'"),
                )
                .exit()
        };
        storage::set_data_root(data_root.as_deref().unwrap_or(&cli.data_root));
        return cli::image_cli::run(command, logger).map(ok);
    }
    storage::set_data_root(&cli.data_root);
    if cli.systemd_cgroup && matches!(command, Command::Create(_) | Command::Run(_)) {
        cgroups::check_systemd_flag()?;
    }
    match command {
        Command::Create(args) => cli::lifecycle::create(&root, args, logger).map(ok),
        Command::Start { id } => cli::lifecycle::start(&root, &id, logger).map(ok),
        Command::Run(args) => cli::lifecycle::run(&root, args, logger),
        Command::Exec(args) => cli::exec::exec(&root, args, logger),
        Command::Features => cli::features::features().map(ok),
        Command::State { id } => cli::inspect::state(&root, &id).map(ok),
        Command::Kill(args) => cli::lifecycle::kill(&root, args, logger),
        Command::Delete(args) => cli::lifecycle::delete(&root, args, logger),
        Command::Rm(args) => cli::remove::rm(&root, args, logger),
        Command::Prune(args) => cli::remove::prune(&root, args, logger).map(ok),
        Command::List(args) => cli::inspect::list(&root, args).map(ok),
        Command::Spec(args) => cli::spec::spec(args).map(ok),
        Command::Pause { id } => cli::cgroups::pause(&root, &id).map(ok),
        Command::Resume { id } => cli::cgroups::resume(&root, &id).map(ok),
        Command::Ps(args) => cli::cgroups::ps(&root, args).map(ok),
        Command::Update(args) => cli::cgroups::update(&root, args).map(ok),
        Command::Events(args) => cli::cgroups::events(&root, args).map(ok),
        Command::Volume(args) => cli::storage::volume(args).map(ok),
        Command::Diff { id } => cli::storage::diff(&root, &id).map(ok),
        Command::Commit(args) => cli::storage::commit(&root, args, logger).map(ok),
        Command::Port { id } => cli::network::port(&root, &id).map(ok),
        Command::Network(args) => cli::network::network(args).map(ok),
        Command::Check(args) => cli::check::check(&root, args),
        Command::Gc(args) => cli::gc::gc(&root, args, logger).map(ok),
        Command::Stop(args) => cli::stop::stop(&root, args, logger),
        Command::Restart(args) => cli::stop::restart(&root, args, logger),
        Command::Logs(args) => cli::logs::logs(&root, args),
        Command::Attach(args) => cli::attach::attach(&root, args),
        Command::Other(_) => unreachable!("handled above"),
    }
}
