//! Crash safety, `hull gc` and concurrency.
//!
//! The crash walk drives hull's failpoints build (cargo feature `failpoints`;
//! `make build-failpoints` puts it at target/failpoints/release/hull, or name
//! it with HULL_FAILPOINTS=PATH). It lists every step the `--debug` traces of
//! a few scenarios name, then for each step: runs the scenario with hull
//! SIGKILLed at that step (HULL_FAILPOINT), recovers with `delete --force` of
//! the binary under test, and looks for anything left on the host.
//!
//! `FAULT_WALK_ONLY=plain,bridge` limits the walk to those scenarios (plain,
//! run, overlay, bridge, bridge-shared) while working on one.
//!
//! Each walk and gc test works in a private world (`Rig`): its own --root,
//! --data-root and lease store in the test's temp dir and, for the bridge
//! scenarios, a network namespace `hrt<suite pid>-<n>-f` it makes and
//! removes. Traffic: none.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::{Spawned, COMMAND_LIMIT};
use runtime_tests::util::{
    cgroups_matching, host_mounts_mentioning, pid_alive, procs_with_env, wait_until,
};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("fault_walk", Kind::HullOnly, walk),
    t("gc_leftovers", Kind::HullOnly, gc_leftovers),
    t("conc_run_delete_50", Kind::Oci, run_delete_50),
    t("conc_create_same_id_20", Kind::HullOnly, create_same_id_20),
    t("conc_delete_force_vs_kill", Kind::Oci, delete_force_vs_kill),
];

/// Where the failpoints build is looked for when HULL_FAILPOINTS is unset.
const FAILPOINTS_DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/failpoints/release/hull"
);

fn failpoints_bin() -> Result<PathBuf, Outcome> {
    let p = std::env::var_os("HULL_FAILPOINTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(FAILPOINTS_DEFAULT));
    if p.is_file() {
        Ok(p)
    } else {
        Err(Outcome::Skip(format!(
            "no failpoints build at {} (make build-failpoints)",
            p.display()
        )))
    }
}

fn sh(cmd: &str, args: &[&str]) -> Result<String, Outcome> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        fail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A private hull world: its own state root, data root and lease store, and
/// optionally a network namespace every command runs in.
struct Rig<'a> {
    c: &'a Ctx,
    base: PathBuf,
    root: PathBuf,
    data: PathBuf,
    net: PathBuf,
    netns: Option<String>,
}

impl<'a> Rig<'a> {
    fn new(c: &'a Ctx, with_netns: bool) -> Result<Rig<'a>, Outcome> {
        let base = c.dir("faults")?;
        let (root, data, net) = (base.join("root"), base.join("data"), base.join("net"));
        for d in [&root, &data, &net, &base.join("io")] {
            std::fs::create_dir_all(d)?;
        }
        let netns = if with_netns {
            let name = format!("hrt{}-{}-f", std::process::id(), c.suite.next());
            sh("ip", &["netns", "add", &name])?;
            sh("ip", &["-n", &name, "link", "set", "lo", "up"])?;
            Some(name)
        } else {
            None
        };
        // Whatever a failed test left: containers first, then the namespace.
        let (bin, r, n, ns) = (c.rt.bin.clone(), root.clone(), net.clone(), netns.clone());
        c.on_cleanup(move || {
            for e in std::fs::read_dir(&r).into_iter().flatten().flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let mut cmd = in_netns_cmd(ns.as_deref(), &bin);
                let _ = cmd
                    .arg("--root")
                    .arg(&r)
                    .args(["delete", "--force", &id])
                    .env("HULL_NET_ROOT", &n)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            if let Some(ns) = ns {
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
            }
        });
        Ok(Rig {
            c,
            base,
            root,
            data,
            net,
            netns,
        })
    }

    /// `BIN --root R --data-root D ARGS` with HULL_NET_ROOT and `env`, in
    /// the rig's namespace; output to files (a container inherits them).
    fn hull_with(&self, bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let n = self.c.suite.next();
        let io = self.base.join("io");
        let (out, err) = (io.join(format!("{n}.out")), io.join(format!("{n}.err")));
        let desc = format!("{} {}", bin.display(), args.join(" "));
        let spawned = (|| -> std::io::Result<Spawned> {
            let mut cmd = in_netns_cmd(self.netns.as_deref(), bin);
            cmd.arg("--root")
                .arg(&self.root)
                .arg("--data-root")
                .arg(&self.data)
                .args(args)
                .env("HULL_NET_ROOT", &self.net)
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out)?)
                .stderr(std::fs::File::create(&err)?);
            Ok(Spawned {
                desc: desc.clone(),
                child: cmd.spawn()?,
                stdout_path: out.clone(),
                stderr_path: err.clone(),
            })
        })();
        match spawned {
            Ok(s) => s.wait(COMMAND_LIMIT),
            Err(e) => Output {
                desc,
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot spawn: {e}"),
                stdout_path: out,
            },
        }
    }

    /// The binary under test.
    fn hull(&self, args: &[&str]) -> Output {
        self.hull_with(&self.c.rt.bin, args, &[])
    }

    /// A command in the rig's namespace (or here), its stdout.
    fn run_in(&self, argv: &[&str]) -> String {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).args(argv);
                c
            }
            None => {
                let mut c = Command::new(argv[0]);
                c.args(&argv[1..]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// The init pid of container `id`, from `state`.
    fn pid(&self, id: &str) -> Result<i32, Outcome> {
        let st: Value = serde_json::from_str(&self.hull(&["state", id]).ok()?.stdout)?;
        st["pid"]
            .as_i64()
            .map(|p| p as i32)
            .ok_or_else(|| Outcome::Fail(format!("state of {id} has no pid: {st}")))
    }

    fn entry(&self, env: &str) -> String {
        format!("{env}={}", self.net.display())
    }

    /// Nothing of container `id` is left; `others` containers of the rig
    /// still run (they keep the bridge, the table and the lease store).
    fn nothing_left(&self, id: &str, marker: &str, others: usize) -> TestResult {
        let dir = self.root.join(id);
        ensure!(!dir.exists(), "state dir {} left", dir.display());
        // Container processes carry `marker`; hull and its init HULL_NET_ROOT.
        let hull_env = self.entry("HULL_NET_ROOT");
        let gone = || procs_with_env(marker).is_empty() && procs_with_env(&hull_env).is_empty();
        if wait_until("processes to exit", Duration::from_secs(10), gone).is_err() {
            fail!(
                "processes left: containers {:?}, hull or init {:?}",
                procs_with_env(marker),
                procs_with_env(&hull_env)
            );
        }
        let cgroups: Vec<String> = cgroups_matching(id)
            .into_iter()
            .filter(|d| d.ends_with(&format!("/{id}")))
            .collect();
        ensure!(cgroups.is_empty(), "cgroups left: {}", cgroups.join(", "));
        let mounts = host_mounts_mentioning(&self.base.to_string_lossy());
        ensure!(
            mounts.is_empty(),
            "host mounts left: {}",
            mounts.join(" | ")
        );
        let upper = self.data.join("containers").join(id);
        ensure!(!upper.exists(), "overlay dir {} left", upper.display());
        for vol in std::fs::read_dir(self.data.join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for u in std::fs::read_dir(vol.path().join("users"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = u.file_name().to_string_lossy().into_owned();
                ensure!(
                    !name.starts_with(&format!("{id}@")),
                    "volume use {} left",
                    u.path().display()
                );
            }
        }
        if self.netns.is_some() {
            self.network_left(id, others)?;
        }
        Ok(())
    }

    fn network_left(&self, id: &str, others: usize) -> TestResult {
        let store = self.net.join("hull0.json");
        let leases = std::fs::read_to_string(&store).unwrap_or_default();
        ensure!(
            !leases.contains(&format!("\"{id}\"")),
            "lease of {id} left: {leases}"
        );
        let links = self.run_in(&["ip", "-o", "link"]);
        let veths = links.lines().filter(|l| l.contains(": hv")).count();
        ensure!(
            veths == others,
            "{veths} veths for {others} containers: {links}"
        );
        let rules = self.run_in(&["nft", "list", "ruleset"]);
        ensure!(
            !rules.contains(&format!("hull:{id}\"")),
            "rules of {id} left: {rules}"
        );
        if others > 0 {
            let doc: Value = serde_json::from_str(&leases).unwrap_or_default();
            let n = doc["leases"].as_object().map_or(0, |l| l.len());
            ensure!(n == others, "{n} leases for {others} containers: {leases}");
            ensure!(
                links.contains("hull0"),
                "the bridge of {others} containers is gone"
            );
        }
        if others == 0 {
            ensure!(!links.contains("hull0"), "bridge left: {links}");
            ensure!(!rules.contains("hull"), "hull's table left: {rules}");
            ensure!(!store.exists(), "lease store left: {leases}");
            let fwd = self.run_in(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
            ensure!(fwd.trim() == "0", "ip_forward left at {fwd}");
        }
        Ok(())
    }
}

fn in_netns_cmd(netns: Option<&str>, bin: &Path) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

/// A config whose processes carry `marker` (`K=V`) in their environment.
fn marked(args: &[&str], marker: &str) -> Value {
    let mut cfg = config(args);
    cfg["process"]["env"]
        .as_array_mut()
        .expect("env")
        .push(json!(marker));
    cfg
}

// ---------------------------------------------------------------------------------------
// the crash walk

/// The commands of a scenario for one container id, argv each.
type Commands<'a> = dyn Fn(&str) -> Vec<Vec<String>> + 'a;

/// One scenario of the walk: the commands for a container id, run in order.
struct Scenario<'a> {
    name: &'static str,
    rig: Rig<'a>,
    marker: String,
    cmds: Box<Commands<'a>>,
    /// Containers of the rig that live through the walk (bridge shared),
    /// and the marker of their processes.
    others: usize,
    others_marker: String,
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn scenarios(c: &Ctx) -> Result<Vec<Scenario<'_>>, Outcome> {
    let mut out = Vec::new();
    let n = c.suite.next();
    let marker = |name: &str| format!("HULL_RT_FAULT={name}-{}-{n}", std::process::id());

    // create (with a pid file) / start / exec / delete --force
    let rig = Rig::new(c, false)?;
    let m = marker("plain");
    let b = c.bundle(&marked(&["sleep", "60"], &m))?;
    let pid = rig.base.join("pid");
    out.push(Scenario {
        name: "plain",
        marker: m,
        rig,
        others: 0,
        others_marker: String::new(),
        cmds: Box::new(move |id| {
            let (b, pid) = (b.to_string_lossy(), pid.to_string_lossy());
            vec![
                argv(&["create", "-b", &b, "--pid-file", &pid, id]),
                argv(&["start", id]),
                argv(&["exec", "--pid-file", &format!("{pid}.exec"), id, "true"]),
                argv(&["delete", "--force", id]),
            ]
        }),
    });

    // run in the foreground: create, start, wait, delete in one command
    let rig = Rig::new(c, false)?;
    let m = marker("run");
    let b = c.bundle(&marked(&["true"], &m))?;
    out.push(Scenario {
        name: "run",
        marker: m,
        rig,
        others: 0,
        others_marker: String::new(),
        cmds: Box::new(move |id| vec![argv(&["run", "-b", &b.to_string_lossy(), id])]),
    });

    // overlay rootfs and a named volume
    let rig = Rig::new(c, false)?;
    let m = marker("overlay");
    let b = c.bundle(&marked(&["sleep", "60"], &m))?;
    out.push(Scenario {
        name: "overlay",
        marker: m,
        rig,
        others: 0,
        others_marker: String::new(),
        cmds: Box::new(move |id| {
            let b = b.to_string_lossy();
            vec![
                argv(&["create", "-b", &b, "--overlay", "-v", "fw:/data", id]),
                argv(&["start", id]),
                argv(&["delete", "--force", id]),
            ]
        }),
    });

    // a bridge with a published port, alone on it (makes and removes the bridge) and
    // next to a container that keeps it
    for (name, others) in [("bridge", 0), ("bridge-shared", 1)] {
        let rig = Rig::new(c, true)?;
        let m = marker(name);
        let b = c.bundle(&marked(&["sleep", "60"], &m))?;
        let others_marker = marker("sibling");
        if others > 0 {
            let sib = c.bundle(&marked(&["sleep", "600"], &others_marker))?;
            let sb = sib.to_string_lossy();
            rig.hull(&["create", "-b", &sb, "-p", "18081:80", "fw-sibling"])
                .ok()?;
            rig.hull(&["start", "fw-sibling"]).ok()?;
        }
        out.push(Scenario {
            name,
            marker: m,
            rig,
            others,
            others_marker,
            cmds: Box::new(move |id| {
                let b = b.to_string_lossy();
                vec![
                    argv(&["create", "-b", &b, "-p", "18080:80", id]),
                    argv(&["start", id]),
                    argv(&["delete", "--force", id]),
                ]
            }),
        });
    }
    Ok(out)
}

/// The steps a `--debug` trace names, in order, each once.
fn steps_of(stderr: &str) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.strip_prefix("hull: debug: ") else {
            continue;
        };
        let Some((_, step)) = rest.split_once(" ms  ") else {
            continue;
        };
        if !steps.iter().any(|s| s == step) {
            steps.push(step.to_string());
        }
    }
    steps
}

fn walk(c: &Ctx) -> TestResult {
    let fp = failpoints_bin()?;
    for tool in ["ip", "nsenter", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(Outcome::Skip(format!("{tool} not installed (make deps)")));
        }
    }
    let scenarios = scenarios(c)?;
    let mut covered = Vec::new();
    let mut total = 0;
    for s in &scenarios {
        if std::env::var("FAULT_WALK_ONLY").is_ok_and(|o| !o.split(',').any(|x| x == s.name)) {
            continue;
        }
        // The trace: every command once, whole, with --debug.
        let id = c.id();
        let mut trace: Vec<(usize, String)> = Vec::new();
        for (i, cmd) in (s.cmds)(&id).iter().enumerate() {
            let mut args = vec!["--debug"];
            args.extend(cmd.iter().map(String::as_str));
            let out = s.rig.hull_with(&fp, &args, &[]).ok()?;
            trace.extend(steps_of(&out.stderr).into_iter().map(|st| (i, st)));
        }
        s.rig
            .nothing_left(&id, &s.marker, s.others)
            .map_err(|e| Outcome::Fail(format!("{}: after a clean run: {e}", s.name)))?;
        ensure!(
            trace.iter().any(|(_, st)| st.starts_with("init: ")),
            "{}: no step of the init in the trace: {trace:?}",
            s.name
        );
        for (i, step) in &trace {
            let id = c.id();
            let cmds = (s.cmds)(&id);
            let ctx = |what: &str| format!("{} step {step:?} of `{}`: {what}", s.name, cmds[*i][0]);
            for cmd in &cmds[..*i] {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                s.rig
                    .hull_with(&fp, &args, &[])
                    .ok()
                    .map_err(|e| Outcome::Fail(ctx(&e.to_string())))?;
            }
            let args: Vec<&str> = cmds[*i].iter().map(String::as_str).collect();
            let out = s.rig.hull_with(&fp, &args, &[("HULL_FAILPOINT", step)]);
            ensure!(
                out.code == 137 && out.stderr.contains("failpoint"),
                "{}",
                ctx(&format!(
                    "hull was not killed there: exit {}, {}",
                    out.code,
                    out.stderr.trim()
                ))
            );
            // Every other step, `gc` recovers first (it leaves a container
            // whose init still runs to the delete that follows).
            total += 1;
            if total % 2 == 0 {
                let gc = s.rig.hull(&["gc"]);
                ensure!(
                    gc.code == 0 && !gc.stdout.contains("fw-sibling"),
                    "{}",
                    ctx(&format!(
                        "gc exited {}: {} {}",
                        gc.code, gc.stdout, gc.stderr
                    ))
                );
            }
            let del = s.rig.hull(&["delete", "--force", &id]);
            ensure!(
                del.code == 0,
                "{}",
                ctx(&format!(
                    "delete --force exited {}: {}",
                    del.code, del.stderr
                ))
            );
            s.rig
                .nothing_left(&id, &s.marker, s.others)
                .map_err(|e| Outcome::Fail(ctx(&e.to_string())))?;
        }
        covered.push(format!("{} {}", s.name, trace.len()));
        if s.others > 0 {
            s.rig.hull(&["delete", "--force", "fw-sibling"]).ok()?;
            s.rig.nothing_left("fw-sibling", &s.others_marker, 0)?;
        }
    }
    println!(
        "fault_walk: {total} steps covered ({}; every other one recovered by gc)",
        covered.join(", ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// hull gc

fn need_net_tools() -> TestResult {
    for tool in ["ip", "nsenter", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(Outcome::Skip(format!("{tool} not installed (make deps)")));
        }
    }
    Ok(())
}

/// Leftovers of every kind next to a running container: `gc --dry-run`
/// lists them and changes nothing, `gc` removes them and nothing else, a
/// second `gc` finds nothing.
fn gc_leftovers(c: &Ctx) -> TestResult {
    let fp = failpoints_bin()?;
    need_net_tools()?;
    let rig = Rig::new(c, true)?;
    let n = c.suite.next();
    let marker = format!("HULL_RT_FAULT=gc-{}-{n}", std::process::id());
    let keep_marker = format!("{marker}-keep");
    let b = c.bundle(&marked(&["sleep", "60"], &marker))?;
    let b = b.to_string_lossy().into_owned();
    let kb = c.bundle(&marked(&["sleep", "60"], &keep_marker))?;
    let kb = kb.to_string_lossy().into_owned();
    let extras = |port: &'static str| ["--overlay", "-v", "gcvol:/data", "-p", port];

    // A running container that gc must leave alone.
    let keep = c.id();
    let mut args = vec!["create", "-b", &kb];
    args.extend(extras("18090:80"));
    args.push(&keep);
    rig.hull(&args).ok()?;
    rig.hull(&["start", &keep]).ok()?;

    // A: hull killed once the rules were in place, then the init killed:
    // a state dir, cgroups, overlay dir, volume use, lease and chains.
    let a = c.id();
    let mut args = vec!["create", "-b", &b];
    args.extend(extras("18091:80"));
    args.push(&a);
    let out = rig.hull_with(&fp, &args, &[("HULL_FAILPOINT", "network: rules")]);
    ensure!(out.code == 137, "create {a} was not killed: {}", out.stderr);
    let pid = rig.pid(&a)?;
    runtime_tests::util::signal(pid, libc::SIGKILL)?;
    wait_until("A's init to exit", Duration::from_secs(10), || {
        !pid_alive(pid)
    })?;

    // B: created and started, then its init killed and its state dir lost:
    // what is left is found through owner marks and the lease store.
    let bid = c.id();
    let mut args = vec!["create", "-b", &b];
    args.extend(extras("18092:80"));
    args.push(&bid);
    rig.hull(&args).ok()?;
    rig.hull(&["start", &bid]).ok()?;
    let pid = rig.pid(&bid)?;
    runtime_tests::util::signal(pid, libc::SIGKILL)?;
    wait_until("B's init to exit", Duration::from_secs(10), || {
        procs_with_env(&marker).is_empty()
    })?;
    std::fs::remove_dir_all(rig.root.join(&bid))?;

    // C: a create killed between mkdir and its first write.
    let cid = c.id();
    std::fs::create_dir(rig.root.join(&cid))?;

    // Strays on the bridge with hull's names but no lease, and look-alikes
    // hull did not make.
    let ns = rig.netns.clone().expect("netns");
    sh(
        "ip",
        &[
            "-n",
            &ns,
            "link",
            "add",
            "hvdeadbeef",
            "type",
            "veth",
            "peer",
            "name",
            "fake1",
        ],
    )?;
    sh(
        "ip",
        &["-n", &ns, "link", "set", "hvdeadbeef", "master", "hull0"],
    )?;
    sh(
        "ip",
        &[
            "-n", &ns, "link", "add", "other0", "type", "veth", "peer", "name", "other1",
        ],
    )?;
    sh(
        "ip",
        &["-n", &ns, "link", "set", "other0", "master", "hull0"],
    )?;
    let nft = |cmd: &str| -> Result<String, Outcome> {
        let nsarg = format!("--net=/run/netns/{ns}");
        sh("nsenter", &[nsarg.as_str(), "nft", cmd])
    };
    nft("add chain ip hull-hull0 c-000000000000-pre { type nat hook prerouting priority -100; }")?;
    nft("add chain ip hull-hull0 mychain")?;
    let own = own_cgroup_dir()?;
    let untagged = own.join(format!("rt-gc-untagged-{}-{n}", std::process::id()));
    std::fs::create_dir(&untagged)?;
    let u = untagged.clone();
    c.on_cleanup(move || {
        let _ = std::fs::remove_dir(&u);
    });
    let unmarked = rig.data.join("containers").join("rt-gc-unmarked");
    std::fs::create_dir_all(&unmarked)?;
    // The veths of A and B go with their namespaces, asynchronously.
    wait_until(
        "the veths of dead containers to go",
        Duration::from_secs(10),
        || rig.run_in(&["ip", "-o", "link"]).matches(": hv").count() == 2,
    )?;

    let snapshot = || -> String {
        let mut s = String::new();
        for d in [&rig.root, &rig.data.join("containers")] {
            let mut names: Vec<String> = std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            s += &format!("{names:?}\n");
        }
        s += &std::fs::read_to_string(rig.net.join("hull0.json")).unwrap_or_default();
        s += &rig.run_in(&["ip", "-o", "link"]);
        s += &rig.run_in(&["nft", "list", "ruleset"]);
        s += &format!("{:?}", cgroups_matching(&a));
        s += &format!("{:?}", cgroups_matching(&bid));
        s
    };
    let before = snapshot();
    let dry = rig.hull(&["gc", "--dry-run"]).ok()?;
    ensure!(
        snapshot() == before,
        "gc --dry-run changed the host: {}",
        dry.stdout
    );
    let lines: Vec<&str> = dry.stdout.lines().collect();
    ensure!(
        lines.iter().all(|l| l.starts_with("would remove ")),
        "dry-run output: {}",
        dry.stdout
    );
    let root = rig.root.to_string_lossy();
    let data = rig.data.to_string_lossy();
    let want = [
        format!("container {a} (state dir {root}/{a}"),
        "cgroup ".to_string(),
        format!("overlay dir {data}/containers/{a}"),
        format!("of {a} (bridge hull0)"),
        format!("cgroup {} (of {root}/{bid})", own.join(&bid).display()),
        format!("overlay dir {data}/containers/{bid} (of {root}/{bid})"),
        format!("/volumes/gcvol/users/{bid}@"),
        format!("of {bid} (bridge hull0)"),
        format!("state dir {root}/{cid} (a create killed early)"),
        "veth hvdeadbeef (bridge hull0, no lease)".to_string(),
        "nft chain c-000000000000-pre (table ip hull-hull0, no lease)".to_string(),
    ];
    for w in &want {
        ensure!(
            dry.stdout.contains(w.as_str()),
            "dry-run lacks {w:?}: {}",
            dry.stdout
        );
    }
    let chains = lines.iter().filter(|l| l.contains("nft chains c-")).count();
    ensure!(chains == 2, "the chains of A and B: {}", dry.stdout);
    for never in [
        keep.as_str(),
        "other0",
        "mychain",
        "rt-gc-untagged",
        "rt-gc-unmarked",
    ] {
        ensure!(
            !dry.stdout.contains(never),
            "gc would touch {never}: {}",
            dry.stdout
        );
    }

    let done = rig.hull(&["gc"]).ok()?;
    let removed: Vec<String> = done
        .stdout
        .lines()
        .map(|l| l.replacen("removed ", "would remove ", 1))
        .collect();
    ensure!(
        removed == lines,
        "gc removed other things than --dry-run listed: {} / {}",
        done.stdout,
        dry.stdout
    );
    for (id, m) in [(&a, &marker), (&bid, &marker)] {
        rig.nothing_left(id, m, 1)?;
    }
    ensure!(!rig.root.join(&cid).exists(), "bare state dir left");
    let links = rig.run_in(&["ip", "-o", "link"]);
    ensure!(!links.contains("hvdeadbeef"), "stray veth left: {links}");
    ensure!(
        links.contains("other0"),
        "gc removed a veth hull did not make: {links}"
    );
    let rules = rig.run_in(&["nft", "list", "ruleset"]);
    ensure!(
        !rules.contains("c-000000000000-pre"),
        "stray chain left: {rules}"
    );
    ensure!(
        rules.contains("mychain"),
        "gc removed a chain hull did not make: {rules}"
    );
    ensure!(
        rules.contains(&format!("hull:{keep}\"")),
        "keep's rules are gone: {rules}"
    );
    ensure!(untagged.exists(), "gc removed an unmarked cgroup");
    ensure!(unmarked.exists(), "gc removed an unmarked overlay dir");
    ensure!(
        rig.data.join("containers").join(&keep).exists(),
        "gc removed keep's overlay dir"
    );
    let st: Value = serde_json::from_str(&rig.hull(&["state", &keep]).ok()?.stdout)?;
    ensure!(st["status"] == "running", "keep is not running: {st}");
    ensure!(
        !procs_with_env(&keep_marker).is_empty(),
        "keep's process is gone"
    );

    let again = rig.hull(&["gc"]).ok()?;
    ensure!(
        again.stdout.trim().is_empty(),
        "a second gc found: {}",
        again.stdout
    );

    rig.hull(&["delete", "--force", &keep]).ok()?;
    let _ = std::fs::remove_dir(&unmarked);
    rig.nothing_left(&keep, &keep_marker, 0)
}

/// Our own cgroup directory in the v1 cpu hierarchy, or on a cgroup2 host
/// the unified one: where containers without a cgroupsPath land.
fn own_cgroup_dir() -> Result<PathBuf, Outcome> {
    let own = std::fs::read_to_string("/proc/self/cgroup")?;
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (ctrls, path) = (parts.nth(1).unwrap_or(""), parts.next().unwrap_or(""));
        let rel = path.trim_start_matches('/');
        if v2 && ctrls.is_empty() {
            return Ok(Path::new("/sys/fs/cgroup").join(rel));
        }
        if !v2 && ctrls.split(',').any(|c| c == "cpu") {
            return Ok(Path::new("/sys/fs/cgroup/cpu").join(rel));
        }
    }
    Err(Outcome::Skip("cannot find our own cgroup".into()))
}

// ---------------------------------------------------------------------------------------
// concurrency

/// Container ids and a bundle whose processes carry a marker of their own.
fn batch(c: &Ctx, n: usize, args: &[&str]) -> Result<(Vec<String>, PathBuf, String), Outcome> {
    let marker = format!(
        "HULL_RT_FAULT={}-{}-{}",
        c.name,
        std::process::id(),
        c.suite.next()
    );
    let b = c.bundle(&marked(args, &marker))?;
    Ok(((0..n).map(|_| c.id()).collect(), b, marker))
}

/// Container `id` is gone: no state, no cgroup.
fn gone(c: &Ctx, id: &str) -> TestResult {
    ensure!(c.rt.is_gone(id), "{id} still exists");
    ensure!(!c.rt.root.join(id).exists(), "state dir of {id} left");
    let cg: Vec<String> = cgroups_matching(id)
        .into_iter()
        .filter(|d| d.ends_with(&format!("/{id}")))
        .collect();
    ensure!(cg.is_empty(), "cgroups of {id} left: {}", cg.join(", "));
    Ok(())
}

fn no_processes(marker: &str) -> TestResult {
    wait_until(
        "container processes to exit",
        Duration::from_secs(10),
        || procs_with_env(marker).is_empty(),
    )
}

/// 50 `run -d` + `delete --force` of distinct ids at once: each succeeds,
/// nothing is left.
fn run_delete_50(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 50, &["sleep", "30"])?;
    let rt = c.rt;
    let b = b.to_string_lossy().into_owned();
    let errors: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .map(|id| {
                let b = b.as_str();
                s.spawn(move || -> Result<(), String> {
                    let run = rt.exec(&["run", "-d", "--bundle", b, id]);
                    let del = rt.delete_force(id);
                    if run.code != 0 || del.code != 0 {
                        return Err(format!(
                            "{id}: run -d exited {} ({}), delete --force {} ({})",
                            run.code,
                            run.stderr.trim(),
                            del.code,
                            del.stderr.trim()
                        ));
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("thread panicked".into()))
                    .err()
            })
            .collect()
    });
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    for id in &ids {
        gone(c, id)?;
    }
    no_processes(&marker)
}

/// 20 concurrent creates of one id: exactly one wins, every other fails
/// with runc's "already exists", and the winner is whole. HullOnly: runc
/// 1.1.5 loses this race (see create_concurrent_same_id in suite.rs).
fn create_same_id_20(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 1, &["sleep", "30"])?;
    let id = ids[0].as_str();
    let b = b.to_string_lossy().into_owned();
    let spawned: Vec<Spawned> = (0..20)
        .map(|_| c.rt.spawn(&["create", "--bundle", &b, id]))
        .collect::<Result<_, _>>()?;
    let outs: Vec<Output> = spawned.into_iter().map(|s| s.wait(COMMAND_LIMIT)).collect();
    let winners = outs.iter().filter(|o| o.code == 0).count();
    ensure!(
        winners == 1,
        "{winners} of 20 creates of {id} succeeded: {:?}",
        outs.iter().map(|o| o.stderr.trim()).collect::<Vec<_>>()
    );
    for o in outs.iter().filter(|o| o.code != 0) {
        ensure!(
            o.code == 1 && o.stderr.contains("already exists"),
            "a losing create exited {}: {}",
            o.code,
            o.stderr.trim()
        );
    }
    let st = c.rt.state(id)?;
    ensure!(st["status"] == "created", "the winner is not created: {st}");
    let pid = st["pid"].as_i64().unwrap_or(0) as i32;
    ensure!(
        pid > 0 && pid_alive(pid),
        "the winner's init is not alive: {st}"
    );
    c.rt.start(id).ok()?;
    ensure!(c.rt.status(id)? == "running", "the winner does not start");
    c.rt.delete_force(id).ok()?;
    gone(c, id)?;
    no_processes(&marker)
}

/// `delete --force` racing `kill`: delete succeeds, kill succeeds or says
/// the container is not running or gone; nothing hangs or is left.
fn delete_force_vs_kill(c: &Ctx) -> TestResult {
    let (ids, b, marker) = batch(c, 10, &["sleep", "30"])?;
    for id in &ids {
        c.rt.create(id, &b).ok()?;
        c.rt.start(id).ok()?;
        let kill = c.rt.spawn(&["kill", id, "KILL"])?;
        let del = c.rt.spawn(&["delete", "--force", id])?;
        let (kill, del) = (kill.wait(COMMAND_LIMIT), del.wait(COMMAND_LIMIT));
        ensure!(
            del.code == 0,
            "delete --force {id} exited {}: {}",
            del.code,
            del.stderr.trim()
        );
        let benign = ["not running", "does not exist"];
        ensure!(
            kill.code == 0 || (kill.code == 1 && benign.iter().any(|b| kill.stderr.contains(b))),
            "kill {id} exited {}: {}",
            kill.code,
            kill.stderr.trim()
        );
        gone(c, id)?;
    }
    no_processes(&marker)
}
