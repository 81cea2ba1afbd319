//! The create path, top to bottom: every host object a container gets, in
//! order, and how a failure undoes it. Nothing before `reserve` touches the
//! host, so a bad bundle leaves nothing behind.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use nix::unistd::{mkfifo, Pid};
use serde::{Deserialize, Serialize};

use crate::bundle::Bundle;
use crate::console;
use crate::error::{Context, Error, Result};
use crate::log::Logger;
use crate::process::{self, SpawnOptions};
use crate::state::{Container, Record, Store, OCI_VERSION};

/// What `create` is asked to make. The monitor keeps it (launch.json) to
/// make the same container again on `restart`: what cannot be made again
/// (fds passed on, a console socket, a pid file) is not kept.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    #[serde(skip)]
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    #[serde(skip)]
    pub console_socket: Option<PathBuf>,
    /// Who holds the process's stdio and serves its terminal.
    #[serde(skip)]
    pub io: console::Io,
    /// -v, --tmpfs, --overlay: merged into the spec (storage::merge_cli).
    pub storage: crate::storage::Extras,
    /// --network, -p: merged into the annotations (network::merge_cli).
    pub network: crate::network::Extras,
    /// Fds 3 .. 3+keep_fds go to the process (LISTEN_FDS, --preserve-fds).
    #[serde(skip)]
    pub keep_fds: u32,
    /// runc's --no-new-keyring: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Added to process.env (LISTEN_FDS, LISTEN_PID).
    pub extra_env: Vec<String>,
    /// Command, -e, -w, -u, --hostname, -t (crate::overrides).
    pub overrides: crate::overrides::Overrides,
    /// `--image`: the bundle is made from this image (crate::image) in the
    /// state dir, and `bundle` is not read.
    pub image: Option<String>,
}

pub struct Created {
    pub container: Container,
    pub pid: Pid,
    /// The pty master, for a foreground run to proxy.
    pub pty: Option<OwnedFd>,
}

pub fn create(store: &Store, opts: &CreateOptions, log: &Logger) -> Result<Created> {
    let mut bundle = load_bundle(store, opts, log)?;
    let mut record = new_record(&opts.id, &bundle);
    record.no_new_keyring = opts.no_new_keyring;
    let container = store.reserve(record)?;
    log.step("reserve id (state dir, lock, state.json)");
    make(&mut bundle, container, opts, log, destroy)
}

/// `restart`: make a stopped container again in its state dir, from the
/// same options: same id, creation time, writable layer and volumes. A
/// failure leaves it stopped, not deleted.
pub fn recreate(store: &Store, opts: &CreateOptions, log: &Logger) -> Result<Created> {
    let mut bundle = load_bundle(store, opts, log)?;
    let mut container = store.load(&opts.id)?;
    if container.status() != crate::state::Status::Stopped {
        return Err(Error::new(format!(
            "container {} is {}",
            opts.id,
            container.status().as_str()
        ))
        .hint("stop it first (`hull stop`)"));
    }
    // What the last run left (its cgroups, ports) before making them anew.
    release(&container, log)?;
    let mut record = new_record(&opts.id, &bundle);
    record.no_new_keyring = opts.no_new_keyring;
    record.created = std::mem::take(&mut container.record.created);
    container.record = record;
    container.save()?;
    log.step("reset stopped container");
    make(&mut bundle, container, opts, log, |c, log| {
        if let Err(e) = release(&c, log) {
            log.warning(&e.to_string());
        }
    })
}

/// The bundle with the command line's extras merged in; nothing on the
/// host is touched.
fn load_bundle(store: &Store, opts: &CreateOptions, log: &Logger) -> Result<Bundle> {
    let (mut bundle, storage, overrides) = match &opts.image {
        Some(image) => {
            let dir = store.root().join(&opts.id);
            crate::image::bundle::load(image, &dir, &opts.id, &opts.storage, &opts.overrides)?
        }
        None => (
            Bundle::load(&opts.bundle)?,
            opts.storage.clone(),
            opts.overrides.clone(),
        ),
    };
    crate::overrides::apply(&mut bundle, &overrides)?;
    crate::storage::merge_cli(&mut bundle, &storage)?;
    crate::network::merge_cli(&mut bundle, &opts.network)?;
    bundle.add_env(&opts.extra_env);
    let terminal = bundle.process().terminal().unwrap_or(false);
    let socket = opts.console_socket.as_deref();
    console::check_usable(terminal, socket, opts.io == console::Io::Detached)?;
    if opts.io == console::Io::Foreground {
        console::check_foreground_stdin(terminal, socket)?;
    }
    log.step("load bundle");
    Ok(bundle)
}

/// Storage, network and the init for a reserved container; on failure
/// `undo` gets the container back.
fn make(
    bundle: &mut Bundle,
    mut container: Container,
    opts: &CreateOptions,
    log: &Logger,
    undo: impl FnOnce(Container, &Logger),
) -> Result<Created> {
    let built = crate::image::bundle::write_config(bundle)
        .and_then(|()| crate::storage::prepare(bundle, &container, log))
        .and_then(|()| crate::network::prepare(bundle, &container, log))
        .and_then(|()| build(bundle, &mut container, opts, log));
    match built {
        Ok((pid, pty)) => Ok(Created {
            container,
            pid,
            pty,
        }),
        Err(err) => {
            undo(container, log);
            Err(err)
        }
    }
}

/// Everything after the id is reserved. Each object lives in the state dir
/// or is journalled in state.json before it exists, so `destroy` (and
/// `delete --force` after a crash) can find it.
fn build(
    bundle: &Bundle,
    container: &mut Container,
    opts: &CreateOptions,
    log: &Logger,
) -> Result<(Pid, Option<OwnedFd>)> {
    let fifo = container.fifo();
    mkfifo(&fifo, Mode::from_bits_truncate(0o622)).step_at("create exec.fifo", &fifo)?;
    // umask may have cut the mode; any container user must be able to open it.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .step_at("chmod exec.fifo", &fifo)?;
    log.step("create exec.fifo");
    crate::security::hooks::save(&bundle.spec, &container.dir)?;

    // Journalled in state.json, then made and configured: before any process.
    let cgroups = crate::cgroups::prepare(&bundle.spec, container, log)?;
    // SCHED_FIFO/RR: a realtime budget in the cpu cgroup, before the init joins.
    crate::security::sched::rt_budget(&bundle.spec, &container.record.cgroups)?;
    log.step("cgroups made and configured");

    // Namespaces, rootfs, process setup: the init, waiting for `start`.
    let ready = process::spawn(
        bundle,
        container,
        &SpawnOptions {
            no_pivot: opts.no_pivot,
            cgroups: &cgroups,
            log,
            keep_fds: opts.keep_fds,
            stdio: match opts.io {
                console::Io::Monitor(fds) => Some(fds),
                _ => None,
            },
            session_keyring: (!opts.no_new_keyring).then(|| keyring_name(&opts.id)),
        },
    )?;
    log.step("container init ready");
    // --network bridge: veth, eth0, route, rules, before anything can start it.
    crate::network::attach(container, ready.pid, log)?;

    let mut pty = ready.pty;
    if let (Some(socket), Some(master)) = (&opts.console_socket, &pty) {
        console::send_to_socket(socket, master)?;
        pty = None;
        log.step("send pty to console socket");
    }

    if let Some(path) = &opts.pid_file {
        write_pid_file(path, ready.pid)?;
        log.step("write pid file");
    }
    Ok((ready.pid, pty))
}

/// The session keyring of a container's processes, runc's name for it: exec
/// joins the one the init made.
pub fn keyring_name(id: &str) -> String {
    format!("_ses.{id}")
}

fn new_record(id: &str, bundle: &Bundle) -> Record {
    Record {
        oci_version: OCI_VERSION.to_string(),
        id: id.to_string(),
        pid: 0,
        pid_start: 0,
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: crate::time::rfc3339_now(),
        annotations: bundle.spec.annotations().clone().unwrap_or_default(),
        owner: String::new(),
        cgroups: Default::default(),
        no_new_keyring: false,
        command: bundle.process().args().clone().unwrap_or_default(),
    }
}

/// Undo a container whatever state it reached (a failed create or start):
/// `destroy_checked`, with a failure only reported.
pub fn destroy(container: Container, log: &Logger) {
    if let Err(e) = destroy_checked(container, log) {
        log.warning(&e.to_string());
    }
}

/// Kill the init if it lives, undo what the container holds on the host,
/// run the poststop hooks, then forget the container. What could not be
/// undone (a cgroup, an upper dir, a veth or rule) keeps the state, and with
/// it the journals, so that `delete` or `gc` can try again. A failing
/// poststop hook is a warning and deletion goes on (runtime spec).
pub fn destroy_checked(container: Container, log: &Logger) -> Result<()> {
    let runtime = release(&container, log);
    // Overlay upper/work dirs and volume uses (journalled); volume data stays.
    let storage = crate::storage::cleanup(&container.dir);
    log.step("delete: storage");
    runtime.and(storage)?;
    crate::security::poststop(&container, log);
    log.step("delete: poststop hooks");
    container.remove()
}

/// What a container holds only while it runs: its processes, cgroups and
/// network (addresses, published ports). Its files — state, writable
/// layer, volumes, logs — stay. For a stopped container (the monitor,
/// `stop`) and as the first half of `delete`.
pub fn release(container: &Container, log: &Logger) -> Result<()> {
    crate::monitor::info::hurry_monitor(&container.dir);
    // Every process of the container, through its cgroups; then the dirs,
    // child cgroups it made included.
    let cgroups = crate::cgroups::destroy(&container.record.cgroups);
    log.step("delete: cgroups");
    if let Some(pid) = container.live_pid() {
        crate::signal::kill_and_wait(pid, container.record.pid_start);
    }
    log.step("delete: init killed");
    // veth, lease, rules (journalled); the bridge goes with its last user.
    let network = crate::network::cleanup(&container.dir, log);
    log.step("delete: network");
    cgroups.and(network)
}

/// temp + rename: whoever waits for the pid file never reads half a number.
pub fn write_pid_file(path: &Path, pid: Pid) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.hull-tmp"));
    std::fs::write(&tmp, pid.to_string()).step_at("write pid file", &tmp)?;
    std::fs::rename(&tmp, path).step_at("write pid file", path)
}
