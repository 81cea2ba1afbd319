//! Address management for one bridge subnet: parse the subnet, pick the
//! first free address. The leases themselves live in the locked store
//! (store.rs); this file is pure logic.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

pub const DEFAULT_SUBNET: &str = "10.89.0.0/16";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet> {
        let bad = |why: &str| {
            Error::new("subnet")
                .detail(format!("{s:?}: {why}"))
                .hint("write an IPv4 network as ADDR/PREFIX, e.g. 10.89.0.0/16")
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /PREFIX"))?;
        let net: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(bad("the prefix length must be between 8 and 30"));
        }
        let sub = Subnet { net, prefix };
        if u32::from(net) & !sub.mask() != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(sub)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        let mask = self.mask().min(other.mask());
        u32::from(self.net) & mask == u32::from(other.net) & mask
    }

    /// The bridge's address: the first host of the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + 1)
    }

    /// `wanted` if it is a free host address of the subnet, else the lowest
    /// address above the gateway that holds no lease (the network and
    /// broadcast addresses are never handed out).
    pub fn allocate(
        &self,
        leases: &BTreeMap<Ipv4Addr, String>,
        wanted: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        let first = u32::from(self.net) + 2;
        let last = (u32::from(self.net) | !self.mask()) - 1;
        let free = |ip: &Ipv4Addr| !leases.contains_key(ip);
        wanted
            .filter(|ip| (first..=last).contains(&u32::from(*ip)) && free(ip))
            .or_else(|| (first..=last).map(Ipv4Addr::from).find(free))
    }
}

/// An IPv6 subnet of a network with `--ipv6`: /64 to /120, the gateway is
/// its first host, containers get the next free ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet6 {
    pub net: Ipv6Addr,
    pub prefix: u8,
}

/// Ranges are scanned this far from the start at most: a container count,
/// not an address-space size.
const SCAN6: u128 = 1 << 16;

impl Subnet6 {
    pub fn parse(s: &str) -> Result<Subnet6> {
        let bad = |why: &str| {
            Error::new("subnet6")
                .detail(format!("{s:?}: {why}"))
                .hint("write an IPv6 network as ADDR/PREFIX, e.g. fd68:756c:6c00:1::/64")
        };
        let (addr, prefix) = s.split_once('/').ok_or_else(|| bad("no /PREFIX"))?;
        let net: Ipv6Addr = addr.parse().map_err(|_| bad("not an IPv6 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| bad("bad prefix length"))?;
        if !(64..=120).contains(&prefix) {
            return Err(bad("the prefix length must be between 64 and 120"));
        }
        let sub = Subnet6 { net, prefix };
        if u128::from(net) & !sub.mask() != 0 {
            return Err(bad("host bits are set"));
        }
        Ok(sub)
    }

    fn mask(&self) -> u128 {
        u128::MAX << (128 - self.prefix)
    }

    pub fn overlaps(&self, other: &Subnet6) -> bool {
        let mask = self.mask().min(other.mask());
        u128::from(self.net) & mask == u128::from(other.net) & mask
    }

    pub fn gateway(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.net) + 1)
    }

    /// The lowest address above the gateway that holds no lease.
    pub fn allocate(&self, leases: &BTreeMap<Ipv6Addr, String>) -> Option<Ipv6Addr> {
        let first = u128::from(self.net) + 2;
        let last = (u128::from(self.net) | !self.mask()).min(first + SCAN6);
        (first..=last)
            .map(Ipv6Addr::from)
            .find(|ip| !leases.contains_key(ip))
    }
}

impl std::fmt::Display for Subnet6 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let s = Subnet::parse("10.89.0.0/16").unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 89, 0, 1));
        assert_eq!(s.to_string(), "10.89.0.0/16");
        for bad in [
            "10.89.0.1/16",
            "10.89.0.0",
            "10.89.0.0/31",
            "x/16",
            "10.89.0.0/a",
        ] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subnet6() {
        let s = Subnet6::parse("fd68:756c:6c00:1::/64").unwrap();
        assert_eq!(s.gateway().to_string(), "fd68:756c:6c00:1::1");
        let mut leases = BTreeMap::new();
        let a = s.allocate(&leases).unwrap();
        assert_eq!(a.to_string(), "fd68:756c:6c00:1::2");
        leases.insert(a, "x".into());
        assert_eq!(
            s.allocate(&leases).unwrap().to_string(),
            "fd68:756c:6c00:1::3"
        );
        assert!(s.overlaps(&Subnet6::parse("fd68:756c:6c00:1:5::/80").unwrap()));
        assert!(!s.overlaps(&Subnet6::parse("fd68:756c:6c00:2::/64").unwrap()));
        for bad in ["fd68::1/64", "fd68::/48", "10.0.0.0/64", "fd68::"] {
            assert!(Subnet6::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap() {
        let p = |s| Subnet::parse(s).unwrap();
        assert!(p("10.89.0.0/16").overlaps(&p("10.89.3.0/24")));
        assert!(p("10.89.3.0/24").overlaps(&p("10.0.0.0/8")));
        assert!(!p("10.89.0.0/16").overlaps(&p("10.90.0.0/16")));
    }

    #[test]
    fn allocates_lowest_free_and_runs_out() {
        let s = Subnet::parse("192.168.7.0/30").unwrap();
        let mut leases = BTreeMap::new();
        let a = s.allocate(&leases, None).unwrap();
        assert_eq!(a, Ipv4Addr::new(192, 168, 7, 2));
        leases.insert(a, "x".into());
        assert_eq!(s.allocate(&leases, None), None);
        let s = Subnet::parse("10.0.0.0/24").unwrap();
        leases.clear();
        leases.insert(Ipv4Addr::new(10, 0, 0, 2), "a".into());
        leases.insert(Ipv4Addr::new(10, 0, 0, 4), "b".into());
        assert_eq!(s.allocate(&leases, None), Some(Ipv4Addr::new(10, 0, 0, 3)));
        // A wanted address if it is free and a host of the subnet.
        let want = |a, b, c, d| Some(Ipv4Addr::new(a, b, c, d));
        assert_eq!(s.allocate(&leases, want(10, 0, 0, 9)), want(10, 0, 0, 9));
        assert_eq!(s.allocate(&leases, want(10, 0, 0, 4)), want(10, 0, 0, 3));
        assert_eq!(s.allocate(&leases, want(10, 0, 1, 9)), want(10, 0, 0, 3));
        assert_eq!(s.allocate(&leases, want(10, 0, 0, 255)), want(10, 0, 0, 3));
    }
}
