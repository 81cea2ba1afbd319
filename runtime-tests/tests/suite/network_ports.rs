//! Published ports whose host port hull picks (hull-only): `-p 80`,
//! `-p 127.0.0.1::80`, `-P` with `--expose`. In the test's own network
//! namespaces, as every network test (network.rs).

use runtime_tests::fixture::Ctx;
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::{ensure, fail, Outcome, TestResult};

use super::network::{all_gone, create_refused, nothing_left, topo, web_config, Topo, HOST_IP};

pub const TESTS: &[Test] = &[t(
    "net_publish_picked_port",
    Kind::HullOnly,
    publish_picked_port,
)];

/// `hull port ID`'s lines, each split into (container side, host address, host port).
fn ports_of(t: &Topo, c: &Ctx, id: &str) -> Result<Vec<(String, String, u16)>, Outcome> {
    let out = t.hull(c, &["port", id]).ok()?;
    let mut all = Vec::new();
    for line in out.stdout.lines() {
        let parsed = line.split_once(" -> ").and_then(|(ctr, host)| {
            let (ip, port) = host.rsplit_once(':')?;
            Some((ctr.to_string(), ip.to_string(), port.parse().ok()?))
        });
        match parsed {
            Some(p) => all.push(p),
            None => fail!("`port {id}` printed {line:?}"),
        }
    }
    Ok(all)
}

/// Without a host port, hull picks a free one in the host's ephemeral
/// range, `port` names it and it serves; two containers get different
/// ones; `-P` publishes what `--expose` offers, except a port `-p` maps
/// already; a host port on an exposed port is refused in one line.
fn publish_picked_port(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let range = t.run_in(&t.host, &["cat", "/proc/sys/net/ipv4/ip_local_port_range"]);
    let range: Vec<u16> = String::from_utf8_lossy(&range.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    ensure!(range.len() == 2, "ip_local_port_range: {range:?}");
    let in_range = |p: u16| range[0] <= p && p <= range[1];
    let web = web_config(c)?;

    let a = t.start(c, &web, &["-p", "80"])?;
    let pa = ports_of(&t, c, &a)?;
    ensure!(
        pa.len() == 1 && pa[0].0 == "80/tcp" && pa[0].1 == "0.0.0.0" && in_range(pa[0].2),
        "-p 80: {pa:?} (range {range:?})"
    );
    let page = t.get(&t.client, &format!("http://{HOST_IP}:{}/", pa[0].2))?;
    ensure!(
        page == "hello from hull\n",
        "page on the picked port: {page:?}"
    );

    let b = t.start(c, &web, &["-p", "127.0.0.1::80"])?;
    let pb = ports_of(&t, c, &b)?;
    ensure!(
        pb.len() == 1 && pb[0].1 == "127.0.0.1" && pb[0].2 != pa[0].2 && in_range(pb[0].2),
        "-p 127.0.0.1::80 beside {pa:?}: {pb:?}"
    );
    let page = t.get(&t.host, &format!("http://127.0.0.1:{}/", pb[0].2))?;
    ensure!(page == "hello from hull\n", "page on 127.0.0.1: {page:?}");

    let d = t.start(c, &web, &["-P", "--expose", "80", "--expose", "53/udp"])?;
    let mut pd = ports_of(&t, c, &d)?;
    pd.sort();
    ensure!(
        pd.len() == 2
            && pd[0].0 == "53/udp"
            && pd[1].0 == "80/tcp"
            && pd.iter().all(|p| in_range(p.2) && p.2 != pa[0].2),
        "-P --expose 80 --expose 53/udp: {pd:?}"
    );
    let page = t.get(&t.client, &format!("http://{HOST_IP}:{}/", pd[1].2))?;
    ensure!(page == "hello from hull\n", "page through -P: {page:?}");

    let e = t.start(c, &web, &["-P", "--expose", "80", "-p", "18085:80"])?;
    let pe = ports_of(&t, c, &e)?;
    ensure!(
        pe == [("80/tcp".to_string(), "0.0.0.0".to_string(), 18085)],
        "-P with 80 mapped by -p: {pe:?}"
    );

    create_refused(&t, c, &["-P", "--expose", "8080:80"], "expose")?;

    for id in [&a, &b, &d, &e] {
        t.hull(c, &["delete", "--force", id]).ok()?;
        nothing_left(&t, id)?;
    }
    all_gone(&t)
}
