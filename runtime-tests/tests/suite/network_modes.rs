//! `--network none` and `--network host` (hull-only, Docker's modes): in the
//! test's own network namespaces, as every network test (network.rs).

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::{ensure, TestResult};

use super::network::{create_refused, topo};

pub const TESTS: &[Test] = &[t("net_modes_none_host", Kind::HullOnly, modes_none_host)];

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
