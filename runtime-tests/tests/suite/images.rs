//! Image tests (hull-only): `image load` of docker-archives and OCI
//! layouts built here byte by byte, `images`, `run --image`, `tag`, `save`,
//! `rmi`, `image prune`, and the bad archives, each refused in one line
//! with nothing stored. Every test has a private `--data-root`.

use std::io::Write;
use std::path::{Path, PathBuf};

use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::images::{
    docker_archive, image_config, oci_layout, oci_layout_files, sha256, Tar,
};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::{json, Value};

use super::storage::{hull, p};

pub const TESTS: &[Test] = &[
    t("img_load_run", Kind::HullOnly, load_run),
    t("img_whiteouts", Kind::HullOnly, whiteouts),
    t("img_oci_gzip", Kind::HullOnly, oci_gzip),
    t("img_layers_shared", Kind::HullOnly, layers_shared),
    t("img_rmi_in_use", Kind::HullOnly, rmi_in_use),
    t("img_save_tag_load", Kind::HullOnly, save_tag_load),
    t("img_bad_archives", Kind::HullOnly, bad_archives),
    t("img_escapes_refused", Kind::HullOnly, escapes_refused),
    t("img_disk_full", Kind::HullOnly, disk_full),
    t("img_crash_walk", Kind::HullOnly, crash_walk),
];

// ---------------------------------------------------------------------------------------
// helpers

/// The suite's busybox rootfs as a layer tar.
pub(super) fn base_layer(c: &Ctx) -> Result<Vec<u8>, Outcome> {
    Ok(Tar::new().tree(c.suite.rootfs()?)?.finish())
}

/// A layer with a page and a marker file.
pub(super) fn app_layer() -> Vec<u8> {
    Tar::new()
        .dir("www", 0o755)
        .file("www/index.html", 0o644, b"<h1>image</h1>\n")
        .finish()
}

/// Write `bytes` as `name` in a fresh dir; returns its path.
pub(super) fn write(c: &Ctx, name: &str, bytes: &[u8]) -> Result<PathBuf, Outcome> {
    let path = c.dir("img")?.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

pub(super) fn load(c: &Ctx, data: &Path, archive: &Path) -> Output {
    hull(c, data, &["image", "load", "-i", &p(archive)])
}

/// Every entry under the store's blobs, layers and records: empty when
/// nothing is stored.
pub(super) fn stored(data: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["blobs/sha256", "blobs", "layers", "records"] {
        for e in std::fs::read_dir(data.join("images").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if sub == "blobs" && name == "sha256" {
                continue;
            }
            out.push(format!("{sub}/{name}"));
        }
    }
    out
}

/// A one-line error, exit 1 (the bad-input rule).
pub(super) fn one_line_error(out: &Output, what: &str, needle: &str) -> TestResult {
    ensure!(
        out.code == 1,
        "{what}: exit {} (want 1): {}",
        out.code,
        out.stderr
    );
    ensure!(
        out.stderr.trim_end().lines().count() == 1,
        "{what}: not one line: {:?}",
        out.stderr
    );
    ensure!(
        out.stderr.contains(needle),
        "{what}: error lacks {needle:?}: {}",
        out.stderr
    );
    Ok(())
}

/// The standard two-layer image `web` (base + app), loaded.
pub(super) fn load_web(c: &Ctx, data: &Path, config: Value) -> Result<(), Outcome> {
    load_web_with(c, data, config, app_layer())
}

pub(super) fn load_web_with(
    c: &Ctx,
    data: &Path,
    config: Value,
    top: Vec<u8>,
) -> Result<(), Outcome> {
    let layers = vec![base_layer(c)?, top];
    let cfg = image_config(&layers, config);
    let archive = write(
        c,
        "web.tar",
        &docker_archive(&["web:latest"], &cfg, &layers),
    )?;
    let out = load(c, data, &archive).ok()?;
    ensure!(
        out.stdout == "Loaded image: web:latest\n",
        "load output: {:?}",
        out.stdout
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// tests

/// Load, list, and run with the config's Entrypoint, Cmd, Env, WorkingDir
/// and User (a name, found in the top layer's /etc/passwd); the command
/// line replaces Cmd and keeps Entrypoint.
fn load_run(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let top = Tar::new()
        .dir("www", 0o755)
        .file("www/index.html", 0o644, b"<h1>image</h1>\n")
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .finish();
    load_web_with(
        c,
        &data,
        json!({"Entrypoint": ["sh", "-c"], "Cmd": ["echo from-cmd; pwd; id -u; echo $GREETING"],
               "Env": ["PATH=/bin", "GREETING=hello"], "WorkingDir": "/www", "User": "nobody"}),
        top,
    )?;
    let list = hull(c, &data, &["images"]).ok()?.stdout;
    let row: Vec<&str> = list
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure!(
        list.starts_with("REPOSITORY")
            && row.first() == Some(&"web")
            && row.get(1) == Some(&"latest"),
        "images: {list:?}"
    );
    let id = c.id();
    let out = hull(c, &data, &["run", "--image", "web", "--name", &id]).ok()?;
    ensure!(
        out.stdout == "from-cmd\n/www\n65534\nhello\n",
        "run from the image's config: {:?}",
        out.stdout
    );
    let id2 = c.id();
    let out = hull(
        c,
        &data,
        &[
            "run",
            "--image",
            "web",
            "--name",
            &id2,
            "-u",
            "0",
            "-e",
            "GREETING=over",
            "cat /www/index.html; echo $GREETING",
        ],
    )
    .ok()?;
    ensure!(
        out.stdout == "<h1>image</h1>\nover\n",
        "command and flags over the config: {:?}",
        out.stdout
    );
    // A foreground run removes the container; the image has no user left.
    ensure!(c.rt.is_gone(&id) && c.rt.is_gone(&id2), "containers left");
    let q = hull(c, &data, &["images", "-q"]).ok()?.stdout;
    ensure!(q.trim().len() == 12, "images -q: {q:?}");
    hull(c, &data, &["rmi", "web"]).ok()?;
    ensure!(stored(&data).is_empty(), "rmi left {:?}", stored(&data));
    Ok(())
}

/// Whiteouts and opaque directories of an upper layer hide the lower's
/// files in the container; the layers themselves are never written.
fn whiteouts(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let base = Tar::new()
        .tree(c.suite.rootfs()?)?
        .dir("./data", 0o755)
        .file("./data/old", 0o644, b"old")
        .file("./etc/motd", 0o644, b"motd")
        .finish();
    let top = Tar::new()
        .file("etc/.wh.motd", 0o644, b"")
        .dir("data", 0o755)
        .file("data/.wh..wh..opq", 0o644, b"")
        .file("data/new", 0o600, b"new")
        .finish();
    let layers = vec![base, top];
    let cfg = image_config(&layers, json!({"Cmd": ["sh"]}));
    let archive = write(c, "w.tar", &docker_archive(&["wh:1"], &cfg, &layers))?;
    load(c, &data, &archive).ok()?;
    let id = c.id();
    let script = "ls /data; test -e /etc/motd && echo motd-visible; stat -c %a /data/new; echo x > /data/new2; ls /data";
    let out = hull(
        c,
        &data,
        &["run", "--image", "wh:1", "--name", &id, "sh", "-c", script],
    )
    .ok()?;
    ensure!(
        out.stdout == "new\n600\nnew\nnew2\n",
        "whiteout and opaque dir: {:?}",
        out.stdout
    );
    let again = hull(
        c,
        &data,
        &["run", "--image", "wh:1", "--name", &c.id(), "ls", "/data"],
    )
    .ok()?;
    ensure!(
        again.stdout == "new\n",
        "a container's write reached the layer: {:?}",
        again.stdout
    );
    Ok(())
}

/// An OCI layout with a gzip layer, loaded from a tar and from a directory.
fn oci_gzip(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let plain = base_layer(c)?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain)?;
    let gz = gz.finish()?;
    let cfg = image_config(
        std::slice::from_ref(&plain),
        json!({"Cmd": ["echo", "oci"]}),
    );
    let name = "registry.example:5000/team/oci:2";
    let layers = [("application/vnd.oci.image.layer.v1.tar+gzip", gz)];
    let archive = write(c, "oci.tar", &oci_layout(name, &cfg, &layers))?;
    let out = load(c, &data, &archive).ok()?;
    ensure!(
        out.stdout == "Loaded image: registry.example:5000/team/oci:2\n",
        "load: {:?}",
        out.stdout
    );
    let out = hull(c, &data, &["run", "--image", name, "--name", &c.id()]).ok()?;
    ensure!(out.stdout == "oci\n", "run: {:?}", out.stdout);
    // The same layout unpacked into a directory loads the same image.
    let dir = c.dir("layout")?;
    for (path, bytes) in oci_layout_files(name, &cfg, &layers) {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("in the layout"))?;
        std::fs::write(path, bytes)?;
    }
    let data2 = c.dir("data")?;
    load(c, &data2, &dir).ok()?;
    let a = hull(c, &data, &["images", "-q", "--no-trunc"]).ok()?.stdout;
    let b = hull(c, &data2, &["images", "-q", "--no-trunc"])
        .ok()?
        .stdout;
    ensure!(
        a == b && a.starts_with("sha256:"),
        "ids differ: {a:?} {b:?}"
    );
    Ok(())
}

/// Two images on one base share its unpacked layer; concurrent loads of
/// the same archive unpack it once.
fn layers_shared(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let base = base_layer(c)?;
    let a_layers = vec![base.clone(), app_layer()];
    let b_layers = vec![base, Tar::new().file("b", 0o644, b"b").finish()];
    let a = docker_archive(
        &["a:1"],
        &image_config(&a_layers, json!({"Cmd": ["true"]})),
        &a_layers,
    );
    let b = docker_archive(
        &["b:1"],
        &image_config(&b_layers, json!({"Cmd": ["true"]})),
        &b_layers,
    );
    let (pa, pb) = (write(c, "a.tar", &a)?, write(c, "b.tar", &b)?);
    let loads: Vec<_> = [&pa, &pa, &pb, &pb]
        .iter()
        .map(|path| {
            let mut args = vec!["--data-root".to_string(), p(&data)];
            args.extend(["image", "load", "-i", &p(path)].map(String::from));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            c.rt.spawn(&args)
        })
        .collect::<Result<_, _>>()?;
    for l in loads {
        let out = l.wait(runtime_tests::util::guard(std::time::Duration::from_secs(
            60,
        )));
        ensure!(out.code == 0, "concurrent load failed: {}", out.stderr);
    }
    let layers: Vec<String> = stored(&data)
        .into_iter()
        .filter(|s| s.starts_with("layers/") && !s.ends_with(".json"))
        .collect();
    ensure!(
        layers.len() == 3,
        "want 3 layer dirs (one shared base): {layers:?}"
    );
    hull(c, &data, &["rmi", "a:1"]).ok()?;
    hull(
        c,
        &data,
        &["run", "--image", "b:1", "--name", &c.id(), "cat", "/b"],
    )
    .ok()?;
    hull(c, &data, &["rmi", "b:1"]).ok()?;
    ensure!(stored(&data).is_empty(), "left: {:?}", stored(&data));
    Ok(())
}

/// `rmi` never takes an image from a running container, needs -f for a
/// stopped one (which then keeps it, untagged, until prune).
fn rmi_in_use(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    load_web(
        c,
        &data,
        json!({"Cmd": ["sleep", "3600"], "StopSignal": "SIGKILL"}),
    )?;
    let out = hull(c, &data, &["run", "-d", "--image", "web"]).ok()?;
    let id = out.stdout.trim().to_string();
    ensure!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "run -d printed {:?}",
        out.stdout
    );
    c.on_cleanup({
        let (rt, id) = (c.rt, id.clone());
        move || drop(rt.delete_force(&id))
    });
    for args in [&["rmi", "web"][..], &["rmi", "-f", "web"]] {
        let out = hull(c, &data, args);
        one_line_error(
            &out,
            "rmi of a running container's image",
            "running container",
        )?;
    }
    hull(c, &data, &["stop", &id]).ok()?;
    one_line_error(
        &hull(c, &data, &["rmi", "web"]),
        "rmi, stopped user",
        "stopped container",
    )?;
    let out = hull(c, &data, &["rmi", "-f", "web"]).ok()?;
    ensure!(
        out.stdout == "Untagged: web:latest\n",
        "rmi -f: {:?}",
        out.stdout
    );
    ensure!(
        !stored(&data).is_empty(),
        "the stopped container's image went"
    );
    hull(c, &data, &["image", "prune"]).ok()?;
    ensure!(!stored(&data).is_empty(), "prune took an image in use");
    hull(c, &data, &["rm", &id]).ok()?;
    let out = hull(c, &data, &["image", "prune"]).ok()?;
    ensure!(
        out.stdout.contains("Deleted: sha256:"),
        "prune: {:?}",
        out.stdout
    );
    ensure!(stored(&data).is_empty(), "prune left {:?}", stored(&data));
    Ok(())
}

/// `tag` adds a name, `save` writes an OCI archive that loads back, by
/// name, into an empty store.
fn save_tag_load(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    load_web(c, &data, json!({"Cmd": ["cat", "/www/index.html"]}))?;
    hull(c, &data, &["tag", "web", "localhost:5000/web:v2"]).ok()?;
    let list = hull(c, &data, &["images"]).ok()?.stdout;
    ensure!(list.lines().count() == 3, "two names, two rows: {list:?}");
    let out = c.dir("save")?.join("web.tar");
    hull(c, &data, &["save", "-o", &p(&out), "localhost:5000/web:v2"]).ok()?;
    let data2 = c.dir("data")?;
    let loaded = load(c, &data2, &out).ok()?;
    ensure!(
        loaded.stdout == "Loaded image: localhost:5000/web:v2\n",
        "load of a saved image: {:?}",
        loaded.stdout
    );
    let run = hull(
        c,
        &data2,
        &["run", "--image", "localhost:5000/web:v2", "--name", &c.id()],
    )
    .ok()?;
    ensure!(run.stdout == "<h1>image</h1>\n", "run: {:?}", run.stdout);
    let id1 = hull(c, &data, &["images", "-q", "--no-trunc"]).ok()?.stdout;
    let id2 = hull(c, &data2, &["images", "-q", "--no-trunc"])
        .ok()?
        .stdout;
    ensure!(
        id1.lines().next() == id2.lines().next(),
        "the id changed: {id1:?} {id2:?}"
    );
    one_line_error(
        &hull(c, &data, &["tag", "nosuch", "x"]),
        "tag of nothing",
        "no such image",
    )?;
    one_line_error(
        &hull(c, &data, &["tag", "web", "Bad Name"]),
        "bad tag",
        "invalid reference",
    )?;
    Ok(())
}

/// Broken archives: each one line, exit 1, nothing stored.
fn bad_archives(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let base = base_layer(c)?;
    let layers = vec![base.clone()];
    let cfg = image_config(&layers, json!({"Cmd": ["true"]}));
    let good = docker_archive(&["x:1"], &cfg, &layers);
    let wrong_diff = image_config(&[app_layer()], json!({}));
    let unknown = oci_layout("x:1", &cfg, &[("application/x-unknown", base.clone())]);
    // The layout names a blob by a digest its bytes do not have.
    let mut tampered = oci_layout(
        "x:1",
        &cfg,
        &[("application/vnd.oci.image.layer.v1.tar", base.clone())],
    );
    let at = tampered
        .windows(8)
        .position(|w| w == b"bin/busy")
        .unwrap_or(0);
    tampered[at + 1000] ^= 0xff;
    let missing = {
        let manifest = json!([{"Config": format!("{}.json", sha256(&cfg)), "RepoTags": ["x:1"], "Layers": ["l0/layer.tar"]}]);
        Tar::new()
            .file("manifest.json", 0o644, &serde_json::to_vec(&manifest)?)
            .file(&format!("{}.json", sha256(&cfg)), 0o644, &cfg)
            .finish()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            "diff id mismatch",
            docker_archive(&["x:1"], &wrong_diff, &layers),
            "diff id mismatch",
        ),
        ("missing layer", missing, "l0/layer.tar is missing"),
        ("unknown media type", unknown, "unknown media type"),
        ("digest mismatch", tampered, "digest mismatch"),
        (
            "config not JSON",
            docker_archive(&["x:1"], b"{not json", &layers),
            "parse image config",
        ),
        (
            "not an image",
            Tar::new().file("hello", 0o644, b"hi").finish(),
            "neither manifest.json",
        ),
        (
            "not a tar",
            b"plain text, not an archive at all".repeat(40),
            "read archive",
        ),
    ];
    for (what, bytes, needle) in cases {
        let path = write(c, "bad.tar", &bytes)?;
        one_line_error(&load(c, &data, &path), what, needle)?;
        ensure!(
            stored(&data).is_empty(),
            "{what}: stored {:?}",
            stored(&data)
        );
    }
    one_line_error(
        &hull(c, &data, &["run", "--image", "nosuch", "--name", &c.id()]),
        "run of a missing image",
        "no such image",
    )?;
    Ok(())
}

/// The extraction escapes: `..`, an absolute path, a write through a
/// symlink, a hard link out of the layer. Refused; nothing written outside.
fn escapes_refused(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let outside = c.dir("outside")?;
    let target = p(&outside);
    let secret = outside.join("secret");
    std::fs::write(&secret, "secret")?;
    let cases: Vec<(&str, Tar, &str)> = vec![
        (
            "dot-dot",
            Tar::new().file("a/../../escaped", 0o644, b"x"),
            "a path with ..",
        ),
        (
            "absolute",
            Tar::new().file(&format!("{target}/escaped"), 0o644, b"x"),
            "an absolute path",
        ),
        (
            "through a symlink",
            Tar::new()
                .symlink("link", &target)
                .file("link/escaped", 0o644, b"x"),
            "crosses a symlink",
        ),
        (
            "symlink then dir",
            Tar::new().symlink("d", &target).dir("d/sub", 0o755),
            "crosses a symlink",
        ),
        (
            "hard link out",
            Tar::new().hardlink("h", &format!("../../../../../../..{}", p(&secret))),
            "a path with ..",
        ),
        (
            "hard link via symlink",
            Tar::new().symlink("s", &target).hardlink("h", "s/secret"),
            "crosses a symlink",
        ),
    ];
    for (what, layer, needle) in cases {
        let layers = vec![layer.finish()];
        let cfg = image_config(&layers, json!({"Cmd": ["true"]}));
        let path = write(c, "evil.tar", &docker_archive(&["evil:1"], &cfg, &layers))?;
        one_line_error(&load(c, &data, &path), what, needle)?;
        ensure!(
            stored(&data).is_empty(),
            "{what}: stored {:?}",
            stored(&data)
        );
        let names: Vec<String> = std::fs::read_dir(&outside)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if names != ["secret"] {
            fail!("{what}: wrote outside the layer: {names:?}");
        }
        ensure!(
            std::fs::read(&secret)? == b"secret",
            "{what}: secret changed"
        );
    }
    Ok(())
}

/// A store that fills up mid-unpack: the error names ENOSPC, and the
/// partial layer and the blobs are gone.
fn disk_full(c: &Ctx) -> TestResult {
    let data = c.dir("data")?.join("small");
    std::fs::create_dir(&data)?;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "rt-img-full"])
        .arg(&data)
        .status()?;
    ensure!(
        mounted.success(),
        "cannot mount a tmpfs on {}",
        data.display()
    );
    c.on_cleanup({
        let data = data.clone();
        move || {
            drop(
                std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&data)
                    .status(),
            )
        }
    });
    // 1.2 MB of blob and as much unpacked do not fit in 3 MB twice over.
    let big: Vec<u8> = (0..1_200_000u64).map(|i| (i * 7919 % 251) as u8).collect();
    let layer = Tar::new()
        .file("a", 0o644, &big)
        .file("b", 0o644, &big)
        .finish();
    let layers = vec![layer];
    let cfg = image_config(&layers, json!({"Cmd": ["true"]}));
    let path = write(c, "big.tar", &docker_archive(&["big:1"], &cfg, &layers))?;
    let out = load(c, &data, &path);
    one_line_error(&out, "a full disk", "ENOSPC")?;
    ensure!(
        stored(&data).is_empty(),
        "a full disk: stored {:?}",
        stored(&data)
    );
    Ok(())
}

/// hull SIGKILLed at each step of `image load` (the failpoints build):
/// `image prune -a` then leaves an empty store, and the load works again.
fn crash_walk(c: &Ctx) -> TestResult {
    let fp = super::faults::failpoints_bin()?;
    let data = c.dir("data")?;
    let layers = vec![base_layer(c)?, app_layer()];
    let cfg = image_config(&layers, json!({"Cmd": ["true"]}));
    let archive = write(
        c,
        "web.tar",
        &docker_archive(&["web:latest"], &cfg, &layers),
    )?;
    let run_fp = |args: &[&str], step: &str| -> Result<std::process::Output, Outcome> {
        Ok(std::process::Command::new(&fp)
            .arg("--data-root")
            .arg(&data)
            .args(args)
            .env("HULL_FAILPOINT", step)
            .stdin(std::process::Stdio::null())
            .output()?)
    };
    let trace = run_fp(&["--debug", "image", "load", "-i", &p(&archive)], "")?;
    ensure!(
        trace.status.success(),
        "load: {}",
        String::from_utf8_lossy(&trace.stderr)
    );
    let steps: Vec<String> = String::from_utf8_lossy(&trace.stderr)
        .lines()
        .filter_map(|l| l.split_once(" ms  ").map(|(_, s)| s.to_string()))
        .filter(|s| s.starts_with("image load: "))
        .fold(Vec::new(), |mut acc, s| {
            if !acc.contains(&s) {
                acc.push(s);
            }
            acc
        });
    ensure!(steps.len() >= 7, "too few steps in the trace: {steps:?}");
    hull(c, &data, &["image", "prune", "-a"]).ok()?;
    for step in &steps {
        let out = run_fp(&["image", "load", "-i", &p(&archive)], step)?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code().is_none() && err.contains("failpoint"),
            "{step}: hull was not killed there: {:?} {err}",
            out.status
        );
        hull(c, &data, &["image", "prune", "-a"]).ok()?;
        ensure!(
            stored(&data).is_empty(),
            "{step}: prune left {:?}",
            stored(&data)
        );
    }
    load(c, &data, &archive).ok()?;
    hull(c, &data, &["run", "--image", "web", "--name", &c.id()]).ok()?;
    println!(
        "img_crash_walk: {} steps of image load covered",
        steps.len()
    );
    Ok(())
}
