//! Docker's ways with containers, hull only: `ps` without an id (the
//! container table), `rm`, `prune`, and `delete`/`kill -s` of several ids.
//! The suite's --root is shared with tests running alongside: table tests
//! filter on their own ids, and `prune` runs under a private --root.

use std::path::{Path, PathBuf};

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::Runtime;
use runtime_tests::util::pid_alive;
use runtime_tests::{ensure, Outcome, Output, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("dp_ps_table", Kind::HullOnly, ps_table),
    t("dp_ps_all", Kind::HullOnly, ps_all),
    t("dp_ps_quiet_no_trunc", Kind::HullOnly, ps_quiet_no_trunc),
    t("dp_ps_filters", Kind::HullOnly, ps_filters),
    t("dp_ps_json", Kind::HullOnly, ps_json),
    t("dp_ps_id_stays_runc", Kind::HullOnly, ps_id_stays_runc),
    t("dp_rm_several", Kind::HullOnly, rm_several),
    t("dp_rm_force_running", Kind::HullOnly, rm_force_running),
    t(
        "dp_rm_anonymous_volume",
        Kind::HullOnly,
        rm_anonymous_volume,
    ),
    t("dp_prune", Kind::HullOnly, prune),
    t("dp_delete_several", Kind::HullOnly, delete_several),
    t("dp_kill_several", Kind::HullOnly, kill_several),
];

// ---------------------------------------------------------------------------------------
// helpers

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A bundle running `sleep 600` on a private copy of the rootfs (volume
/// mounts make their mount points there).
fn private_bundle(c: &Ctx) -> Result<PathBuf, Outcome> {
    let mut cfg = config(&["sleep", "600"]);
    cfg["root"]["path"] = json!(p(&c.private_rootfs()?));
    c.bundle(&cfg)
}

/// A running `sleep 600` (create + start) in the suite's root.
fn sleeper(c: &Ctx) -> Result<String, Outcome> {
    Ok(c.start_cfg(&config(&["sleep", "600"]))?.0)
}

/// A container that ran and was killed: status "stopped".
fn stopped(c: &Ctx) -> Result<String, Outcome> {
    let id = sleeper(c)?;
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    Ok(id)
}

/// `ps ARGS... --filter name=NAME`: only this test's containers.
fn ps(c: &Ctx, name: &str, args: &[&str]) -> Result<String, Outcome> {
    let filter = format!("name={name}");
    let mut all = vec!["ps"];
    all.extend_from_slice(args);
    all.extend(["--filter", &filter]);
    Ok(c.rt.exec(&all).ok()?.stdout)
}

/// The data rows of a table (header dropped).
fn rows(table: &str) -> Vec<&str> {
    table.lines().skip(1).collect()
}

/// The prefix every id of this test shares (`rt-<test>-<pid>-`).
fn id_prefix(id: &str) -> String {
    let cut = id.rfind('-').expect("ids end in -N");
    id[..=cut].to_string()
}

// ---------------------------------------------------------------------------------------
// ps

fn ps_table(c: &Ctx) -> TestResult {
    let id = sleeper(c)?;
    let out = ps(c, &id, &[])?;
    let header = out.lines().next().unwrap_or("");
    let cols: Vec<&str> = header
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    ensure!(
        cols == [
            "CONTAINER ID",
            "BUNDLE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ],
        "header: {header:?}"
    );
    let found = rows(&out);
    ensure!(found.len() == 1, "one row wanted: {out}");
    let row = found[0];
    ensure!(
        row.starts_with(&format!("{}   ", &id[..12])),
        "id cell: {row:?}"
    );
    ensure!(row.ends_with(&id), "names cell: {row:?}");
    ensure!(row.contains("\"sleep 600\""), "command cell: {row:?}");
    ensure!(row.contains(" ago   Up "), "created/status cells: {row:?}");
    // Each cell starts where its header does.
    let at = |s: &str, needle: &str| s.find(needle).unwrap_or(usize::MAX);
    ensure!(
        at(header, "STATUS") == at(row, "Up "),
        "STATUS column not aligned:\n{out}"
    );
    // A created container is listed too, as Created.
    let b = c.bundle(&config(&["sleep", "600"]))?;
    let created = c.id();
    c.rt.create(&created, &b).ok()?;
    let out = ps(c, &created, &[])?;
    ensure!(
        rows(&out).len() == 1 && rows(&out)[0].contains("   Created   "),
        "created container: {out}"
    );
    Ok(())
}

fn ps_all(c: &Ctx) -> TestResult {
    let id = stopped(c)?;
    let out = ps(c, &id, &[])?;
    ensure!(rows(&out).is_empty(), "stopped container without -a: {out}");
    let out = ps(c, &id, &["-a"])?;
    let rows = rows(&out);
    ensure!(
        rows.len() == 1 && rows[0].ends_with(&id),
        "stopped container with -a: {out}"
    );
    // Nobody recorded the exit of a create/start container.
    ensure!(rows[0].contains("Exited (unknown)"), "status: {out}");
    Ok(())
}

fn ps_quiet_no_trunc(c: &Ctx) -> TestResult {
    let script = "while true; do sleep 1; done";
    let (id, _) = c.start_cfg(&config(&["sh", "-c", script]))?;
    let out = ps(c, &id, &["-q"])?;
    ensure!(out == format!("{id}\n"), "-q: {out:?}");
    let out = ps(c, &id, &[])?;
    ensure!(
        out.contains("\"sh -c while true; d…\""),
        "command not cut to 20 characters: {out}"
    );
    let out = ps(c, &id, &["--no-trunc"])?;
    let row = rows(&out).first().copied().unwrap_or("");
    ensure!(
        row.starts_with(&format!("{id}   ")),
        "--no-trunc id: {row:?}"
    );
    ensure!(
        row.contains(&format!("\"sh -c {script}\"")),
        "--no-trunc command: {row:?}"
    );
    Ok(())
}

fn ps_filters(c: &Ctx) -> TestResult {
    let up = sleeper(c)?;
    let down = stopped(c)?;
    let prefix = id_prefix(&up);
    ensure!(down.starts_with(&prefix), "ids {up} {down}");
    let exited = ps(c, &prefix, &["-q", "--filter", "status=exited"])?;
    ensure!(exited == format!("{down}\n"), "status=exited: {exited:?}");
    let running = ps(c, &prefix, &["-q", "-a", "--filter", "status=running"])?;
    ensure!(running == format!("{up}\n"), "status=running: {running:?}");
    // Newest first, as Docker lists them.
    let both = ps(c, &prefix, &["-q", "-a"])?;
    ensure!(
        both == format!("{down}\n{up}\n"),
        "name={prefix} -a: {both:?}"
    );
    let none = ps(c, &format!("{up}-nomatch"), &["-q", "-a"])?;
    ensure!(none.is_empty(), "name filter let through: {none:?}");
    c.rt.exec(&["ps", "--filter", "status=gone"])
        .failed()?
        .stderr_has("--filter")?;
    Ok(())
}

fn ps_json(c: &Ctx) -> TestResult {
    let up = sleeper(c)?;
    let down = stopped(c)?;
    let out = ps(c, &id_prefix(&up), &["-a", "--format", "json"])?;
    let objs: Vec<Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| Outcome::Fail(format!("not JSON lines ({e}): {out}")))?;
    ensure!(objs.len() == 2, "two objects wanted: {out}");
    let by_name = |n: &str| objs.iter().find(|o| o["Names"] == n).cloned();
    let (Some(a), Some(b)) = (by_name(&up), by_name(&down)) else {
        return Err(Outcome::Fail(format!("names missing: {out}")));
    };
    for key in [
        "ID",
        "Names",
        "Command",
        "CreatedAt",
        "Status",
        "State",
        "Ports",
        "Bundle",
    ] {
        ensure!(a[key].is_string(), "key {key} missing: {a}");
    }
    ensure!(a["State"] == "running" && b["State"] == "exited", "{out}");
    ensure!(a["ID"] == json!(&up[..12]), "ID: {a}");
    ensure!(a["Command"] == "\"sleep 600\"", "Command: {a}");
    Ok(())
}

/// With an id, `ps` is runc's: a pid array for json, ps(1) rows otherwise,
/// and what follows the id goes to ps(1) (`-a` included).
fn ps_id_stays_runc(c: &Ctx) -> TestResult {
    let id = sleeper(c)?;
    let pid = c.rt.pid(&id)?;
    let out = c.rt.exec(&["ps", "--format", "json", &id]).ok()?.stdout;
    ensure!(
        out.trim() == format!("[{pid}]"),
        "ps --format json ID: {out:?}"
    );
    let out = c.rt.exec(&["ps", &id, "-o", "pid,comm"]).ok()?.stdout;
    ensure!(
        out.lines().any(|l| l.trim() == format!("{pid} sleep")),
        "ps ID -o pid,comm: {out:?}"
    );
    // ps -a has no UID column (and exits 1 when no process has a tty);
    // -ef, what an eaten -a would leave, has one.
    let out = c.rt.exec(&["ps", &id, "-a"]);
    let header = out.stdout.lines().next().unwrap_or("");
    ensure!(
        (out.code == 0 && header.contains("PID") && !header.contains("UID"))
            || (out.code == 1 && out.stderr.contains("run ps")),
        "ps ID -a did not reach ps(1): {out:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// rm, prune, several ids

fn rm_several(c: &Ctx) -> TestResult {
    let a = stopped(c)?;
    let b = stopped(c)?;
    let bad = format!("{a}-nosuch");
    let out = c.rt.exec(&["rm", &a, &bad, &b]).code(1)?;
    ensure!(
        out.stdout == format!("{a}\n{b}\n"),
        "removed ids: {:?}",
        out.stdout
    );
    let errs: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    ensure!(
        errs.len() == 1 && errs[0].contains(&bad) && errs[0].contains("does not exist"),
        "one error line wanted: {:?}",
        out.stderr
    );
    ensure!(c.rt.is_gone(&a) && c.rt.is_gone(&b), "containers left");
    Ok(())
}

fn rm_force_running(c: &Ctx) -> TestResult {
    let id = sleeper(c)?;
    let pid = c.rt.pid(&id)?;
    c.rt.exec(&["rm", &id])
        .failed()?
        .stderr_has("not stopped")?;
    ensure!(pid_alive(pid), "rm without -f killed the container");
    let out = c.rt.exec(&["rm", "-f", &id]).ok()?;
    ensure!(out.stdout == format!("{id}\n"), "rm -f: {:?}", out.stdout);
    ensure!(c.rt.is_gone(&id), "container left");
    ensure!(!pid_alive(pid), "init {pid} still alive");
    Ok(())
}

/// `-v /cache` makes an anonymous volume; `rm -v` removes it with the
/// container, plain `rm` keeps it.
fn rm_anonymous_volume(c: &Ctx) -> TestResult {
    let data = c.dir("data")?;
    let d = p(&data);
    let b = private_bundle(c)?;
    let run = |id: &str| -> TestResult {
        c.rt.exec(&[
            "--data-root",
            &d,
            "create",
            "-v",
            "/cache",
            "--bundle",
            &p(&b),
            id,
        ])
        .ok()?;
        c.rt.start(id).ok()?;
        Ok(())
    };
    let volumes = || -> Result<Vec<String>, Outcome> {
        let out = c.rt.exec(&["--data-root", &d, "volume", "ls", "-q"]).ok()?;
        Ok(out.stdout.lines().map(String::from).collect())
    };
    let kept = c.id();
    run(&kept)?;
    let first = volumes()?;
    ensure!(first.len() == 1, "one anonymous volume wanted: {first:?}");
    c.rt.exec(&["--data-root", &d, "rm", "-f", &kept]).ok()?;
    ensure!(volumes()? == first, "plain rm removed the volume");

    let gone = c.id();
    run(&gone)?;
    let both = volumes()?;
    ensure!(
        both.len() == 2,
        "a second anonymous volume wanted: {both:?}"
    );
    c.rt.exec(&["--data-root", &d, "rm", "-f", "-v", &gone])
        .ok()?;
    ensure!(volumes()? == first, "rm -v left {:?}", volumes()?);
    Ok(())
}

/// A runtime on a private --root: prune removes every stopped container
/// there, which must not reach the shared root's.
fn private_runtime(c: &Ctx) -> Result<(Runtime, PathBuf), Outcome> {
    let root = c.dir("roots")?;
    let rt = Runtime::new(c.rt.bin.clone(), root.clone(), c.dir("io")?);
    Ok((rt, root))
}

fn prune(c: &Ctx) -> TestResult {
    let (rt, root) = private_runtime(c)?;
    let data = c.dir("data")?;
    let d = p(&data);
    let b = private_bundle(c)?;
    let ids = [c.id(), c.id(), c.id()];
    {
        let (root, bin, ids) = (root.clone(), c.rt.bin.clone(), ids.clone());
        c.on_cleanup(move || {
            for id in &ids {
                let _ = std::process::Command::new(&bin)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .output();
            }
        });
    }
    for id in &ids {
        rt.exec(&[
            "--data-root",
            &d,
            "create",
            "-v",
            "kept:/kept",
            "--bundle",
            &p(&b),
            id,
        ])
        .ok()?;
        rt.start(id).ok()?;
    }
    rt.exec(&["--data-root", &d, "volume", "create", "unused"])
        .ok()?;
    for id in &ids[1..] {
        rt.kill(id, "KILL").ok()?;
        rt.wait_status(id, "stopped")?;
    }
    let out: Output = rt.exec(&["--data-root", &d, "prune", "--volumes"]).ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut removed: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| ids.iter().any(|i| i == l))
        .collect();
    removed.sort();
    ensure!(removed == [&ids[1], &ids[2]], "pruned: {}", out.stdout);
    ensure!(
        out.stdout.contains("Total reclaimed: 2 containers"),
        "total: {}",
        out.stdout
    );
    ensure!(
        lines.contains(&"unused"),
        "unused volume not pruned: {}",
        out.stdout
    );
    ensure!(
        !lines.contains(&"kept"),
        "volume in use pruned: {}",
        out.stdout
    );
    ensure!(
        rt.status(&ids[0])? == "running",
        "running container touched"
    );
    ensure!(
        rt.is_gone(&ids[1]) && rt.is_gone(&ids[2]),
        "stopped ones left"
    );
    rt.exec(&["delete", "--force", &ids[0]]).ok()?;
    Ok(())
}

fn delete_several(c: &Ctx) -> TestResult {
    let a = stopped(c)?;
    let b = stopped(c)?;
    c.rt.exec(&["delete", &a, &b]).ok()?;
    ensure!(c.rt.is_gone(&a) && c.rt.is_gone(&b), "delete a b left some");
    // One refused (running), the other still goes; exit 1.
    let up = sleeper(c)?;
    let down = stopped(c)?;
    let out = c.rt.exec(&["delete", &up, &down]).code(1)?;
    ensure!(out.stderr.contains("not stopped"), "stderr: {}", out.stderr);
    ensure!(c.rt.is_gone(&down), "the stopped one was not deleted");
    ensure!(
        c.rt.status(&up)? == "running",
        "the running one was touched"
    );
    c.rt.exec(&["delete", "--force", &up, &down]).ok()?;
    ensure!(c.rt.is_gone(&up), "delete --force a b left the running one");
    Ok(())
}

fn kill_several(c: &Ctx) -> TestResult {
    let ids = [sleeper(c)?, sleeper(c)?, sleeper(c)?];
    // Without -s, two positionals stay runc's ID SIGNAL; three are refused.
    c.rt.exec(&["kill", &ids[0], &ids[1], &ids[2]])
        .failed()?
        .stderr_has("-s")?;
    for id in &ids {
        ensure!(c.rt.status(id)? == "running", "{id} hit by a refused kill");
    }
    c.rt.exec(&["kill", "-s", "KILL", &ids[0], &ids[1]]).ok()?;
    for id in &ids[..2] {
        c.rt.wait_status(id, "stopped")?;
    }
    ensure!(c.rt.status(&ids[2])? == "running", "third container killed");
    c.rt.exec(&["kill", &ids[2], "KILL"]).ok()?;
    c.rt.wait_status(&ids[2], "stopped")?;
    Ok(())
}
