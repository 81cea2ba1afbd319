//! Named networks (hull-only): `network create|ls|inspect|rm|prune`,
//! `--network NAME`, `--network-alias`, `--internal`. In the test's own
//! network namespaces, as every network test (network.rs).

use std::time::{Duration, Instant};

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::util::{guard, sh};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};

use super::network::{all_gone, create_refused, ip_of, topo, web_config, Topo, HOST_IP};

pub const TESTS: &[Test] = &[
    t("net_named_networks", Kind::HullOnly, named_networks),
    t("net_named_ipv6", Kind::HullOnly, named_ipv6),
    t("net_several_networks", Kind::HullOnly, several_networks),
];

/// One GET with busybox wget from inside container `id` (3 s at most).
fn get_from(t: &Topo, c: &Ctx, id: &str, url: &str) -> Output {
    t.hull(
        c,
        &["exec", id, "timeout", "3", "wget", "-q", "-O", "-", url],
    )
}

/// GET `url` from container `id` until it answers (the server may still be
/// starting): at most 20 tries in 10 s.
fn get_eventually(t: &Topo, c: &Ctx, id: &str, url: &str) -> Result<String, Outcome> {
    let start = Instant::now();
    loop {
        let out = get_from(t, c, id, url);
        if out.code == 0 {
            return Ok(out.stdout);
        }
        if start.elapsed() > guard(Duration::from_secs(10)) {
            fail!("GET {url} from {id}: {}", out.stderr.trim());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Container `from` cannot reach container `to`'s address (another network).
fn unreachable(t: &Topo, c: &Ctx, from: &str, to: &str) -> TestResult {
    let ip = ip_of(t, c, to)?;
    let out = get_from(t, c, from, &format!("http://{ip}/"));
    ensure!(
        out.code != 0,
        "{from} reached {to} at {ip} on another network: {}",
        out.stdout
    );
    Ok(())
}

/// Nothing left, named networks' bridges included.
fn all_gone_named(t: &Topo) -> TestResult {
    let left: Vec<String> = t
        .link_names()
        .into_iter()
        .filter(|l| l.starts_with("hn-"))
        .collect();
    ensure!(left.is_empty(), "network bridges left: {left:?}");
    all_gone(t)
}

fn hosts_of(t: &Topo, c: &Ctx, id: &str) -> Result<String, Outcome> {
    Ok(t.hull(c, &["exec", id, "cat", "/etc/hosts"]).ok()?.stdout)
}

/// Two networks and the default bridge: names (id and alias) resolve within
/// a network and follow containers as they go; nothing crosses between
/// networks but a published port through a host address; an internal
/// network reaches nothing off its subnet; a used network cannot be
/// removed; bad input is one line; nothing is left.
fn named_networks(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    t.hull(c, &["network", "create", "appnet"]).ok()?;
    t.hull(c, &["network", "create", "--internal", "priv"])
        .ok()?;
    let out = t
        .hull(
            c,
            &["network", "create", "--subnet", "10.89.1.0/24", "clash"],
        )
        .code(1)?;
    ensure!(
        out.stderr.contains("overlaps") && out.stderr.trim().lines().count() == 1,
        "a subnet inside the default bridge's: {}",
        out.stderr
    );
    let names = t.hull(c, &["network", "ls", "-q"]).ok()?.stdout;
    ensure!(
        names.split_whitespace().collect::<Vec<_>>()
            == ["bridge", "none", "host", "appnet", "priv"],
        "network ls -q: {names}"
    );

    let sleeper = config(&["sleep", "120"]);
    let db = t.start(
        c,
        &web_config(c)?,
        &[
            "--network",
            "appnet",
            "--network-alias",
            "postgres",
            "-p",
            "18086:80",
        ],
    )?;
    let web = t.start(c, &sleeper, &["--network", "appnet"])?;
    let other = t.start(c, &sleeper, &["--network", "bridge"])?;
    let inside = t.start(c, &sleeper, &["--network", "priv"])?;

    let page = get_eventually(&t, c, &web, "http://postgres/")?;
    ensure!(page == "hello from hull\n", "by alias: {page:?}");
    let page = get_from(&t, c, &web, &format!("http://{db}/")).ok()?.stdout;
    ensure!(page == "hello from hull\n", "by id: {page:?}");
    let hosts = hosts_of(&t, c, &db)?;
    ensure!(hosts.contains(&web), "db's /etc/hosts lacks {web}: {hosts}");
    let hosts = hosts_of(&t, c, &other)?;
    ensure!(
        !hosts.contains(&db) && !hosts.contains("postgres"),
        "the default bridge names appnet's containers: {hosts}"
    );

    // Across networks: only the published port, through a host address.
    unreachable(&t, c, &other, &db)?;
    let db_ip = ip_of(&t, c, &db)?;
    let page = get_eventually(&t, c, &other, &format!("http://{HOST_IP}:18086/"))?;
    ensure!(
        page == "hello from hull\n",
        "published port from another network: {page:?}"
    );
    for url in [
        format!("http://{db_ip}/"),
        format!("http://{HOST_IP}:18086/"),
    ] {
        let out = get_from(&t, c, &inside, &url);
        ensure!(
            out.code != 0,
            "the internal network reached {url}: {}",
            out.stdout
        );
    }

    let inspect = t.hull(c, &["network", "inspect", "appnet"]).ok()?.stdout;
    let inspect: serde_json::Value = serde_json::from_str(&inspect)?;
    let members = inspect[0]["Containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        members.len() == 2
            && members.contains(&db.as_str().into())
            && members.contains(&web.as_str().into()),
        "network inspect appnet: {inspect}"
    );
    let out = t.hull(c, &["network", "rm", "appnet"]).code(1)?;
    ensure!(
        out.stderr.contains("in use") && out.stderr.trim().lines().count() == 1,
        "network rm of a used network: {}",
        out.stderr
    );
    create_refused(&t, c, &["--network", "nosuch"], "no network")?;

    t.hull(c, &["delete", "--force", &db]).ok()?;
    let hosts = hosts_of(&t, c, &web)?;
    ensure!(
        !hosts.contains(&db) && !hosts.contains("postgres"),
        "{db} still named after its delete: {hosts}"
    );
    for id in [&web, &other, &inside] {
        t.hull(c, &["delete", "--force", id]).ok()?;
    }
    t.hull(c, &["network", "rm", "appnet"]).ok()?;
    let pruned = t.hull(c, &["network", "prune"]).ok()?.stdout;
    ensure!(pruned.trim() == "priv", "network prune removed: {pruned:?}");
    let names = t.hull(c, &["network", "ls", "-q"]).ok()?.stdout;
    ensure!(
        names.split_whitespace().collect::<Vec<_>>() == ["bridge", "none", "host"],
        "network ls -q after rm: {names}"
    );
    all_gone_named(&t)
}

/// A dual-stack network: containers get an address of its IPv6 subnet
/// (named in each other's /etc/hosts) and a default route, reach each other
/// over IPv6, and a published port answers on the host's IPv6 address from
/// another namespace; everything goes with the last container, the IPv6
/// forwarding switch back to what it was.
fn named_ipv6(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    for (ns, dev, ip) in [
        (&t.host, "veth0", "2001:db8::1/64"),
        (&t.client, "veth1", "2001:db8::2/64"),
    ] {
        sh("ip", &["-n", ns, "addr", "add", ip, "dev", dev, "nodad"])?;
    }
    let forwarding = || {
        let out = t.run_in(&t.host, &["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let before = forwarding();
    t.hull(c, &["network", "create", "--ipv6", "v6net"]).ok()?;
    let inspect = t.hull(c, &["network", "inspect", "v6net"]).ok()?.stdout;
    let inspect: serde_json::Value = serde_json::from_str(&inspect)?;
    let subnet6 = inspect[0]["Subnet6"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        subnet6 == "fd68:756c:6c00::/64",
        "network inspect v6net: {inspect}"
    );
    let out = t
        .hull(
            c,
            &[
                "network",
                "create",
                "--subnet6",
                "fd68:756c:6c00::/80",
                "clash6",
            ],
        )
        .code(1)?;
    ensure!(
        out.stderr.contains("overlaps") && out.stderr.trim().lines().count() == 1,
        "an IPv6 subnet inside v6net's: {}",
        out.stderr
    );

    let db = t.start(
        c,
        &web_config(c)?,
        &["--network", "v6net", "-p", "18089:80"],
    )?;
    let client = t.start(c, &config(&["sleep", "120"]), &["--network", "v6net"])?;
    let state = t.hull(c, &["state", &db]).ok()?.stdout;
    let state: serde_json::Value = serde_json::from_str(&state)?;
    let ip6 = state["network"]["ip6"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(
        ip6.starts_with("fd68:756c:6c00::"),
        "state of {db}: {state}"
    );
    let hosts = hosts_of(&t, c, &client)?;
    ensure!(
        hosts.contains(&format!("{ip6}\t{db}")),
        "{client}'s /etc/hosts lacks {db}'s IPv6 address: {hosts}"
    );
    let page = get_eventually(&t, c, &client, &format!("http://[{ip6}]/"))?;
    ensure!(page == "hello from hull\n", "over IPv6: {page:?}");
    let page = t.get(&t.client, "http://[2001:db8::1]:18089/")?;
    ensure!(
        page == "hello from hull\n",
        "published port over IPv6: {page:?}"
    );
    ensure!(
        forwarding() == "1",
        "IPv6 forwarding is off with a dual-stack network"
    );

    for id in [&db, &client] {
        t.hull(c, &["delete", "--force", id]).ok()?;
    }
    t.hull(c, &["network", "rm", "v6net"]).ok()?;
    ensure!(
        forwarding() == before,
        "IPv6 forwarding {} after the network went, {before} before",
        forwarding()
    );
    all_gone(&t)
}

/// A container on two networks (`--network front --network back`): eth0 on
/// the first with the default route, eth1 on the second; it finds the
/// containers of both by name, each network's part of its /etc/hosts kept
/// apart as they come and go, while a container of one network alone still
/// cannot reach the other; a network it joins second cannot be removed
/// under it; bad combinations are one line; nothing is left.
fn several_networks(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    for net in ["front", "back"] {
        t.hull(c, &["network", "create", net]).ok()?;
    }
    let sleeper = config(&["sleep", "120"]);
    let db = t.start(
        c,
        &web_config(c)?,
        &["--network", "back", "--network-alias", "db"],
    )?;
    let edge = t.start(c, &sleeper, &["--network", "front"])?;
    let app = t.start(c, &sleeper, &["--network", "front", "--network", "back"])?;

    let state = t.hull(c, &["state", &app]).ok()?.stdout;
    let state: serde_json::Value = serde_json::from_str(&state)?;
    let nets = state["network"]["networks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let devices: Vec<&str> = nets.iter().filter_map(|n| n["device"].as_str()).collect();
    ensure!(
        devices == ["eth0", "eth1"] && nets[0]["ip"] == state["network"]["ip"],
        "state of {app}: {state}"
    );
    let route = t
        .hull(c, &["exec", &app, "cat", "/proc/net/route"])
        .ok()?
        .stdout;
    let default_via: Vec<&str> = route
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    ensure!(
        default_via == ["eth0"],
        "{app}'s default route is not on eth0 alone: {route}"
    );

    let page = get_eventually(&t, c, &app, "http://db/")?;
    ensure!(page == "hello from hull\n", "db from {app}: {page:?}");
    let hosts = hosts_of(&t, c, &app)?;
    ensure!(
        hosts.contains(&edge) && hosts.contains(" db\n"),
        "{app}'s /etc/hosts lacks a network's peers: {hosts}"
    );
    let hosts = hosts_of(&t, c, &edge)?;
    ensure!(
        hosts.contains(&app) && !hosts.contains(" db\n"),
        "{edge} (front only) and back's names: {hosts}"
    );
    unreachable(&t, c, &edge, &db)?;

    let out = t.hull(c, &["network", "rm", "back"]).code(1)?;
    ensure!(
        out.stderr.contains("in use") && out.stderr.trim().lines().count() == 1,
        "network rm of a network joined second: {}",
        out.stderr
    );
    create_refused(
        &t,
        c,
        &["--network", "front", "--network", "front"],
        "twice",
    )?;
    create_refused(
        &t,
        c,
        &["--network", "none", "--network", "front"],
        "cannot be combined",
    )?;

    // back's part of app's /etc/hosts follows db; front's stays.
    t.hull(c, &["delete", "--force", &db]).ok()?;
    let hosts = hosts_of(&t, c, &app)?;
    ensure!(
        !hosts.contains(" db\n") && hosts.contains(&edge),
        "{app}'s /etc/hosts after {db} went: {hosts}"
    );
    for id in [&app, &edge] {
        t.hull(c, &["delete", "--force", id]).ok()?;
    }
    for net in ["front", "back"] {
        t.hull(c, &["network", "rm", net]).ok()?;
    }
    all_gone_named(&t)
}
