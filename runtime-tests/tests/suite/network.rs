//! network tests (hull-only): `--network bridge`, published ports through
//! kernel DNAT, crash safety of the network objects.
//!
//! Every test builds its own topology and never touches the VM's network
//! namespace: a "host" netns where hull runs (under nsenter) and a "client"
//! netns joined to it by a veth (192.0.2.1 host side, 192.0.2.2 client side).
//! Both are named `hrt<suite pid>-<n>-{h,c}` and deleted when the test ends
//! (the leak check looks for leftovers). Traffic goes only to those addresses,
//! to 127.0.0.1 inside the host netns, and to the containers' addresses;
//! every request loop is bounded in count and time.

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::runtime::COMMAND_LIMIT;
use runtime_tests::util::{guard, sh};
use runtime_tests::{ensure, fail, Outcome, Output, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("net_bridge_basics", Kind::HullOnly, bridge_basics),
    t("net_publish_tcp", Kind::HullOnly, publish_tcp),
    t("net_publish_udp", Kind::HullOnly, publish_udp),
    t("net_publish_range", Kind::HullOnly, publish_range),
    t("net_port_conflicts", Kind::HullOnly, port_conflicts),
    t("net_crash_safety", Kind::HullOnly, crash_safety),
    t("net_plain_untouched", Kind::HullOnly, plain_untouched),
];

pub(super) const HOST_IP: &str = "192.0.2.1";
const CLIENT_IP: &str = "192.0.2.2";

/// The two namespaces of one test, and hull's private lease store.
pub(super) struct Topo {
    pub(super) host: String,
    pub(super) client: String,
    pub(super) net_root: PathBuf,
}

fn need_tools() -> TestResult {
    for tool in ["ip", "nsenter", "nft", "conntrack"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        if !found {
            return Err(Outcome::Skip(format!("{tool} not installed (make deps)")));
        }
    }
    Ok(())
}

/// Build host + client namespaces joined by a veth; removed at test end.
pub(super) fn topo(c: &Ctx) -> Result<Topo, Outcome> {
    need_tools()?;
    let n = c.suite.next();
    let base = format!("hrt{}-{n}", std::process::id());
    let (host, client) = (format!("{base}-h"), format!("{base}-c"));
    for ns in [&host, &client] {
        sh("ip", &["netns", "add", ns])?;
        let ns = ns.clone();
        c.on_cleanup(move || {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        });
    }
    // The veth is born in the host netns with its peer in the client's.
    sh(
        "ip",
        &[
            "-n", &host, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns",
            &client,
        ],
    )?;
    for (ns, dev, ip) in [(&host, "veth0", HOST_IP), (&client, "veth1", CLIENT_IP)] {
        sh(
            "ip",
            &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", dev],
        )?;
        sh("ip", &["-n", ns, "link", "set", dev, "up"])?;
        sh("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    }
    let net_root = c.dir("net")?;
    Ok(Topo {
        host,
        client,
        net_root,
    })
}

impl Topo {
    fn ns(&self, name: &str) -> String {
        format!("/run/netns/{name}")
    }

    /// `hull --root R ARGS` in the host netns, output to files (a container
    /// started by it inherits them), with extra environment.
    fn hull_env(&self, c: &Ctx, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.hull_at(c, &self.ns(&self.host), args, env)
    }

    /// The same in the network namespace at `netns` (a path nsenter takes).
    pub(super) fn hull_at(
        &self,
        c: &Ctx,
        netns: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let n = c.suite.next();
        let io = c.suite.tmp.join("io");
        let (out_p, err_p) = (
            io.join(format!("net-{n}.out")),
            io.join(format!("net-{n}.err")),
        );
        let desc = format!("hull {}", args.join(" "));
        let spawned = (|| -> std::io::Result<std::process::Child> {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!("--net={netns}"))
                .arg(&c.rt.bin)
                .arg("--root")
                .arg(&c.rt.root)
                .args(args)
                .env("HULL_NET_ROOT", &self.net_root)
                .stdin(Stdio::null())
                .stdout(File::create(&out_p)?)
                .stderr(File::create(&err_p)?);
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn()
        })();
        let code = match spawned {
            Ok(mut child) => {
                // Scaled like every runtime call's guard: the VM lane runs under an
                // emulator, many times slower.
                let limit = guard(COMMAND_LIMIT);
                let start = Instant::now();
                loop {
                    match child.try_wait() {
                        Ok(Some(st)) => {
                            use std::os::unix::process::ExitStatusExt;
                            break st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
                        }
                        Ok(None) if start.elapsed() < limit => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            break -1;
                        }
                    }
                }
            }
            Err(_) => -1,
        };
        Output {
            desc,
            code,
            stdout: std::fs::read_to_string(&out_p).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_p).unwrap_or_default(),
            stdout_path: out_p,
        }
    }

    pub(super) fn hull(&self, c: &Ctx, args: &[&str]) -> Output {
        self.hull_env(c, args, &[])
    }

    /// Create + start a container from `cfg` with extra create flags.
    pub(super) fn start(&self, c: &Ctx, cfg: &Value, flags: &[&str]) -> Result<String, Outcome> {
        let b = c.bundle(cfg)?;
        let id = c.id();
        let b = b.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", &b];
        args.extend_from_slice(flags);
        args.push(&id);
        self.hull(c, &args).ok()?;
        self.hull(c, &["start", &id]).ok()?;
        Ok(id)
    }

    /// A command run in the netns `ns` (by nsenter), with its output.
    pub(super) fn run_in(&self, ns: &str, argv: &[&str]) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.ns(ns)))
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("nsenter: {e}"))
    }

    /// HTTP GET with the busybox wget inside container `id` (one try, 3 s).
    fn get_in(
        &self,
        c: &Ctx,
        id: &str,
        url: &str,
    ) -> Result<runtime_tests::runtime::Output, Outcome> {
        self.hull(
            c,
            &["exec", id, "timeout", "3", "wget", "-q", "-O", "-", url],
        )
        .ok()
    }

    /// HTTP GET with busybox wget from the netns `ns`, retried while the
    /// server comes up (at most 20 tries, 3 s each, 10 s in all).
    pub(super) fn get(&self, ns: &str, url: &str) -> Result<String, Outcome> {
        let start = Instant::now();
        let mut last = String::new();
        for _ in 0..20 {
            // (busybox 1.35's wget -T crashes: `timeout` bounds it instead)
            let out = self.run_in(
                ns,
                &["timeout", "3", "/bin/busybox", "wget", "-q", "-O", "-", url],
            );
            if out.status.success() {
                return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            if start.elapsed() > guard(Duration::from_secs(10)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        fail!("GET {url} from {ns} failed: {}", last.trim())
    }

    fn nft(&self) -> String {
        String::from_utf8_lossy(&self.run_in(&self.host, &["nft", "list", "ruleset"]).stdout)
            .into_owned()
    }

    fn links(&self) -> String {
        String::from_utf8_lossy(&self.run_in(&self.host, &["ip", "-o", "link"]).stdout).into_owned()
    }

    /// The names of the host netns's links: unlike `links`, this does not
    /// change while a bridge's carrier and the veths' states settle.
    pub(super) fn link_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .links()
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect();
        names.sort();
        names
    }

    pub(super) fn leases(&self) -> String {
        std::fs::read_to_string(self.net_root.join("hull0.json")).unwrap_or_default()
    }
}

pub(super) fn ip_of(t: &Topo, c: &Ctx, id: &str) -> Result<String, Outcome> {
    let out = t.hull(c, &["state", id]).ok()?;
    let st: Value = serde_json::from_str(&out.stdout)?;
    st["network"]["ip"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| Outcome::Fail(format!("state of {id} has no network.ip: {st}")))
}

/// `create -b BUNDLE FLAGS ID` of a `sleep` bundle fails with exit 1 and
/// one line of stderr containing `needle`, and leaves no container.
pub(super) fn create_refused(t: &Topo, c: &Ctx, flags: &[&str], needle: &str) -> TestResult {
    let b = c.bundle(&config(&["sleep", "60"]))?;
    let id = c.id();
    let b = b.to_string_lossy();
    let mut args = vec!["create", "-b", &b];
    args.extend_from_slice(flags);
    args.push(&id);
    let out = t.hull(c, &args).code(1)?;
    ensure!(
        out.stderr.contains(needle) && out.stderr.trim().lines().count() == 1,
        "create {}: {}",
        flags.join(" "),
        out.stderr
    );
    ensure!(c.rt.is_gone(&id), "{id} exists after a failed create");
    Ok(())
}

/// The container's network objects are all gone from the host netns.
pub(super) fn nothing_left(t: &Topo, id: &str) -> TestResult {
    let tag = format!("hull:{id}\"");
    let rules = t.nft();
    ensure!(!rules.contains(&tag), "rules tagged {id} remain: {rules}");
    ensure!(
        !t.leases().contains(&format!("\"{id}\"")),
        "lease of {id} remains: {}",
        t.leases()
    );
    Ok(())
}

/// Nothing of hull's is left in the host netns: no bridge, no veth, no
/// table, no lease store, ip_forward back to 0.
pub(super) fn all_gone(t: &Topo) -> TestResult {
    let links = t.links();
    ensure!(
        !links.contains("hull0") && !links.contains(": hv"),
        "links left: {links}"
    );
    let rules = t.nft();
    ensure!(!rules.contains("hull"), "rules left: {rules}");
    ensure!(
        !t.net_root.join("hull0.json").exists(),
        "lease store left: {}",
        t.leases()
    );
    let fwd = t.run_in(&t.host, &["cat", "/proc/sys/net/ipv4/ip_forward"]);
    ensure!(
        String::from_utf8_lossy(&fwd.stdout).trim() == "0",
        "ip_forward not restored"
    );
    Ok(())
}

/// Run `f` in a thread that has entered the network namespace at `path`.
fn in_netns<T: Send + 'static>(
    path: String,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::thread::JoinHandle<std::io::Result<T>> {
    std::thread::spawn(move || {
        let ns = File::open(&path)?;
        // SAFETY: setns(2) on an fd we own; only this thread changes namespace.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        f()
    })
}

/// A busybox httpd config serving `www` (index.html and a CGI that prints
/// the client's address) on port 80.
pub(super) fn web_config(c: &Ctx) -> Result<Value, Outcome> {
    let www = c.dir("www")?;
    std::fs::write(www.join("index.html"), "hello from hull\n")?;
    std::fs::create_dir(www.join("cgi-bin"))?;
    let cgi = www.join("cgi-bin/ip");
    std::fs::write(
        &cgi,
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s\\n' \"$REMOTE_ADDR\"\n",
    )?;
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755))?;
    let mut cfg = config(&["httpd", "-f", "-p", "80", "-h", "/www"]);
    cfg["mounts"].as_array_mut().expect("mounts").push(json!({
        "destination": "/www", "type": "bind", "source": www, "options": ["rbind", "ro"]
    }));
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------

/// eth0 with an address and a default route, lo up, /etc/hosts and
/// /etc/hostname; the container reaches its gateway; delete removes all.
fn bridge_basics(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let mut cfg = config(&["sleep", "60"]);
    for set in ["bounding", "effective", "permitted"] {
        cfg["process"]["capabilities"][set]
            .as_array_mut()
            .expect("caps")
            .push(json!("CAP_NET_RAW"));
    }
    let id = t.start(c, &cfg, &["--network", "bridge"])?;
    let ip = ip_of(&t, c, &id)?;
    ensure!(ip == "10.89.0.2", "first lease is {ip}");
    let out = t
        .hull(
            c,
            &[
                "exec", &id, "sh", "-c",
                "ip -o addr show dev eth0; ip route; ip -o link show lo; cat /etc/hosts /etc/hostname; \
                 ping -c 1 -W 2 10.89.0.1 >/dev/null && echo gateway-ok",
            ],
        )
        .ok()?;
    let s = &out.stdout;
    ensure!(s.contains("inet 10.89.0.2/16"), "eth0 address: {s}");
    ensure!(
        s.contains("default via 10.89.0.1 dev eth0"),
        "default route: {s}"
    );
    ensure!(s.contains("UP"), "lo not up: {s}");
    ensure!(s.contains("10.89.0.2\thull-test"), "/etc/hosts: {s}");
    ensure!(s.lines().any(|l| l == "hull-test"), "/etc/hostname: {s}");
    ensure!(s.contains("gateway-ok"), "no reply from the gateway: {s}");
    ensure!(t.links().contains("hull0"), "no bridge: {}", t.links());
    t.hull(c, &["kill", &id, "KILL"]).ok()?;
    // Plain `delete` from the VM's netns: hull must find the host netns itself.
    c.rt.wait_status(&id, "stopped")?;
    c.rt.delete(&id).ok()?;
    nothing_left(&t, &id)?;
    all_gone(&t)
}

/// -p 18080:80: the client netns and the host's 127.0.0.1 reach httpd, the
/// server sees the client's own address, hairpin from the container and
/// container-to-container by IP work; `port` and `state` show the mapping.
fn publish_tcp(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let web = t.start(
        c,
        &web_config(c)?,
        &["--network", "bridge", "-p", "18080:80"],
    )?;
    let page = t.get(&t.client, &format!("http://{HOST_IP}:18080/"))?;
    ensure!(page == "hello from hull\n", "page from client: {page:?}");
    let seen = t.get(&t.client, &format!("http://{HOST_IP}:18080/cgi-bin/ip"))?;
    // httpd listens dual-stack: an IPv4 peer shows as [::ffff:a.b.c.d].
    let seen = seen
        .trim()
        .trim_start_matches("[::ffff:")
        .trim_end_matches(']');
    ensure!(
        seen == CLIENT_IP,
        "server saw {seen:?}, not the client's address"
    );
    let page = t.get(&t.host, "http://127.0.0.1:18080/")?;
    ensure!(
        page == "hello from hull\n",
        "page from host 127.0.0.1: {page:?}"
    );
    // 127.0.0.1 is not opened to other hosts: nothing published on the
    // client's own loopback, and the guard chain exists.
    ensure!(
        t.nft().contains("ip daddr 127.0.0.0/8 drop"),
        "no route_localnet guard"
    );

    let port = t.hull(c, &["port", &web]).ok()?;
    ensure!(
        port.stdout.trim() == "80/tcp -> 0.0.0.0:18080",
        "port: {}",
        port.stdout
    );
    let st: Value = serde_json::from_str(&t.hull(c, &["state", &web]).ok()?.stdout)?;
    ensure!(
        st["network"]["ports"][0] == "80/tcp -> 0.0.0.0:18080",
        "state: {st}"
    );

    // Hairpin: the container reaches its own published port via the host address.
    let hair = t.get_in(c, &web, &format!("http://{HOST_IP}:18080/"))?;
    ensure!(
        hair.stdout == "hello from hull\n",
        "hairpin: {:?}",
        hair.stdout
    );

    // A sibling from config.json alone (annotation): by IP, and through the host port.
    let mut cfg = config(&["sleep", "60"]);
    cfg["annotations"] = json!({"dev.hull.network": "bridge"});
    let sib = t.start(c, &cfg, &[])?;
    let web_ip = ip_of(&t, c, &web)?;
    let sib_ip = ip_of(&t, c, &sib)?;
    ensure!(web_ip != sib_ip, "two containers got {web_ip}");
    let direct = t.get_in(c, &sib, &format!("http://{web_ip}/"))?;
    ensure!(
        direct.stdout == "hello from hull\n",
        "sibling by IP: {:?}",
        direct.stdout
    );
    let via_host = t.get_in(c, &sib, &format!("http://{HOST_IP}:18080/"))?;
    ensure!(
        via_host.stdout == "hello from hull\n",
        "sibling hairpin: {:?}",
        via_host.stdout
    );

    t.hull(c, &["delete", "--force", &web]).ok()?;
    nothing_left(&t, &web)?;
    ensure!(
        t.links().contains("hull0"),
        "bridge went before its last container"
    );
    let after = t.run_in(
        &t.client,
        &[
            "/bin/busybox",
            "timeout",
            "2",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{HOST_IP}:18080/"),
        ],
    );
    ensure!(!after.status.success(), "port still answers after delete");
    t.hull(c, &["delete", "--force", &sib]).ok()?;
    nothing_left(&t, &sib)?;
    all_gone(&t)
}

/// UDP through -p 5353:53/udp: the echo server (a socket in the container's
/// netns) sees the client's address; the conntrack entries of the host port
/// go with the mapping.
fn publish_udp(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let id = t.start(c, &config(&["sleep", "60"]), &["-p", "5353:53/udp"])?;
    let pid = c.rt.pid(&id)?;
    let server = in_netns(format!("/proc/{pid}/ns/net"), || {
        let sock = UdpSocket::bind("0.0.0.0:53")?;
        sock.set_read_timeout(Some(guard(Duration::from_secs(8))))?;
        let mut buf = [0u8; 512];
        let (n, peer) = sock.recv_from(&mut buf)?;
        sock.send_to(&buf[..n], peer)?;
        Ok(peer)
    });
    let client = in_netns(t.ns(&t.client), || {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_read_timeout(Some(Duration::from_millis(500)))?;
        let dst: SocketAddr = format!("{HOST_IP}:5353").parse().expect("addr");
        let mut buf = [0u8; 512];
        for _ in 0..10 {
            sock.send_to(b"echo-me", dst)?;
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                return Ok((buf[..n].to_vec(), from));
            }
        }
        Err(std::io::Error::other("no UDP reply in 10 tries"))
    });
    let (reply, from) = client
        .join()
        .map_err(|_| Outcome::Fail("client panicked".into()))??;
    let peer = server
        .join()
        .map_err(|_| Outcome::Fail("server panicked".into()))??;
    ensure!(reply == b"echo-me", "reply {reply:?}");
    ensure!(
        from.to_string() == format!("{HOST_IP}:5353"),
        "reply from {from}"
    );
    ensure!(peer.ip().to_string() == CLIENT_IP, "server saw {peer}");
    let ct = t.run_in(
        &t.host,
        &["conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"],
    );
    ensure!(
        String::from_utf8_lossy(&ct.stdout).contains("dport=5353"),
        "no conntrack entry while mapped: {}",
        String::from_utf8_lossy(&ct.stdout)
    );
    t.hull(c, &["delete", "--force", &id]).ok()?;
    let ct = t.run_in(
        &t.host,
        &["conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353"],
    );
    ensure!(
        !String::from_utf8_lossy(&ct.stdout).contains("dport=5353"),
        "conntrack entry of the host port survived delete: {}",
        String::from_utf8_lossy(&ct.stdout)
    );
    nothing_left(&t, &id)?;
    all_gone(&t)
}

/// -p 18090-18092:79-81: one rule per chain forwards the whole range (a
/// map shifts each port), 18091 reaches httpd on 80; a range past the
/// per-container limit is refused at once, naming the limit.
fn publish_range(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let web = t.start(
        c,
        &web_config(c)?,
        &["--network", "bridge", "-p", "18090-18092:79-81"],
    )?;
    let page = t.get(&t.client, &format!("http://{HOST_IP}:18091/"))?;
    ensure!(
        page == "hello from hull\n",
        "page through the range: {page:?}"
    );
    let port = t.hull(c, &["port", &web]).ok()?;
    ensure!(
        port.stdout.trim() == "79-81/tcp -> 0.0.0.0:18090-18092",
        "port: {}",
        port.stdout
    );
    let rules = t.nft();
    let dnat: Vec<&str> = rules.lines().filter(|l| l.contains("dnat to")).collect();
    ensure!(dnat.len() == 2, "one rule per chain for a range: {dnat:?}");
    ensure!(
        dnat.iter().all(|l| l.contains("dport 18090-18092")),
        "rules: {dnat:?}"
    );

    let b = c.bundle(&config(&["sleep", "60"]))?;
    let id = c.id();
    let out = t
        .hull(
            c,
            &[
                "create",
                "-b",
                &b.to_string_lossy(),
                "-p",
                "1-65535:1-65535",
                &id,
            ],
        )
        .code(1)?;
    ensure!(
        out.stderr.contains("at most 1024") && out.stderr.trim().lines().count() == 1,
        "absurd range: {}",
        out.stderr
    );
    ensure!(c.rt.is_gone(&id), "{id} exists after a failed create");
    t.hull(c, &["delete", "--force", &web]).ok()?;
    nothing_left(&t, &web)?;
    all_gone(&t)
}

/// A host port published by another container, or bound by a host process:
/// a clear one-line error, and nothing created.
fn port_conflicts(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let first = t.start(
        c,
        &config(&["sleep", "60"]),
        &["-p", "18080:80", "-p", "127.0.0.1:19000-19001:90-91"],
    )?;
    let leases_before = t.leases();
    let links_before = t.link_names();
    let b = c.bundle(&config(&["sleep", "60"]))?;
    let b = b.to_string_lossy().into_owned();
    for spec in ["18080:81", "19001:80", "127.0.0.1:18080:80"] {
        let id = c.id();
        let out = t.hull(c, &["create", "-b", &b, "-p", spec, &id]).code(1)?;
        ensure!(
            out.stderr.contains("already published by container") && out.stderr.contains(&first),
            "-p {spec}: {}",
            out.stderr
        );
        ensure!(
            out.stderr.trim().lines().count() == 1,
            "not one line: {}",
            out.stderr
        );
        ensure!(c.rt.is_gone(&id), "{id} exists after a failed create");
    }
    ensure!(
        t.leases() == leases_before,
        "lease store changed: {}",
        t.leases()
    );
    ensure!(
        t.link_names() == links_before,
        "links changed: {:?} → {:?}",
        links_before,
        t.link_names()
    );
    // Same port, other protocol or other address: fine.
    let udp = t.start(c, &config(&["sleep", "60"]), &["-p", "18080:80/udp"])?;
    t.hull(c, &["delete", "--force", &udp]).ok()?;

    // A host process bound to 18090 in the host netns.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let holder = in_netns(t.ns(&t.host), move || {
        let l = std::net::TcpListener::bind("0.0.0.0:18090")?;
        let _ = ready_tx.send(());
        let _ = rx.recv_timeout(guard(Duration::from_secs(30)));
        drop(l);
        Ok(())
    });
    ready_rx
        .recv_timeout(guard(Duration::from_secs(5)))
        .map_err(|_| Outcome::Fail("listener did not start".into()))?;
    let id = c.id();
    let out = t
        .hull(c, &["create", "-b", &b, "-p", "18090:80", &id])
        .code(1);
    let _ = tx.send(());
    let _ = holder.join();
    let out = out?;
    ensure!(
        out.stderr.contains("EADDRINUSE") && out.stderr.contains("18090"),
        "host-bound port: {}",
        out.stderr
    );
    ensure!(c.rt.is_gone(&id), "{id} exists after a failed create");
    ensure!(
        t.leases() == leases_before,
        "lease store changed: {}",
        t.leases()
    );
    t.hull(c, &["delete", "--force", &first]).ok()?;
    all_gone(&t)
}

/// Crash safety of the network objects. hull SIGKILLed at each network step
/// (and every other step) is the crash walk's (faults.rs, with the
/// failpoints build); here: the container's namespace already gone before
/// `delete --force`, and a failing rules batch rolled back by create itself.
fn crash_safety(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let b = c.bundle(&config(&["sleep", "60"]))?;
    let b = b.to_string_lossy().into_owned();
    // The init killed (its namespace, veth and all, gone) before delete --force.
    let id = c.id();
    t.hull(c, &["create", "-b", &b, "-p", "18080:80", &id])
        .ok()?;
    let pid = c.rt.pid(&id)?;
    runtime_tests::util::signal(pid, libc::SIGKILL)?;
    c.rt.wait_status(&id, "stopped")?;
    t.hull(c, &["delete", "--force", &id]).ok()?;
    nothing_left(&t, &id)?;
    all_gone(&t)?;
    // nft refuses the container's DNAT batch: create undoes everything itself.
    let real = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join("nft"))
        .find(|p| p.exists())
        .expect("need_tools found nft");
    let bin = c.dir("fake-nft")?;
    let nft = bin.join("nft");
    std::fs::write(
        &nft,
        format!(
            "#!/bin/sh\nbatch=$(cat)\ncase \"$batch\" in\n*dnat*) echo 'Error: injected failure' >&2; exit 1;;\nesac\nprintf '%s\\n' \"$batch\" | exec {} \"$@\"\n",
            real.display()
        ),
    )?;
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let id = c.id();
    let out = t
        .hull_env(
            c,
            &["create", "-b", &b, "-p", "18080:80", &id],
            &[("PATH", &path)],
        )
        .code(1)?;
    ensure!(out.stderr.contains("injected failure"), "{}", out.stderr);
    ensure!(c.rt.is_gone(&id), "{id} exists after a failed create");
    all_gone(&t)
}

/// A plain bundle gets runc's behaviour and hull writes nothing for it.
fn plain_untouched(c: &Ctx) -> TestResult {
    let t = topo(c)?;
    let b = c.bundle(&config(&["sh", "-c", "ip -o link | grep -c ': '"]))?;
    let id = c.id();
    let out = t.hull(c, &["run", "-b", &b.to_string_lossy(), &id]).ok()?;
    ensure!(
        out.stdout.trim() == "1",
        "links in a plain container: {}",
        out.stdout
    );
    ensure!(
        std::fs::read_dir(&t.net_root)?.next().is_none(),
        "the network state dir was touched"
    );
    ensure!(
        !t.links().contains("hull0"),
        "bridge made for a plain container"
    );
    // -p without a bridge-capable namespace: a clear error.
    let mut cfg = config(&["true"]);
    cfg["linux"]["namespaces"]
        .as_array_mut()
        .expect("ns")
        .retain(|n| n["type"] != "network");
    let b = c.bundle(&cfg)?;
    let id = c.id();
    let out = t
        .hull(
            c,
            &["create", "-b", &b.to_string_lossy(), "-p", "8080:80", &id],
        )
        .code(1)?;
    ensure!(
        out.stderr.contains("new network namespace"),
        "{}",
        out.stderr
    );
    Ok(())
}
