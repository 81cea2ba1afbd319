//! Image tests (hull-only), continued: `commit` of a container to an
//! image, from an image and from an --overlay bundle; an image's
//! ExposedPorts published by -P.

use runtime_tests::ensure;
use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::TestResult;
use serde_json::{json, Value};

use super::images::{load, load_web, one_line_error, stored};
use super::storage::{hull, p};

pub const TESTS: &[Test] = &[
    t("img_commit", Kind::HullOnly, commit),
    t("img_commit_bundle", Kind::HullOnly, commit_bundle),
    t("img_publish_all", Kind::HullOnly, publish_all),
];

/// `commit ID IMAGE`: the container's changes (a new file, a changed one,
/// a deleted one) as a new top layer, `-c` changes in the config, the
/// message in the history; the image runs, and survives save and load.
fn commit(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    load_web(c, &data, json!({"Cmd": ["sh"], "Env": ["PATH=/bin"]}))?;
    let id = c.id();
    let script = "echo changed > /www/index.html; rm /bin/ls; mkdir -p /srv; echo n > /srv/new";
    hull(
        c,
        &data,
        &[
            "run", "--keep", "--image", "web", "--name", &id, "sh", "-c", script,
        ],
    )
    .ok()?;
    let out = hull(
        c,
        &data,
        &["commit", "-m", "the page", "-a", "tester", "-c", r#"CMD ["sh", "-c", "cat /www/index.html /srv/new; ls /bin/ls || echo no-ls; echo $V"]"#, "-c", "ENV V=set", &id, "web:v2"],
    )
    .ok()?;
    let new_id = out.stdout.trim().to_string();
    ensure!(
        new_id.starts_with("sha256:"),
        "commit printed {:?}",
        out.stdout
    );
    let run = hull(c, &data, &["run", "--image", "web:v2", "--name", &c.id()]).ok()?;
    ensure!(
        run.stdout == "changed\nn\nno-ls\nset\n",
        "the committed image: {:?} {}",
        run.stdout,
        run.stderr
    );
    let inspect: Value =
        serde_json::from_str(&hull(c, &data, &["image", "inspect", "web:v2"]).ok()?.stdout)?;
    let layers = inspect[0]["RootFS"]["Layers"]
        .as_array()
        .map_or(0, Vec::len);
    ensure!(layers == 3, "want 3 layers, got {layers}: {inspect}");
    ensure!(
        inspect[0]["Id"] == json!(new_id),
        "inspect's id {} is not commit's {new_id}",
        inspect[0]["Id"]
    );
    // The committed layer is a real tar: saved and loaded elsewhere, it runs.
    let out = c.dir("save")?.join("v2.tar");
    hull(c, &data, &["save", "-o", &p(&out), "web:v2"]).ok()?;
    let data2 = c.dir("data")?;
    load(c, &data2, &out).ok()?;
    let run2 = hull(c, &data2, &["run", "--image", "web:v2", "--name", &c.id()]).ok()?;
    ensure!(
        run2.stdout == run.stdout,
        "after save and load: {:?}",
        run2.stdout
    );
    // The image the container came from is in use until the container goes.
    one_line_error(
        &hull(c, &data, &["rmi", "web"]),
        "rmi of a used image",
        "stopped container",
    )?;
    one_line_error(
        &hull(c, &data, &["commit", "-c", "RUN make", &id, "web:v3"]),
        "a bad change",
        "unsupported instruction",
    )?;
    c.rt.delete(&id).ok()?;
    hull(c, &data, &["rmi", "web", "web:v2"]).ok()?;
    ensure!(stored(&data).is_empty(), "left {:?}", stored(&data));
    Ok(())
}

/// A bundle run with --overlay commits to an image too: its rootfs
/// becomes the base layer, its process the config.
fn commit_bundle(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let mut cfg = runtime_tests::fixture::sh_config("echo x > /new; rm /bin/ls");
    cfg["root"]["path"] = json!(p(c.suite.rootfs()?));
    let b = c.bundle(&cfg)?;
    let id = c.id();
    hull(
        c,
        &data,
        &["run", "--overlay", "--keep", "--bundle", &p(&b), &id],
    )
    .ok()?;
    let out = hull(c, &data, &["commit", &id, "bun:1"]).ok()?;
    ensure!(
        out.stdout.starts_with("sha256:"),
        "commit: {:?}",
        out.stdout
    );
    c.rt.delete(&id).ok()?;
    let run = hull(
        c,
        &data,
        &[
            "run",
            "--image",
            "bun:1",
            "--name",
            &c.id(),
            "sh",
            "-c",
            "cat /new; ls /bin/ls || echo gone; ls /bin/cat",
        ],
    )
    .ok()?;
    ensure!(
        run.stdout == "x\ngone\n/bin/cat\n",
        "run of the committed bundle: {:?}",
        run.stdout
    );
    // Its command is the bundle's.
    let inspect: Value =
        serde_json::from_str(&hull(c, &data, &["image", "inspect", "bun:1"]).ok()?.stdout)?;
    ensure!(
        inspect[0]["Config"]["Cmd"] == cfg["process"]["args"],
        "Cmd {} is not the bundle's",
        inspect[0]["Config"]["Cmd"]
    );
    // The existing layer-directory form stays.
    let id2 = c.id();
    hull(
        c,
        &data,
        &["run", "--overlay", "--keep", "--bundle", &p(&b), &id2],
    )
    .ok()?;
    let dir = c.dir("layer")?.join("l");
    hull(c, &data, &["commit", &id2, &p(&dir)]).ok()?;
    ensure!(dir.join("new").is_file(), "no layer directory written");
    Ok(())
}

/// `-P` publishes the image's ExposedPorts on a free host port (in a
/// network namespace of the test's own).
fn publish_all(c: &Ctx) -> TestResult {
    let t = super::network::topo(c)?;
    let data = c.dir("data")?;
    load_web(
        c,
        &data,
        json!({"Cmd": ["httpd", "-f", "-p", "80", "-h", "/www"], "ExposedPorts": {"80/tcp": {}}}),
    )?;
    let id = c.id();
    let d = p(&data);
    t.hull(
        c,
        &[
            "--data-root",
            &d,
            "create",
            "-P",
            "--image",
            "web",
            "--name",
            &id,
        ],
    )
    .ok()?;
    t.hull(c, &["start", &id]).ok()?;
    let ports = t.hull(c, &["port", &id]).ok()?.stdout;
    let port = ports
        .strip_prefix("80/tcp -> 0.0.0.0:")
        .and_then(|p| p.trim().parse::<u16>().ok());
    let Some(port) = port else {
        runtime_tests::fail!("port {id}: {ports:?}");
    };
    let page = t.get(
        &t.client,
        &format!("http://{}:{port}/", super::network::HOST_IP),
    )?;
    ensure!(page == "<h1>image</h1>\n", "page through -P: {page:?}");
    t.hull(c, &["delete", "--force", &id]).ok()?;
    super::network::nothing_left(&t, &id)?;
    super::network::all_gone(&t)
}
