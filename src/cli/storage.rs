//! Storage commands and flags: -v/--tmpfs/--overlay/--layer of create and
//! run, `volume create|ls|inspect|rm|prune`, `diff`, `commit`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::image;
use crate::log::Logger;
use crate::state::Store;
use crate::storage::{self, layers, volumes, Extras, Journal};

/// The storage flags of `create` and `run`.
#[derive(Args, Debug, Default, Clone)]
pub struct StorageArgs {
    /// Mount a named volume (NAME:/path[:ro]), an anonymous one (/path), or
    /// a host path (/host/path:/path[:ro|rw][,propagation]); repeatable
    #[arg(short = 'v', long = "volume", value_name = "SPEC")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs: /path[:size=64m,mode=1777,uid=N,gid=N,...]; repeatable
    #[arg(long, value_name = "SPEC")]
    pub tmpfs: Vec<String>,
    /// Copy-on-write rootfs: the bundle's rootfs is a read-only lower, writes
    /// go to a per-container upper under --data-root
    #[arg(long)]
    pub overlay: bool,
    /// A layer directory stacked above the rootfs (base first; implies --overlay); repeatable
    #[arg(long = "layer", value_name = "DIR")]
    pub layers: Vec<PathBuf>,
    /// A read-only container root. With --overlay the root is writable even
    /// when config.json says root.readonly (annotation dev.hull.overlay.readonly
    /// "true" asks the same as this flag)
    #[arg(long)]
    pub read_only: bool,
}

impl StorageArgs {
    pub fn extras(&self) -> Extras {
        Extras {
            volumes: self.volumes.clone(),
            tmpfs: self.tmpfs.clone(),
            overlay: self.overlay,
            layers: self.layers.clone(),
            anonymous: Vec::new(),
            read_only: self.read_only,
        }
    }
}

#[derive(Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    command: VolumeCommand,
}

#[derive(Subcommand)]
enum VolumeCommand {
    /// Create a named volume (a random name if none is given)
    Create { name: Option<String> },
    /// List volumes
    Ls {
        /// Only the names
        #[arg(short, long)]
        quiet: bool,
        /// table or json
        #[arg(short, long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Print volumes as JSON
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes (refused while a live container uses one; --force also
    /// removes one whose users are all stopped or gone)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every volume no live container uses
    Prune {
        /// Accepted for Docker compatibility; hull never asks
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args)]
pub struct CommitArgs {
    /// A commit message (in the image's history)
    #[arg(short, long)]
    message: Option<String>,
    /// The image's author
    #[arg(short, long)]
    author: Option<String>,
    /// A Dockerfile instruction for the image's config (CMD, ENTRYPOINT,
    /// ENV, WORKDIR, USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME); repeatable
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    id: String,
    /// IMAGE[:TAG]: a new image in the store; or a directory (a path that
    /// starts with / or .): the changes as a layer directory (must not
    /// exist, or be empty)
    #[arg(value_name = "IMAGE|DIR")]
    target: String,
}

pub fn volume(args: VolumeArgs) -> Result<()> {
    let store = volumes::Store::new(&storage::data_root());
    match args.command {
        VolumeCommand::Create { name } => {
            let name = name.unwrap_or_else(volumes::random_name);
            store.create(&name).map_err(|e| e.within("volume create"))?;
            println!("{name}");
        }
        VolumeCommand::Ls { quiet, format } => {
            let names = store.names();
            if quiet {
                for n in names {
                    println!("{n}");
                }
            } else if format == "json" {
                let all: Vec<_> = names.iter().map(|n| describe(&store, n)).collect();
                println!("{}", serde_json::Value::Array(all));
            } else {
                println!("{:<32} {:<20} USED BY", "NAME", "CREATED");
                for n in names {
                    let users: Vec<String> = store
                        .users(&n)
                        .into_iter()
                        .filter(|u| u.live)
                        .map(|u| u.id)
                        .collect();
                    let created = store.created(&n);
                    let created = created.get(..19).unwrap_or(&created);
                    println!("{n:<32} {created:<20} {}", users.join(","));
                }
            }
        }
        VolumeCommand::Inspect { names } => {
            let mut all = Vec::new();
            for n in &names {
                volumes::check_name(n).map_err(|e| e.within("volume inspect"))?;
                if !store.exists(n) {
                    return Err(
                        Error::new(format!("volume {n} does not exist")).within("volume inspect")
                    );
                }
                all.push(describe(&store, n));
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::Value::Array(all)).expect("json")
            );
        }
        VolumeCommand::Rm { force, names } => {
            for n in &names {
                store
                    .remove(n, force)
                    .map_err(|e| e.within(format!("volume rm {n}")))?;
                println!("{n}");
            }
        }
        VolumeCommand::Prune { force: _ } => {
            prune_volumes(&store, |n| println!("{n}"))?;
        }
    }
    Ok(())
}

/// Remove every volume no live container uses; `removed` hears each name.
pub fn prune_volumes(store: &volumes::Store, mut removed: impl FnMut(&str)) -> Result<()> {
    for n in store.names() {
        if store.users(&n).iter().all(|u| !u.live) {
            store
                .remove(&n, true)
                .map_err(|e| e.within(format!("volume prune {n}")))?;
            removed(&n);
        }
    }
    Ok(())
}

fn describe(store: &volumes::Store, name: &str) -> serde_json::Value {
    store.remove_stale_users(name);
    let users = store.users(name);
    serde_json::json!({
        "Name": name,
        "Driver": "local",
        "Mountpoint": store.data(name),
        "CreatedAt": store.created(name),
        "UsedBy": users.iter().filter(|u| u.live).map(|u| &u.id).collect::<Vec<_>>(),
    })
}

/// The container's storage journal and its overlay upper.
fn upper_of(root: &Path, id: &str) -> Result<(Journal, PathBuf)> {
    let container = Store::new(root).peek(id)?;
    let journal = Journal::read(&container.dir)?.unwrap_or_default();
    let upper = journal.upper().ok_or_else(|| {
        Error::new(format!("container {id} has no overlay rootfs"))
            .hint("create it with --overlay (or the dev.hull.overlay annotation)")
    })?;
    Ok((journal, upper))
}

pub fn diff(root: &Path, id: &str) -> Result<()> {
    let (journal, upper) = upper_of(root, id).map_err(|e| e.within(format!("diff {id}")))?;
    let changes =
        layers::diff(&upper, &journal.lowers).map_err(|e| e.within(format!("diff {id}")))?;
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for (change, path) in changes {
        let _ = writeln!(out, "{} {}", change.letter(), path.display());
    }
    Ok(())
}

pub fn commit(root: &Path, args: CommitArgs, log: &Logger) -> Result<()> {
    let within = |e: Error| e.within(format!("commit {}", args.id));
    let (journal, upper) = upper_of(root, &args.id).map_err(within)?;
    if args.target.starts_with('/') || args.target.starts_with('.') {
        let dir = PathBuf::from(&args.target);
        layers::commit(&upper, &dir).map_err(within)?;
        return super::out::print(&format!("{}\n", dir.display()));
    }
    let container = Store::new(root).peek(&args.id).map_err(within)?;
    let config = container.record.bundle.join("config.json");
    let process = std::fs::read(&config)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .map(|v| v["process"].clone())
        .unwrap_or_default();
    let src = image::commit::Source {
        image: container
            .record
            .annotations
            .get(image::bundle::ANNOTATION_IMAGE)
            .and_then(|d| image::Digest::parse(d).ok()),
        id: args.id.clone(),
        upper,
        lowers: journal.lowers,
        process,
    };
    drop(container);
    let opts = image::commit::CommitOptions {
        message: args.message,
        author: args.author,
        changes: args.changes,
    };
    let id = image::commit::commit(
        &image::Store::default_store(),
        &src,
        &args.target,
        &opts,
        log,
    )
    .map_err(within)?;
    super::out::print(&format!("{id}\n"))
}
