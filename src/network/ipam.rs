//! Address management for one bridge subnet: parse the subnet, pick the
//! first free address. The leases themselves live in the locked store
//! (store.rs); this file is pure logic.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

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
