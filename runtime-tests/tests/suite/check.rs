//! `hull check` (hull-only): the host report. Every probe gives one line
//! `ok|warn|fail NAME DETAIL`; the exit status is 1 only when a container
//! cannot run. Each test gives hull a private --root and --data-root in its
//! temp dir and checks that the probes leave nothing there, nor any mount.

use std::path::Path;
use std::process::Command;

use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::host_mounts_mentioning;
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::Value;

pub const TESTS: &[Test] = &[
    t("check_host_can_run", Kind::HullOnly, host_can_run),
    t("check_json", Kind::HullOnly, json),
    t("check_readonly_root", Kind::HullOnly, readonly_root),
];

/// One line per probe, in this order.
const PROBES: &[&str] = &[
    "cgroups",
    "namespaces",
    "user namespaces",
    "overlayfs",
    "idmapped mounts",
    "data-root",
    "seccomp",
    "seccomp notify",
    "syscalls",
    "capabilities",
    "nofile",
    "nftables",
    "ip_forward",
    "root",
];

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `hull check` with a private state root and data root (neither exists
/// yet: the probes work in their parent and must not create them).
fn check(c: &Ctx, extra: &[&str]) -> Result<(Output, std::path::PathBuf), Outcome> {
    let dir = c.dir("check")?;
    let (root, data) = (p(&dir.join("state")), p(&dir.join("data")));
    // The runtime wrapper passes the suite's --root first; a global flag
    // given again after the command overrides it.
    let mut args = vec!["--data-root", &data, "check", "--root", &root];
    args.extend_from_slice(extra);
    Ok((c.rt.exec(&args), dir))
}

/// (status, name, detail) of each line of the text report.
fn parse(stdout: &str) -> Result<Vec<(String, String, String)>, Outcome> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        let Some((status, rest)) = line.split_once(' ') else {
            fail!("line without a status: {line:?}");
        };
        ensure!(
            ["ok", "warn", "fail"].contains(&status),
            "line does not start with ok/warn/fail: {line:?}"
        );
        let rest = rest.trim_start();
        let Some(name) = PROBES
            .iter()
            .filter(|n| rest.starts_with(&format!("{n} ")))
            .max_by_key(|n| n.len())
        else {
            fail!("line names no known probe: {line:?}");
        };
        let detail = rest[name.len()..].trim().to_string();
        out.push((status.to_string(), name.to_string(), detail));
    }
    Ok(out)
}

/// What /sys/fs/cgroup is, read from the mount table: cgroup2 there is v2;
/// cgroup v1 hierarchies beside a cgroup2 mount are hybrid; else v1.
fn cgroup_mode() -> &'static str {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let types: Vec<(&str, &str)> = info
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((*f.get(4)?, *f.get(sep + 1)?))
        })
        .collect();
    if types
        .iter()
        .any(|(m, t)| *m == "/sys/fs/cgroup" && *t == "cgroup2")
    {
        "v2"
    } else if types.iter().any(|(_, t)| *t == "cgroup")
        && types.iter().any(|(_, t)| *t == "cgroup2")
    {
        "hybrid"
    } else {
        "v1"
    }
}

/// The probes left no file in `dir` (their temp dirs are made there) and
/// no mount anywhere.
fn nothing_left(dir: &Path) -> TestResult {
    let left: Vec<String> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ensure!(left.is_empty(), "check left {left:?} in {}", dir.display());
    let mounts = host_mounts_mentioning(".hull-check");
    ensure!(
        mounts.is_empty(),
        "check left mounts: {}",
        mounts.join(" | ")
    );
    Ok(())
}

fn host_can_run(c: &Ctx) -> TestResult {
    let (out, dir) = check(c, &[])?;
    let out = out.ok()?;
    let lines = parse(&out.stdout)?;
    let names: Vec<&str> = lines.iter().map(|(_, n, _)| n.as_str()).collect();
    ensure!(
        names == PROBES,
        "expected one line per probe {PROBES:?}, got {names:?}"
    );
    if let Some((_, name, detail)) = lines.iter().find(|(s, _, _)| s == "fail") {
        fail!("exit 0 with a failed probe: {name} {detail}");
    }
    let (_, _, cgroups) = &lines[0];
    let mode = cgroup_mode();
    ensure!(
        cgroups.starts_with(mode),
        "cgroups line {cgroups:?} does not say {mode:?} (what /sys/fs/cgroup is)"
    );
    // The private root and data root do not exist: both are probed on the
    // filesystem they would be created on.
    for (name, what) in [("root", "state"), ("data-root", "data")] {
        let (_, _, detail) = lines.iter().find(|(_, n, _)| n == name).expect("listed");
        ensure!(
            detail.contains(&p(&dir.join(what))) && detail.contains("created on first use"),
            "{name} line: {detail:?}"
        );
    }
    nothing_left(&dir)
}

fn json(c: &Ctx) -> TestResult {
    let (out, dir) = check(c, &["--format", "json"])?;
    let out = out.ok()?;
    let doc: Value = serde_json::from_str(&out.stdout)?;
    ensure!(doc["canRun"] == Value::Bool(true), "canRun: {doc}");
    let checks = doc["checks"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    ensure!(names == PROBES, "names {names:?}");
    for c in &checks {
        let status = c["status"].as_str().unwrap_or("");
        ensure!(["ok", "warn"].contains(&status), "status of {c}");
        ensure!(
            (status == "ok") == c.get("fix").is_none(),
            "a warning carries its fix, an ok none: {c}"
        );
    }
    nothing_left(&dir)
}

/// A --root on a read-only filesystem (a tmpfs mounted read-only in a
/// mount namespace of the test's own, gone when the command ends) is a
/// `fail` line and exit status 1.
fn readonly_root(c: &Ctx) -> TestResult {
    let dir = c.dir("check")?;
    let ro = dir.join("ro");
    std::fs::create_dir(&ro)?;
    let script =
        r#"mount -t tmpfs -o ro tmpfs "$1" && exec "$2" --root "$1/state" --data-root "$3" check"#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(&ro)
        .arg(&c.rt.bin)
        .arg(dir.join("data"))
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(1),
        "exit {:?}, expected 1; stdout: {stdout}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = parse(&stdout)?;
    let root = lines.iter().find(|(_, n, _)| n == "root");
    match root {
        Some((s, _, detail)) if s == "fail" && detail.contains("EROFS") => {}
        other => fail!("expected a failed root line naming EROFS, got {other:?}"),
    }
    let failed: Vec<&str> = lines
        .iter()
        .filter(|(s, _, _)| s == "fail")
        .map(|(_, n, _)| n.as_str())
        .collect();
    ensure!(failed == ["root"], "only root fails, got {failed:?}");
    std::fs::remove_dir(&ro)?;
    nothing_left(&dir)
}
