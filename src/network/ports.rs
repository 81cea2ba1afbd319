//! Published ports: `-p [HOSTIP:]HOSTPORT:CTRPORT[/tcp|/udp]`, with ranges
//! (`8080-8082:80-82`), and the conflict rule between two mappings.

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

/// One host port forwarded to one container port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    /// None: every local address of the host (and 127.0.0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl Mapping {
    /// Two mappings cannot coexist: same protocol and host port, and
    /// addresses that overlap (equal, or either is the wildcard).
    pub fn conflicts(&self, other: &Mapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }

    pub fn host(&self) -> String {
        format!(
            "{}:{}",
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port
        )
    }

    /// As `hull port` prints it: `80/tcp -> 0.0.0.0:8080`.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} -> {}",
            self.container_port,
            self.proto.as_str(),
            self.host()
        )
    }

    /// Is a host process bound to this port? A test bind says so (and is
    /// closed at once: hull holds no socket, the kernel does the forwarding).
    pub fn check_host_free(&self) -> Result<()> {
        let addr = (
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port,
        );
        let res = match self.proto {
            Proto::Tcp => TcpListener::bind(addr).map(drop),
            Proto::Udp => UdpSocket::bind(addr).map(drop),
        };
        res.map_err(|e| {
            let step = format!("publish {}/{}", self.host(), self.proto.as_str());
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

fn range(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a > 0 && a <= b).then_some((a, b))
}

/// Parse one `-p` value into its mappings (one per port of a range).
pub fn parse(spec: &str) -> Result<Vec<Mapping>> {
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
    Ok((0..=h1 - h0)
        .map(|i| Mapping {
            host_ip,
            host_port: h0 + i,
            container_port: c0 + i,
            proto,
        })
        .collect())
}

/// Parse a list (`-p` values, or the comma-separated annotation) and refuse
/// a list that conflicts with itself. Mappings are grouped by protocol and
/// host port, since only those can conflict: `-p 1-65535:1-65535` is 65535
/// mappings, and comparing each with every other took seconds.
pub fn parse_all<'a>(specs: impl IntoIterator<Item = &'a str>) -> Result<Vec<Mapping>> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut by_port: HashMap<(Proto, u16), Vec<Mapping>> = HashMap::new();
    for spec in specs.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
        for m in parse(spec)? {
            let same_port = by_port.entry((m.proto, m.host_port)).or_default();
            if let Some(prev) = same_port.iter().find(|p| p.conflicts(&m)) {
                return Err(Error::new(format!("publish {spec:?}")).detail(format!(
                    "host port {}/{} is published twice",
                    prev.host(),
                    m.proto.as_str()
                )));
            }
            same_port.push(m);
            out.push(m);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_forms() {
        let m = parse("18080:80").unwrap();
        assert_eq!(
            m,
            vec![Mapping {
                host_ip: None,
                host_port: 18080,
                container_port: 80,
                proto: Proto::Tcp
            }]
        );
        let m = parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(m[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m[0].proto, Proto::Udp);
        assert_eq!(m[0].describe(), "53/udp -> 127.0.0.1:5353");
        let m = parse("8080-8082:80-82").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[2].host_port, m[2].container_port), (8082, 82));
        assert_eq!(parse("0.0.0.0:1:2").unwrap()[0].host_ip, None);
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
    }

    /// The whole port range in one flag: 65535 mappings, checked against
    /// each other in linear time (comparing every pair took 35 s on this
    /// input under the `cli_flags` fuzz target's instrumentation).
    #[test]
    fn full_range_is_linear() {
        let all = parse_all(["1-65535:1-65535/udp"]).unwrap();
        assert_eq!(all.len(), 65535);
        assert!(parse_all(["1-65535:1-65535", "127.0.0.1:80:8080"]).is_err());
        assert!(parse_all(["127.0.0.1:80:80", "127.0.0.2:80:80", "80:80/udp"]).is_ok());
    }

    #[test]
    fn conflict_rule() {
        let a = parse("8080:80").unwrap()[0];
        let b = parse("127.0.0.1:8080:81").unwrap()[0];
        let c = parse("127.0.0.2:8080:81").unwrap()[0];
        let u = parse("8080:80/udp").unwrap()[0];
        assert!(a.conflicts(&b) && b.conflicts(&a));
        assert!(!b.conflicts(&c));
        assert!(!a.conflicts(&u));
    }
}
