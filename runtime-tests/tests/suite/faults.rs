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
    cgroups_matching, host_mounts_mentioning, procs_with_env, sh, wait_until,
};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::{json, Value};

#[path = "faults/concurrency.rs"]
mod concurrency;
#[path = "faults/gc.rs"]
mod gc;

pub const TESTS: &[Test] = &[
    t("fault_walk", Kind::HullOnly, walk),
    t("gc_leftovers", Kind::HullOnly, gc::leftovers),
    t("conc_run_delete_50", Kind::Oci, concurrency::run_delete_50),
    t(
        "conc_create_same_id_20",
        Kind::HullOnly,
        concurrency::create_same_id_20,
    ),
    t(
        "conc_delete_force_vs_kill",
        Kind::Oci,
        concurrency::delete_force_vs_kill,
    ),
];

/// Where the failpoints build is looked for when HULL_FAILPOINTS is unset.
const FAILPOINTS_DEFAULT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/failpoints/release/hull"
);

pub(crate) fn failpoints_bin() -> Result<PathBuf, Outcome> {
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

pub(crate) fn need_net_tools() -> TestResult {
    for tool in ["ip", "nsenter", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(Outcome::Skip(format!("{tool} not installed (make deps)")));
        }
    }
    Ok(())
}

/// A private hull world: its own state root, data root and lease store, and
/// optionally a network namespace every command runs in.
pub(crate) struct Rig<'a> {
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
        // Every lease store: the default bridge's and the named networks'.
        for entry in std::fs::read_dir(&self.net).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            ensure!(
                !text.contains(&format!("\"{id}\"")),
                "lease of {id} left in {}: {text}",
                entry.path().display()
            );
        }
        let store = self.net.join("hull0.json");
        let leases = std::fs::read_to_string(&store).unwrap_or_default();
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
            ensure!(
                !links.contains("hull0") && !links.contains(": hn-"),
                "bridge left: {links}"
            );
            let fwd6 = self.run_in(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
            ensure!(fwd6.trim() == "0", "IPv6 forwarding left at {fwd6}");
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
pub(crate) fn marked(args: &[&str], marker: &str) -> Value {
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
    let b = c.bundle(&marked(&["sleep", "3600"], &m))?;
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
    let b = c.bundle(&marked(&["sleep", "3600"], &m))?;
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
        let b = c.bundle(&marked(&["sleep", "3600"], &m))?;
        let others_marker = marker("sibling");
        if others > 0 {
            // Made before the walk starts, it must outlive the walk of every
            // scenario before its own: on a loaded machine that took over
            // ten minutes once, and a `sleep 600` ended mid-walk.
            let sib = c.bundle(&marked(&["sleep", "86400"], &others_marker))?;
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

    // a named dual-stack network: its own bridge, an ip6 table, IPv6
    // forwarding, /etc/hosts peers; and the default bridge as a second
    // network (eth1, its own journal entry and steps); the network stays
    let rig = Rig::new(c, true)?;
    rig.hull(&["network", "create", "--ipv6", "fwnet"]).ok()?;
    let m = marker("named-v6");
    let b = c.bundle(&marked(&["sleep", "3600"], &m))?;
    out.push(Scenario {
        name: "named-v6",
        marker: m,
        rig,
        others: 0,
        others_marker: String::new(),
        cmds: Box::new(move |id| {
            let b = b.to_string_lossy();
            vec![
                argv(&[
                    "create",
                    "-b",
                    &b,
                    "--network",
                    "fwnet",
                    "--network",
                    "bridge",
                    "-p",
                    "18082:80",
                    id,
                ]),
                argv(&["start", id]),
                argv(&["delete", "--force", id]),
            ]
        }),
    });
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
    need_net_tools()?;
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
