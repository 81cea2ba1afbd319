//! Published ports: `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`, with ranges
//! (`8080-8082:80-82`), and the conflict rule between two mappings. A range
//! stays one mapping (and becomes one packet rule), however many ports it
//! spans; a container publishes at most MAX_PORTS ports.

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

    pub fn container_end(&self) -> u16 {
        self.container_port + (self.span - 1)
    }

    /// Two mappings cannot coexist: same protocol, host ports that overlap,
    /// and addresses that overlap (equal, or either is the wildcard).
    pub fn conflicts(&self, other: &Mapping) -> bool {
        self.proto == other.proto
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

/// Parse one `-p` value into its mapping.
pub fn parse(spec: &str) -> Result<Mapping> {
    let bad = |why: &str| {
        Error::new(format!("publish {spec:?}"))
            .detail(why.to_string())
            .hint(
                "write [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp], e.g. 8080:80 or 127.0.0.1:5353:53/udp",
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
        [h, c] => (None, *h, *c),
        [ip, h, c] => {
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| bad("the host ip must be an IPv4 address"))?;
            (if ip.is_unspecified() { None } else { Some(ip) }, *h, *c)
        }
        _ => return Err(bad("expected HOSTPORT:CTRPORT")),
    };
    let (h0, h1) = range(host).ok_or_else(|| bad("bad host port (1-65535, or a range A-B)"))?;
    let (c0, c1) = range(ctr).ok_or_else(|| bad("bad container port (1-65535, or a range A-B)"))?;
    if h1 - h0 != c1 - c0 {
        return Err(bad("the host and container ranges differ in length"));
    }
    Ok(Mapping {
        host_ip,
        host_port: h0,
        container_port: c0,
        proto,
        span: h1 - h0 + 1,
    })
}

/// Parse a list (`-p` values, or the comma-separated annotation) and refuse
/// a list that conflicts with itself.
pub fn parse_all<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Vec<Mapping>> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut total = 0usize;
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
        total += usize::from(m.span);
        if total > MAX_PORTS {
            return Err(Error::new(format!("publish {spec:?}"))
                .detail(format!(
                    "{total} host ports in all: a container publishes at most {MAX_PORTS}"
                ))
                .hint("publish the ports the service uses, not whole ranges"));
        }
        out.push(m);
    }
    Ok(out)
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
            "80",
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
