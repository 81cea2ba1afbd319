//! `hull gc` (hull-only): leftovers of every kind next to a running
//! container, in a private rig with its own network namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_tests::fixture::Ctx;
use runtime_tests::util::{cgroups_matching, pid_alive, procs_with_env, wait_until};
use runtime_tests::{ensure, Outcome, TestResult};
use serde_json::Value;

use super::{failpoints_bin, marked, need_net_tools, Rig};
use runtime_tests::util::sh;

/// Leftovers of every kind next to a running container: `gc --dry-run`
/// lists them and changes nothing, `gc` removes them and nothing else, a
/// second `gc` finds nothing.
pub fn leftovers(c: &Ctx) -> TestResult {
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
