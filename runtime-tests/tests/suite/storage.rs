//! storage tests of the black-box suite: overlay rootfs, named volumes, bind
//! and tmpfs mounts, diff and commit. Every hull-only test gives hull a
//! private `--data-root` inside its temp dir, so nothing reaches /var/lib/hull.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{host_mounts_mentioning, signal, wait_file_contains};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    // plain-bundle mounts: OCI behaviour, also with runc
    t("storage_bind_rro_submounts", Kind::Oci, bind_rro_submounts),
    t(
        "storage_bind_missing_source",
        Kind::Oci,
        bind_missing_source,
    ),
    t("storage_tmpfs_options", Kind::Oci, tmpfs_options),
    t(
        "storage_overlay_mount_entry",
        Kind::Oci,
        overlay_mount_entry,
    ),
    // hull extras
    t(
        "storage_overlay_rootfs_untouched",
        Kind::HullOnly,
        overlay_rootfs_untouched,
    ),
    t(
        "storage_overlay_annotation",
        Kind::HullOnly,
        overlay_annotation,
    ),
    t("storage_overlay_isolated", Kind::HullOnly, overlay_isolated),
    t(
        "storage_overlay_many_layers",
        Kind::HullOnly,
        overlay_many_layers,
    ),
    t("storage_volume_outlives", Kind::HullOnly, volume_outlives),
    t("storage_volume_in_use", Kind::HullOnly, volume_in_use),
    t("storage_volume_config_ro", Kind::HullOnly, volume_config_ro),
    t("storage_cli_bind_ro", Kind::HullOnly, cli_bind_ro),
    t("storage_cli_bind_missing", Kind::HullOnly, cli_bind_missing),
    t("storage_cli_tmpfs", Kind::HullOnly, cli_tmpfs),
    t("storage_diff", Kind::HullOnly, diff),
    t("storage_commit_stacks", Kind::HullOnly, commit_stacks),
    t("storage_delete_no_mounts", Kind::HullOnly, delete_no_mounts),
    t("storage_crash_create", Kind::HullOnly, crash_create),
    t(
        "storage_volume_symlink_dest",
        Kind::HullOnly,
        volume_symlink_dest,
    ),
];

// ---------------------------------------------------------------------------------------
// helpers

pub(super) fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn push_mount(cfg: &mut Value, m: Value) {
    cfg["mounts"].as_array_mut().expect("mounts").push(m);
}

/// `hull --data-root DATA ARGS...`.
pub(super) fn hull(c: &Ctx, data: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--data-root", data.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    c.rt.exec(&all)
}

/// A private data root and a bundle for `cfg` whose rootfs is a private copy.
pub(super) fn setup(c: &Ctx, cfg: &mut Value) -> Result<(PathBuf, PathBuf, PathBuf), Outcome> {
    let data = c.dir("data")?;
    let root = c.private_rootfs()?;
    cfg["root"]["path"] = json!(p(&root));
    let bundle = c.bundle(cfg)?;
    Ok((data, root, bundle))
}

/// Every path of a tree with its type, mode, owner, size and content.
pub(super) fn snapshot(dir: &Path) -> Result<BTreeMap<PathBuf, String>, Outcome> {
    fn walk(base: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, String>) -> std::io::Result<()> {
        let path = base.join(rel);
        let m = std::fs::symlink_metadata(&path)?;
        let content = if m.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(&path)?.display())
        } else if m.is_file() {
            format!("{:?}", std::fs::read(&path)?)
        } else {
            String::new()
        };
        let desc = format!(
            "{:o} {}:{} {} {content}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len()
        );
        out.insert(rel.to_path_buf(), desc);
        if m.is_dir() {
            for e in std::fs::read_dir(&path)? {
                walk(base, &rel.join(e?.file_name()), out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, Path::new(""), &mut out)?;
    Ok(out)
}

/// Entries of `<data>/containers` (a container's upper/work while it exists).
fn container_dirs(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn no_mounts_mention(what: &Path) -> TestResult {
    let lines = host_mounts_mentioning(&p(what));
    ensure!(
        lines.is_empty(),
        "host mounts mention {}: {}",
        what.display(),
        lines.join(" | ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// plain bundles (runc too)

/// "rro" makes a bind read-only recursively: the submount of the source too.
fn bind_rro_submounts(c: &Ctx) -> TestResult {
    let host = c.dir_with_submount()?;
    let mut cfg = sh_config(
        "touch /b/f 2>/dev/null && echo top-writable || echo top-ro; \
         touch /b/sub/f 2>/dev/null && echo sub-writable || echo sub-ro",
    );
    push_mount(
        &mut cfg,
        json!({"destination": "/b", "type": "bind", "source": p(&host), "options": ["rbind", "rro"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "top-ro\nsub-ro\n", "rro bind: {out:?}");
    ensure!(
        !host.join("f").exists() && !host.join("sub/f").exists(),
        "a write reached the host"
    );
    Ok(())
}

/// A bind of a missing source fails create and leaves no container behind.
fn bind_missing_source(c: &Ctx) -> TestResult {
    let missing = c.dir("missing")?.join("nope");
    let mut cfg = config(&["true"]);
    push_mount(
        &mut cfg,
        json!({"destination": "/x", "type": "bind", "source": p(&missing), "options": ["rbind"]}),
    );
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.create(&id, &b).failed()?;
    ensure!(
        c.rt.is_gone(&id),
        "container {id} exists after a failed create"
    );
    ensure!(!c.rt.root.join(&id).exists(), "state dir left behind");
    ensure!(!missing.exists(), "the missing source was created");
    Ok(())
}

/// tmpfs from config.json: size is enforced; mode, uid and gid are applied.
fn tmpfs_options(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "stat -c '%a %u %g' /t; \
         dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null && echo fits || echo full; \
         df -k /t | tail -1 | awk '{print $2}'",
    );
    push_mount(
        &mut cfg,
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "size=1m", "mode=1770", "uid=1000", "gid=1001"]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out == "1770 1000 1001\nfull\n1024\n",
        "tmpfs options: {out:?}"
    );
    Ok(())
}

/// A config.json mount of type overlay with lowerdir/upperdir/workdir.
fn overlay_mount_entry(c: &Ctx) -> TestResult {
    let d = c.dir("ovl")?;
    for sub in ["lower", "upper", "work"] {
        std::fs::create_dir(d.join(sub))?;
    }
    std::fs::write(d.join("lower/base"), "base\n")?;
    let mut cfg = sh_config("cat /o/base; echo new > /o/added; rm /o/base; ls /o");
    push_mount(
        &mut cfg,
        json!({"destination": "/o", "type": "overlay", "source": "overlay", "options": [
            format!("lowerdir={}", p(&d.join("lower"))),
            format!("upperdir={}", p(&d.join("upper"))),
            format!("workdir={}", p(&d.join("work"))),
        ]}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(out == "base\nadded\n", "overlay mount: {out:?}");
    ensure!(
        std::fs::read_to_string(d.join("lower/base"))? == "base\n",
        "the lower changed"
    );
    ensure!(
        std::fs::read_to_string(d.join("upper/added"))? == "new\n",
        "the write is not in the upper"
    );
    let wh = std::fs::symlink_metadata(d.join("upper/base"))?;
    ensure!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "no whiteout for the removed file"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// overlay rootfs

const WRITER: &str = "echo hi > /new; echo more >> /etc/passwd; rm /bin/ls; mkdir -p /var/x; \
                      cat /new; ls /bin/ls 2>/dev/null || echo gone";

fn overlay_rootfs_untouched(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(WRITER);
    let (data, root, b) = setup(c, &mut cfg)?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n")?;
    let before = snapshot(&root)?;
    let id = c.id();
    let out = hull(c, &data, &["run", "--overlay", "--bundle", &p(&b), &id]).ok()?;
    ensure!(
        out.stdout == "hi\ngone\n",
        "container output: {:?}",
        out.stdout
    );
    let after = snapshot(&root)?;
    ensure!(
        before == after,
        "the bundle rootfs changed under an overlay container"
    );
    ensure!(
        container_dirs(&data).is_empty(),
        "upper left after run: {:?}",
        container_dirs(&data)
    );
    Ok(())
}

/// The config.json form: annotation dev.hull.overlay, no flag.
fn overlay_annotation(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(WRITER);
    cfg["annotations"] = json!({"dev.hull.overlay": "true"});
    let (data, root, b) = setup(c, &mut cfg)?;
    let before = snapshot(&root)?;
    let id = c.id();
    let out = hull(c, &data, &["run", "--bundle", &p(&b), &id]).ok()?;
    ensure!(
        out.stdout == "hi\ngone\n",
        "container output: {:?}",
        out.stdout
    );
    ensure!(before == snapshot(&root)?, "the bundle rootfs changed");
    Ok(())
}

/// Two containers of one bundle at once: each sees only its own writes.
fn overlay_isolated(c: &Ctx) -> TestResult {
    let sync = c.dir("sync")?;
    let mut cfg = sh_config(
        "touch /mine-$(cat /proc/sys/kernel/random/uuid); echo ready; \
         while [ ! -e /sync/go ]; do sleep 0.02; done; echo count=$(ls / | grep -c '^mine-')",
    );
    push_mount(
        &mut cfg,
        json!({"destination": "/sync", "type": "bind", "source": p(&sync), "options": ["rbind"]}),
    );
    let (data, root, b) = setup(c, &mut cfg)?;
    let (a, bb) = (c.id(), c.id());
    let ra = hull(c, &data, &["create", "--overlay", "--bundle", &p(&b), &a]).ok()?;
    let rb = hull(c, &data, &["create", "--overlay", "--bundle", &p(&b), &bb]).ok()?;
    c.rt.start(&a).ok()?;
    c.rt.start(&bb).ok()?;
    wait_file_contains(&ra.stdout_path, "ready")?;
    wait_file_contains(&rb.stdout_path, "ready")?;
    ensure!(
        container_dirs(&data).len() == 2,
        "expected two uppers: {:?}",
        container_dirs(&data)
    );
    std::fs::write(sync.join("go"), "")?;
    wait_file_contains(&ra.stdout_path, "count=")?;
    wait_file_contains(&rb.stdout_path, "count=")?;
    for o in [&ra, &rb] {
        let text = std::fs::read_to_string(&o.stdout_path)?;
        ensure!(
            text.contains("count=1"),
            "a container saw the other's file: {text:?}"
        );
    }
    ensure!(
        !std::fs::read_dir(&root)?
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("mine-")),
        "a write reached the bundle rootfs"
    );
    for id in [&a, &bb] {
        c.rt.delete_force(id).ok()?;
    }
    ensure!(
        container_dirs(&data).is_empty(),
        "uppers left: {:?}",
        container_dirs(&data)
    );
    Ok(())
}

/// 150 layers with long paths: the lowerdir string is far beyond one page.
fn overlay_many_layers(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("ls /layers | wc -l; cat /layers/top");
    let (data, _root, b) = setup(c, &mut cfg)?;
    let base = c.dir("layers")?;
    let mut args: Vec<String> = vec!["run".into()];
    let mut total = 0;
    for i in 0..150 {
        let l = base.join(format!(
            "layer-{i:03}-with-a-long-name-so-that-the-stack-exceeds-a-page"
        ));
        std::fs::create_dir_all(l.join("layers"))?;
        std::fs::write(l.join(format!("layers/l{i}")), "")?;
        std::fs::write(l.join("layers/top"), format!("{i}\n"))?;
        total += p(&l).len() + 1;
        args.push("--layer".into());
        args.push(p(&l));
    }
    ensure!(total > 4096, "the stack is only {total} bytes");
    let id = c.id();
    args.extend(["--bundle".into(), p(&b), id]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = hull(c, &data, &argv).ok()?;
    ensure!(
        out.stdout.split_whitespace().collect::<Vec<_>>() == ["151", "149"],
        "layers: {:?}",
        out.stdout
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// volumes

fn volume_outlives(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /srv/seed; echo kept > /srv/data");
    let (data, root, b) = setup(c, &mut cfg)?;
    std::fs::create_dir_all(root.join("srv"))?;
    std::fs::write(root.join("srv/seed"), "from-image\n")?;
    let id = c.id();
    let out = hull(
        c,
        &data,
        &["run", "-v", "vol1:/srv", "--bundle", &p(&b), &id],
    )
    .ok()?;
    ensure!(
        out.stdout == "from-image\n",
        "volume not seeded from the image: {:?}",
        out.stdout
    );
    ensure!(
        !root.join("srv/data").exists(),
        "the volume write reached the rootfs"
    );
    ensure!(c.rt.is_gone(&id), "container {id} not deleted");
    let ls = hull(c, &data, &["volume", "ls", "-q"]).ok()?;
    ensure!(
        ls.stdout == "vol1\n",
        "volume ls after delete: {:?}",
        ls.stdout
    );

    // The next container (another bundle) reads what the first wrote.
    let mut cfg2 = sh_config("cat /v/data /v/seed");
    let (_, _, b2) = setup(c, &mut cfg2)?;
    let out = hull(
        c,
        &data,
        &["run", "-v", "vol1:/v", "--bundle", &p(&b2), &c.id()],
    )
    .ok()?;
    ensure!(
        out.stdout == "kept\nfrom-image\n",
        "second container read {:?}",
        out.stdout
    );
    let inspect: Value =
        serde_json::from_str(&hull(c, &data, &["volume", "inspect", "vol1"]).ok()?.stdout)?;
    ensure!(inspect[0]["Name"] == "vol1", "inspect: {inspect}");
    hull(c, &data, &["volume", "rm", "vol1"]).ok()?;
    ensure!(
        hull(c, &data, &["volume", "ls", "-q"])
            .ok()?
            .stdout
            .is_empty(),
        "volume not removed"
    );
    Ok(())
}

/// Two live containers share a volume; rm refuses while in use, even forced.
fn volume_in_use(c: &Ctx) -> TestResult {
    let mut cfg =
        sh_config("echo ready; while [ ! -e /v/stop ]; do sleep 0.05; done; cat /v/from-b");
    let (data, _root, b) = setup(c, &mut cfg)?;
    let a = c.id();
    let ra = hull(
        c,
        &data,
        &["create", "-v", "shared:/v", "--bundle", &p(&b), &a],
    )
    .ok()?;
    c.rt.start(&a).ok()?;
    wait_file_contains(&ra.stdout_path, "ready")?;
    let mut cfg_b = sh_config("echo hello-from-b > /v/from-b; touch /v/stop");
    let (_, _, bb) = setup(c, &mut cfg_b)?;
    hull(
        c,
        &data,
        &["run", "-v", "shared:/v", "--bundle", &p(&bb), &c.id()],
    )
    .ok()?;
    wait_file_contains(&ra.stdout_path, "hello-from-b")?;

    // a has exited but is not deleted: make a live user for the refusal.
    let live = c.id();
    let mut cfg_l = config(&["sleep", "30"]);
    let (_, _, bl) = setup(c, &mut cfg_l)?;
    hull(
        c,
        &data,
        &["create", "-v", "shared:/v", "--bundle", &p(&bl), &live],
    )
    .ok()?;
    let out = hull(c, &data, &["volume", "rm", "shared"]).failed()?;
    ensure!(
        out.stderr.contains("in use") && out.stderr.contains(&live),
        "rm error: {}",
        out.stderr.trim()
    );
    ensure!(
        hull(c, &data, &["volume", "prune"]).ok()?.stdout.is_empty(),
        "prune removed a volume in use"
    );
    c.rt.delete_force(&live).ok()?;
    c.rt.delete_force(&a).ok()?;
    ensure!(
        data.join("volumes/shared/_data/from-b").exists(),
        "delete removed volume data"
    );
    let out = hull(c, &data, &["volume", "prune"]).ok()?;
    ensure!(out.stdout == "shared\n", "prune: {:?}", out.stdout);
    // Forced removal of a volume in use.
    hull(c, &data, &["volume", "create", "forced"]).ok()?;
    let user = c.id();
    hull(
        c,
        &data,
        &["create", "-v", "forced:/v", "--bundle", &p(&bl), &user],
    )
    .ok()?;
    hull(c, &data, &["volume", "rm", "forced"]).failed()?;
    // --force never takes the data from under a live container.
    hull(c, &data, &["volume", "rm", "--force", "forced"])
        .failed()?
        .stderr_has(&user)?;
    c.rt.delete_force(&user).ok()?;
    hull(c, &data, &["volume", "rm", "--force", "forced"]).ok()?;
    Ok(())
}

/// The config.json form of a volume (a mount of type "volume"), read-only.
fn volume_config_ro(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /v/f; echo x > /v/g 2>/dev/null && echo writable || echo ro");
    push_mount(
        &mut cfg,
        json!({"destination": "/v", "type": "volume", "source": "cfgvol", "options": ["ro"]}),
    );
    let (data, _root, b) = setup(c, &mut cfg)?;
    hull(c, &data, &["volume", "create", "cfgvol"]).ok()?;
    std::fs::write(data.join("volumes/cfgvol/_data/f"), "in-volume\n")?;
    let out = hull(c, &data, &["run", "--bundle", &p(&b), &c.id()]).ok()?;
    ensure!(
        out.stdout == "in-volume\nro\n",
        "ro volume: {:?}",
        out.stdout
    );
    // -v NAME:/path:ro is the same.
    let mut cfg2 = sh_config("echo x > /w/g 2>/dev/null && echo writable || echo ro");
    let (_, _, b2) = setup(c, &mut cfg2)?;
    let out = hull(
        c,
        &data,
        &["run", "-v", "cfgvol:/w:ro", "--bundle", &p(&b2), &c.id()],
    )
    .ok()?;
    ensure!(out.stdout == "ro\n", "-v ro volume: {:?}", out.stdout);
    ensure!(
        !data.join("volumes/cfgvol/_data/g").exists(),
        "write went through"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// -v bind, --tmpfs

fn cli_bind_ro(c: &Ctx) -> TestResult {
    let host = c.dir_with_submount()?;
    std::fs::write(host.join("data.txt"), "bind-ok\n")?;
    let mut cfg = sh_config(
        "cat /b/data.txt; touch /b/f 2>/dev/null && echo top-writable || echo top-ro; \
         touch /b/sub/f 2>/dev/null && echo sub-writable || echo sub-ro; \
         touch /w/f && echo rw-ok",
    );
    let (data, _root, b) = setup(c, &mut cfg)?;
    let rw = c.dir("rwbind")?;
    let spec = format!("{}:/b:ro", p(&host));
    let spec_rw = format!("{}:/w:rw,rprivate", p(&rw));
    let out = hull(
        c,
        &data,
        &[
            "run",
            "-v",
            &spec,
            "-v",
            &spec_rw,
            "--bundle",
            &p(&b),
            &c.id(),
        ],
    )
    .ok()?;
    ensure!(
        out.stdout == "bind-ok\ntop-ro\nsub-ro\nrw-ok\n",
        "-v binds: {:?}",
        out.stdout
    );
    ensure!(rw.join("f").exists(), "rw bind write missing on the host");
    Ok(())
}

fn cli_bind_missing(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    let (data, _root, b) = setup(c, &mut cfg)?;
    let missing = c.dir("missing")?.join("nope");
    let id = c.id();
    let spec = format!("{}:/x", p(&missing));
    let out = hull(
        c,
        &data,
        &["run", "--overlay", "-v", &spec, "--bundle", &p(&b), &id],
    )
    .code(1)?;
    let err = out.stderr.trim();
    ensure!(err.lines().count() == 1, "not one line: {err:?}");
    ensure!(
        err.contains(&p(&missing)) && err.contains("ENOENT"),
        "unclear error: {err}"
    );
    ensure!(
        c.rt.is_gone(&id) && !c.rt.root.join(&id).exists(),
        "state left behind"
    );
    ensure!(!missing.exists(), "the source was created");
    ensure!(
        container_dirs(&data).is_empty(),
        "data left: {:?}",
        container_dirs(&data)
    );
    Ok(())
}

fn cli_tmpfs(c: &Ctx) -> TestResult {
    let mut cfg = sh_config(
        "stat -c %a /t; dd if=/dev/zero of=/t/big bs=1k count=2048 2>/dev/null && echo fits || echo full; \
         grep ' /t ' /proc/self/mountinfo | grep -c nosuid",
    );
    let (data, root, b) = setup(c, &mut cfg)?;
    let out = hull(
        c,
        &data,
        &[
            "run",
            "--tmpfs",
            "/t:size=1m,mode=1777",
            "--bundle",
            &p(&b),
            &c.id(),
        ],
    )
    .ok()?;
    ensure!(out.stdout == "1777\nfull\n1\n", "--tmpfs: {:?}", out.stdout);
    ensure!(
        !root.join("t/big").exists(),
        "tmpfs write reached the rootfs"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// diff, commit, cleanup

/// Run WRITER in an overlay container kept after exit; returns (data, bundle, id).
fn kept_writer(c: &Ctx) -> Result<(PathBuf, PathBuf, PathBuf, String), Outcome> {
    let mut cfg = sh_config(&format!(
        "{WRITER}; rm -rf /root; mkdir /root; touch /root/z"
    ));
    let (data, root, b) = setup(c, &mut cfg)?;
    std::fs::write(root.join("root/old"), "")?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n")?;
    let id = c.id();
    hull(
        c,
        &data,
        &["run", "--overlay", "--keep", "--bundle", &p(&b), &id],
    )
    .ok()?;
    Ok((data, root, b, id))
}

fn diff(c: &Ctx) -> TestResult {
    let (data, _root, _b, id) = kept_writer(c)?;
    let out = hull(c, &data, &["diff", &id]).ok()?.stdout;
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "A /new",
        "C /etc",
        "C /etc/passwd",
        "C /bin",
        "D /bin/ls",
        "A /var/x",
        "C /root",
        "D /root/old",
        "A /root/z",
    ] {
        ensure!(lines.contains(&want), "diff lacks {want:?}: {out:?}");
    }
    ensure!(
        !lines.iter().any(|l| l.contains("/bin/sh")),
        "diff lists an unchanged file: {out:?}"
    );
    c.rt.delete(&id).ok()?;
    ensure!(container_dirs(&data).is_empty(), "upper left after delete");
    let out = hull(c, &data, &["diff", &id]).failed()?;
    ensure!(
        out.stderr.contains("does not exist"),
        "diff of a deleted container: {}",
        out.stderr
    );
    Ok(())
}

fn commit_stacks(c: &Ctx) -> TestResult {
    let (data, root, _b, id) = kept_writer(c)?;
    let layer = c.dir("commit")?.join("layer1");
    hull(c, &data, &["commit", &id, &p(&layer)]).ok()?;
    let wh = std::fs::symlink_metadata(layer.join("bin/ls"))?;
    ensure!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "no whiteout for /bin/ls in the layer"
    );
    c.rt.delete(&id).ok()?;
    // A new container of the same rootfs with the layer on top sees the change.
    let mut cfg =
        sh_config("cat /new; ls /bin/ls 2>/dev/null || echo gone; ls /root; tail -1 /etc/passwd");
    cfg["root"]["path"] = json!(p(&root));
    let b = c.bundle(&cfg)?;
    let out = hull(
        c,
        &data,
        &["run", "--layer", &p(&layer), "--bundle", &p(&b), &c.id()],
    )
    .ok()?;
    ensure!(
        out.stdout == "hi\ngone\nz\nmore\n",
        "stacked layer: {:?}",
        out.stdout
    );
    ensure!(root.join("bin/ls").exists(), "the rootfs lost /bin/ls");
    // A commit into a non-empty directory is refused.
    let id2 = c.id();
    let mut cfg2 = config(&["touch", "/f"]);
    cfg2["root"]["path"] = json!(p(&root));
    let b2 = c.bundle(&cfg2)?;
    hull(
        c,
        &data,
        &["run", "--overlay", "--keep", "--bundle", &p(&b2), &id2],
    )
    .ok()?;
    hull(c, &data, &["commit", &id2, &p(&layer)]).failed()?;
    Ok(())
}

/// No host mount exists for an overlay container, while it runs or after.
fn delete_no_mounts(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("echo ready; sleep 30");
    let (data, _root, b) = setup(c, &mut cfg)?;
    let host = c.dir("hostbind")?;
    let id = c.id();
    let bind = format!("{}:/h", p(&host));
    let out = hull(
        c,
        &data,
        &[
            "create",
            "--overlay",
            "-v",
            "v:/v",
            "-v",
            &bind,
            "--tmpfs",
            "/t",
            "--bundle",
            &p(&b),
            &id,
        ],
    )
    .ok()?;
    c.rt.start(&id).ok()?;
    wait_file_contains(&out.stdout_path, "ready")?;
    no_mounts_mention(&data)?;
    // The init dies (as after a crash); delete still removes the upper.
    let pid = c.rt.pid(&id)?;
    let _ = signal(pid, libc::SIGKILL);
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    no_mounts_mention(&data)?;
    no_mounts_mention(&host)?;
    ensure!(
        container_dirs(&data).is_empty(),
        "upper left: {:?}",
        container_dirs(&data)
    );
    ensure!(
        data.join("volumes/v/_data").is_dir(),
        "delete removed the volume"
    );
    let users = std::fs::read_dir(data.join("volumes/v/users"))?.count();
    ensure!(users == 0, "volume still lists {users} user(s)");
    Ok(())
}

/// hull SIGKILLed during an overlay create: delete --force removes the upper.
fn crash_create(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sleep", "30"]);
    let (data, _root, b) = setup(c, &mut cfg)?;
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        let id = c.id();
        let args = [
            "--data-root",
            &p(&data),
            "create",
            "--overlay",
            "-v",
            "cv:/v",
            "--bundle",
            &p(&b),
            &id,
        ];
        let child = c.rt.spawn(&args)?;
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = signal(child.pid(), libc::SIGKILL);
        let _ = child.wait(Duration::from_secs(30));
        let out = c.rt.delete_force(&id);
        if out.code != 0 && !out.stderr.contains("does not exist") {
            fail!("delay {delay_ms} ms: delete --force: {}", out.stderr.trim());
        }
        ensure!(
            container_dirs(&data).is_empty(),
            "delay {delay_ms} ms: upper left: {:?}",
            container_dirs(&data)
        );
        let users = std::fs::read_dir(data.join("volumes/cv/users"))
            .map(|d| d.count())
            .unwrap_or(0);
        ensure!(users == 0, "delay {delay_ms} ms: volume marker left");
    }
    Ok(())
}

/// A volume destination that is a symlink to a host path resolves inside the
/// rootfs: the volume is neither seeded from nor mounted onto the host path.
fn volume_symlink_dest(c: &Ctx) -> TestResult {
    let secret = c.dir("secret")?;
    std::fs::write(secret.join("key"), "host-secret\n")?;
    let mut cfg = sh_config("ls /evil; echo in > /evil/w && echo done");
    let (data, root, b) = setup(c, &mut cfg)?;
    std::os::unix::fs::symlink(&secret, root.join("evil"))?;
    let out = hull(
        c,
        &data,
        &["run", "-v", "sv:/evil", "--bundle", &p(&b), &c.id()],
    )
    .ok()?;
    ensure!(out.stdout == "done\n", "container output: {:?}", out.stdout);
    ensure!(
        !data.join("volumes/sv/_data/key").exists(),
        "the volume was seeded from the host path"
    );
    ensure!(
        data.join("volumes/sv/_data/w").exists(),
        "the volume was not mounted"
    );
    ensure!(
        !secret.join("w").exists(),
        "the write reached the host path"
    );
    ensure!(
        root.join(secret.strip_prefix("/").expect("absolute"))
            .is_dir(),
        "the mount point was not made inside the rootfs"
    );
    Ok(())
}
