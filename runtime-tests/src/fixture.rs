//! Suite-wide state (runtime, root, temp dir, shared rootfs) and per-test context.

use std::cell::RefCell;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::runtime::{Output, Runtime};
use crate::util::Outcome;

/// Default runtime when `RUNTIME` is unset.
pub const DEFAULT_RUNTIME: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/hull");

/// Environment variable put into every container, to find leaked container processes.
pub const SUITE_ENV: &str = "HULL_RT_SUITE";

pub struct Suite {
    /// `hull-rt-<pid>`; the value of `HULL_RT_SUITE` in every container.
    pub id: String,
    pub runtime: Runtime,
    /// Temp dir holding the rootfs, bundles and command output.
    pub tmp: PathBuf,
    rootfs: OnceLock<Result<PathBuf, String>>,
    counter: AtomicU64,
}

static SUITE: OnceLock<Suite> = OnceLock::new();

/// Resolve `RUNTIME` (path, or name on PATH) or the default.
pub fn runtime_bin() -> Result<PathBuf, String> {
    let name = std::env::var("RUNTIME").unwrap_or_else(|_| DEFAULT_RUNTIME.to_owned());
    if name.contains('/') {
        let p = PathBuf::from(&name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("runtime binary {name} does not exist"))
        };
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Path::new(d).join(&name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("runtime {name} not found on PATH"))
}

/// The suite (created on first use: suite root and temp dir).
pub fn suite() -> &'static Suite {
    SUITE.get_or_init(|| {
        let bin = runtime_bin().unwrap_or_else(|e| panic!("{e}"));
        let pid = std::process::id();
        let id = format!("hull-rt-{pid}");
        let root = PathBuf::from(format!("/run/{id}"));
        let tmp = std::env::temp_dir().join(&id);
        for (dir, mode) in [(&root, 0o711), (&tmp, 0o755)] {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {dir:?}: {e}"));
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("chmod {dir:?}: {e}"));
        }
        for sub in ["io", "bundles", "priv"] {
            std::fs::create_dir_all(tmp.join(sub)).expect("mkdir in temp dir");
        }
        std::fs::set_permissions(tmp.join("bundles"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod bundles");
        std::fs::set_permissions(tmp.join("priv"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod priv");
        Suite {
            runtime: Runtime::new(bin, root, tmp.join("io")),
            id,
            tmp,
            rootfs: OnceLock::new(),
            counter: AtomicU64::new(0),
        }
    })
}

impl Suite {
    pub fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    /// The shared busybox rootfs (built once).
    pub fn rootfs(&self) -> Result<&Path, Outcome> {
        self.rootfs
            .get_or_init(|| {
                let dir = self.tmp.join("rootfs");
                build_rootfs(&dir).map(|_| dir)
            })
            .as_deref()
            .map_err(|e| Outcome::Fail(format!("cannot build rootfs: {e}")))
    }

    /// Remove the temp dir and the suite root (the latter only if empty).
    pub fn cleanup(&self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
        let _ = std::fs::remove_dir(&self.runtime.root);
    }
}

/// Build a busybox rootfs at `dir`.
pub fn build_rootfs(dir: &Path) -> Result<(), String> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).map_err(|e| e.to_string())?;
    }
    std::fs::set_permissions(dir.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(|e| e.to_string())?;
    std::fs::copy("/bin/busybox", bin.join("busybox")).map_err(|e| format!("copy busybox: {e}"))?;
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .map_err(|e| format!("busybox --list: {e}"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", bin.join(applet)).map_err(|e| format!("symlink {applet}: {e}"))?;
    }
    Ok(())
}

/// The equivalent of `runc spec` adapted for tests: no terminal, the suite env marker,
/// hostname "hull-test", a cgroup namespace, and `root.path` = the shared rootfs.
pub fn config(args: &[&str]) -> Value {
    let s = suite();
    let rootfs = s
        .rootfs()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/nonexistent-rootfs".into());
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                format!("{SUITE_ENV}={}", s.id),
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "hull-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// `config(["sh", "-c", script])`.
pub fn sh_config(script: &str) -> Value {
    config(&["sh", "-c", script])
}

/// Per-test context: unique ids, bundles; on drop force-deletes every container id it
/// handed out and removes its bundles, even when the test failed or panicked.
pub struct Ctx {
    pub name: &'static str,
    pub rt: &'static Runtime,
    pub suite: &'static Suite,
    ids: RefCell<Vec<String>>,
    dirs: RefCell<Vec<PathBuf>>,
    cleanups: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl Ctx {
    pub fn new(name: &'static str) -> Ctx {
        let suite = suite();
        Ctx {
            name,
            rt: &suite.runtime,
            suite,
            ids: RefCell::new(Vec::new()),
            dirs: RefCell::new(Vec::new()),
            cleanups: RefCell::new(Vec::new()),
        }
    }

    /// A fresh container id `rt-<test>-<pid>-<n>`, force-deleted when the test ends.
    pub fn id(&self) -> String {
        let id = format!(
            "rt-{}-{}-{}",
            self.name.replace('_', "-"),
            std::process::id(),
            self.suite.next()
        );
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// A fresh empty directory in the suite temp dir (mode 0755), removed when the test ends.
    pub fn dir(&self, kind: &str) -> Result<PathBuf, Outcome> {
        let d = self
            .suite
            .tmp
            .join(kind)
            .join(format!("{}-{}", self.name, self.suite.next()));
        std::fs::create_dir_all(&d)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        self.dirs.borrow_mut().push(d.clone());
        Ok(d)
    }

    /// Write `cfg` as config.json into a fresh bundle dir.
    pub fn bundle(&self, cfg: &Value) -> Result<PathBuf, Outcome> {
        let d = self.dir("bundles")?;
        std::fs::write(d.join("config.json"), serde_json::to_vec_pretty(cfg)?)?;
        Ok(d)
    }

    /// A fresh host directory with a tmpfs mounted on `sub/`, unmounted when
    /// the test ends (for tests of recursive binds).
    pub fn dir_with_submount(&self) -> Result<PathBuf, Outcome> {
        let host = self.dir("hostdata")?;
        let sub = host.join("sub");
        std::fs::create_dir(&sub)?;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "rt-sub"])
            .arg(&sub)
            .status()?;
        if !st.success() {
            return Err(Outcome::Fail(format!(
                "cannot mount a tmpfs on {}",
                sub.display()
            )));
        }
        self.on_cleanup(move || {
            let _ = Command::new("umount").arg("-l").arg(&sub).status();
        });
        Ok(host)
    }

    /// A private copy of the shared rootfs (for tests that write to it).
    pub fn private_rootfs(&self) -> Result<PathBuf, Outcome> {
        let src = self.suite.rootfs()?;
        let d = self.dir("priv")?.join("rootfs");
        let st = Command::new("cp").arg("-a").arg(src).arg(&d).status()?;
        if !st.success() {
            return Err(Outcome::Fail(format!("cp -a {src:?} {d:?} failed")));
        }
        Ok(d)
    }

    /// Register a cleanup action run when the test ends (after containers are deleted).
    pub fn on_cleanup(&self, f: impl FnOnce() + 'static) {
        self.cleanups.borrow_mut().push(Box::new(f));
    }

    /// Write a bundle for `cfg` and `run` it in the foreground under a fresh id.
    pub fn run_cfg(&self, cfg: &Value) -> Result<Output, Outcome> {
        let b = self.bundle(cfg)?;
        Ok(self.rt.run(&self.id(), &b))
    }

    /// `run` of `sh -c script` with the default config; must exit 0; returns stdout.
    pub fn sh(&self, script: &str) -> Result<String, Outcome> {
        Ok(self.run_cfg(&sh_config(script))?.ok()?.stdout)
    }

    /// Create and start a container from `cfg`; returns (id, create output).
    pub fn start_cfg(&self, cfg: &Value) -> Result<(String, Output), Outcome> {
        let b = self.bundle(cfg)?;
        let id = self.id();
        let out = self.rt.create(&id, &b).ok()?;
        self.rt.start(&id).ok()?;
        Ok((id, out))
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.rt.delete_force(id);
        }
        for f in self.cleanups.borrow_mut().drain(..) {
            f();
        }
        for d in self.dirs.borrow().iter() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
