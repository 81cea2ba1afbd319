//! A small rtnetlink client: just the messages hull needs (create a bridge,
//! a veth pair with one end in another namespace, set a link up, add an
//! address and a default route, delete a link, look up an index).
//!
//! Why our own encoder and not netlink-packet-route + netlink-sys: these
//! seven requests are ~250 lines of plain byte layout, synchronous, with no
//! unsafe and no new dependency (the crates' APIs also change shape on
//! nearly every release). The kernel's ABI here has not changed in 15 years.
//!
//! Sockets ask for extended acks: a refused request's error line ends with
//! the kernel's own reason ("kernel: Nexthop has invalid gateway").

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

use crate::error::{Context, Error, Result};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
/// In an error ack: the original request is cut to its header.
const NLM_F_CAPPED: u16 = 0x100;
/// In an error ack: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_PROTINFO: u16 = 12;
const IFLA_BRPORT_MODE: u16 = 4;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const AF_INET: u8 = libc::AF_INET as u8;
const IFF_UP: u32 = libc::IFF_UP as u32;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const HEADER: usize = 16;
const NLA_F_NESTED: u16 = 1 << 15;

/// One request being built: the nlmsghdr, a fixed header, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(typ: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; HEADER];
        buf[4..6].copy_from_slice(&typ.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad();
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, typ: u16, data: &[u8]) -> &mut Self {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&typ.to_ne_bytes());
        self.raw(data)
    }

    fn attr_str(&mut self, typ: u16, s: &str) -> &mut Self {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(typ, &data)
    }

    fn attr_u32(&mut self, typ: u16, v: u32) -> &mut Self {
        self.attr(typ, &v.to_ne_bytes())
    }

    fn begin(&mut self, typ: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(typ | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("balanced nests");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[4..8].copy_from_slice(&index.to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

/// A NETLINK_ROUTE socket in the network namespace it was opened in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    /// The kernel's message with the last refused request, if it gave one.
    kernel_says: Option<String>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .step("open netlink socket")?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).step("bind netlink socket")?;
        // Best effort: without it errors only lose the kernel's words.
        let _ = crate::sys::netlink_ext_ack(fd.as_fd());
        Ok(Netlink {
            fd,
            seq: 1,
            kernel_says: None,
        })
    }

    /// A socket in the network namespace `ns` (an open /proc/PID/ns/net):
    /// a short-lived thread enters it and opens the socket, which stays
    /// bound to that namespace; the rest of hull never moves.
    pub fn open_in(ns: &File) -> Result<Netlink> {
        let ns = ns.try_clone().step("dup netns fd")?;
        std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .step("enter container network namespace")?;
            Netlink::open()
        })
        .join()
        .map_err(|_| Error::new("open netlink socket").detail("thread panicked"))?
    }

    /// Send one request and wait for its answer: the reply message (for a
    /// GET) or the kernel's ack. An error ack becomes Err(errno).
    fn request(&mut self, msg: Msg) -> std::result::Result<Option<Vec<u8>>, Errno> {
        self.seq += 1;
        self.kernel_says = None;
        let seq = self.seq;
        let bytes = msg.finish(seq);
        send(self.fd.as_raw_fd(), &bytes, MsgFlags::empty())?;
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut off = 0;
            while off + HEADER <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let typ = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap());
                if len < HEADER || off + len > n {
                    return Err(Errno::EBADMSG);
                }
                if mseq == seq {
                    if typ == NLMSG_ERROR {
                        let code = i32::from_ne_bytes(
                            buf[off + HEADER..off + HEADER + 4].try_into().unwrap(),
                        );
                        if code == 0 {
                            return Ok(None);
                        }
                        self.kernel_says = extack_message(&buf[off..off + len]);
                        return Err(Errno::from_raw(-code));
                    }
                    if typ != NLMSG_DONE {
                        return Ok(Some(buf[off..off + len].to_vec()));
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    fn ack(&mut self, msg: Msg) -> std::result::Result<(), Errno> {
        self.request(msg).map(drop)
    }

    /// The error for a refused request: the step, the errno and, when the
    /// kernel said why, its words.
    fn fail(&self, step: impl Into<String>, errno: Errno) -> Error {
        let err = Error::sys(step, None, errno);
        match &self.kernel_says {
            Some(why) => err.detail(format!("kernel: {why}")),
            None => err,
        }
    }

    /// The index of the link called `name`, or None if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut msg = Msg::new(RTM_GETLINK, 0);
        msg.raw(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
        match self.request(msg) {
            Ok(Some(reply)) if reply.len() >= HEADER + 16 => Ok(Some(u32::from_ne_bytes(
                reply[HEADER + 4..HEADER + 8].try_into().unwrap(),
            ))),
            Ok(_) => Err(Error::new(format!("look up link {name}")).detail("empty reply")),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(self.fail(format!("look up link {name}"), e)),
        }
    }

    /// A new bridge `name`, up.
    pub fn create_bridge(&mut self, name: &str) -> Result<()> {
        let mut msg = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        msg.raw(&ifinfomsg(0, IFF_UP, IFF_UP))
            .attr_str(IFLA_IFNAME, name)
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "bridge")
            .end();
        self.ack(msg)
            .map_err(|e| self.fail(format!("create bridge {name}"), e))
    }

    /// A veth pair: `host` here, up, enslaved to the bridge `master`;
    /// `peer` created directly in the namespace `peer_ns`.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        peer_ns: &File,
    ) -> Result<()> {
        let mut msg = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        msg.raw(&ifinfomsg(0, IFF_UP, IFF_UP))
            .attr_str(IFLA_IFNAME, host)
            .attr_u32(IFLA_MASTER, master)
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER)
            .raw(&ifinfomsg(0, 0, 0))
            .attr_str(IFLA_IFNAME, peer)
            .attr_u32(IFLA_NET_NS_FD, peer_ns.as_raw_fd() as u32)
            .end()
            .end()
            .end();
        self.ack(msg).map_err(|e| {
            self.fail(format!("create veth {host}"), e).hint_if(
                Errno::EEXIST,
                "a link of that name exists: `delete --force` the old container",
            )
        })
    }

    /// Hairpin mode on a bridge port: a frame may leave by the port it came
    /// in on. With br_netfilter, a container reaching its own published
    /// port through a host address is DNATed at the bridge and sent back to
    /// its own port; without hairpin the bridge drops it.
    pub fn set_hairpin(&mut self, index: u32, what: &str) -> Result<()> {
        let mut msg = Msg::new(RTM_SETLINK, NLM_F_ACK);
        let mut hdr = ifinfomsg(index as i32, 0, 0);
        hdr[0] = libc::AF_BRIDGE as u8;
        msg.raw(&hdr)
            .begin(IFLA_PROTINFO)
            .attr(IFLA_BRPORT_MODE, &[1])
            .end();
        self.ack(msg)
            .map_err(|e| self.fail(format!("set hairpin mode on {what}"), e))
    }

    pub fn set_up(&mut self, index: u32, what: &str) -> Result<()> {
        let mut msg = Msg::new(RTM_NEWLINK, NLM_F_ACK);
        msg.raw(&ifinfomsg(index as i32, IFF_UP, IFF_UP));
        self.ack(msg)
            .map_err(|e| self.fail(format!("set {what} up"), e))
    }

    /// Add `ip/prefix` to the link; an address already there is fine. An
    /// IPv6 one skips duplicate address detection: hull hands addresses
    /// out, and DAD would keep it unusable for a second or more.
    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8, what: &str) -> Result<()> {
        let mut msg = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let (family, octets) = family_and_octets(ip);
        msg.raw(&[family, prefix, 0, 0])
            .raw(&index.to_ne_bytes())
            .attr(IFA_LOCAL, &octets)
            .attr(IFA_ADDRESS, &octets);
        if ip.is_ipv6() {
            msg.attr_u32(IFA_FLAGS, IFA_F_NODAD);
        }
        match self.ack(msg) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(self.fail(format!("add address {ip}/{prefix} to {what}"), e)),
        }
    }

    pub fn add_default_route(&mut self, gateway: IpAddr, index: u32) -> Result<()> {
        let mut msg = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        let (family, octets) = family_and_octets(gateway);
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
        msg.raw(&[family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST])
            .raw(&0u32.to_ne_bytes())
            .attr(RTA_GATEWAY, &octets)
            .attr_u32(RTA_OIF, index);
        self.ack(msg)
            .map_err(|e| self.fail(format!("add default route via {gateway}"), e))
    }

    /// Every link of the namespace (a dump, for `gc`).
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let err = |e| Error::sys("list links", None, e);
        self.seq += 1;
        let seq = self.seq;
        let mut msg = Msg::new(RTM_GETLINK, NLM_F_DUMP);
        msg.raw(&ifinfomsg(0, 0, 0));
        send(self.fd.as_raw_fd(), &msg.finish(seq), MsgFlags::empty()).map_err(err)?;
        let mut links = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(err)?;
            let mut off = 0;
            while off + HEADER <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let typ = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap());
                if len < HEADER || off + len > n {
                    return Err(err(Errno::EBADMSG));
                }
                if mseq == seq {
                    match typ {
                        NLMSG_DONE => return Ok(links),
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(
                                buf[off + HEADER..off + HEADER + 4].try_into().unwrap(),
                            );
                            return Err(err(Errno::from_raw(-code)));
                        }
                        RTM_NEWLINK => links.extend(parse_link(&buf[off..off + len])),
                        _ => {}
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// Delete the link `name`; Ok(false) if there was none.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let mut msg = Msg::new(RTM_DELLINK, NLM_F_ACK);
        msg.raw(&ifinfomsg(0, 0, 0)).attr_str(IFLA_IFNAME, name);
        match self.ack(msg) {
            Ok(()) => Ok(true),
            Err(Errno::ENODEV) => Ok(false),
            Err(e) => Err(self.fail(format!("delete link {name}"), e)),
        }
    }
}

fn family_and_octets(ip: IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => (AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, v6.octets().to_vec()),
    }
}

/// The kernel's message in an error ack (`msg`: the whole NLMSG_ERROR
/// message), if the socket asked for extended acks and the kernel gave one.
fn extack_message(msg: &[u8]) -> Option<String> {
    let flags = u16::from_ne_bytes(msg.get(6..8)?.try_into().ok()?);
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // After the error code: the request's header, and its body unless capped.
    let request = HEADER + 4;
    let request_len = u32::from_ne_bytes(msg.get(request..request + 4)?.try_into().ok()?) as usize;
    let mut off = request
        + if flags & NLM_F_CAPPED != 0 {
            HEADER
        } else {
            (request_len + 3) & !3
        };
    while off + 4 <= msg.len() {
        let len = u16::from_ne_bytes(msg[off..off + 2].try_into().ok()?) as usize;
        let typ = u16::from_ne_bytes(msg[off + 2..off + 4].try_into().ok()?);
        if len < 4 || off + len > msg.len() {
            return None;
        }
        if typ == NLMSGERR_ATTR_MSG {
            let text = &msg[off + 4..off + len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned()).filter(|t| !t.is_empty());
        }
        off += (len + 3) & !3;
    }
    None
}

/// A link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// The bridge it is a port of.
    pub master: Option<u32>,
}

/// One RTM_NEWLINK message: the ifinfomsg, then attributes.
fn parse_link(msg: &[u8]) -> Option<Link> {
    let body = msg.get(HEADER..)?;
    let index = u32::from_ne_bytes(body.get(4..8)?.try_into().ok()?);
    let (mut name, mut master) = (None, None);
    let mut off = 16;
    while off + 4 <= body.len() {
        let len = u16::from_ne_bytes(body[off..off + 2].try_into().ok()?) as usize;
        let typ = u16::from_ne_bytes(body[off + 2..off + 4].try_into().ok()?) & 0x3fff;
        let data = body.get(off + 4..off + len.max(4))?;
        match typ {
            IFLA_IFNAME => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            IFLA_MASTER if data.len() >= 4 => {
                master = Some(u32::from_ne_bytes(data[..4].try_into().ok()?));
            }
            _ => {}
        }
        off += (len.max(4) + 3) & !3;
    }
    Some(Link {
        name: name?,
        index,
        master,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused request carries the kernel's reason (in a network
    /// namespace of the test's own: nothing on the host changes).
    #[test]
    fn refused_request_says_why() {
        let err = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let mut nl = Netlink::open().ok()?;
            // lo is down and has no address: no gateway is reachable.
            nl.add_default_route(std::net::Ipv4Addr::new(192, 0, 2, 1).into(), 1)
                .err()
        })
        .join()
        .unwrap();
        let Some(err) = err else {
            // Not root (no new network namespace): nothing to check here.
            return;
        };
        let line = err.to_string();
        assert!(line.contains("add default route via 192.0.2.1"), "{line}");
        assert!(line.contains("kernel: "), "no extended ack: {line}");
    }

    #[test]
    fn nested_attributes_have_their_lengths() {
        let mut m = Msg::new(RTM_NEWLINK, 0);
        m.raw(&ifinfomsg(0, 0, 0))
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .end();
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // nest at 32: 4 (nest hdr) + 4 + "veth\0" padded to 8 = 16
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 16);
        assert_eq!(b.len(), 48);
    }

    #[test]
    fn dump_lists_loopback() {
        // Any network namespace has `lo`, index 1, no master.
        let Ok(mut nl) = Netlink::open() else { return };
        let links = nl.links().unwrap();
        assert!(
            links
                .iter()
                .any(|l| l.name == "lo" && l.index == 1 && l.master.is_none()),
            "{links:?}"
        );
    }
}
