//! runc parity for cgroups: update of memory and devices, pre-existing
//! cgroups (empty cpuset ancestors, frozen, not empty), device access
//! strings, kernelTCP and network settings, `unified` keys, `kill 0`,
//! `spec`, and `delete -f` of the child cgroups a container made. Each test
//! says what runc 1.1.5 does; where runc lacks a behaviour the test skips
//! on runc naming the version. Pre-made cgroups are named after a test id
//! and made only beneath the suite's own cgroups.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use runtime_tests::fixture::{config, sh_config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{cgroups_matching, pid_alive, wait_file_contains, wait_until};
use runtime_tests::{ensure, fail, skip, Outcome, TestResult};
use serde_json::{json, Value};

use super::cgroups::{cg_file, read_trim, with_resources};

pub const TESTS: &[Test] = &[
    t(
        "pcg_update_memory_unlimited",
        Kind::Oci,
        pcg_update_memory_unlimited,
    ),
    t(
        "pcg_cpuset_empty_ancestor",
        Kind::Oci,
        pcg_cpuset_empty_ancestor,
    ),
    t(
        "pcg_devices_access_normalised",
        Kind::Oci,
        pcg_devices_access_normalised,
    ),
    t("pcg_update_devices", Kind::Oci, pcg_update_devices),
    t("pcg_kernel_tcp", Kind::Oci, pcg_kernel_tcp),
    t("pcg_network_refused", Kind::Oci, pcg_network_refused),
    t(
        "pcg_unified_missing_controller",
        Kind::Oci,
        pcg_unified_missing_controller,
    ),
    t(
        "pcg_unified_cgroup_procs_refused",
        Kind::Oci,
        pcg_unified_cgroup_procs_refused,
    ),
    t(
        "pcg_frozen_cgroup_refused",
        Kind::Oci,
        pcg_frozen_cgroup_refused,
    ),
    t(
        "pcg_nonempty_cgroup_warns",
        Kind::Oci,
        pcg_nonempty_cgroup_warns,
    ),
    t("pcg_kill_signal_zero", Kind::Oci, pcg_kill_signal_zero),
    t(
        "pcg_spec_namespaces_rootless",
        Kind::Oci,
        pcg_spec_namespaces_rootless,
    ),
    t(
        "pcg_delete_force_subtree",
        Kind::Oci,
        pcg_delete_force_subtree,
    ),
    t(
        "pcg_delete_force_reports_leftover",
        Kind::Oci,
        pcg_delete_force_reports_leftover,
    ),
];

// ---------------------------------------------------------------------------------------
// helpers

fn v2_only() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The suite's own cgroup directory in the hierarchy holding `controller`
/// (`""`: the cgroup2 one), if this host has that hierarchy.
fn own_dir(controller: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next()?, it.next()?, it.next()?);
        let rel = path.trim_start_matches('/');
        let dir = match (controller, ctrls) {
            ("", "") if v2_only() => PathBuf::from("/sys/fs/cgroup").join(rel),
            ("", "") => PathBuf::from("/sys/fs/cgroup/unified").join(rel),
            (c, cs) if !c.is_empty() && cs.split(',').any(|x| x == c) => {
                PathBuf::from("/sys/fs/cgroup").join(c).join(rel)
            }
            _ => continue,
        };
        return dir.is_dir().then_some(dir);
    }
    None
}

/// Remove `name` (with any child cgroups) beneath the suite's own cgroup in
/// every hierarchy: what a test pre-made, and parents a runtime made and
/// left (runc 1.1 leaves the parents it makes).
fn remove_everywhere(name: &str) {
    let own: Vec<String> = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2).map(str::to_owned))
        .collect();
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(rd.flatten().map(|e| e.path()));
    }
    for base in bases {
        for rel in &own {
            let dir = base.join(rel.trim_start_matches('/')).join(name);
            if dir.is_dir() {
                rmdir_tree(&dir);
            }
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// A host `sleep` started by the test (killed and reaped when dropped).
struct Sleeper(Child);

impl Sleeper {
    fn start() -> Result<Sleeper, Outcome> {
        Ok(Sleeper(Command::new("sleep").arg("300").spawn()?))
    }
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
    fn cgroups(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid())).unwrap_or_default()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A config whose init runs `sleep 300`.
fn sleeper() -> Value {
    config(&["sleep", "300"])
}

/// Write `cfg` as a bundle and `create` it under a fresh id.
fn create(c: &Ctx, cfg: &Value) -> Result<(String, runtime_tests::runtime::Output), Outcome> {
    let b = c.bundle(cfg)?;
    let id = c.id();
    let out = c.rt.create(&id, &b);
    Ok((id, out))
}

/// A create that must fail: exit 1, no container and no cgroup left, and
/// for hull one line. Returns stderr.
fn create_refused(c: &Ctx, cfg: &Value) -> Result<String, Outcome> {
    let (id, out) = create(c, cfg)?;
    let out = out.code(1)?;
    ensure!(
        c.rt.is_gone(&id),
        "container {id} exists after a refused create"
    );
    let left = cgroups_matching(&id);
    ensure!(
        left.is_empty(),
        "cgroups left by a refused create: {left:?}"
    );
    if c.rt.is_hull() {
        ensure!(
            out.stderr.trim().lines().count() == 1,
            "hull stderr is not one line: {:?}",
            out.stderr
        );
    }
    Ok(out.stderr)
}

// ---------------------------------------------------------------------------------------
// 15. update: memory and memory+swap, -1 as unlimited, order of the writes

/// (memory limit, memory+swap limit) of the container's cgroup, "max" for
/// unlimited; None when the kernel has no swap accounting.
fn mem_limits(pid: i32) -> Result<Option<(String, String)>, Outcome> {
    let norm = |v: String| match v.parse::<u64>() {
        Ok(n) if n >= 1 << 62 => "max".to_string(),
        _ => v,
    };
    let v1 = cg_file(pid, "memory", "memory.limit_in_bytes")?;
    if v1.exists() {
        let memsw = cg_file(pid, "memory", "memory.memsw.limit_in_bytes")?;
        if !memsw.exists() {
            return Ok(None);
        }
        return Ok(Some((norm(read_trim(&v1)), norm(read_trim(&memsw)))));
    }
    let limit = read_trim(&cg_file(pid, "memory", "memory.max")?);
    let swap_file = cg_file(pid, "memory", "memory.swap.max")?;
    if !swap_file.exists() {
        return Ok(None);
    }
    let swap = read_trim(&swap_file);
    let memsw = match (limit.parse::<u64>(), swap.parse::<u64>()) {
        (Ok(l), Ok(s)) => (l + s).to_string(),
        _ => "max".to_string(),
    };
    Ok(Some((limit, memsw)))
}

const M: u64 = 1 << 20;

/// runc 1.1.5 does all of this: `--memory -1` alone lifts memory and swap,
/// `=-1` is the same, growing both writes memory+swap first and shrinking
/// writes memory first (either other order is refused by the kernel), and an
/// update of the swap alone is checked against the limit in force.
fn pcg_update_memory_unlimited(c: &Ctx) -> TestResult {
    let cfg = with_resources(
        sleeper(),
        json!({"memory": {"limit": 64 * M, "swap": 128 * M}}),
    );
    let (id, _) = c.start_cfg(&cfg)?;
    let pid = c.rt.pid(&id)?;
    if mem_limits(pid)?.is_none() {
        skip!("this kernel has no swap accounting");
    }
    let steps: [(&[&str], (String, String)); 8] = [
        (&["--memory", "-1"], ("max".into(), "max".into())),
        (
            &["--memory=64M", "--memory-swap=128M"],
            ((64 * M).to_string(), (128 * M).to_string()),
        ),
        (
            &["--memory-swap", "-1"],
            ((64 * M).to_string(), "max".into()),
        ),
        (
            &["--memory", "1G", "--memory-swap", "2G"],
            ((1024 * M).to_string(), (2048 * M).to_string()),
        ),
        (
            &["--memory", "16M", "--memory-swap", "32M"],
            ((16 * M).to_string(), (32 * M).to_string()),
        ),
        (
            &["--memory-swap", "64M"],
            ((16 * M).to_string(), (64 * M).to_string()),
        ),
        (
            &["--memory=-1", "--memory-swap=-1"],
            ("max".into(), "max".into()),
        ),
        (
            &["--memory", "32M", "--memory-swap", "64M"],
            ((32 * M).to_string(), (64 * M).to_string()),
        ),
    ];
    for (flags, want) in steps {
        let mut args = vec!["update"];
        args.extend_from_slice(flags);
        args.push(&id);
        c.rt.exec(&args).ok()?;
        let got = mem_limits(pid)?;
        ensure!(
            got.as_ref() == Some(&want),
            "after update {}: (memory, memory+swap) = {got:?}, want {want:?}",
            flags.join(" ")
        );
    }
    // v1: memory above memory+swap is refused, and nothing changes (v2
    // keeps swap apart: there a larger memory limit is fine, runc too).
    if cg_file(pid, "memory", "memory.memsw.limit_in_bytes")?.exists() {
        c.rt.exec(&["update", "--memory", "128M", &id]).failed()?;
        let got = mem_limits(pid)?;
        ensure!(
            got == Some(((32 * M).to_string(), (64 * M).to_string())),
            "a refused update changed the limits: {got:?}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 16. v1 cpuset: an existing ancestor with no cpus

/// runc 1.1.5 fills an empty pre-existing ancestor from its parent before
/// the container joins; without that the join fails with ENOSPC.
fn pcg_cpuset_empty_ancestor(c: &Ctx) -> TestResult {
    let Some(own) = own_dir("cpuset").filter(|_| !v2_only()) else {
        skip!("no v1 cpuset hierarchy on this host");
    };
    let parent = c.id();
    let p2 = parent.clone();
    c.on_cleanup(move || remove_everywhere(&p2));
    let dir = own.join(&parent);
    std::fs::create_dir(&dir)?;
    ensure!(
        read_trim(&dir.join("cpuset.cpus")).is_empty(),
        "a new v1 cpuset cgroup has cpus: the test means nothing"
    );
    let mut cfg = sh_config("grep Cpus_allowed_list /proc/self/status");
    let id = c.id();
    cfg["linux"]["cgroupsPath"] = json!(format!("{parent}/{id}"));
    let b = c.bundle(&cfg)?;
    let out = c.rt.run(&id, &b).ok()?;
    ensure!(
        out.stdout.contains("Cpus_allowed_list"),
        "container output: {:?}",
        out.stdout
    );
    ensure!(
        !read_trim(&dir.join("cpuset.cpus")).is_empty(),
        "the ancestor still has no cpus"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 17. device rules: access strings, update

/// A config with /dev/dev42 (42:0, no driver: open gives ENXIO when the
/// device cgroup allows it, EPERM when it does not).
fn dev42(script: &str) -> Value {
    let mut cfg = sh_config(script);
    cfg["linux"]["devices"] = json!([{"path": "/dev/dev42", "type": "c", "major": 42, "minor": 0,
                                      "fileMode": 0o666, "uid": 0, "gid": 0}]);
    cfg
}

fn allow42(cfg: &mut Value, access: &str) {
    cfg["linux"]["resources"]["devices"]
        .as_array_mut()
        .expect("devices")
        .push(json!({"allow": true, "type": "c", "major": 42, "minor": 0, "access": access}));
}

/// runc 1.1.5 keeps r, w and m of an access string and drops the rest
/// ("rwa" is "rw", "wr" is "rw"); an access with none of them is refused.
/// The kernel itself refuses "rwa" with EINVAL.
fn pcg_devices_access_normalised(c: &Ctx) -> TestResult {
    for access in ["rwa", "wr"] {
        let mut cfg = dev42("cat /dev/dev42; echo done");
        allow42(&mut cfg, access);
        let out = c.run_cfg(&cfg)?.ok()?;
        ensure!(
            out.stderr.contains("No such device") && !out.stderr.contains("not permitted"),
            "access {access:?}: device not allowed: {:?}",
            out.stderr
        );
    }
    let mut cfg = dev42("true");
    allow42(&mut cfg, "x");
    let err = create_refused(c, &cfg)?;
    if c.rt.is_hull() {
        ensure!(err.contains("access"), "error does not say access: {err}");
    }
    Ok(())
}

/// Device rules changed by `update -r`: allowed, then denied again, while
/// /dev/null stays usable. runc 1.1.5 accepts device rules in an update and
/// ignores them (libcontainer's SkipDevices): skipped there.
fn pcg_update_devices(c: &Ctx) -> TestResult {
    if !c.rt.is_hull() {
        skip!("runc 1.1.5 ignores device rules given to update (SkipDevices)");
    }
    let (id, _) = c.start_cfg(&dev42("sleep 300"))?;
    let probe = |what: &str| -> Result<String, Outcome> {
        let out = c.rt.exec(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /dev/dev42; echo x > /dev/null && echo null-ok",
        ]);
        ensure!(
            out.stdout.contains("null-ok"),
            "{what}: /dev/null not usable: {:?} {:?}",
            out.stdout,
            out.stderr
        );
        Ok(out.stderr)
    };
    ensure!(
        probe("before")?.contains("not permitted"),
        "dev42 allowed before the update"
    );
    let dir = c.dir("devupdate")?;
    let res = dir.join("res.json");
    let deny_all = json!({"allow": false, "access": "rwm"});
    let allow = json!({"allow": true, "type": "c", "major": 42, "minor": 0, "access": "rwa"});
    std::fs::write(&res, json!({"devices": [deny_all, allow]}).to_string())?;
    c.rt.exec(&["update", "-r", &res.to_string_lossy(), &id])
        .ok()?;
    let err = probe("after allowing")?;
    ensure!(
        err.contains("No such device") && !err.contains("not permitted"),
        "dev42 not allowed after the update: {err:?}"
    );
    std::fs::write(&res, json!({"devices": [deny_all]}).to_string())?;
    c.rt.exec(&["update", "-r", &res.to_string_lossy(), &id])
        .ok()?;
    ensure!(
        probe("after denying")?.contains("not permitted"),
        "dev42 still allowed after the update that removed it"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 18. memory.kernelTCP, linux.resources.network

/// hull sets memory.kernelTCP where the kernel still has
/// memory.kmem.tcp.limit_in_bytes (v1). runc 1.1.5 ignores it with a
/// warning ("Kernel memory settings are ignored"): skipped there.
fn pcg_kernel_tcp(c: &Ctx) -> TestResult {
    if !c.rt.is_hull() {
        skip!("runc 1.1.5 ignores memory.kernelTCP (\"Kernel memory settings are ignored\")");
    }
    let cfg = with_resources(sleeper(), json!({"memory": {"kernelTCP": 16 * M}}));
    let (id, _) = c.start_cfg(&cfg)?;
    let pid = c.rt.pid(&id)?;
    let file = cg_file(pid, "memory", "memory.kmem.tcp.limit_in_bytes")?;
    if !file.exists() {
        // cgroup v2 has no TCP buffer limit: hull warns and goes on.
        return Ok(());
    }
    ensure!(
        read_trim(&file) == (16 * M).to_string(),
        "memory.kmem.tcp.limit_in_bytes = {}",
        read_trim(&file)
    );
    c.rt.exec(&["update", "--kernel-memory-tcp", "8M", &id])
        .ok()?;
    ensure!(
        read_trim(&file) == (8 * M).to_string(),
        "after update: {}",
        read_trim(&file)
    );
    Ok(())
}

/// Where net_cls/net_prio are not mounted, linux.resources.network is
/// refused, never ignored. runc 1.1.5 fails too, later ("cannot set net_cls
/// limit: container could not join or create cgroup"); hull is stricter: one
/// line, before anything is made, naming the controller. Where they are
/// mounted, the class id is written.
fn pcg_network_refused(c: &Ctx) -> TestResult {
    let cfg = with_resources(
        sleeper(),
        json!({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]}}),
    );
    if own_dir("net_cls").is_some() && !v2_only() {
        let (id, _) = c.start_cfg(&cfg)?;
        let pid = c.rt.pid(&id)?;
        let got = read_trim(&cg_file(pid, "net_cls", "net_cls.classid")?);
        ensure!(got == "1048577", "net_cls.classid = {got}");
        return Ok(());
    }
    let err = create_refused(c, &cfg)?;
    if c.rt.is_hull() {
        ensure!(
            err.contains("net_cls"),
            "error does not name net_cls: {err}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 19. linux.resources.unified

/// A key of a controller the cgroup2 hierarchy does not have is an invalid
/// configuration, before anything is made. runc 1.1.5 refuses any unified
/// key on a host that is not cgroup2-only ("invalid configuration: cannot
/// use unified on cgroup v1"); hull takes the keys of the controllers the
/// v2 hierarchy has (hugetlb on this hybrid host) and refuses the others.
fn pcg_unified_missing_controller(c: &Ctx) -> TestResult {
    let have = own_dir("")
        .map(|d| read_trim(&d.join("cgroup.controllers")))
        .unwrap_or_default();
    let missing = ["memory", "pids", "cpu", "io"]
        .into_iter()
        .find(|c| !have.split_whitespace().any(|h| h == *c))
        .unwrap_or("nosuchcontroller");
    let key = format!("{missing}.max");
    let cfg = with_resources(sleeper(), json!({"unified": {key.clone(): "10"}}));
    let err = create_refused(c, &cfg)?;
    ensure!(
        err.contains("invalid configuration") || err.contains("not available"),
        "error: {err}"
    );
    if c.rt.is_hull() {
        ensure!(err.contains(&key), "error does not name {key}: {err}");
    }
    Ok(())
}

/// SECURITY: a unified key naming a cgroup core file such as cgroup.procs
/// would move a host process into the container's cgroup (and then
/// `delete -f` would kill it). It is refused before anything is made, and
/// the process stays where it was. runc 1.1.5 refuses here because this
/// host is not cgroup2-only (on a cgroup2 host runc 1.1.5 writes the key).
fn pcg_unified_cgroup_procs_refused(c: &Ctx) -> TestResult {
    let victim = Sleeper::start()?;
    let before = victim.cgroups();
    let pid = victim.pid().to_string();
    let cfg = with_resources(sleeper(), json!({"unified": {"cgroup.procs": pid}}));
    create_refused(c, &cfg)?;
    ensure!(
        victim.cgroups() == before && pid_alive(victim.pid()),
        "the host process moved or died: {before:?} -> {:?}",
        victim.cgroups()
    );
    // The same key given to `update` of a running container.
    let (id, _) = c.start_cfg(&sleeper())?;
    let res = c.dir("unified")?.join("res.json");
    std::fs::write(&res, json!({"unified": {"cgroup.procs": pid}}).to_string())?;
    c.rt.exec(&["update", "-r", &res.to_string_lossy(), &id])
        .code(1)?;
    ensure!(
        victim.cgroups() == before,
        "update moved the host process: {before:?} -> {:?}",
        victim.cgroups()
    );
    if c.rt.is_hull() {
        for key in [
            "cgroup.threads",
            "cgroup.subtree_control",
            "cgroup.kill",
            "cgroup.freeze",
            "../cgroup.procs",
            "hugetlb.2MB.max/../../cgroup.procs",
            "",
            ".hidden",
        ] {
            let cfg = with_resources(sleeper(), json!({"unified": {key: pid}}));
            let err = create_refused(c, &cfg)?;
            ensure!(
                err.contains("invalid configuration"),
                "key {key:?}: error {err}"
            );
        }
        ensure!(
            victim.cgroups() == before && pid_alive(victim.pid()),
            "the host process moved or died"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 20. pre-existing cgroups: frozen, not empty

/// Freeze a pre-made cgroup `name` beneath our own: v1 freezer if there is
/// one (runc 1.1.5 reads only that one on v1 and hybrid hosts), else cgroup2.
fn make_frozen(name: &str) -> Result<PathBuf, Outcome> {
    if let Some(own) = own_dir("freezer") {
        let dir = own.join(name);
        std::fs::create_dir(&dir)?;
        std::fs::write(dir.join("freezer.state"), "FROZEN")?;
        return Ok(dir);
    }
    let own = own_dir("").ok_or_else(|| Outcome::Skip("no freezer on this host".into()))?;
    let dir = own.join(name);
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("cgroup.freeze"), "1")?;
    Ok(dir)
}

fn thaw(dir: &Path) {
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
}

/// A frozen pre-existing cgroup is refused at once (a container in it
/// could never run) and left as it was. runc 1.1.5: "container's cgroup
/// unexpectedly frozen", exit 1.
fn pcg_frozen_cgroup_refused(c: &Ctx) -> TestResult {
    let name = c.id();
    let n2 = name.clone();
    let dir = make_frozen(&name)?;
    let d2 = dir.clone();
    c.on_cleanup(move || {
        thaw(&d2);
        remove_everywhere(&n2);
    });
    let mut cfg = sleeper();
    cfg["linux"]["cgroupsPath"] = json!(name);
    let (id, out) = create(c, &cfg)?;
    let out = out.code(1)?;
    ensure!(
        out.stderr.contains("frozen"),
        "error: {}",
        out.stderr.trim()
    );
    ensure!(c.rt.is_gone(&id), "container exists after the refusal");
    ensure!(dir.is_dir(), "the pre-existing cgroup was removed");
    if c.rt.is_hull() {
        ensure!(
            out.stderr.trim().lines().count() == 1,
            "not one line: {:?}",
            out.stderr
        );
    }
    Ok(())
}

/// A pre-existing cgroup that holds a process: runc 1.1.5 warns
/// ("container's cgroup is not empty: 1 process(es) found", checked in the
/// devices hierarchy on v1) and goes on; so does hull.
fn pcg_nonempty_cgroup_warns(c: &Ctx) -> TestResult {
    let Some(own) = own_dir("devices").or_else(|| own_dir("")) else {
        skip!("no devices or cgroup2 hierarchy");
    };
    let name = c.id();
    let n2 = name.clone();
    let dir = own.join(&name);
    std::fs::create_dir(&dir)?;
    let victim = Sleeper::start()?;
    std::fs::write(dir.join("cgroup.procs"), victim.pid().to_string())?;
    let mut cfg = sleeper();
    cfg["linux"]["cgroupsPath"] = json!(name);
    let (id, out) = create(c, &cfg)?;
    let out = out.ok()?;
    ensure!(
        out.stderr
            .contains("container's cgroup is not empty: 1 process(es) found"),
        "no warning: {:?}",
        out.stderr
    );
    // runc 1.1.5 leaves the host process, and so cannot remove the cgroup
    // (it still exits 0); hull kills what is in the container's cgroups.
    let _ = c.rt.delete_force(&id);
    drop(victim);
    remove_everywhere(&n2);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 21. kill 0, kill -a of a stopped container

/// runc 1.1.5: signal 0 probes (exit 0 while the container runs); `kill -a`
/// of a stopped container succeeds (nothing left to signal), while a plain
/// kill of it is "container not running".
fn pcg_kill_signal_zero(c: &Ctx) -> TestResult {
    let (id, _) = c.start_cfg(&sleeper())?;
    c.rt.kill(&id, "0").ok()?;
    c.rt.exec(&["kill", "-a", &id, "0"]).ok()?;
    ensure!(
        c.rt.status(&id)? == "running",
        "signal 0 hurt the container"
    );
    c.rt.kill(&id, "KILL").ok()?;
    c.rt.wait_status(&id, "stopped")?;
    c.rt.exec(&["kill", "-a", &id, "0"]).ok()?;
    c.rt.exec(&["kill", "--all", &id, "KILL"]).ok()?;
    c.rt.kill(&id, "0")
        .failed()?
        .stderr_has("container not running")?;
    c.rt.delete(&id).ok()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 22. spec

fn ns_types(cfg: &Value) -> Vec<String> {
    cfg["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["type"].as_str().map(str::to_owned))
        .collect()
}

/// runc 1.1.5's template has a cgroup namespace only on a cgroup2-only host;
/// `spec --rootless` maps the caller alone in a user namespace, drops the
/// network namespace and linux.resources, binds /sys and drops gid= options.
fn pcg_spec_namespaces_rootless(c: &Ctx) -> TestResult {
    let d = c.dir("spec")?;
    c.rt.exec_in(&["spec"], Some(&d)).ok()?;
    let cfg: Value = serde_json::from_slice(&std::fs::read(d.join("config.json"))?)?;
    let types = ns_types(&cfg);
    ensure!(
        types.iter().any(|t| t == "cgroup") == v2_only(),
        "cgroup namespace in spec: {types:?} (cgroup2-only host: {})",
        v2_only()
    );
    let d = c.dir("spec")?;
    c.rt.exec_in(&["spec", "--rootless"], Some(&d)).ok()?;
    let cfg: Value = serde_json::from_slice(&std::fs::read(d.join("config.json"))?)?;
    let types = ns_types(&cfg);
    ensure!(
        types.iter().any(|t| t == "user") && !types.iter().any(|t| t == "network"),
        "rootless namespaces: {types:?}"
    );
    ensure!(
        types.iter().any(|t| t == "cgroup") == v2_only(),
        "rootless cgroup namespace: {types:?}"
    );
    let uid = std::fs::metadata("/proc/self")?;
    let uid = std::os::unix::fs::MetadataExt::uid(&uid);
    ensure!(
        cfg["linux"]["uidMappings"] == json!([{"containerID": 0, "hostID": uid, "size": 1}]),
        "uidMappings: {}",
        cfg["linux"]["uidMappings"]
    );
    ensure!(
        cfg["linux"].get("resources").is_none(),
        "rootless spec has resources: {}",
        cfg["linux"]
    );
    let text = cfg["mounts"].to_string();
    ensure!(!text.contains("gid="), "gid= option kept: {text}");
    let sys = cfg["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["destination"] == "/sys")
        .cloned()
        .unwrap_or_default();
    ensure!(
        sys["source"] == "/sys" && sys["options"][0] == "rbind",
        "/sys mount: {sys}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// delete -f of the child cgroups a container made

/// A container with a writable cgroup mount that makes sub/deeper in each
/// hierarchy it sees and moves a process into one of them.
fn nesting_cfg() -> Value {
    let script = "for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do \
                    test -e $h/cgroup.procs && mkdir -p $h/sub/deeper 2>/dev/null; done; \
                  sleep 300 & \
                  for h in /sys/fs/cgroup/pids /sys/fs/cgroup/memory /sys/fs/cgroup; do \
                    echo $! > $h/sub/deeper/cgroup.procs 2>/dev/null; done; \
                  echo ready; wait";
    let mut cfg = sh_config(script);
    for m in cfg["mounts"].as_array_mut().expect("mounts") {
        if m["destination"] == "/sys/fs/cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    cfg
}

/// The child cgroups the container's own directory holds, anywhere.
fn subs_of(id: &str) -> Vec<String> {
    cgroups_matching(id)
        .into_iter()
        .flat_map(|d| {
            let mut all = Vec::new();
            collect(Path::new(&d), &mut all);
            all
        })
        .collect()
}

fn collect(dir: &Path, out: &mut Vec<String>) {
    out.push(dir.display().to_string());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect(&e.path(), out);
        }
    }
}

fn start_nesting(c: &Ctx) -> Result<String, Outcome> {
    let (id, out) = c.start_cfg(&nesting_cfg())?;
    wait_file_contains(&out.stdout_path, "ready")?;
    ensure!(
        subs_of(&id).iter().any(|d| d.ends_with("/sub/deeper")),
        "the container made no child cgroup: {:?}",
        subs_of(&id)
    );
    Ok(id)
}

/// runc 1.1.5 removes the container's cgroup directories with every child
/// cgroup in them (deepest first).
fn pcg_delete_force_subtree(c: &Ctx) -> TestResult {
    let id = start_nesting(c)?;
    c.rt.delete_force(&id).ok()?;
    wait_until(
        "the container's cgroups to go",
        Duration::from_secs(10),
        || subs_of(&id).is_empty(),
    )?;
    Ok(())
}

/// A child cgroup that cannot be removed (here: a mount on it) fails
/// `delete -f` with exit 1 naming it, and a retry once it is free removes
/// everything. runc 1.1.5 logs "Failed to remove paths" and exits 0:
/// skipped there.
fn pcg_delete_force_reports_leftover(c: &Ctx) -> TestResult {
    if !c.rt.is_hull() {
        skip!("runc 1.1.5 logs \"Failed to remove paths\" and exits 0");
    }
    let id = start_nesting(c)?;
    let Some(sub) = subs_of(&id)
        .into_iter()
        .find(|d| d.ends_with("/sub/deeper"))
        .map(PathBuf::from)
    else {
        fail!("no sub/deeper");
    };
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4k",
            "hold",
            &sub.to_string_lossy(),
        ])
        .status()?;
    ensure!(st.success(), "mount tmpfs on {}", sub.display());
    let s2 = sub.clone();
    c.on_cleanup(move || {
        // Unmounted by the test when it gets that far.
        let _ = Command::new("umount")
            .arg(&s2)
            .stderr(std::process::Stdio::null())
            .status();
    });
    let out = c.rt.delete_force(&id).code(1)?;
    ensure!(
        out.stderr.contains(&*sub.to_string_lossy()) && out.stderr.trim().lines().count() == 1,
        "error does not name {} on one line: {:?}",
        sub.display(),
        out.stderr
    );
    let st = Command::new("umount").arg(&sub).status()?;
    ensure!(st.success(), "umount {}", sub.display());
    c.rt.delete_force(&id).ok()?;
    ensure!(c.rt.is_gone(&id), "container still exists");
    let left = subs_of(&id);
    ensure!(left.is_empty(), "cgroups left: {left:?}");
    Ok(())
}
