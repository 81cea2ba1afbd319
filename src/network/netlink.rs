//! A small rtnetlink client: just the requests hull needs (create a bridge,
//! a veth pair with one end in another namespace, set a link up, hairpin a
//! bridge port, add an address and a default route, delete a link, look up
//! an index, list links).
//!
//! Messages are built and read by netlink-packet-route (on
//! netlink-packet-core), the socket is netlink-sys's: the rust-netlink
//! crates, the well-kept standard for rtnetlink in Rust. All synchronous:
//! one request, then its answer, on a blocking socket (no async runtime).
//!
//! Sockets ask for extended acks: a refused request's error line ends with
//! the kernel's own reason ("kernel: Nexthop has invalid gateway").

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, ErrorMessage, NetlinkBuffer, NetlinkDeserializable,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable, NlaBuffer, NlasIterator,
    Parseable, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    LinkProtoInfoBridge,
};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use crate::error::{Context, Error, Result};

/// In an error ack's extended-ack attributes: the kernel's message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// In a bridge port's IFLA_PROTINFO: hairpin mode (the crate has no name
/// for it, so it goes as a plain attribute).
const IFLA_BRPORT_MODE: u16 = 4;
/// Room for one datagram of answers (a dump's come in several).
const RECV_BUF: usize = 32 * 1024;

/// What hull asks of the kernel. (The crate's RouteNetlinkMessage would do,
/// but its encoders for every other kind of message would come along.)
enum Request {
    GetLink(LinkMessage),
    NewLink(LinkMessage),
    SetLink(LinkMessage),
    DelLink(LinkMessage),
    NewAddress(AddressMessage),
    NewRoute(RouteMessage),
}

impl Request {
    fn body(&self) -> &dyn Emitable {
        match self {
            Request::GetLink(m)
            | Request::NewLink(m)
            | Request::SetLink(m)
            | Request::DelLink(m) => m,
            Request::NewAddress(m) => m,
            Request::NewRoute(m) => m,
        }
    }
}

impl NetlinkSerializable for Request {
    fn message_type(&self) -> u16 {
        match self {
            Request::GetLink(_) => libc::RTM_GETLINK,
            Request::NewLink(_) => libc::RTM_NEWLINK,
            Request::SetLink(_) => libc::RTM_SETLINK,
            Request::DelLink(_) => libc::RTM_DELLINK,
            Request::NewAddress(_) => libc::RTM_NEWADDR,
            Request::NewRoute(_) => libc::RTM_NEWROUTE,
        }
    }

    fn buffer_len(&self) -> usize {
        self.body().buffer_len()
    }

    fn serialize(&self, buffer: &mut [u8]) {
        self.body().emit(buffer)
    }
}

/// What the kernel answers, besides acks and errors: hull only ever asks
/// for links (a GETLINK, a dump of them). Only those are decoded; anything
/// else is passed over, so the decoders of the other message kinds (routes,
/// neighbours, qdiscs, ...) stay out of the binary.
enum Reply {
    Link(LinkMessage),
    Other,
}

impl NetlinkDeserializable for Reply {
    type Error = DecodeError;

    fn deserialize(
        header: &NetlinkHeader,
        payload: &[u8],
    ) -> std::result::Result<Reply, DecodeError> {
        match header.message_type {
            libc::RTM_NEWLINK => LinkMessage::parse(payload).map(Reply::Link),
            _ => Ok(Reply::Other),
        }
    }
}

/// A NETLINK_ROUTE socket in the network namespace it was opened in.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    /// Why the last request failed, beyond its errno: the kernel's message
    /// ("kernel: ..."), or what could not be decoded in its answer.
    detail: Option<String>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink> {
        let mut sock = Socket::new(NETLINK_ROUTE).step("open netlink socket")?;
        sock.bind(&SocketAddr::new(0, 0))
            .step("bind netlink socket")?;
        // Best effort: without it errors only lose the kernel's words.
        let _ = sock.set_ext_ack(true);
        Ok(Netlink {
            sock,
            seq: 1,
            detail: None,
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

    /// Send `msg` with `flags` (NLM_F_REQUEST is added); its sequence number.
    fn send(&mut self, msg: Request, flags: u16) -> std::result::Result<u32, Errno> {
        self.seq += 1;
        self.detail = None;
        let bytes = serialize(msg, flags, self.seq);
        self.sock.send(&bytes, 0).map_err(errno)?;
        Ok(self.seq)
    }

    /// Read the answers to request `seq`, handing each reply message to
    /// `each`, until the ack, the end of a dump, or the first reply when
    /// `each` says it has what it wanted. An error ack becomes Err(errno)
    /// and leaves the kernel's words in `detail`.
    fn answers(
        &mut self,
        seq: u32,
        mut each: impl FnMut(LinkMessage) -> bool,
    ) -> std::result::Result<(), Errno> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let n = self.sock.recv(&mut &mut buf[..], 0).map_err(errno)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<Reply>::deserialize(&buf[off..n]).map_err(|e| {
                    self.detail = Some(format!("undecodable answer: {e}"));
                    Errno::EBADMSG
                })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    let done = match msg.payload {
                        NetlinkPayload::Error(err) if err.code.is_none() => true,
                        NetlinkPayload::Error(err) => {
                            self.detail = extack_message(msg.header.flags, &err)
                                .map(|why| format!("kernel: {why}"));
                            return Err(Errno::from_raw(-err.raw_code()));
                        }
                        NetlinkPayload::Done(_) => true,
                        NetlinkPayload::InnerMessage(Reply::Link(link)) => each(link),
                        _ => false,
                    };
                    if done {
                        return Ok(());
                    }
                }
                off += (len.max(1) + 3) & !3;
            }
        }
    }

    /// Send a request that asks for an ack, and wait for it.
    fn ack(&mut self, msg: Request, flags: u16) -> std::result::Result<(), Errno> {
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        self.answers(seq, |_| false)
    }

    /// The error for a refused request: the step, the errno and, when the
    /// kernel said why, its words.
    fn fail(&self, step: impl Into<String>, errno: Errno) -> Error {
        let err = Error::sys(step, None, errno);
        match &self.detail {
            Some(detail) => err.detail(detail),
            None => err,
        }
    }

    /// The index of the link called `name`, or None if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut get = LinkMessage::default();
        get.attributes.push(LinkAttribute::IfName(name.into()));
        let mut index = None;
        let asked = self.send(Request::GetLink(get), 0).and_then(|seq| {
            self.answers(seq, |link| {
                index = Some(link.header.index);
                true
            })
        });
        match asked {
            Ok(()) => index
                .map(Some)
                .ok_or_else(|| Error::new(format!("look up link {name}")).detail("empty reply")),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(self.fail(format!("look up link {name}"), e)),
        }
    }

    /// A new bridge `name`, up.
    pub fn create_bridge(&mut self, name: &str) -> Result<()> {
        self.ack(bridge_request(name), NLM_F_CREATE | NLM_F_EXCL)
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
        let msg = veth_request(host, master, peer, peer_ns.as_raw_fd());
        self.ack(msg, NLM_F_CREATE | NLM_F_EXCL).map_err(|e| {
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
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        msg.attributes.push(LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![1])),
        ]));
        self.ack(Request::SetLink(msg), 0)
            .map_err(|e| self.fail(format!("set hairpin mode on {what}"), e))
    }

    pub fn set_up(&mut self, index: u32, what: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.ack(Request::NewLink(msg), 0)
            .map_err(|e| self.fail(format!("set {what} up"), e))
    }

    /// Add `ip/prefix` to the link; an address already there is fine. An
    /// IPv6 one skips duplicate address detection: hull hands addresses
    /// out, and DAD would keep it unusable for a second or more.
    pub fn add_addr(&mut self, index: u32, ip: IpAddr, prefix: u8, what: &str) -> Result<()> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(ip);
        msg.header.prefix_len = prefix;
        msg.header.index = index;
        msg.attributes.push(AddressAttribute::Local(ip));
        msg.attributes.push(AddressAttribute::Address(ip));
        if ip.is_ipv6() {
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        match self.ack(Request::NewAddress(msg), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(self.fail(format!("add address {ip}/{prefix} to {what}"), e)),
        }
    }

    pub fn add_default_route(&mut self, gateway: IpAddr, index: u32) -> Result<()> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(gateway);
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = RouteScope::Universe;
        msg.header.kind = RouteType::Unicast;
        msg.attributes.push(RouteAttribute::Gateway(gateway.into()));
        msg.attributes.push(RouteAttribute::Oif(index));
        self.ack(Request::NewRoute(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map_err(|e| self.fail(format!("add default route via {gateway}"), e))
    }

    /// Every link of the namespace (a dump, for `gc`).
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut links = Vec::new();
        self.send(Request::GetLink(LinkMessage::default()), NLM_F_DUMP)
            .and_then(|seq| {
                self.answers(seq, |link| {
                    links.extend(Link::from_message(link));
                    false
                })
            })
            .map_err(|e| self.fail("list links", e))?;
        Ok(links)
    }

    /// Delete the link `name`; Ok(false) if there was none.
    pub fn del_link(&mut self, name: &str) -> Result<bool> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.into()));
        match self.ack(Request::DelLink(msg), 0) {
            Ok(()) => Ok(true),
            Err(Errno::ENODEV) => Ok(false),
            Err(e) => Err(self.fail(format!("delete link {name}"), e)),
        }
    }
}

/// The bytes of one request: header (with NLM_F_REQUEST, `flags`, `seq`),
/// then the message.
fn serialize(msg: Request, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags | NLM_F_REQUEST;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    msg.finalize();
    let mut bytes = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut bytes);
    bytes
}

/// RTM_NEWLINK for a bridge `name`, up.
fn bridge_request(name: &str) -> Request {
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    Request::NewLink(msg)
}

/// RTM_NEWLINK for a veth pair: `host`, up, a port of `master`; `peer` in
/// the namespace open as `peer_ns`.
fn veth_request(host: &str, master: u32, peer: &str, peer_ns: i32) -> Request {
    let mut inner = LinkMessage::default();
    inner.attributes.push(LinkAttribute::IfName(peer.into()));
    inner.attributes.push(LinkAttribute::NetNsFd(peer_ns));
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(host.into()));
    msg.attributes.push(LinkAttribute::Controller(master));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(inner))),
    ]));
    Request::NewLink(msg)
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The kernel's message in an error ack (`flags`: its header's flags), if
/// the socket asked for extended acks and the kernel gave one. After the
/// error code come the refused request (its header only, when capped) and
/// then the extended-ack attributes.
fn extack_message(flags: u16, err: &ErrorMessage) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // The request header alone: its length field says how much follows.
    let request = NetlinkBuffer::new(err.header.get(..16)?);
    let skip = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        (request.length() as usize + 3) & !3
    };
    NlasIterator::new(err.header.get(skip..)?)
        .map_while(|nla| nla.ok())
        .find(|nla: &NlaBuffer<&[u8]>| nla.kind() == NLMSGERR_ATTR_MSG)
        .map(|nla| {
            let text = nla.value().split(|b| *b == 0).next().unwrap_or_default();
            String::from_utf8_lossy(text).into_owned()
        })
        .filter(|t| !t.is_empty())
}

/// A link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// The bridge it is a port of.
    pub master: Option<u32>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Option<Link> {
        let (mut name, mut master) = (None, None);
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n),
                LinkAttribute::Controller(m) => master = Some(m),
                _ => {}
            }
        }
        Some(Link {
            name: name?,
            index: msg.header.index,
            master,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::RouteNetlinkMessage;

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

    /// The crate lays out nested attributes as the kernel wants them: the
    /// same bytes the hand-written encoder this replaced produced.
    #[test]
    fn nested_attributes_have_their_lengths() {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Veth,
            )]));
        let b = serialize(Request::NewLink(msg), 0, 7);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        // nest at 32: 4 (nest hdr) + 4 + "veth\0" padded to 8 = 16
        assert_eq!(u16::from_ne_bytes(b[32..34].try_into().unwrap()), 16);
        assert_eq!(b.len(), 48);
    }

    type Message = NetlinkMessage<RouteNetlinkMessage>;

    /// A veth request reads back as sent: the peer, its name and namespace
    /// inside IFLA_LINKINFO / IFLA_INFO_DATA.
    #[test]
    fn veth_request_round_trips() {
        let b = serialize(veth_request("hv1", 5, "eth0", 9), NLM_F_CREATE, 3);
        let msg = Message::deserialize(&b).unwrap();
        assert_eq!(msg.header.flags, NLM_F_CREATE | NLM_F_REQUEST);
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) = msg.payload else {
            panic!("{msg:?}")
        };
        assert!(link.attributes.contains(&LinkAttribute::Controller(5)));
        let peer = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                _ => None,
            }),
            _ => None,
        });
        let peer = peer.expect("a peer");
        assert!(peer
            .attributes
            .contains(&LinkAttribute::IfName("eth0".into())));
        assert!(peer.attributes.contains(&LinkAttribute::NetNsFd(9)));
    }

    #[test]
    fn extack_text_is_found_after_the_request() {
        // An error ack for a 20-byte request, not capped: code, the whole
        // request, then NLMSGERR_ATTR_MSG "no".
        let mut payload = Vec::new();
        payload.extend_from_slice(&20u32.to_ne_bytes());
        payload.extend_from_slice(&[0u8; 16]);
        payload.extend_from_slice(&7u16.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(b"no\0\0");
        let mut err = ErrorMessage::default();
        err.code = std::num::NonZeroI32::new(-22);
        err.header = payload;
        assert_eq!(extack_message(NLM_F_ACK_TLVS, &err).as_deref(), Some("no"));
        assert_eq!(extack_message(0, &err), None);
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
