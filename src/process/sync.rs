//! The channel between hull and the container init during create: a
//! SOCK_SEQPACKET socketpair, one message per packet, so an error from the
//! init arrives whole and a vanished init reads as end-of-file, which the
//! parent turns into "init exited with ..." from waitpid, not "EOF".

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::cmsg_space;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use crate::error::{Context, Error, Result};

#[derive(Debug, PartialEq)]
pub enum Msg {
    /// init → hull: I am in a new user namespace; write my uid/gid maps.
    MapIds,
    /// hull → init: the maps are written.
    Mapped,
    /// hull → init: you are journalled and placed (cgroups); go on.
    Go,
    /// intermediate → hull: the init (pid 1 of the new pid namespace) has this host pid.
    InitPid(i32),
    /// init → hull: set up, waiting for start. Carries the pty master when the process has a terminal.
    Ready,
    /// init → hull: setup failed; the rendered error.
    Failed(String),
    /// init → hull: mounts done, before pivot_root: run prestart and
    /// createRuntime hooks (security::on_init_hooks).
    Hooks,
    /// hull → init: hooks done; the state JSON (with the seccomp agent's
    /// socket when the profile notifies).
    State(String),
    /// init → hull: open my bind mount sources on the host side
    /// (rootfs::sources).
    OpenSources,
    /// hull → init: the source of spec.mounts[i], as the fd sent along.
    Source(u32),
    /// hull → init: every source is sent.
    SourcesDone,
}

pub struct Channel {
    fd: OwnedFd,
}

pub fn pair() -> Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .step("create sync socketpair")?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

// Large enough for a state JSON with many annotations.
const MAX_MSG: usize = 65536;

impl Channel {
    pub fn send(&self, msg: &Msg) -> Result<()> {
        self.send_with_fd(msg, None)
    }

    /// Send `msg`, passing `fd` along with it (SCM_RIGHTS).
    pub fn send_with_fd(&self, msg: &Msg, fd: Option<RawFd>) -> Result<()> {
        let bytes = encode(msg);
        let iov = [IoSlice::new(&bytes)];
        let fds;
        let cmsgs: &[ControlMessage] = match fd {
            Some(fd) => {
                fds = [fd];
                &[ControlMessage::ScmRights(&fds)]
            }
            None => &[],
        };
        sendmsg::<()>(
            self.fd.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .step("send on sync socket")
        .map(drop)
    }

    /// The next message, with the fd that came with it. `None` at end of
    /// file: the other side is gone.
    pub fn recv(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = cmsg_space!(RawFd);
        let msg = loop {
            match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.step("receive on sync socket")?,
            }
        };
        let mut fd = None;
        for cmsg in msg.cmsgs().step("receive on sync socket")? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                for raw in fds {
                    let owned = crate::sys::own_fd(raw);
                    fd.get_or_insert(owned);
                }
            }
        }
        let len = msg.bytes;
        if len == 0 {
            return Ok(None);
        }
        Ok(Some((decode(&buf[..len])?, fd)))
    }
}

fn encode(msg: &Msg) -> Vec<u8> {
    match msg {
        Msg::MapIds => b"M".to_vec(),
        Msg::Mapped => b"m".to_vec(),
        Msg::Go => b"g".to_vec(),
        Msg::InitPid(pid) => format!("P{pid}").into_bytes(),
        Msg::Ready => b"R".to_vec(),
        Msg::Hooks => b"H".to_vec(),
        Msg::State(json) => format!("S{json}").into_bytes(),
        Msg::OpenSources => b"O".to_vec(),
        Msg::Source(i) => format!("o{i}").into_bytes(),
        Msg::SourcesDone => b"D".to_vec(),
        Msg::Failed(text) => {
            let mut v = b"E".to_vec();
            v.extend_from_slice(&text.as_bytes()[..text.len().min(MAX_MSG - 1)]);
            v
        }
    }
}

fn decode(bytes: &[u8]) -> Result<Msg> {
    let bad = || {
        Error::new("sync protocol").detail(format!(
            "unexpected message {:?}",
            String::from_utf8_lossy(bytes)
        ))
    };
    let (tag, rest) = bytes.split_first().ok_or_else(bad)?;
    let text = String::from_utf8_lossy(rest);
    Ok(match tag {
        b'M' => Msg::MapIds,
        b'm' => Msg::Mapped,
        b'g' => Msg::Go,
        b'P' => Msg::InitPid(text.parse().map_err(|_| bad())?),
        b'R' => Msg::Ready,
        b'H' => Msg::Hooks,
        b'S' => Msg::State(text.into_owned()),
        b'O' => Msg::OpenSources,
        b'o' => Msg::Source(text.parse().map_err(|_| bad())?),
        b'D' => Msg::SourcesDone,
        b'E' => Msg::Failed(text.into_owned()),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = pair().unwrap();
        for msg in [
            Msg::MapIds,
            Msg::Mapped,
            Msg::Go,
            Msg::InitPid(42),
            Msg::Ready,
            Msg::Hooks,
            Msg::State("{\"id\":\"a\"}".into()),
            Msg::OpenSources,
            Msg::Source(3),
            Msg::SourcesDone,
            Msg::Failed("mount /proc: EPERM".into()),
        ] {
            a.send(&msg).unwrap();
            let (got, fd) = b.recv().unwrap().unwrap();
            assert_eq!(got, msg);
            assert!(fd.is_none());
        }
        drop(a);
        assert!(b.recv().unwrap().is_none());
    }
}
