//! `--network none` and `--network host` (hull-only, Docker's modes), and
//! `delete` from another namespace than `create`'s: in the test's own
//! network namespaces, as every network test (network.rs).

use std::process::{Command, Stdio};
use std::time::Duration;

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::wait_until;
use runtime_tests::{ensure, TestResult};

use super::network::{create_refused, topo};

pub const TESTS: &[Test] = &[
    t("net_modes_none_host", Kind::HullOnly, modes_none_host),
    t("net_delete_elsewhere", Kind::HullOnly, delete_elsewhere),
];

/// `none` gives a container whose config.json shares the caller's network
/// a namespace of its own with loopback only; `host` gives one whose
/// config.json asks for a new namespace the caller's; neither makes a
/// bridge or writes a lease, and neither publishes ports.
fn modes_none_host(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let count_links = "ip -o link | grep -c ': '";

    let mut shares = config(&["sh", "-c", count_links]);
    shares["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "network");
    let b = c.bundle(&shares)?;
    let out = t
        .hull(
            c,
            &[
                "run",
                "--network",
                "none",
                "-b",
                &b.to_string_lossy(),
                &c.id(),
            ],
        )
        .ok()?;
    ensure!(
        out.stdout.trim() == "1",
        "links with --network none: {}",
        out.stdout
    );

    let host_links = t.link_names();
    ensure!(
        host_links.len() >= 2,
        "the test's host netns: {host_links:?}"
    );
    let b = c.bundle(&config(&["sh", "-c", count_links]))?;
    let out = t
        .hull(
            c,
            &[
                "run",
                "--network",
                "host",
                "-b",
                &b.to_string_lossy(),
                &c.id(),
            ],
        )
        .ok()?;
    ensure!(
        out.stdout.trim() == host_links.len().to_string(),
        "links with --network host: {} (host: {host_links:?})",
        out.stdout
    );

    create_refused(
        &t,
        c,
        &["--network", "host", "-p", "8080:80"],
        "need a bridge network",
    )?;
    ensure!(
        std::fs::read_dir(&t.net_root)?.next().is_none(),
        "the network state dir was touched"
    );
    ensure!(
        !t.link_names().iter().any(|l| l.starts_with("hull")),
        "a bridge was made: {:?}",
        t.link_names()
    );
    Ok(())
}

/// A container created in a network namespace no name points at (one a
/// process holds) and deleted from another: delete finds that namespace
/// again (by its cookie) and removes the bridge, the veth and the table
/// there, instead of taking it for gone and leaving them.
fn delete_elsewhere(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let mut holder = Command::new("unshare")
        .args(["--net", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()?;
    let ns = format!("/proc/{}/ns/net", holder.id());
    let result = (|| -> TestResult {
        // The event: unshare has moved into a namespace of its own (its
        // `sleep` may be busybox, so the exe name says nothing).
        let ours = std::fs::read_link("/proc/self/ns/net")?;
        wait_until(
            "unshare --net to enter its namespace",
            Duration::from_secs(10),
            || std::fs::read_link(&ns).is_ok_and(|l| l != ours),
        )?;
        let run_there = |argv: &[&str]| {
            let out = Command::new("nsenter")
                .arg(format!("--net={ns}"))
                .args(argv)
                .output();
            out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let b = c.bundle(&config(&["sleep", "60"]))?;
        let id = c.id();
        t.hull_at(
            c,
            &ns,
            &["create", "-b", &b.to_string_lossy(), "-p", "18090:80", &id],
            &[],
        )
        .ok()?;
        ensure!(
            run_there(&["ip", "-o", "link"]).contains("hull0"),
            "no bridge where {id} was created"
        );
        t.hull(c, &["delete", "--force", &id]).ok()?;
        let links = run_there(&["ip", "-o", "link"]);
        ensure!(
            !links.contains("hull0") && !links.contains(": hv"),
            "links left where {id} was created: {links}"
        );
        let rules = run_there(&["nft", "list", "ruleset"]);
        ensure!(!rules.contains("hull"), "rules left: {rules}");
        ensure!(!t.net_root.join("hull0.json").exists(), "lease store left");
        Ok(())
    })();
    let _ = holder.kill();
    let _ = holder.wait();
    result
}
