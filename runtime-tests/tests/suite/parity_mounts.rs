//! Mount parity with runc: behaviour of spec mounts that runc 1.1.5 (or crun, where
//! runc 1.1.5 predates a fix) gets right. Each test was run side by side against runc
//! with a private --root; where runc 1.1.5 lacks the behaviour the test skips there and
//! names the version.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::{ensure, skip, Outcome, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("mounts_dev_readonly", Kind::Oci, dev_readonly),
    t(
        "mounts_dev_readonly_terminal",
        Kind::Oci,
        dev_readonly_terminal,
    ),
    t("mounts_ro_tmpfs_nested", Kind::Oci, ro_tmpfs_nested),
    t("mounts_ptmx_without_devpts", Kind::Oci, ptmx_without_devpts),
    t("mounts_tmpcopyup", Kind::Oci, tmpcopyup),
    t(
        "mounts_tmpfs_keeps_dir_mode",
        Kind::Oci,
        tmpfs_keeps_dir_mode,
    ),
    t(
        "mounts_tmpfs_mode_option_wins",
        Kind::Oci,
        tmpfs_mode_option_wins,
    ),
    t("mounts_nosymfollow", Kind::Oci, nosymfollow),
    t("mounts_rnorelatime", Kind::Oci, rnorelatime),
    t(
        "mounts_bind_keeps_source_flags",
        Kind::HullOnly,
        bind_keeps_source_flags,
    ),
    t(
        "mounts_recursive_options_new_fs",
        Kind::HullOnly,
        recursive_options_new_fs,
    ),
    t("mounts_unknown_option_fs", Kind::Oci, unknown_option_fs),
    t(
        "mounts_unknown_option_bind",
        Kind::HullOnly,
        unknown_option_bind,
    ),
    t("mounts_userns_bind_source", Kind::Oci, userns_bind_source),
    t("mounts_idmap", Kind::Oci, idmap),
    t("mounts_idmap_own_mappings", Kind::Oci, idmap_own_mappings),
];

// ---------------------------------------------------------------------------------------
// helpers

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn add_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().expect("mounts").push(m);
}

/// The options of the spec mount at `dest`.
fn mount_options<'a>(cfg: &'a mut Value, dest: &str) -> &'a mut Vec<Value> {
    let m = cfg["mounts"]
        .as_array_mut()
        .expect("mounts")
        .iter_mut()
        .find(|m| m["destination"] == dest)
        .unwrap_or_else(|| panic!("no mount at {dest}"));
    m["options"].as_array_mut().expect("options")
}

/// One line of /proc/self/mountinfo: the per-mount and the superblock options of the
/// top-most mount at `point`.
struct MountLine {
    opts: Vec<String>,
    super_opts: Vec<String>,
}

impl MountLine {
    fn has(&self, o: &str) -> bool {
        self.opts.iter().any(|x| x == o)
    }
}

fn mount_at(mountinfo: &str, point: &str) -> Option<MountLine> {
    mountinfo.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        (f.get(4) == Some(&point)).then(|| MountLine {
            opts: f[5].split(',').map(String::from).collect(),
            super_opts: f
                .get(sep + 3)
                .map(|s| s.split(',').map(String::from).collect())
                .unwrap_or_default(),
        })
    })
}

fn require_mount(out: &str, point: &str) -> Result<MountLine, Outcome> {
    mount_at(out, point).ok_or_else(|| Outcome::Fail(format!("no mount at {point}: {out}")))
}

// ---------------------------------------------------------------------------------------
// read-only /dev and tmpfs

/// A read-only /dev still gets its device nodes, symlinks and the mounts below it:
/// read-only comes last (runc's finalizeRootfs).
fn dev_readonly(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "cat /proc/self/mountinfo; echo x > /dev/null && echo NULL-OK; \
         test -c /dev/urandom && echo URANDOM-OK; test -L /dev/ptmx && echo PTMX-OK; \
         test -L /dev/fd && echo FD-OK; echo x > /dev/shm/f && echo SHM-OK; \
         touch /dev/new 2>/dev/null && echo DEV-WRITABLE; true",
    );
    mount_options(&mut cfg, "/dev").push(json!("ro"));
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    for want in ["NULL-OK", "URANDOM-OK", "PTMX-OK", "FD-OK", "SHM-OK"] {
        ensure!(out.contains(want), "{want} missing: {out}");
    }
    ensure!(!out.contains("DEV-WRITABLE"), "/dev is writable: {out}");
    ensure!(require_mount(&out, "/dev")?.has("ro"), "/dev not ro: {out}");
    for below in ["/dev/pts", "/dev/shm", "/dev/mqueue"] {
        ensure!(require_mount(&out, below)?.has("rw"), "{below}: {out}");
    }
    Ok(())
}

/// With a terminal, /dev/console is the pty even on a read-only /dev.
fn dev_readonly_terminal(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("ls -l /dev/console; grep ' /dev ' /proc/self/mountinfo");
    cfg["process"]["terminal"] = json!(true);
    mount_options(&mut cfg, "/dev").push(json!("ro"));
    let (out, code) = run_in_pty(c, &cfg)?;
    ensure!(code == 0, "terminal run exited {code}: {out}");
    let console = out
        .lines()
        .find(|l| l.contains("/dev/console"))
        .unwrap_or("");
    ensure!(
        console.contains("crw") && console.contains("136,"),
        "/dev/console is not the pty: {out}"
    );
    ensure!(out.contains(" /dev ro,"), "/dev not read-only: {out}");
    Ok(())
}

/// A foreground `run` with a real terminal on our side (`script`); returns what the
/// terminal showed and the exit code.
fn run_in_pty(c: &Ctx, cfg: &Value) -> Result<(String, i32), Outcome> {
    if !Path::new("/usr/bin/script").exists() {
        skip!("script (bsdutils) is not installed");
    }
    let b = c.bundle(cfg)?;
    let cmd = format!(
        "{} --root {} run --bundle {} {}",
        c.rt.bin.display(),
        c.rt.root.display(),
        b.display(),
        c.id()
    );
    let out = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    Ok((text, out.status.code().unwrap_or(-1)))
}

/// /dev/ptmx is the symlink to pts/ptmx even when the spec mounts no devpts (the
/// container may mount one itself), and replaces a node the image has there.
fn ptmx_without_devpts(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let mut cfg = sh_config("readlink /dev/ptmx");
    cfg["root"]["path"] = json!(p(&root));
    cfg["mounts"]
        .as_array_mut()
        .expect("mounts")
        .retain(|m| m["destination"] != "/dev/pts" && m["destination"] != "/dev");
    // The image's own /dev, with a ptmx node of its own.
    let st = Command::new("mknod")
        .arg(root.join("dev/ptmx"))
        .args(["c", "5", "2"])
        .status()?;
    ensure!(st.success(), "mknod failed");
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "pts/ptmx\n", "/dev/ptmx: {out:?}");
    Ok(())
}

/// A read-only tmpfs with another mount below it, on a directory that does not exist
/// yet: the directory is made before the tmpfs turns read-only.
fn ro_tmpfs_nested(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "cat /proc/self/mountinfo; touch /pm-data/sub/f && echo SUB-RW; \
         touch /pm-data/f 2>/dev/null && echo DATA-WRITABLE; true",
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-data", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "size=1m"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-data/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("SUB-RW") && !out.contains("DATA-WRITABLE"),
        "{out}"
    );
    ensure!(require_mount(&out, "/pm-data")?.has("ro"), "{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// tmpfs seeding and modes

/// "tmpcopyup" (podman's and CRI-O's --tmpfs): the tmpfs starts with what the image has
/// at that path, owners and modes included; writes stay in the tmpfs.
fn tmpcopyup(c: &Ctx) -> TestResult {
    let root = c.private_rootfs()?;
    let seed = root.join("etc/seed");
    std::fs::create_dir_all(seed.join("sub"))?;
    std::fs::write(seed.join("a"), "A\n")?;
    std::fs::write(seed.join("sub/b"), "B\n")?;
    symlink("a", seed.join("link"))?;
    std::os::unix::fs::chown(seed.join("a"), Some(12), Some(34))?;
    std::fs::set_permissions(seed.join("a"), std::fs::Permissions::from_mode(0o604))?;
    std::fs::set_permissions(&seed, std::fs::Permissions::from_mode(0o2751))?;
    let mut cfg = sh_config(
        "cat /proc/self/mountinfo; cat /etc/seed/a /etc/seed/sub/b /etc/seed/link; \
         stat -c 'STAT %n %a %u:%g' /etc/seed /etc/seed/a; readlink /etc/seed/link; \
         echo new > /etc/seed/sub/b && echo WROTE; \
         cat /ro/a; touch /ro/x 2>/dev/null && echo RO-WRITABLE; true",
    );
    cfg["root"]["path"] = json!(p(&root));
    add_mount(
        &mut cfg,
        json!({"destination": "/etc/seed", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nosuid"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/ro", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "ro"]}),
    );
    std::fs::create_dir(root.join("ro"))?;
    std::fs::write(root.join("ro/a"), "RO-SEEDED\n")?;
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out.contains("A\nB\nA\n"), "seeded content: {out}");
    ensure!(out.contains("STAT /etc/seed 2751 0:0"), "top dir: {out}");
    ensure!(out.contains("STAT /etc/seed/a 604 12:34"), "file: {out}");
    ensure!(out.contains("\na\n"), "symlink: {out}");
    ensure!(out.contains("WROTE"), "tmpfs not writable: {out}");
    ensure!(
        require_mount(&out, "/etc/seed")?
            .super_opts
            .iter()
            .all(|o| o != "ro")
            && mount_at(&out, "/etc/seed").is_some_and(|m| m.has("nosuid")),
        "/etc/seed is not the tmpfs asked for: {out}"
    );
    ensure!(
        out.contains("RO-SEEDED") && !out.contains("RO-WRITABLE"),
        "read-only tmpcopyup: {out}"
    );
    ensure!(require_mount(&out, "/ro")?.has("ro"), "{out}");
    ensure!(
        std::fs::read_to_string(seed.join("sub/b"))? == "B\n",
        "a write reached the image"
    );
    Ok(())
}

/// Directories with setuid, setgid and sticky bits, for the tmpfs tests.
fn special_dirs(c: &Ctx) -> Result<PathBuf, Outcome> {
    let root = c.private_rootfs()?;
    for (d, mode) in [("suid", 0o4711), ("sgid", 0o2751), ("sticky", 0o1770)] {
        std::fs::create_dir(root.join(d))?;
        std::fs::set_permissions(root.join(d), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(root)
}

/// A tmpfs over a directory of the image keeps that directory's whole mode; over a
/// missing one it has the tmpfs default (1777).
fn tmpfs_keeps_dir_mode(c: &Ctx) -> TestResult {
    let root = special_dirs(c)?;
    let mut cfg = sh_config("stat -c '%n %a' /suid /sgid /sticky /fresh");
    cfg["root"]["path"] = json!(p(&root));
    for d in ["/suid", "/sgid", "/sticky", "/fresh"] {
        add_mount(
            &mut cfg,
            json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}),
        );
    }
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out == "/suid 4711\n/sgid 2751\n/sticky 1770\n/fresh 1777\n",
        "tmpfs modes: {out:?}"
    );
    Ok(())
}

/// ... unless the options give mode=, which wins (runc 1.1.5 chmods afterwards).
fn tmpfs_mode_option_wins(c: &Ctx) -> TestResult {
    crate::security::needs_fix_in_runc(c, (1, 1, 8), "tmpfs mode= over an existing directory")?;
    let root = special_dirs(c)?;
    let mut cfg = sh_config("stat -c '%n %a' /sticky /fresh");
    cfg["root"]["path"] = json!(p(&root));
    for d in ["/sticky", "/fresh"] {
        add_mount(
            &mut cfg,
            json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["mode=0700"]}),
        );
    }
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "/sticky 700\n/fresh 700\n", "tmpfs modes: {out:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// options

/// nosymfollow on a new filesystem and on a bind; rnosymfollow on every mount of an
/// rbind. Never silently dropped.
fn nosymfollow(c: &Ctx) -> TestResult {
    let host = c.dir_with_submount()?;
    symlink("/etc/hostname", host.join("link"))?;
    let mut cfg = sh_config(
        "cat /proc/self/mountinfo; ln -s /etc/passwd /pm-t/l; cat /pm-t/l >/dev/null 2>&1 || echo T-NOFOLLOW; \
         cat /pm-b/link >/dev/null 2>&1 || echo B-NOFOLLOW; readlink /pm-b/link",
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-t", "type": "tmpfs", "source": "tmpfs", "options": ["nosymfollow", "size=1m"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-b", "type": "bind", "source": p(&host), "options": ["bind", "nosymfollow"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-r", "type": "bind", "source": p(&host), "options": ["rbind", "rnosymfollow"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-s", "type": "bind", "source": p(&host), "options": ["rbind", "rnosymfollow", "rsymfollow"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.contains("T-NOFOLLOW") && out.contains("B-NOFOLLOW"),
        "a symlink was followed: {out}"
    );
    ensure!(out.contains("/etc/hostname"), "readlink: {out}");
    for m in ["/pm-t", "/pm-b", "/pm-r", "/pm-r/sub"] {
        ensure!(
            require_mount(&out, m)?.has("nosymfollow"),
            "{m} lacks nosymfollow: {out}"
        );
    }
    // A later option wins, as in mount(8); runc 1.1 lets the set one win.
    for m in ["/pm-s", "/pm-s/sub"]
        .into_iter()
        .filter(|_| c.rt.is_hull())
    {
        ensure!(
            !require_mount(&out, m)?.has("nosymfollow"),
            "{m} has nosymfollow: {out}"
        );
    }
    Ok(())
}

/// "rnorelatime" as runc reads it: it names no atime mode, so the mount keeps the one
/// it has; a mode given with it applies.
fn rnorelatime(c: &Ctx) -> TestResult {
    let host = c.dir_with_submount()?;
    let mut cfg = sh_config("cat /proc/self/mountinfo");
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-a", "type": "bind", "source": p(&host), "options": ["rbind", "rnorelatime"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-n", "type": "bind", "source": p(&host), "options": ["rbind", "rnoatime", "rnorelatime"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let host_line = std::fs::read_to_string("/proc/self/mountinfo")?;
    let host_sub = mount_at(&host_line, &p(&host.join("sub")))
        .ok_or_else(|| Outcome::Fail("host submount not found".into()))?;
    ensure!(host_sub.has("relatime"), "host submount: not relatime");
    for m in ["/pm-a", "/pm-a/sub"] {
        ensure!(require_mount(&out, m)?.has("relatime"), "{m}: {out}");
    }
    for m in ["/pm-n", "/pm-n/sub"] {
        ensure!(require_mount(&out, m)?.has("noatime"), "{m}: {out}");
    }
    Ok(())
}

/// HullOnly: a bind remounted "ro" keeps the nosuid/nodev/noexec of its source mount
/// unless the options clear them ("exec"); runc 1.1.5 drops them (a nosuid source
/// becomes suid in the container).
fn bind_keeps_source_flags(c: &Ctx) -> TestResult {
    let host = c.dir("nosuid-src")?;
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "nosuid,nodev,noexec,size=1m",
            "rt-nosuid",
        ])
        .arg(&host)
        .status()?;
    ensure!(st.success(), "cannot mount a tmpfs on {}", host.display());
    let h = host.clone();
    c.on_cleanup(move || {
        let _ = Command::new("umount").arg("-l").arg(&h).status();
    });
    let mut cfg = sh_config("cat /proc/self/mountinfo");
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-n", "type": "bind", "source": p(&host), "options": ["bind", "ro"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-e", "type": "bind", "source": p(&host), "options": ["bind", "ro", "exec"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let n = require_mount(&out, "/pm-n")?;
    ensure!(
        ["ro", "nosuid", "nodev", "noexec"].iter().all(|o| n.has(o)),
        "/pm-n: {out}"
    );
    let e = require_mount(&out, "/pm-e")?;
    ensure!(
        e.has("ro") && e.has("nosuid") && !e.has("noexec"),
        "/pm-e: {out}"
    );
    Ok(())
}

/// HullOnly: the recursive options ("rro", "rnosuid", ...) apply to new filesystems
/// too; runc 1.1.5 applies them to binds only and drops them silently elsewhere.
fn recursive_options_new_fs(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /proc/self/mountinfo");
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-t", "type": "tmpfs", "source": "tmpfs", "options": ["rro", "rnosuid", "size=1m"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let t = require_mount(&out, "/pm-t")?;
    ensure!(t.has("ro") && t.has("nosuid"), "/pm-t: {out}");
    Ok(())
}

/// An option neither the runtime nor the filesystem knows fails create (runc passes it
/// to the kernel as data, which refuses it).
fn unknown_option_fs(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-t", "type": "tmpfs", "source": "tmpfs", "options": ["no-such-option"]}),
    );
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out = c.rt.create(&id, &b).code(1)?;
    ensure!(
        c.rt.is_gone(&id),
        "container {id} exists after a failed create"
    );
    ensure!(
        out.stderr.contains("/pm-t"),
        "stderr names no mount: {}",
        out.stderr
    );
    Ok(())
}

/// HullOnly: runc 1.1.5 passes an unknown option of a bind as data, which a bind ignores
/// (an "idmap" it does not know silently does nothing); hull refuses it.
fn unknown_option_bind(c: &Ctx) -> TestResult {
    let host = c.dir("hostdata")?;
    let mut cfg = config(&["true"]);
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-b", "type": "bind", "source": p(&host), "options": ["rbind", "no-such-option"]}),
    );
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out = c.rt.create(&id, &b).code(1)?;
    ensure!(
        c.rt.is_gone(&id),
        "container {id} exists after a failed create"
    );
    ensure!(
        out.stderr.contains("no-such-option") && out.stderr.trim().lines().count() == 1,
        "stderr: {}",
        out.stderr
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// user namespaces

/// `cfg` with a user namespace mapping container ids 0-65535 to host 100000-165535.
fn with_userns(cfg: &mut Value) {
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    cfg["linux"]["uidMappings"] = map.clone();
    cfg["linux"]["gidMappings"] = map;
}

/// With a user namespace, a bind source below a directory only the host's root may
/// enter still works: the runtime opens it on the host side (runc's mount sources).
fn userns_bind_source(c: &Ctx) -> TestResult {
    let secret = c.dir("secret")?;
    std::fs::create_dir(secret.join("inner"))?;
    std::fs::write(secret.join("inner/f"), "REACHED\n")?;
    std::fs::write(secret.join("file"), "FILE\n")?;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700))?;
    ensure!(
        std::fs::metadata(&secret)?.uid() == 0,
        "the test needs a root-owned directory"
    );
    // Below /tmp (1777): the mapped root may create the mount points there.
    let mut cfg = sh_config("cat /tmp/pm-data/f /tmp/pm-file; id -u");
    with_userns(&mut cfg);
    add_mount(
        &mut cfg,
        json!({"destination": "/tmp/pm-data", "type": "bind", "source": p(&secret.join("inner")), "options": ["rbind", "ro"]}),
    );
    add_mount(
        &mut cfg,
        json!({"destination": "/tmp/pm-file", "type": "bind", "source": p(&secret.join("file")), "options": ["bind"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "REACHED\nFILE\n0\n", "output: {out:?}");
    Ok(())
}

/// A host directory with files owned by 0 and by 1000, and a tmpfs on `sub/` holding
/// one owned by 1000.
fn owned_tree(c: &Ctx) -> Result<PathBuf, Outcome> {
    let host = c.dir_with_submount()?;
    for f in ["root-file", "user-file", "sub/user-file"] {
        std::fs::write(host.join(f), "x\n")?;
    }
    for f in ["user-file", "sub/user-file"] {
        std::os::unix::fs::chown(host.join(f), Some(1000), Some(1000))?;
    }
    Ok(host)
}

/// "idmap" and "ridmap" (podman passes them for `-v SRC:DST:idmap`): the host's ids
/// show through the container's mapping, so host root's files are the container
/// root's; "ridmap" maps the mounts below too. runc 1.1.5 ignores both silently.
fn idmap(c: &Ctx) -> TestResult {
    crate::security::needs_fix_in_runc(c, (1, 2, 0), "idmapped mounts")?;
    let host = owned_tree(c)?;
    let mut cfg = sh_config(
        "cat /proc/self/mountinfo; stat -c 'STAT %n %u:%g' /tmp/pm-i/root-file /tmp/pm-i/user-file \
         /tmp/pm-i/sub/user-file /tmp/pm-r/root-file /tmp/pm-r/sub/user-file /tmp/pm-plain/root-file",
    );
    with_userns(&mut cfg);
    for (dest, opts) in [
        ("/tmp/pm-i", json!(["rbind", "idmap"])),
        ("/tmp/pm-r", json!(["rbind", "ridmap", "ro"])),
        ("/tmp/pm-plain", json!(["rbind"])),
    ] {
        add_mount(
            &mut cfg,
            json!({"destination": dest, "type": "bind", "source": p(&host), "options": opts}),
        );
    }
    let out = idmapped_run(c, &cfg)?;
    for want in [
        "STAT /tmp/pm-i/root-file 0:0",
        "STAT /tmp/pm-i/user-file 1000:1000",
        // "idmap" maps the top mount only.
        "STAT /tmp/pm-i/sub/user-file 65534:65534",
        "STAT /tmp/pm-r/root-file 0:0",
        "STAT /tmp/pm-r/sub/user-file 1000:1000",
        "STAT /tmp/pm-plain/root-file 65534:65534",
    ] {
        ensure!(out.contains(want), "{want} missing: {out}");
    }
    ensure!(require_mount(&out, "/tmp/pm-r")?.has("ro"), "{out}");
    ensure!(
        require_mount(&out, "/tmp/pm-r/sub")?.has("idmapped")
            && !require_mount(&out, "/tmp/pm-i/sub")?.has("idmapped"),
        "{out}"
    );
    Ok(())
}

/// A mount's own uidMappings/gidMappings (runtime-spec 1.1), no user namespace needed:
/// the files of source id 0 show as 100000 through the mapping 0 -> 100000.
fn idmap_own_mappings(c: &Ctx) -> TestResult {
    crate::security::needs_fix_in_runc(c, (1, 2, 0), "idmapped mounts")?;
    let host = owned_tree(c)?;
    let mut cfg = sh_config("stat -c 'STAT %n %u:%g' /pm-i/root-file /pm-i/user-file");
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    add_mount(
        &mut cfg,
        json!({"destination": "/pm-i", "type": "bind", "source": p(&host), "options": ["rbind", "idmap"],
               "uidMappings": map, "gidMappings": map}),
    );
    let out = idmapped_run(c, &cfg)?;
    ensure!(
        out == "STAT /pm-i/root-file 100000:100000\nSTAT /pm-i/user-file 101000:101000\n",
        "{out:?}"
    );
    Ok(())
}

/// Run `cfg`; skip where the source's filesystem cannot be idmapped (tmpfs
/// before Linux 6.3, as in the cgroup-v2 lane's 6.1 guest).
fn idmapped_run(c: &Ctx, cfg: &Value) -> Result<String, Outcome> {
    let out = c.run_cfg(cfg)?;
    if out.code != 0 && out.stderr.contains("may not support idmapped mounts") {
        skip!("the test dir's filesystem cannot be idmapped on this kernel");
    }
    Ok(out.ok()?.stdout)
}
