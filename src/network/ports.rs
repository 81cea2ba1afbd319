//! Published ports: `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`, with ranges
//! (`8080-8082:80-82`), and the conflict rule between two mappings. A range
//! stays one mapping (and becomes one packet rule), however many ports it
//! spans; a container publishes at most MAX_PORTS ports. Without a host
//! port (`-p 80`, `-p 127.0.0.1::80`, `-P`) hull picks a free one at create,
//! where Docker does: in the kernel's ephemeral range.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The most host ports one container may publish. Forwarding a range costs
/// one rule whatever its size, but each port is checked to be free on the
/// host at create; beyond this a mapping is a mistake, not a plan.
pub const MAX_PORTS: usize = 1024;

/// A run of `span` host ports forwarded one to one to as many container
/// ports (`span` is 1 for a single port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// None: every local address of the host (and 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub span: u16,
}

fn one() -> u16 {
    1
}

fn is_one(n: &u16) -> bool {
    *n == 1
}

impl Mapping {
    /// The last host port of the run.
    pub fn host_end(&self) -> u16 {
        self.host_port + (self.span - 1)
    }

    /// The host ports as nft and people write them: `8080` or `8080-8082`.
    pub fn host_ports(&self) -> String {
        ports_text(self.host_port, self.host_end())
    }

    /// The host port is hull's to pick (`-p 80`); 0 until [`Self::pick_host_port`].
    pub fn picks_host_port(&self) -> bool {
        self.host_port == 0
    }

    pub fn container_end(&self) -> u16 {
        self.container_port + (self.span - 1)
    }

    /// Two mappings cannot coexist: same protocol, host ports that overlap,
    /// and addresses that overlap (equal, or either is the wildcard).
    /// A mapping whose host port is still to be picked conflicts with none.
    pub fn conflicts(&self, other: &Mapping) -> bool {
        !self.picks_host_port()
            && !other.picks_host_port()
            && self.proto == other.proto
            && self.host_port <= other.host_end()
            && other.host_port <= self.host_end()
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }

    pub fn host(&self) -> String {
        format!(
            "{}:{}",
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_ports()
        )
    }

    /// As `hull port` prints it: `80/tcp -> 0.0.0.0:8080`, and
    /// `80-82/tcp -> 0.0.0.0:8080-8082` for a range.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} -> {}",
            ports_text(self.container_port, self.container_end()),
            self.proto.as_str(),
            self.host()
        )
    }

    /// As Docker's `ps` prints it: `0.0.0.0:8080->80/tcp`.
    pub fn docker_form(&self) -> String {
        format!(
            "{}->{}/{}",
            self.host(),
            ports_text(self.container_port, self.container_end()),
            self.proto.as_str()
        )
    }

    /// Give a mapping without a host port a free run of them in the kernel's
    /// ephemeral range (`net.ipv4.ip_local_port_range`, as Docker): one no
    /// mapping in `taken` publishes and no host process is bound to. The
    /// search starts at a random port, so containers made one after another
    /// get different ports rather than neighbours.
    pub fn pick_host_port(&mut self, taken: &[Mapping]) -> Result<()> {
        self.pick_host_port_in(ephemeral_range(), taken)
    }

    fn pick_host_port_in(&mut self, (lo, hi): (u16, u16), taken: &[Mapping]) -> Result<()> {
        let slots = (u32::from(hi) + 2).saturating_sub(u32::from(lo) + u32::from(self.span));
        let start = random_u32() % slots.max(1);
        for i in 0..slots {
            let port = u32::from(lo) + (start + i) % slots;
            let candidate = Mapping {
                host_port: port as u16,
                ..*self
            };
            if taken.iter().all(|t| !t.conflicts(&candidate)) && candidate.check_host_free().is_ok()
            {
                *self = candidate;
                return Ok(());
            }
        }
        Err(Error::new(format!(
            "publish {}/{}",
            ports_text(self.container_port, self.container_end()),
            self.proto.as_str()
        ))
        .detail(format!(
            "no free run of {} host port(s) in {lo}-{hi} (net.ipv4.ip_local_port_range)",
            self.span
        ))
        .hint("give the host port: -p HOSTPORT:CTRPORT"))
    }

    /// Is a host process bound to one of these ports? A test bind says so
    /// (and is closed at once: hull holds no socket, the kernel does the
    /// forwarding).
    pub fn check_host_free(&self) -> Result<()> {
        (self.host_port..=self.host_end()).try_for_each(|port| self.check_port_free(port))
    }

    fn check_port_free(&self, port: u16) -> Result<()> {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let res = match self.proto {
            Proto::Tcp => TcpListener::bind((ip, port)).map(drop),
            Proto::Udp => UdpSocket::bind((ip, port)).map(drop),
        };
        res.map_err(|e| {
            let step = format!("publish {ip}:{port}/{}", self.proto.as_str());
            let err = match e.raw_os_error() {
                Some(code) => Error::sys(step, None, nix::errno::Errno::from_raw(code)),
                None => Error::new(step).detail(e.to_string()),
            };
            match e.raw_os_error() {
                Some(libc::EADDRINUSE) => {
                    err.hint("a host process is bound to this port: pick another host port")
                }
                Some(libc::EADDRNOTAVAIL) => err.hint("the host ip is not an address of this host"),
                _ => err,
            }
        })
    }
}

/// The kernel's ephemeral port range; its default when it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    let read = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    read.and_then(|s| {
        let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
        Some((it.next()??, it.next()??))
    })
    .filter(|&(lo, hi)| 0 < lo && lo <= hi)
    .unwrap_or((32768, 60999))
}

/// A random start for the port search (std's hasher keys come from the OS).
fn random_u32() -> u32 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) as u32
}

fn ports_text(first: u16, last: u16) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

fn range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

/// Parse one `-p` value into its mapping: `[[HOSTIP:]HOSTPORT:]CTRPORT`,
/// each port or a range, then `/tcp` or `/udp`; an empty or missing host
/// port (`80`, `127.0.0.1::80`) leaves it to hull.
pub fn parse(spec: &str) -> Result<Mapping> {
    let bad = |why: &str| {
        Error::new(format!("publish {spec:?}"))
            .detail(why.to_string())
            .hint(
                "write [[HOSTIP:]HOSTPORT:]CTRPORT[/tcp|/udp], e.g. 8080:80, 127.0.0.1:5353:53/udp or 80",
            )
    };
    let (ports, proto) = match spec.rsplit_once('/') {
        Some((p, "tcp")) => (p, Proto::Tcp),
        Some((p, "udp")) => (p, Proto::Udp),
        Some(_) => return Err(bad("the protocol must be tcp or udp")),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = ports.split(':').collect();
    let (host_ip, host, ctr) = match parts.as_slice() {
        [c] => (None, "", *c),
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad("the host ip must be an IPv4 address"))?;
            (if ip.is_unspecified() { None } else { Some(ip) }, *h, *c)
        }
        _ => return Err(bad("expected HOSTPORT:CTRPORT")),
    };
    let (c0, c1) = range(ctr).ok_or_else(|| bad("bad container port (1-65535, or a range A-B)"))?;
    let h0 = if host.is_empty() {
        0
    } else {
        let (h0, h1) = range(host).ok_or_else(|| bad("bad host port (1-65535, or a range A-B)"))?;
        if h1 - h0 != c1 - c0 {
            return Err(bad("the host and container ranges differ in length"));
        }
        h0
    };
    Ok(Mapping {
        host_ip,
        host_port: h0,
        container_port: c0,
        proto,
        span: c1 - c0 + 1,
    })
}

/// Parse one exposed port (`--expose 80`, `8000-8010/udp`): a mapping whose
/// host port hull picks when `-P` publishes it.
pub fn parse_exposed(spec: &str) -> Result<Mapping> {
    let m = parse(spec.trim())?;
    if !m.picks_host_port() || m.host_ip.is_some() {
        return Err(Error::new(format!("expose {spec:?}"))
            .detail("an exposed port is a container port only")
            .hint("write CTRPORT[/tcp|/udp], e.g. 80 or 53/udp; -p maps host ports"));
    }
    Ok(m)
}

/// Parse a list (`-p` values, or the comma-separated annotation) and refuse
/// a list that conflicts with itself.
pub fn parse_all<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Vec<Mapping>> {
    let mut out: Vec<Mapping> = Vec::new();
    for spec in specs.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
        let m = parse(spec)?;
        // The same mapping twice (a bundle's annotation and `-p`) is one.
        if out.contains(&m) {
            continue;
        }
        if let Some(prev) = out.iter().find(|p| p.conflicts(&m)) {
            return Err(Error::new(format!("publish {spec:?}")).detail(format!(
                "host port {}/{} is published twice",
                prev.host(),
                m.proto.as_str()
            )));
        }
        out.push(m);
        check_count(&out, spec)?;
    }
    Ok(out)
}

/// Refuse more than MAX_PORTS host ports in all; `last` names the mapping
/// that went past it (a `-p` value, or `-P`).
pub fn check_count(ports: &[Mapping], last: &str) -> Result<()> {
    let total: usize = ports.iter().map(|m| usize::from(m.span)).sum();
    if total <= MAX_PORTS {
        return Ok(());
    }
    Err(Error::new(format!("publish {last:?}"))
        .detail(format!(
            "{total} host ports in all: a container publishes at most {MAX_PORTS}"
        ))
        .hint("publish the ports the service uses, not whole ranges"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_mapping_twice_is_one() {
        assert_eq!(parse_all(["8080:80", "8080:80/tcp"]).unwrap().len(), 1);
        assert!(parse_all(["8080:80", "8080:81"]).is_err());
    }

    #[test]
    fn parses_forms() {
        let m = parse("18080:80").unwrap();
        assert_eq!(
            m,
            Mapping {
                host_ip: None,
                host_port: 18080,
                container_port: 80,
                proto: Proto::Tcp,
                span: 1,
            }
        );
        let m = parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(m.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m.proto, Proto::Udp);
        assert_eq!(m.describe(), "53/udp -> 127.0.0.1:5353");
        let m = parse("8080-8082:80-82").unwrap();
        assert_eq!(m.span, 3);
        assert_eq!((m.host_end(), m.container_end()), (8082, 82));
        assert_eq!(m.describe(), "80-82/tcp -> 0.0.0.0:8080-8082");
        assert_eq!(m.docker_form(), "0.0.0.0:8080-8082->80-82/tcp");
        assert_eq!(parse("0.0.0.0:1:2").unwrap().host_ip, None);
        // A single port keeps the state.json shape it always had.
        let json = serde_json::to_string(&parse("1:2").unwrap()).unwrap();
        assert!(!json.contains("span"), "{json}");
        let old: Mapping =
            serde_json::from_str(r#"{"hostPort":1,"containerPort":2,"proto":"tcp"}"#).unwrap();
        assert_eq!(old.span, 1);
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "a:80",
            "8080-8081:80",
            "0:80",
            "1:2/sctp",
            "::1:80:80",
            "70000:80",
            "9-8:9-8",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse_all(["8080:80", "8080:81"]).is_err());
        assert!(parse_all(["8080:80", "8080:80/udp"]).is_ok());
        assert!(parse_all(["8000-8010:8000-8010", "8010:80"]).is_err());
        let absurd = parse_all(["1-65535:1-65535"]).unwrap_err().to_string();
        assert!(absurd.contains("at most 1024"), "{absurd}");
        assert!(parse_all(["1-1024:1-1024"]).is_ok());
        assert!(parse_all(["1-1024:1-1024", "2000:80"]).is_err());
    }

    #[test]
    fn host_port_left_to_hull() {
        for (spec, ip, ctr, span) in [
            ("80", None, 80, 1),
            ("53/udp", None, 53, 1),
            ("127.0.0.1::80", Some(Ipv4Addr::LOCALHOST), 80, 1),
            (":80", None, 80, 1),
            ("8000-8002", None, 8000, 3),
        ] {
            let m = parse(spec).unwrap();
            assert!(m.picks_host_port(), "{spec}");
            assert_eq!(
                (m.host_ip, m.container_port, m.span),
                (ip, ctr, span),
                "{spec}"
            );
        }
        // Two of them never conflict before they have their ports.
        assert_eq!(parse_all(["80", "81"]).unwrap().len(), 2);
        assert!(parse_exposed("80/udp").is_ok());
        assert!(parse_exposed("8080:80").is_err());
        assert!(parse_exposed("127.0.0.1::80").is_err());
    }

    #[test]
    fn picks_a_free_run_in_the_ephemeral_range() {
        let (lo, hi) = ephemeral_range();
        let mut m = parse("127.0.0.1::80-81").unwrap();
        let taken = parse("127.0.0.1:40000:80").unwrap();
        m.pick_host_port(&[taken]).unwrap();
        assert!(lo <= m.host_port && m.host_end() <= hi, "{m:?}");
        assert!(!m.conflicts(&taken), "{m:?}");
        assert_eq!((m.container_port, m.span), (80, 2));
        // In a range of three: the port a host process holds and the one
        // another container publishes are never picked; with all three
        // gone, one clear error.
        let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let h = held.local_addr().unwrap().port();
        let (a, b) = if h > 1024 {
            (h - 1, h + 1)
        } else {
            (h + 1, h + 2)
        };
        let window = (a.min(h), b.max(h));
        let other = parse(&format!("{a}:80")).unwrap();
        for _ in 0..20 {
            let mut m = parse("127.0.0.1::81").unwrap();
            if m.pick_host_port_in(window, &[other]).is_ok() {
                assert!(m.host_port != h && m.host_port != a, "{m:?} {window:?}");
            }
        }
        let third = parse(&format!("{b}:80")).unwrap();
        let mut m = parse("127.0.0.1::81").unwrap();
        let err = m
            .pick_host_port_in(window, &[other, third])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no free run"), "{err}");
        drop(held);
    }

    #[test]
    fn conflict_rule() {
        let a = parse("8080:80").unwrap();
        let b = parse("127.0.0.1:8080:81").unwrap();
        let c = parse("127.0.0.2:8080:81").unwrap();
        let u = parse("8080:80/udp").unwrap();
        assert!(a.conflicts(&b) && b.conflicts(&a));
        assert!(!b.conflicts(&c));
        assert!(!a.conflicts(&u));
        let r = parse("8070-8080:70-80").unwrap();
        let s = parse("8081-8090:81-90").unwrap();
        assert!(r.conflicts(&a) && a.conflicts(&r));
        assert!(!r.conflicts(&s));
    }
}
