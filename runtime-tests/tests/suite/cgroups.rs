//! cgroups tests of the black-box suite: placement, resources (memory, pids,
//! cpu, cpuset, devices), pause/resume, update, ps, events, kill/delete
//! through the cgroup. They hold on v1, hybrid and v2 hosts: files are found
//! through /proc/PID/cgroup, never by assuming a layout.

use std::path::PathBuf;
use std::time::Duration;

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{cgroups_matching, pid_alive, wait_file_contains, wait_until};
use runtime_tests::{ensure, fail, Outcome, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("cg_placement", Kind::Oci, cg_placement),
    t("cg_relative_path", Kind::Oci, cg_relative_path),
    t("cg_memory_oom", Kind::Oci, cg_memory_oom),
    t(
        "cg_oom_events_and_state",
        Kind::Oci,
        cg_oom_events_and_state,
    ),
    t("cg_pids_limit", Kind::Oci, cg_pids_limit),
    t("cg_cpu_quota", Kind::Oci, cg_cpu_quota),
    t("cg_cpuset", Kind::Oci, cg_cpuset),
    t("cg_devices_denied", Kind::Oci, cg_devices_denied),
    t("cg_pause_resume", Kind::Oci, cg_pause_resume),
    t("cg_update", Kind::Oci, cg_update),
    t("cg_ps", Kind::Oci, cg_ps),
    t("cg_events_stats", Kind::Oci, cg_events_stats),
    t(
        "cg_delete_force_kills_all",
        Kind::Oci,
        cg_delete_force_kills_all,
    ),
    t("cg_kill_all", Kind::Oci, cg_kill_all),
    t("cg_bad_value", Kind::Oci, cg_bad_value),
    t("cg_exec_joins", Kind::Oci, cg_exec_joins),
    t("cg_systemd_path", Kind::HullOnly, cg_systemd_path),
];

/// The host file `file` of the cgroup of `pid` that holds `controller`:
/// its v1 hierarchy if it has one, else the cgroup2 one.
pub fn cg_file(pid: i32, controller: &str, file: &str) -> Result<PathBuf, Outcome> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let mut v2 = None;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        let rel = path.trim_start_matches('/');
        if ctrls.split(',').any(|c| c == controller) {
            // cpu and cpuacct may be one mount "cpu,cpuacct": "cpu" is a symlink then.
            return Ok(PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(rel)
                .join(file));
        }
        if ctrls.is_empty() {
            v2 = Some(rel.to_string());
        }
    }
    let rel = v2.ok_or_else(|| Outcome::Fail(format!("no cgroup of {pid} holds {controller}")))?;
    let unified = PathBuf::from("/sys/fs/cgroup/unified");
    let base = if unified.join("cgroup.controllers").exists() {
        unified
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    Ok(base.join(rel).join(file))
}

pub fn read_trim(p: &PathBuf) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn with_resources(mut cfg: Value, res: Value) -> Value {
    let obj = cfg["linux"]["resources"]
        .as_object_mut()
        .expect("resources");
    for (k, v) in res.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    cfg
}

fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            it.next();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect()
}

/// No cgroupsPath: every hierarchy, a child named after the id beneath our own cgroup.
fn cg_placement(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["sleep", "30"]))?;
    let pid = c.rt.pid(&id)?;
    let own = own_cgroups();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in theirs.lines() {
        let mut it = line.splitn(3, ':');
        it.next();
        let (ctrls, path) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        let Some((_, mine)) = own.iter().find(|(c, _)| c == ctrls) else {
            continue;
        };
        let want = format!("{}/{id}", mine.trim_end_matches('/'));
        ensure!(
            path == want,
            "cgroup {ctrls:?}: {path} (want {want})\n{theirs}"
        );
    }
    ensure!(
        !cgroups_matching(&id).is_empty(),
        "no cgroup dir named {id}"
    );
    c.rt.delete_force(&id).ok()?;
    let left = cgroups_matching(&id);
    ensure!(left.is_empty(), "cgroups left after delete: {left:?}");
    Ok(())
}

/// A relative cgroupsPath lands beneath our own cgroup too.
fn cg_relative_path(c: &Ctx) -> TestResult {
    let mut cfg = config(&["sleep", "30"]);
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let rel = format!("{id}-rel");
    cfg["linux"]["cgroupsPath"] = json!(rel);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&cfg)?)?;
    c.rt.create(&id, &b).ok()?;
    let pid = c.rt.pid(&id)?;
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let own = own_cgroups();
    let mem = theirs
        .lines()
        .find(|l| l.contains(":memory:") || l.starts_with("0::"));
    let mem = mem.unwrap_or("");
    let ctrls = mem.split(':').nth(1).unwrap_or("");
    let mine = own
        .iter()
        .find(|(c, _)| c == ctrls)
        .map(|x| x.1.clone())
        .unwrap_or_default();
    let want = format!("{}/{rel}", mine.trim_end_matches('/'));
    ensure!(mem.ends_with(&want), "{mem} (want {want})");
    c.rt.delete_force(&id).ok()?;
    ensure!(
        cgroups_matching(&rel).is_empty(),
        "cgroup {rel} left behind"
    );
    Ok(())
}

const HOG: &str = "a=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; while :; do a=$a$a; done";

fn oom_cfg() -> Value {
    with_resources(
        sh_config(HOG),
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    )
}

/// A process allocating past memory.limit is OOM-killed: exit 137.
fn cg_memory_oom(c: &Ctx) -> TestResult {
    let out = c.run_cfg(&oom_cfg())?;
    ensure!(
        out.code == 137,
        "exit {} (want 137); stderr {}",
        out.code,
        out.stderr.trim()
    );
    Ok(())
}

/// `events` reports the OOM kill; hull's `state` records it once stopped.
fn cg_oom_events_and_state(c: &Ctx) -> TestResult {
    let b = c.bundle(&oom_cfg())?;
    let id = c.id();
    c.rt.create(&id, &b).ok()?;
    let ev = c.rt.spawn(&["events", "--interval", "1s", &id])?;
    // The first stats record comes after the OOM listener is set up: only
    // then may the container run into its limit.
    wait_file_contains(&ev.stdout_path, "\"stats\"")?;
    c.rt.start(&id).ok()?;
    c.rt.wait_status(&id, "stopped")?;
    let out = ev.wait(Duration::from_secs(10));
    let oom = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["type"] == "oom");
    ensure!(
        oom,
        "no oom event; events printed {:?} stderr {:?}",
        out.stdout,
        out.stderr
    );
    if c.rt.is_hull() {
        let st = c.rt.state(&id)?;
        ensure!(
            st["oomKilled"] == json!(true),
            "state has no OOM record: {st}"
        );
    }
    Ok(())
}

/// A fork bomb stops at pids.limit.
fn cg_pids_limit(c: &Ctx) -> TestResult {
    // ash gives up at the first failed fork: the bomb runs in a child shell.
    let script = "sh -c 'for i in $(seq 40); do sleep 30 & done' 2>/dev/null; \
                  set -- /proc/[0-9]*; echo count=$#";
    let cfg = with_resources(sh_config(script), json!({"pids": {"limit": 10}}));
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    let n: usize = out
        .trim()
        .strip_prefix("count=")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Outcome::Fail(format!("output {out:?}")))?;
    ensure!((2..=10).contains(&n), "{n} processes with pids.limit 10");
    Ok(())
}

/// The quota is visible inside the container (its cgroup is the mount's root).
fn cg_cpu_quota(c: &Ctx) -> TestResult {
    let script =
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us";
    let cfg = with_resources(
        sh_config(script),
        json!({"cpu": {"quota": 50000, "period": 100000}}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.trim() == "50000" || out.trim() == "50000 100000",
        "quota inside: {out:?}"
    );
    Ok(())
}

fn cg_cpuset(c: &Ctx) -> TestResult {
    let cfg = with_resources(
        sh_config("grep Cpus_allowed_list /proc/self/status"),
        json!({"cpu": {"cpus": "0", "mems": "0"}}),
    );
    let out = c.run_cfg(&cfg)?.ok()?.stdout;
    ensure!(
        out.split_whitespace().nth(1) == Some("0"),
        "cpuset: {out:?}"
    );
    Ok(())
}

/// Device 42:0 has no driver: allowed, opening it gives ENXIO; denied
/// (the default), the device cgroup refuses with EPERM first.
fn cg_devices_denied(c: &Ctx) -> TestResult {
    let mut cfg = sh_config("cat /dev/dev42; true");
    cfg["linux"]["devices"] = json!([{"path": "/dev/dev42", "type": "c", "major": 42, "minor": 0,
                                      "fileMode": 0o666, "uid": 0, "gid": 0}]);
    let denied = c.run_cfg(&cfg)?.ok()?;
    ensure!(
        denied.stderr.contains("Operation not permitted"),
        "denied: stderr {:?}",
        denied.stderr
    );
    cfg["linux"]["resources"]["devices"]
        .as_array_mut()
        .expect("devices")
        .push(json!({"allow": true, "type": "c", "major": 42, "minor": 0, "access": "rw"}));
    let allowed = c.run_cfg(&cfg)?.ok()?;
    ensure!(
        !allowed.stderr.contains("not permitted") && allowed.stderr.contains("No such device"),
        "allowed: stderr {:?}",
        allowed.stderr
    );
    Ok(())
}

fn counter(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/root/dev/shm/c"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn cg_pause_resume(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&sh_config(
        "i=0; while :; do i=$((i+1)); echo $i > /dev/shm/c.tmp; mv /dev/shm/c.tmp /dev/shm/c; done",
    ))?;
    let pid = c.rt.pid(&id)?;
    wait_until("the counter to run", Duration::from_secs(10), || {
        counter(pid) > 0
    })?;
    c.rt.exec(&["pause", &id]).ok()?;
    ensure!(c.rt.status(&id)? == "paused", "status after pause");
    let a = counter(pid);
    std::thread::sleep(Duration::from_millis(300));
    let b = counter(pid);
    ensure!(a == b, "counter moved while paused: {a} → {b}");
    c.rt.exec(&["resume", &id]).ok()?;
    ensure!(c.rt.status(&id)? == "running", "status after resume");
    wait_until("the counter to move again", Duration::from_secs(10), || {
        counter(pid) > b
    })?;
    // A paused container can be force-deleted.
    c.rt.exec(&["pause", &id]).ok()?;
    c.rt.delete_force(&id).ok()?;
    ensure!(cgroups_matching(&id).is_empty(), "cgroups left");
    Ok(())
}

fn cg_update(c: &Ctx) -> TestResult {
    let cfg = with_resources(config(&["sleep", "30"]), json!({"pids": {"limit": 100}}));
    let (id, _) = c.start_cfg(&cfg)?;
    let pid = c.rt.pid(&id)?;
    let pids_max = cg_file(pid, "pids", "pids.max")?;
    ensure!(
        read_trim(&pids_max) == "100",
        "pids.max before: {}",
        read_trim(&pids_max)
    );
    c.rt.exec(&["update", "--pids-limit", "7", &id]).ok()?;
    ensure!(
        read_trim(&pids_max) == "7",
        "pids.max after: {}",
        read_trim(&pids_max)
    );
    let dir = c.dir("update")?;
    let res = dir.join("res.json");
    std::fs::write(&res, r#"{"cpu": {"quota": 20000, "period": 100000}}"#)?;
    c.rt.exec(&["update", "--resources", &res.to_string_lossy(), &id])
        .ok()?;
    let v1 = cg_file(pid, "cpu", "cpu.cfs_quota_us")?;
    let got = if v1.exists() {
        read_trim(&v1)
    } else {
        read_trim(&cg_file(pid, "cpu", "cpu.max")?)
    };
    ensure!(
        got == "20000" || got == "20000 100000",
        "cpu quota after update: {got}"
    );
    Ok(())
}

fn cg_ps(c: &Ctx) -> TestResult {
    let (id, out) = c.start_cfg(&sh_config("sleep 30 & echo started; wait"))?;
    wait_file_contains(&out.stdout_path, "started")?;
    let pid = c.rt.pid(&id)?;
    let json = c.rt.exec(&["ps", "--format", "json", &id]).ok()?.stdout;
    let pids: Vec<i32> = serde_json::from_str(json.trim())?;
    ensure!(
        pids.contains(&pid) && pids.len() == 2,
        "ps json {pids:?} (init {pid})"
    );
    let table = c.rt.exec(&["ps", &id]).ok()?.stdout;
    ensure!(
        table.lines().next().unwrap_or("").contains("PID") && table.lines().count() == 3,
        "ps table {table:?}"
    );
    Ok(())
}

fn stats(c: &Ctx, id: &str) -> Result<Value, Outcome> {
    let out = c.rt.exec(&["events", "--stats", id]).ok()?.stdout;
    let v: Value = serde_json::from_str(out.lines().next().unwrap_or(""))?;
    ensure!(v["type"] == "stats", "events --stats: {out}");
    Ok(v["data"].clone())
}

fn cg_events_stats(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&sh_config("while :; do :; done"))?;
    let a = stats(c, &id)?;
    let cpu = |v: &Value| v["cpu"]["usage"]["total"].as_u64().unwrap_or(0);
    // On a loaded machine the busy loop may wait for a CPU: wait for its
    // usage to move, however long that takes (bounded).
    let mut b = a.clone();
    let moved = wait_until("cpu usage to grow", Duration::from_secs(20), || {
        stats(c, &id).map(|s| b = s).is_ok() && cpu(&b) > cpu(&a)
    });
    ensure!(
        moved.is_ok(),
        "cpu usage did not move: {} → {}",
        cpu(&a),
        cpu(&b)
    );
    ensure!(
        b["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "memory usage: {}",
        b["memory"]
    );
    ensure!(
        b["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "pids: {}",
        b["pids"]
    );
    ensure!(b.get("blkio").is_some(), "no blkio in {b}");
    Ok(())
}

/// Without a pid namespace the init's death ends nothing: only the cgroup
/// knows every process.
fn no_pidns_child(c: &Ctx) -> Result<(String, i32), Outcome> {
    let mut cfg = sh_config("sleep 60 & echo $! > /dev/shm/child; wait");
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "pid");
    let (id, _) = c.start_cfg(&cfg)?;
    let pid = c.rt.pid(&id)?;
    let mut child = 0;
    wait_until("the child pid", Duration::from_secs(10), || {
        child = std::fs::read_to_string(format!("/proc/{pid}/root/dev/shm/child"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        child > 0
    })?;
    if !pid_alive(child) {
        fail!("child {child} not running");
    }
    Ok((id, child))
}

fn cg_delete_force_kills_all(c: &Ctx) -> TestResult {
    let (id, child) = no_pidns_child(c)?;
    c.rt.delete_force(&id).ok()?;
    wait_until("the child to die", Duration::from_secs(5), || {
        !pid_alive(child)
    })?;
    ensure!(cgroups_matching(&id).is_empty(), "cgroups left");
    Ok(())
}

fn cg_kill_all(c: &Ctx) -> TestResult {
    let (id, child) = no_pidns_child(c)?;
    c.rt.exec(&["kill", "--all", &id, "KILL"]).ok()?;
    wait_until("the child to die", Duration::from_secs(5), || {
        !pid_alive(child)
    })?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    Ok(())
}

/// A value the kernel refuses: create fails, nothing is left behind.
fn cg_bad_value(c: &Ctx) -> TestResult {
    let cfg = with_resources(config(&["true"]), json!({"cpu": {"cpus": "999"}}));
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out = c.rt.create(&id, &b).failed()?;
    if c.rt.is_hull() {
        ensure!(
            out.stderr.contains("cpuset.cpus") && out.stderr.contains("999"),
            "error does not name the file and value: {}",
            out.stderr.trim()
        );
        ensure!(
            out.stderr.trim().lines().count() == 1,
            "not one line: {}",
            out.stderr
        );
        ensure!(c.rt.is_gone(&id), "state left after failed create");
    } else {
        c.rt.delete_force(&id);
    }
    ensure!(
        cgroups_matching(&id).is_empty(),
        "cgroups left: {:?}",
        cgroups_matching(&id)
    );
    Ok(())
}

fn cg_systemd_path(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["linux"]["cgroupsPath"] = json!("system.slice:hull:x");
    let b = c.bundle(&cfg)?;
    c.rt.create(&c.id(), &b).failed()?.stderr_has("systemd")?;
    let id = c.id();
    c.rt.exec(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        &b.to_string_lossy(),
        &id,
    ])
    .failed()?
    .stderr_has("systemd")?;
    Ok(())
}

/// An exec'd process lands in the container's cgroups: inside its cgroup
/// namespace every line reads "/" (outside them it would read "/..").
fn cg_exec_joins(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&config(&["sleep", "30"]))?;
    let out =
        c.rt.exec(&["exec", &id, "cat", "/proc/self/cgroup"])
            .ok()?
            .stdout;
    ensure!(
        !out.is_empty() && out.lines().all(|l| l.ends_with(":/")),
        "exec'd process cgroups: {out:?}"
    );
    Ok(())
}
