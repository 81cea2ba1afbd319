//! hull: a runc-compatible container runtime. This file is the command line:
//! runc's global flags and commands, each mapped to one function in cli/.

mod bundle;
mod cli;
mod console;
mod create;
mod error;
mod log;
mod process;
mod rootfs;
mod signal;
mod state;
mod sys;
mod time;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hull",
    version,
    about = "A fast, runc-compatible Linux container runtime"
)]
struct Cli {
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`
    Create(cli::lifecycle::CreateArgs),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container; in the foreground, wait for its exit
    Run(cli::lifecycle::RunArgs),
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init process
    Kill(cli::lifecycle::KillArgs),
    /// Delete a container and everything it holds on the host
    Delete(cli::lifecycle::DeleteArgs),
    /// List containers
    List(cli::inspect::ListArgs),
    /// Write a default config.json for a new bundle
    Spec(cli::spec::SpecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logger = log::Logger::new(cli.log.clone(), cli.log_format == "json", cli.debug);
    let result = run(cli, &logger);
    match result {
        Ok(code) => code,
        Err(err) => {
            logger.error(&err.to_string());
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli, logger: &log::Logger) -> error::Result<ExitCode> {
    let root = cli.root;
    let ok = |_| ExitCode::SUCCESS;
    match cli.command {
        Command::Create(args) => cli::lifecycle::create(&root, args, logger).map(ok),
        Command::Start { id } => cli::lifecycle::start(&root, &id).map(ok),
        Command::Run(args) => cli::lifecycle::run(&root, args, logger),
        Command::State { id } => cli::inspect::state(&root, &id).map(ok),
        Command::Kill(args) => cli::lifecycle::kill(&root, args).map(ok),
        Command::Delete(args) => cli::lifecycle::delete(&root, args).map(ok),
        Command::List(args) => cli::inspect::list(&root, args).map(ok),
        Command::Spec(args) => cli::spec::spec(args).map(ok),
    }
}
