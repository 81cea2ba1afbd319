//! Registry tests (hull-only): a real registry (Debian's `docker-registry`,
//! the distribution registry 2.8) started by the test on 127.0.0.1 with TLS
//! from a CA the test makes and htpasswd basic auth; `login`, `push` of an
//! image hull loaded, `rmi`, `pull` back, run; a pull interrupted after a
//! blob goes on from there; a registry that answers 500 or 404, and wrong
//! credentials, are one error line each. Stopped by PID.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{sh, wait_until};
use runtime_tests::{ensure, Outcome, TestResult};
use serde_json::json;

use super::images::{load_web, one_line_error, stored};
use super::storage::{hull, p};

pub const TESTS: &[Test] = &[
    t("img_registry_push_pull", Kind::HullOnly, push_pull),
    t("img_registry_errors", Kind::HullOnly, errors),
    t("img_readme_flow", Kind::HullOnly, readme_flow),
];

/// A registry of the test's own: its address, CA and credentials file.
struct Registry {
    addr: String,
    ca: PathBuf,
    authfile: PathBuf,
}

fn free_port() -> Result<u16, Outcome> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_registry(c: &Ctx) -> Result<Registry, Outcome> {
    for tool in ["docker-registry", "openssl", "htpasswd"] {
        if sh("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            return Err(Outcome::Skip(format!(
                "{tool} is not installed (make deps)"
            )));
        }
    }
    let dir = c.dir("registry")?;
    let d = |n: &str| p(&dir.join(n));
    // A CA, and a server certificate it signs for 127.0.0.1 (a self-signed
    // leaf is not a CA a verifier may trust).
    sh(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &d("ca.key"),
            "-out",
            &d("ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=hull-test-ca",
        ],
    )?;
    sh(
        "openssl",
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &d("key.pem"),
            "-out",
            &d("srv.csr"),
            "-subj",
            "/CN=localhost",
        ],
    )?;
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )?;
    sh(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &d("srv.csr"),
            "-CA",
            &d("ca.pem"),
            "-CAkey",
            &d("ca.key"),
            "-CAcreateserial",
            "-out",
            &d("cert.pem"),
            "-days",
            "2",
            "-extfile",
            &d("ext.cnf"),
        ],
    )?;
    let htpasswd = sh("htpasswd", &["-Bbn", "tester", "s3cret"])?;
    std::fs::write(dir.join("htpasswd"), htpasswd)?;
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n  secret: hull-test\n  tls:\n    certificate: {}\n    key: {}\n\
             auth:\n  htpasswd:\n    realm: hull-test\n    path: {}\n",
            d("data"),
            d("cert.pem"),
            d("key.pem"),
            d("htpasswd")
        ),
    )?;
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("registry.log"))?)
        .stderr(std::fs::File::create(dir.join("registry.err"))?)
        .spawn()?;
    let pid = child.id();
    let ready = wait_until("the registry to listen", Duration::from_secs(20), || {
        TcpStream::connect(&addr).is_ok() || child.try_wait().ok().flatten().is_some()
    });
    c.on_cleanup(move || {
        // By its PID, never by name.
        let _ = runtime_tests::util::signal(pid as i32, libc::SIGKILL);
        let _ = child.wait();
    });
    ready?;
    ensure!(
        TcpStream::connect(&addr).is_ok(),
        "the registry exited: {}",
        std::fs::read_to_string(dir.join("registry.err")).unwrap_or_default()
    );
    Ok(Registry {
        addr,
        ca: dir.join("ca.pem"),
        authfile: dir.join("auth.json"),
    })
}

impl Registry {
    /// `hull --data-root DATA CMD --tls-ca CA --authfile F ARGS...`.
    fn hull(&self, c: &Ctx, data: &Path, cmd: &str, args: &[&str]) -> runtime_tests::Output {
        let (ca, auth) = (p(&self.ca), p(&self.authfile));
        let mut all = vec![cmd, "--tls-ca", &ca, "--authfile", &auth];
        all.extend_from_slice(args);
        hull(c, data, &all)
    }
}

/// login, push, rmi, pull, run; a second pull downloads nothing.
fn push_pull(c: &Ctx) -> TestResult {
    let reg = start_registry(c)?;
    let data = c.dir("data")?;
    load_web(c, &data, json!({"Cmd": ["cat", "/www/index.html"]}))?;
    let name = format!("{}/team/web:1", reg.addr);
    hull(c, &data, &["tag", "web", &name]).ok()?;
    one_line_error(
        &reg.hull(c, &data, "push", &[&name]),
        "push before login",
        "hull login",
    )?;
    one_line_error(
        &reg.hull(
            c,
            &data,
            "login",
            &["-u", "tester", "-p", "wrong", &reg.addr],
        ),
        "login with a wrong password",
        "HTTP 401",
    )?;
    ensure!(!reg.authfile.exists(), "a refused login was kept");
    let out = reg
        .hull(
            c,
            &data,
            "login",
            &["-u", "tester", "-p", "s3cret", &reg.addr],
        )
        .ok()?;
    ensure!(out.stdout == "Login Succeeded\n", "login: {:?}", out.stdout);
    let mode = std::fs::metadata(&reg.authfile)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "credentials file mode {mode:o}");
    let out = reg.hull(c, &data, "push", &[&name]).ok()?;
    ensure!(
        out.stdout.matches(": pushed").count() == 3,
        "push: {:?}",
        out.stdout
    );
    let again = reg.hull(c, &data, "push", &[&name]).ok()?;
    ensure!(
        again.stdout.matches("already exists").count() == 3,
        "a second push uploaded again: {:?}",
        again.stdout
    );
    hull(c, &data, &["rmi", "web", &name]).ok()?;
    ensure!(stored(&data).is_empty(), "rmi left {:?}", stored(&data));
    let out = reg.hull(c, &data, "pull", &[&name]).ok()?;
    ensure!(
        out.stdout.contains("Status: Downloaded newer image for"),
        "pull: {:?}",
        out.stdout
    );
    let run = hull(c, &data, &["run", "--image", &name, "--name", &c.id()]).ok()?;
    ensure!(
        run.stdout == "<h1>image</h1>\n",
        "run of the pulled image: {:?}",
        run.stdout
    );
    let out = reg.hull(c, &data, "pull", &[&name]).ok()?;
    ensure!(
        out.stdout.contains("Image is up to date") && !out.stdout.contains(": pulled"),
        "a second pull downloaded: {:?}",
        out.stdout
    );
    // Interrupted after its first blob (the failpoints build), a pull goes
    // on from there.
    if let Ok(fp) = super::faults::failpoints_bin() {
        hull(c, &data, &["rmi", &name]).ok()?;
        let (ca, auth) = (p(&reg.ca), p(&reg.authfile));
        let killed = Command::new(&fp)
            .args([
                "--data-root",
                &p(&data),
                "pull",
                "--tls-ca",
                &ca,
                "--authfile",
                &auth,
                &name,
            ])
            .env("HULL_FAILPOINT", "pull: blob stored")
            .stdin(Stdio::null())
            .output()?;
        ensure!(
            killed.status.code().is_none(),
            "the pull was not killed: {killed:?}"
        );
        let out = reg.hull(c, &data, "pull", &[&name]).ok()?;
        ensure!(
            out.stdout.matches("already exists").count() == 1
                && out.stdout.matches(": pulled").count() == 2,
            "the pull did not go on from the blob it had: {:?}",
            out.stdout
        );
    }
    let out = hull(
        c,
        &data,
        &["logout", "--authfile", &p(&reg.authfile), &reg.addr],
    )
    .ok()?;
    ensure!(
        out.stdout.starts_with("Removed login credentials"),
        "logout: {:?}",
        out.stdout
    );
    Ok(())
}

/// A registry that answers 500; a tag that does not exist; a name with no
/// registry listening. One line each, exit 1, nothing stored.
fn errors(c: &Ctx) -> TestResult {
    let reg = start_registry(c)?;
    let data = c.dir("data")?;
    reg.hull(
        c,
        &data,
        "login",
        &["-u", "tester", "-p", "s3cret", &reg.addr],
    )
    .ok()?;
    let missing = format!("{}/team/nosuch:1", reg.addr);
    one_line_error(
        &reg.hull(c, &data, "pull", &[&missing]),
        "pull of a missing tag",
        "HTTP 404",
    )?;
    // A server that fails every request.
    let broken = TcpListener::bind("127.0.0.1:0")?;
    let port = broken.local_addr()?.port();
    let server = std::thread::spawn(move || {
        for stream in broken.incoming().take(4) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.read(&mut buf);
            let body = r#"{"errors":[{"code":"UNKNOWN","message":"storage broke"}]}"#;
            let _ = write!(s, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    let out = hull(
        c,
        &data,
        &[
            "pull",
            "--insecure",
            "--authfile",
            &p(&reg.authfile),
            &format!("127.0.0.1:{port}/x:1"),
        ],
    );
    one_line_error(
        &out,
        "a registry that answers 500",
        "HTTP 500: storage broke",
    )?;
    // Wake the server's accept loop so its thread ends.
    for _ in 0..4 {
        let _ = TcpStream::connect(("127.0.0.1", port));
    }
    let _ = server.join();
    let closed = free_port()?;
    one_line_error(
        &hull(
            c,
            &data,
            &[
                "pull",
                "--authfile",
                &p(&reg.authfile),
                &format!("127.0.0.1:{closed}/x:1"),
            ],
        ),
        "a registry not listening",
        "connect to 127.0.0.1",
    )?;
    ensure!(
        stored(&data).is_empty(),
        "errors stored {:?}",
        stored(&data)
    );
    Ok(())
}

/// The README's walk, in one test: the image `make image-web` writes
/// (bundles/images/make-web.sh), loaded; `run -d -p 8080:80 --image web`
/// (in a network namespace of the test's own); the page; a change
/// committed; pushed to the registry; everything removed; pulled back; run
/// again, serving the changed page.
fn readme_flow(c: &Ctx) -> TestResult {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bundles/images/make-web.sh");
    if !script.is_file() {
        return Err(Outcome::Skip("no bundles/images/make-web.sh here".into()));
    }
    let reg = start_registry(c)?;
    let t = super::network::topo(c)?;
    let data = c.dir("data")?;
    let d = p(&data);
    let tar = c.dir("img")?.join("web.tar");
    sh("bash", &[&p(&script), &p(c.suite.rootfs()?), &p(&tar)])?;
    hull(c, &data, &["image", "load", "-i", &p(&tar)]).ok()?;
    let url = format!("http://{}:8080/", super::network::HOST_IP);

    let id = c.id();
    t.hull(
        c,
        &[
            "--data-root",
            &d,
            "run",
            "-d",
            "-p",
            "8080:80",
            "--image",
            "web",
            "--name",
            &id,
        ],
    )
    .ok()?;
    let page = t.get(&t.client, &url)?;
    ensure!(
        page == "<h1>Hello from a hull image</h1>\n",
        "the image's page: {page:?}"
    );
    t.hull(
        c,
        &[
            "exec",
            &id,
            "sh",
            "-c",
            "echo '<h1>changed</h1>' > /www/index.html",
        ],
    )
    .ok()?;
    hull(c, &data, &["commit", "-m", "a new page", &id, "web:2"]).ok()?;

    let remote = format!("{}/demo/web:2", reg.addr);
    hull(c, &data, &["tag", "web:2", &remote]).ok()?;
    reg.hull(
        c,
        &data,
        "login",
        &["-u", "tester", "-p", "s3cret", &reg.addr],
    )
    .ok()?;
    reg.hull(c, &data, "push", &[&remote]).ok()?;
    t.hull(c, &["rm", "-f", &id]).ok()?;
    hull(c, &data, &["rmi", "web", "web:2", &remote]).ok()?;
    ensure!(stored(&data).is_empty(), "rmi left {:?}", stored(&data));

    reg.hull(c, &data, "pull", &[&remote]).ok()?;
    let id2 = c.id();
    t.hull(
        c,
        &[
            "--data-root",
            &d,
            "run",
            "-d",
            "-p",
            "8080:80",
            "--image",
            &remote,
            "--name",
            &id2,
        ],
    )
    .ok()?;
    let page = t.get(&t.client, &url)?;
    ensure!(
        page == "<h1>changed</h1>\n",
        "the pulled image's page: {page:?}"
    );
    t.hull(c, &["rm", "-f", &id2]).ok()?;
    hull(c, &data, &["rmi", &remote]).ok()?;
    ensure!(stored(&data).is_empty(), "left {:?}", stored(&data));
    super::network::all_gone(&t)
}
