//! Scale of one bridge (hull-only), the networks issue's "250 containers on
//! one bridge: create time does not grow with the count, rules grow by a
//! constant per container". In the test's own network namespaces, as every
//! network test (network.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::COMMAND_LIMIT;
use runtime_tests::util::guard;
use runtime_tests::{ensure, Outcome, TestResult};
use serde_json::Value;

use super::network::{all_gone, ip_of, topo, web_config, Topo, HOST_IP};

pub const TESTS: &[Test] = &[t("net_scale_250", Kind::HullOnly, scale_250)];

/// Set by the cgroup-v2 VM lane (runtime-tests/vm/run.sh): scale is the
/// host's business, the VM lane checks cgroup v2.
const SKIP_ENV: &str = "HULL_RT_SKIP_SCALE";

/// The count. The default bridge's subnet (ipam::DEFAULT_SUBNET,
/// 10.89.0.0/16) has 65533 container addresses: 250 is nowhere near full.
const COUNT: usize = 250;

/// Container i publishes BASE_PORT + i: below the ephemeral range, so no
/// client socket of the requests below can hold one.
const BASE_PORT: usize = 20000;

/// rules.rs gives a container with published ports two chains of its own
/// (prerouting, output), each with one DNAT rule per mapping; everything
/// else in the table is shared by the bridge.
const CHAINS_PER_CONTAINER: usize = 2;

/// (chains, rules) in the default bridge's table (rules.rs `table`).
fn table_size(t: &Topo) -> Result<(usize, usize), Outcome> {
    // Bounded like a runtime call: a wedged nft must not hang the suite.
    let limit = guard(COMMAND_LIMIT).as_secs().to_string();
    let argv = [
        "timeout",
        &limit,
        "nft",
        "-j",
        "list",
        "table",
        "ip",
        "hull-hull0",
    ];
    let out = t.run_in(&t.host, &argv);
    ensure!(
        out.status.success(),
        "nft list table: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    let items = doc["nftables"].as_array().cloned().unwrap_or_default();
    let count = |kind: &str| items.iter().filter(|o| o.get(kind).is_some()).count();
    Ok((count("chain"), count("rule")))
}

fn median(of: &[Duration]) -> Duration {
    let mut sorted = of.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

/// 250 running containers on the default bridge, each publishing one port:
/// every create is timed and the times reported (never asserted: a loaded
/// machine must not fail the suite); each container has an address of its
/// own and a lease; the table grows by the same few rules per container;
/// the first, middle and last answer through their ports; deleting them
/// all leaves nothing.
fn scale_250(c: &Ctx) -> TestResult {
    if std::env::var_os(SKIP_ENV).is_some() {
        return Err(Outcome::Skip(format!(
            "{SKIP_ENV} is set (the cgroup-v2 VM: 250 containers under TCG take \
             ~9 minutes and would push a loaded machine's lane past its time; \
             the host lane runs it)"
        )));
    }
    let t = topo(c)?;
    // One bundle for all: hull writes a container's files (hosts, hostname)
    // under its state dir, never into the bundle.
    let bundle = c.bundle(&web_config(c)?)?;
    let bundle = bundle.to_string_lossy().into_owned();
    let mut ids = Vec::with_capacity(COUNT);
    let mut took = Vec::with_capacity(COUNT);
    let mut ips = BTreeSet::new();
    let mut sizes = BTreeMap::new();
    let all = Instant::now();
    for i in 0..COUNT {
        let id = c.id();
        let publish = format!("{}:80", BASE_PORT + i);
        let begun = Instant::now();
        let out = t.hull(c, &["create", "-b", &bundle, "-p", &publish, &id]);
        took.push(begun.elapsed());
        out.ok()?;
        t.hull(c, &["start", &id]).ok()?;
        let ip = ip_of(&t, c, &id)?;
        ensure!(ips.insert(ip.clone()), "{id} got {ip}, taken already");
        ids.push(id);
        if [1, 2, COUNT / 2, COUNT].contains(&ids.len()) {
            sizes.insert(ids.len(), table_size(&t)?);
        }
    }
    let created: Duration = took.iter().sum();
    eprintln!(
        "net_scale_250: create median {:?} for containers 1-10, {:?} for {}-{}; \
         {COUNT} creates {created:?} ({:?} with start and state)",
        median(&took[..10]),
        median(&took[COUNT - 10..]),
        COUNT - 9,
        COUNT,
        all.elapsed()
    );

    let (chains1, rules1) = sizes[&1];
    let (chains2, rules2) = sizes[&2];
    let (chains_per, rules_per) = (
        chains2.saturating_sub(chains1),
        rules2.saturating_sub(rules1),
    );
    eprintln!(
        "net_scale_250: {rules1} rules in {chains1} chains with one container; \
         each more adds {rules_per} rules in {chains_per} chains"
    );
    ensure!(
        chains_per == CHAINS_PER_CONTAINER && (1..=CHAINS_PER_CONTAINER).contains(&rules_per),
        "a second container added {chains_per} chains and {rules_per} rules"
    );
    for (&n, &(chains, rules)) in &sizes {
        ensure!(
            chains == chains1 + (n - 1) * chains_per && rules == rules1 + (n - 1) * rules_per,
            "{rules} rules in {chains} chains with {n} containers, not {} in {}",
            rules1 + (n - 1) * rules_per,
            chains1 + (n - 1) * chains_per
        );
    }
    let store: Value = serde_json::from_str(&t.leases())?;
    let leases = store["leases"].as_object().cloned().unwrap_or_default();
    let leased: BTreeSet<&str> = leases.values().filter_map(Value::as_str).collect();
    let ours: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    ensure!(
        leases.len() == COUNT && leased == ours,
        "{} leases, for {} of the {COUNT} containers",
        leases.len(),
        leased.intersection(&ours).count()
    );

    for i in [0, COUNT / 2, COUNT - 1] {
        let page = t.get(&t.client, &format!("http://{HOST_IP}:{}/", BASE_PORT + i))?;
        ensure!(page == "hello from hull\n", "container {}: {page:?}", i + 1);
    }

    let begun = Instant::now();
    for id in &ids {
        t.hull(c, &["delete", "--force", id]).ok()?;
    }
    eprintln!(
        "net_scale_250: {COUNT} delete --force {:?}",
        begun.elapsed()
    );
    all_gone(&t)
}
