//! Registry commands (hull-only): `pull`, `push`, `login`, `logout`.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::Args;

use crate::error::{Context, Error, Result};
use crate::image::registry::{self, Access};
use crate::image::Store;
use crate::log::Logger;

#[derive(Args, Clone)]
pub struct AccessArgs {
    /// Plain HTTP (a registry without TLS)
    #[arg(long)]
    insecure: bool,
    /// Trust this CA certificate (PEM) too, besides the system's
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// The credentials file (default: $XDG_CONFIG_HOME/hull/auth.json or ~/.config/hull/auth.json)
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
}

impl AccessArgs {
    fn access(&self) -> Access {
        Access {
            insecure: self.insecure,
            tls_ca: self.tls_ca.clone(),
            authfile: self
                .authfile
                .clone()
                .unwrap_or_else(registry::default_authfile),
        }
    }
}

#[derive(Args)]
pub struct PullArgs {
    #[command(flatten)]
    access: AccessArgs,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
    /// HOST[:PORT]/NAME[:TAG]
    reference: String,
}

#[derive(Args)]
pub struct PushArgs {
    #[command(flatten)]
    access: AccessArgs,
    #[arg(short, long)]
    quiet: bool,
    /// An image in the store named HOST[:PORT]/NAME[:TAG] (`hull tag` gives it one)
    reference: String,
}

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    access: AccessArgs,
    #[arg(short, long)]
    username: String,
    /// The password (better: --password-stdin)
    #[arg(short, long)]
    password: Option<String>,
    /// Read the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// HOST[:PORT]
    registry: String,
}

#[derive(Args)]
pub struct LogoutArgs {
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    registry: String,
}

fn say_to_stdout(quiet: bool) -> impl FnMut(&str) {
    move |line: &str| {
        if !quiet {
            let _ = super::out::print(&format!("{line}\n"));
        }
    }
}

pub fn pull(args: PullArgs, log: &Logger) -> Result<()> {
    let store = Store::default_store();
    let within = |e: Error| e.within(format!("pull {}", args.reference));
    let pulled = std::cell::Cell::new(false);
    let mut inner = say_to_stdout(args.quiet);
    let mut say = |l: &str| {
        pulled.set(pulled.get() || l.ends_with(": pulled"));
        inner(l)
    };
    let access = args.access.access();
    let record = registry::pull(&store, &args.reference, &access, &mut say, log).map_err(within)?;
    let pulled = pulled.get();
    if !args.quiet {
        let name = crate::image::normalize(&args.reference).map_err(within)?;
        let status = if pulled {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        super::out::print(&format!("Image: {}\nStatus: {status} {name}\n", record.id))?;
    }
    Ok(())
}

pub fn push(args: PushArgs, log: &Logger) -> Result<()> {
    let store = Store::default_store();
    let within = |e: Error| e.within(format!("push {}", args.reference));
    let mut say = say_to_stdout(args.quiet);
    let digest = registry::push(
        &store,
        &args.reference,
        &args.access.access(),
        &mut say,
        log,
    )
    .map_err(within)?;
    if !args.quiet {
        super::out::print(&format!("{}: digest: {digest}\n", args.reference))?;
    }
    Ok(())
}

pub fn login(args: LoginArgs) -> Result<()> {
    let within = |e: Error| e.within(format!("login {}", args.registry));
    let password = match (&args.password, args.password_stdin) {
        (Some(p), false) => p.clone(),
        (None, true) => {
            let mut p = String::new();
            std::io::stdin()
                .read_to_string(&mut p)
                .step("read password from stdin")
                .map_err(within)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            return Err(within(
                Error::new("no password").hint("give --password-stdin and type or pipe it"),
            ))
        }
        _ => {
            return Err(within(Error::new(
                "give one of --password and --password-stdin",
            )))
        }
    };
    registry::login(
        &args.registry,
        &args.username,
        &password,
        &args.access.access(),
    )
    .map_err(within)?;
    super::out::print("Login Succeeded\n")
}

pub fn logout(args: LogoutArgs) -> Result<()> {
    let file = args.authfile.unwrap_or_else(registry::default_authfile);
    if !registry::logout(&args.registry, &file)? {
        return Err(Error::new(format!("logout {}", args.registry))
            .detail("not logged in")
            .at(&file));
    }
    super::out::print(&format!(
        "Removed login credentials for {}\n",
        args.registry
    ))
}
