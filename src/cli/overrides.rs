//! Docker's process flags of `run` and `create` (hull-only): what they set
//! is resolved here, against hull's own environment and the env files, into
//! an `Overrides` that crate::overrides applies to the spec.

use std::path::PathBuf;

use clap::Args;

use crate::error::{Context, Error, Result};
use crate::overrides::{self, Overrides};

#[derive(Args, Debug, Default, Clone)]
pub struct OverrideArgs {
    /// Set an environment variable (K=V; K alone takes hull's own value, or
    /// is dropped if unset); repeatable, applied after --env-file
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read environment variables from a file (K=V lines, # comments); repeatable
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Working directory of the process (an absolute container path)
    #[arg(short = 'w', long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Run as USER[:GROUP], names or numbers; names are looked up in the
    /// image's /etc/passwd and /etc/group
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// The container's hostname (needs a UTS namespace)
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Give the process a terminal (process.terminal); --tty=false takes it away
    #[arg(
        short = 't',
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    tty: Option<bool>,
    /// Keep stdin attached (Docker's -i; a foreground run always passes stdin)
    #[arg(short = 'i', long)]
    interactive: bool,
}

impl OverrideArgs {
    /// `command`: the words after the container id, replacing process.args.
    pub fn overrides(self, command: Vec<String>) -> Result<Overrides> {
        let lookup = |k: &str| std::env::var(k).ok();
        let mut env = Vec::new();
        for file in &self.env_files {
            let text = std::fs::read_to_string(file).step_at("read env file", file)?;
            env.extend(overrides::parse_env_file(file, &text, lookup)?);
        }
        for e in &self.env {
            let entry = overrides::env_entry(e, lookup).map_err(|what| {
                Error::new(format!("--env {e}"))
                    .detail(what)
                    .hint("write NAME=VALUE, or NAME to pass hull's own value")
            })?;
            env.extend(entry);
        }
        Ok(Overrides {
            args: command,
            env,
            cwd: self.workdir,
            user: self.user,
            hostname: self.hostname,
            terminal: self.tty,
            interactive: self.interactive,
        })
    }
}
