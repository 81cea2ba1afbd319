//! Docker-style `run`/`create` (hull-only): a command after the id, -e and
//! --env-file, -w, -u from the image's passwd/group, --hostname, -t; an
//! overlay root writable over a read-only bundle; no writes into the
//! bundle's rootfs for a networked container; `volume rm -f` refused while
//! a live container uses the volume.

use std::path::Path;

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::{ensure, Output, TestResult};
use serde_json::json;

use super::network::{all_gone, topo};
use super::storage::{hull, p, setup, snapshot};

pub const TESTS: &[Test] = &[
    t("dr_command_override", Kind::HullOnly, command_override),
    t("dr_env_precedence", Kind::HullOnly, env_precedence),
    t("dr_env_file_bad_line", Kind::HullOnly, env_file_bad_line),
    t("dr_workdir", Kind::HullOnly, workdir),
    t("dr_user_from_image", Kind::HullOnly, user_from_image),
    t("dr_hostname", Kind::HullOnly, hostname),
    t("dr_tty_needs_terminal", Kind::HullOnly, tty_needs_terminal),
    t(
        "dr_overlay_writable_over_readonly",
        Kind::HullOnly,
        overlay_writable_over_readonly,
    ),
    t(
        "dr_net_no_rootfs_writes",
        Kind::HullOnly,
        net_no_rootfs_writes,
    ),
    t(
        "dr_volume_rm_force_live",
        Kind::HullOnly,
        volume_rm_force_live,
    ),
];

/// `run --bundle B FLAGS... ID CMD...` of `cfg` in the foreground.
fn run(c: &Ctx, cfg: &serde_json::Value, flags: &[&str], cmd: &[&str]) -> TestResultOf<Output> {
    let b = c.bundle(cfg)?;
    let id = c.id();
    let b = p(&b);
    let mut args = vec!["run", "--bundle", &b];
    args.extend_from_slice(flags);
    args.push(&id);
    args.extend_from_slice(cmd);
    Ok(c.rt.exec(&args))
}

type TestResultOf<T> = Result<T, runtime_tests::Outcome>;

/// A refusal: exit 1, one line on stderr naming `needle`, no container left.
fn refused(c: &Ctx, out: Output, needle: &str) -> TestResult {
    let out = out.code(1)?.stderr_has(needle)?;
    ensure!(
        out.stderr.trim().lines().count() == 1,
        "not one line: {}",
        out.stderr
    );
    let list = c.rt.exec(&["list", "-q"]).ok()?;
    ensure!(
        !list.stdout.contains(c.name.replace('_', "-").as_str()),
        "a container was left: {}",
        list.stdout
    );
    Ok(())
}

/// The words after the id replace process.args, hyphens and all; `create`
/// records them, so `state` and the started process agree.
fn command_override(c: &Ctx) -> TestResult {
    let cfg = sh_config("echo from-bundle");
    let out = run(c, &cfg, &[], &["echo", "-n", "from", "--flag"])?.ok()?;
    ensure!(out.stdout == "from --flag", "stdout {:?}", out.stdout);
    // Without a command the bundle's stands.
    let out = run(c, &cfg, &[], &[])?.ok()?;
    ensure!(out.stdout == "from-bundle\n", "stdout {:?}", out.stdout);
    let b = c.bundle(&cfg)?;
    let id = c.id();
    c.rt.exec(&["create", "--bundle", &p(&b), &id, "sleep", "30"])
        .ok()?;
    let st = c.rt.state(&id)?;
    let raw = std::fs::read_to_string(c.rt.root.join(&id).join("state.json"))?;
    ensure!(
        raw.contains("\"sleep\"") && raw.contains("\"30\""),
        "state.json does not record the command: {raw}"
    );
    ensure!(st["status"] == "created", "state: {st}");
    c.rt.delete_force(&id).ok()?;
    Ok(())
}

/// Bundle env, then the env files in order, then -e in order: a later entry
/// wins (Docker's order). `-e K` takes hull's own value, or nothing.
fn env_precedence(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("env | sort");
    cfg["process"]["env"].as_array_mut().expect("env").extend([
        json!("A=bundle"),
        json!("B=bundle"),
        json!("C=bundle"),
    ]);
    let dir = c.dir("envfiles")?;
    let (f1, f2) = (dir.join("one.env"), dir.join("two.env"));
    std::fs::write(
        &f1,
        "# comment\n\n  A=file1\nB=file1\nD=spaced value \"kept\"\n",
    )?;
    std::fs::write(&f2, "B=file2\n")?;
    let out = run(
        c,
        &cfg,
        &[
            "--env-file",
            &p(&f1),
            "--env-file",
            &p(&f2),
            "-e",
            "C=flag",
            "--env",
            "B=flag",
            "-e",
            "PATH",
            "-e",
            "HULL_TEST_SURELY_UNSET",
        ],
        &[],
    )?
    .ok()?;
    let s = &out.stdout;
    for want in ["A=file1", "B=flag", "C=flag", "D=spaced value \"kept\""] {
        ensure!(s.lines().any(|l| l == want), "no {want:?} in {s}");
    }
    let host_path = format!("PATH={}", std::env::var("PATH").unwrap_or_default());
    ensure!(
        s.lines().any(|l| l == host_path),
        "-e PATH did not pass hull's PATH: {s}"
    );
    ensure!(!s.contains("HULL_TEST_SURELY_UNSET"), "unset -e kept: {s}");
    Ok(())
}

fn env_file_bad_line(c: &Ctx) -> TestResult {
    let dir = c.dir("envfiles")?;
    let f = dir.join("bad.env");
    std::fs::write(&f, "A=1\n# fine\nNOT VALID=2\n")?;
    let out = run(c, &config(&["true"]), &["--env-file", &p(&f)], &[])?;
    refused(c, out, &format!("{}:3", p(&f)))
}

fn workdir(c: &Ctx) -> TestResult {
    let out = run(c, &sh_config("pwd"), &["-w", "/tmp"], &[])?.ok()?;
    ensure!(out.stdout == "/tmp\n", "pwd: {:?}", out.stdout);
    let out = run(c, &sh_config("pwd"), &["--workdir", "tmp"], &[])?;
    refused(c, out, "absolute")
}

/// -u NAME[:GROUP] looked up in the image's /etc/passwd and /etc/group:
/// primary gid and supplementary groups as Docker sets them, HOME from the
/// entry; an unknown name is a one-line error.
fn user_from_image(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("id -u; id -g; id -G; echo $HOME");
    let root = c.private_rootfs()?;
    cfg["root"]["path"] = json!(p(&root));
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1235:App:/home/app:/bin/sh\n",
    )?;
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\napp:x:1235:\nextra:x:555:root,app\nother:x:777:\n",
    )?;
    let out = run(c, &cfg, &["-u", "app"], &[])?.ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.len() == 4 && lines[0] == "1234" && lines[1] == "1235",
        "-u app: {:?}",
        out.stdout
    );
    ensure!(lines[2].split(' ').any(|g| g == "555"), "groups: {lines:?}");
    ensure!(lines[3] == "/home/app", "HOME: {lines:?}");
    let out = run(c, &cfg, &["--user", "app:other"], &[])?.ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        lines.len() == 4 && lines[0] == "1234" && lines[1] == "777",
        "-u app:other: {:?}",
        out.stdout
    );
    let out = run(c, &cfg, &["-u", "4321:99"], &[])?.ok()?;
    ensure!(
        out.stdout.starts_with("4321\n99\n"),
        "-u 4321:99: {:?}",
        out.stdout
    );
    let out = run(c, &cfg, &["-u", "nosuchuser"], &[])?;
    refused(c, out, "nosuchuser")?;
    let out = run(c, &cfg, &["-u", "app:nosuchgroup"], &[])?;
    refused(c, out, "nosuchgroup")
}

fn hostname(c: &Ctx) -> TestResult {
    let mut cfg = config(&["hostname"]);
    let out = run(c, &cfg, &["--hostname", "dr-host"], &[])?.ok()?;
    ensure!(out.stdout == "dr-host\n", "hostname: {:?}", out.stdout);
    let ns = cfg["linux"]["namespaces"].as_array_mut().expect("ns");
    ns.retain(|n| n["type"] != "uts");
    cfg["hostname"] = json!(null);
    let out = run(c, &cfg, &["--hostname", "dr-host"], &[])?;
    refused(c, out, "UTS namespace")
}

/// A terminal container in the foreground with stdin not a terminal (the
/// suite's is /dev/null) and no console socket: a one-line error, at once,
/// nothing left; --tty=false runs the same bundle without one.
fn tty_needs_terminal(c: &Ctx) -> TestResult {
    let cfg = sh_config("echo ran");
    let out = run(c, &cfg, &["-t"], &[])?;
    refused(c, out, "stdin is not a terminal")?;
    let mut tty_cfg = cfg.clone();
    tty_cfg["process"]["terminal"] = json!(true);
    let out = run(c, &tty_cfg, &[], &[])?;
    refused(c, out, "--tty=false")?;
    let out = run(c, &tty_cfg, &["--tty=false"], &[])?.ok()?;
    ensure!(out.stdout == "ran\n", "stdout {:?}", out.stdout);
    Ok(())
}

/// --overlay over a bundle with root.readonly: the container writes to its
/// upper; --read-only (or the annotation) keeps the root read-only. The
/// bundle's rootfs never changes.
fn overlay_writable_over_readonly(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("touch /dr-new && echo wrote || echo refused");
    cfg["root"]["readonly"] = json!(true);
    let (data, root, b) = setup(c, &mut cfg)?;
    let before = snapshot(&root)?;
    let b = p(&b);
    let go = |flags: &[&str]| -> TestResultOf<String> {
        let id = c.id();
        let mut args = vec!["run", "--bundle", &b];
        args.extend_from_slice(flags);
        args.push(&id);
        Ok(hull(c, &data, &args).ok()?.stdout)
    };
    let out = go(&[])?;
    ensure!(out.starts_with("refused"), "plain readonly root: {out:?}");
    let out = go(&["--overlay"])?;
    ensure!(out == "wrote\n", "--overlay over readonly: {out:?}");
    let out = go(&["--overlay", "--read-only"])?;
    ensure!(out.starts_with("refused"), "--overlay --read-only: {out:?}");
    let out = go(&["--read-only"])?;
    ensure!(out.starts_with("refused"), "--read-only: {out:?}");
    // The annotation asks the same from config.json.
    let mut ann = cfg.clone();
    ann["root"]["readonly"] = json!(false);
    ann["annotations"] = json!({"dev.hull.overlay": "true", "dev.hull.overlay.readonly": "true"});
    let out = hull(
        c,
        &data,
        &["run", "--bundle", &p(&c.bundle(&ann)?), &c.id()],
    )
    .ok()?
    .stdout;
    ensure!(out.starts_with("refused"), "annotation: {out:?}");
    ensure!(snapshot(&root)? == before, "the bundle's rootfs changed");
    Ok(())
}

/// A networked container gets hull's /etc/hosts, /etc/hostname and
/// /etc/resolv.conf bound over the image's; with root.readonly nothing in
/// the bundle's rootfs is written or created, even when a file is missing.
fn net_no_rootfs_writes(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let mut cfg = sh_config(
        "cat /etc/hosts /etc/hostname; echo ---; cat /etc/resolv.conf; echo ---; \
         grep -c ' /etc/' /proc/self/mountinfo",
    );
    cfg["root"]["readonly"] = json!(true);
    let root = c.private_rootfs()?;
    cfg["root"]["path"] = json!(p(&root));
    std::fs::write(root.join("etc/hosts"), "IMAGE-HOSTS\n")?;
    std::fs::write(root.join("etc/hostname"), "IMAGE-HOSTNAME\n")?;
    std::fs::write(root.join("etc/resolv.conf"), "IMAGE-RESOLV\n")?;
    let before = snapshot(&root)?;
    let b = p(&c.bundle(&cfg)?);
    let out = t
        .hull(c, &["run", "--network", "bridge", "--bundle", &b, &c.id()])
        .ok()?;
    let s = &out.stdout;
    ensure!(!s.contains("IMAGE-"), "the image's files show: {s}");
    ensure!(s.contains("\thull-test\n"), "hosts: {s}");
    ensure!(s.lines().any(|l| l == "hull-test"), "hostname: {s}");
    ensure!(s.trim_end().ends_with("---\n3"), "three /etc binds: {s}");
    ensure!(
        !s.split("---")
            .nth(1)
            .unwrap_or("")
            .contains("nameserver 127."),
        "a loopback resolver reached the container: {s}"
    );
    ensure!(snapshot(&root)? == before, "the bundle's rootfs changed");

    // Missing in the image: not created, the container goes without.
    for f in ["hosts", "hostname", "resolv.conf"] {
        std::fs::remove_file(root.join("etc").join(f))?;
    }
    let before = snapshot(&root)?;
    cfg["process"]["args"] = json!(["sh", "-c", "ls /etc"]);
    let b = p(&c.bundle(&cfg)?);
    let out = t
        .hull(c, &["run", "--network", "bridge", "--bundle", &b, &c.id()])
        .ok()?;
    ensure!(!out.stdout.contains("hosts"), "/etc: {}", out.stdout);
    ensure!(
        snapshot(&root)? == before,
        "files were created in the rootfs"
    );
    all_gone(&t)
}

/// `volume rm -f` never takes a volume from under a live container; a
/// stopped, undeleted user blocks plain `rm` but not `rm -f`.
fn volume_rm_force_live(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sleep", "30"]);
    let (data, _root, b) = setup(c, &mut cfg)?;
    let b = p(&b);
    let live = c.id();
    hull(c, &data, &["create", "-v", "vol:/v", "--bundle", &b, &live]).ok()?;
    c.rt.start(&live).ok()?;
    let out = hull(c, &data, &["volume", "rm", "-f", "vol"]);
    let out = out.code(1)?.stderr_has(&live)?;
    ensure!(
        out.stderr.trim().lines().count() == 1,
        "not one line: {}",
        out.stderr
    );
    ensure!(
        Path::new(&data).join("volumes/vol/_data").is_dir(),
        "the data went"
    );
    c.rt.delete_force(&live).ok()?;

    let mut done = sh_config("echo x > /v/f");
    let (_, _, bd) = setup(c, &mut done)?;
    let stopped = c.id();
    hull(
        c,
        &data,
        &[
            "run",
            "--keep",
            "-v",
            "vol:/v",
            "--bundle",
            &p(&bd),
            &stopped,
        ],
    )
    .ok()?;
    hull(c, &data, &["volume", "rm", "vol"])
        .code(1)?
        .stderr_has(&stopped)?;
    hull(c, &data, &["volume", "rm", "-f", "vol"]).ok()?;
    ensure!(
        !Path::new(&data).join("volumes/vol").exists(),
        "rm -f left the volume"
    );
    c.rt.delete_force(&stopped).ok()?;
    Ok(())
}
