//! linux.seccomp compiled with libseccomp: every action, errno values,
//! architectures, filter flags, argument conditions with every operator,
//! and SCMP_ACT_NOTIFY with a listener (the seccomp agent protocol runc uses).
//!
//! The filter is compiled before the init reports ready (a bad profile fails
//! `create`), exported from libseccomp as classic BPF with runc's -ENOSYS
//! stub in front (enosys.rs), and loaded with seccomp(2) by hull itself,
//! which also returns the notify fd. The init loads it before it reports
//! ready, as runc does: the notify fd reaches the agent during `create`, and
//! startContainer hooks run under the filter. An exec'd process loads it
//! right before execve.

use std::io::{IoSlice, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::socket::{self, ControlMessage, MsgFlags};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompFilterFlag as F, LinuxSeccompOperator as Op,
};

use crate::error::{Context, Error, Result};
use crate::sys;

/// A compiled filter, ready to load.
pub struct Filter {
    /// The BPF program: the -ENOSYS stub, then libseccomp's filter.
    prog: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: u32,
    /// The agent's socket (connected by hull in the runtime's mount
    /// namespace) and the message that goes with the notify fd.
    agent: Option<(OwnedFd, Vec<u8>)>,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::new("linux.seccomp").detail(detail)
}

/// Whether the profile uses SCMP_ACT_NOTIFY anywhere.
pub fn uses_notify(seccomp: &LinuxSeccomp) -> bool {
    seccomp.default_action() == A::ScmpActNotify
        || seccomp
            .syscalls()
            .iter()
            .flatten()
            .any(|s| s.action() == A::ScmpActNotify)
}

/// Config checks that need no kernel: done by `create` before anything exists.
pub fn validate(seccomp: &LinuxSeccomp) -> Result<()> {
    if seccomp.default_action() == A::ScmpActNotify {
        return Err(bad("SCMP_ACT_NOTIFY cannot be the defaultAction")
            .hint("hull must hand the notify fd over (sendmsg) after loading the filter"));
    }
    for rule in seccomp.syscalls().iter().flatten() {
        if rule.action() == A::ScmpActNotify && rule.names().iter().any(|n| n == "sendmsg") {
            return Err(bad("SCMP_ACT_NOTIFY cannot be used for sendmsg")
                .hint("hull hands the notify fd to the agent with sendmsg"));
        }
    }
    if uses_notify(seccomp) && seccomp.listener_path().is_none() {
        return Err(bad("SCMP_ACT_NOTIFY needs listenerPath")
            .hint("set linux.seccomp.listenerPath to the seccomp agent's socket"));
    }
    for flag in seccomp.flags().iter().flatten() {
        if *flag == F::SeccompFilterFlagWaitKillableRecv {
            return Err(bad(
                "flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6",
            ));
        }
    }
    Ok(())
}

fn action(act: A, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    match act {
        A::ScmpActKill | A::ScmpActKillThread => ScmpAction::KillThread,
        A::ScmpActKillProcess => ScmpAction::KillProcess,
        A::ScmpActTrap => ScmpAction::Trap,
        A::ScmpActErrno => ScmpAction::Errno(errno),
        A::ScmpActTrace => ScmpAction::Trace(errno as u16),
        A::ScmpActLog => ScmpAction::Log,
        A::ScmpActAllow => ScmpAction::Allow,
        A::ScmpActNotify => ScmpAction::Notify,
    }
}

fn compare(op: Op, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        Op::ScmpCmpLt => (ScmpCompareOp::Less, value),
        Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        Op::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        Op::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // (arg & value) == valueTwo
        Op::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0)),
    }
}

fn lib(step: &str) -> impl Fn(libseccomp::error::SeccompError) -> Error + '_ {
    move |e| bad(format!("{step}: {e}"))
}

/// Compile the profile. Syscall names libseccomp does not know are skipped
/// (as runc does: profiles list syscalls of newer kernels).
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter> {
    validate(seccomp)?;
    let default = action(seccomp.default_action(), seccomp.default_errno_ret());
    let mut ctx = ScmpFilterContext::new_filter(default).map_err(lib("create filter"))?;
    // libseccomp sets no_new_privs on load unless told not to: that is
    // process.noNewPrivileges' decision, not the filter's.
    ctx.set_ctl_nnp(false)
        .map_err(lib("clear the no_new_privs attribute"))?;
    // The filter starts with the native architecture; without a list that
    // is the only one.
    let mut archs = vec![ScmpArch::native()];
    for arch in seccomp.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let parsed: ScmpArch = name
            .parse()
            .map_err(|_| bad(format!("architecture {name} is not supported")))?;
        ctx.add_arch(parsed)
            .map_err(lib(&format!("add architecture {name}")))?;
        archs.push(parsed);
    }
    for rule in seccomp.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        // libseccomp refuses a rule that repeats the default; it is a no-op.
        if act == default {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or_default();
        let conds: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                if a.index() > 5 {
                    return Err(bad(format!(
                        "syscall argument index {} is out of range 0-5",
                        a.index()
                    )));
                }
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                Ok(ScmpArgCompare::new(a.index() as u32, op, datum))
            })
            .collect::<Result<_>>()?;
        // Two conditions on one argument cannot be ANDed by libseccomp: as
        // runc does, each becomes a rule of its own (OR).
        let mut seen = [0u8; 6];
        args.iter().for_each(|a| seen[a.index()] += 1);
        let separate = seen.iter().any(|n| *n > 1);
        for name in rule.names() {
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let what = format!("add rule for {name}");
            if conds.is_empty() {
                ctx.add_rule(act, call).map_err(lib(&what))?;
            } else if separate {
                for c in &conds {
                    ctx.add_rule_conditional(act, call, std::slice::from_ref(c))
                        .map_err(lib(&what))?;
                }
            } else {
                ctx.add_rule_conditional(act, call, &conds)
                    .map_err(lib(&what))?;
            }
        }
    }
    let mut prog = super::enosys::stub(seccomp, &archs);
    prog.extend(export(&ctx)?);
    Ok(Filter {
        prog,
        flags: flags(seccomp),
        agent: None,
    })
}

/// libseccomp's filter as classic BPF (in host byte order).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>> {
    let fd = memfd_create(c"hull-seccomp", MemFdCreateFlag::MFD_CLOEXEC)
        .step("create a memfd for the seccomp filter")?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&mut file).map_err(lib("export filter"))?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .step("read the exported seccomp filter")?;
    Ok(bytes
        .chunks_exact(8)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect())
}

/// The seccomp(2) flags of the profile, plus a listener when it notifies.
fn flags(seccomp: &LinuxSeccomp) -> u32 {
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            F::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            F::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            F::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            // Refused by validate.
            F::SeccompFilterFlagWaitKillableRecv => 0,
        } as u32;
    }
    if uses_notify(seccomp) {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;
        // TSYNC reports a failure as a thread id, which collides with the
        // listener fd: TSYNC_ESRCH makes it an error code.
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC as u32 != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
        }
    }
    flags
}

/// hull's side, in the runtime's mount namespace: connect to the agent's
/// socket so a missing agent fails `create`, not the container's start.
pub fn connect_listener(path: &Path) -> Result<OwnedFd> {
    let sock = socket::socket(
        socket::AddressFamily::Unix,
        socket::SockType::Stream,
        socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .step("create seccomp agent socket")?;
    let addr = socket::UnixAddr::new(path).step_at("connect to seccomp agent", path)?;
    socket::connect(sock.as_raw_fd(), &addr)
        .step_at("connect to seccomp agent", path)
        .map_err(|e| e.hint("linux.seccomp.listenerPath must be a listening unix socket"))?;
    Ok(sock)
}

impl Filter {
    /// The agent gets the notify fd with runc's message: the state of the
    /// container, the process pid and listenerMetadata.
    pub fn set_agent(&mut self, sock: OwnedFd, seccomp: &LinuxSeccomp, state: &serde_json::Value) {
        let msg = serde_json::json!({
            "ociVersion": state["ociVersion"],
            "fds": ["seccompFd"],
            "pid": state["pid"],
            "metadata": seccomp.listener_metadata().clone().unwrap_or_default(),
            "state": state,
        });
        self.agent = Some((sock, msg.to_string().into_bytes()));
    }

    /// Load the filter into this process; hand the notify fd to the agent.
    pub fn load(&self) -> Result<()> {
        let notify = sys::seccomp_set_filter(self.flags, &self.prog).map_err(|e| {
            Error::sys("linux.seccomp: load filter", None, e).hint_if(
                Errno::EACCES,
                "loading a filter without noNewPrivileges needs CAP_SYS_ADMIN",
            )
        })?;
        let (Some(fd), Some((sock, msg))) = (notify, &self.agent) else {
            // No agent (an exec'd process): the fd closes, and notified
            // syscalls fail with ENOSYS.
            return Ok(());
        };
        socket::sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(msg)],
            &[ControlMessage::ScmRights(&[fd.as_raw_fd()])],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .step("send notify fd to seccomp agent")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn compiles_every_action_operator_arch_and_flag() {
        let mut syscalls = Vec::new();
        for (name, action) in [
            ("getpid", "SCMP_ACT_KILL"),
            ("getppid", "SCMP_ACT_KILL_PROCESS"),
            ("getuid", "SCMP_ACT_KILL_THREAD"),
            ("getgid", "SCMP_ACT_TRAP"),
            ("geteuid", "SCMP_ACT_ERRNO"),
            ("getegid", "SCMP_ACT_TRACE"),
            ("getpgrp", "SCMP_ACT_LOG"),
            ("getsid", "SCMP_ACT_NOTIFY"),
        ] {
            syscalls.push(serde_json::json!({"names": [name], "action": action, "errnoRet": 5}));
        }
        for (i, op) in [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ]
        .iter()
        .enumerate()
        {
            syscalls.push(serde_json::json!({
                "names": ["personality"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": i as u64 + 1, "valueTwo": 1, "op": op}]
            }));
        }
        // Two conditions on one argument: separate rules (OR), as runc.
        syscalls.push(serde_json::json!({
            "names": ["kill", "no_such_syscall_in_any_kernel"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": 12, "op": "SCMP_CMP_EQ"}]
        }));
        let p = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
            "listenerPath": "/run/agent.sock",
            "syscalls": syscalls
        }));
        let f = compile(&p).unwrap();
        assert!(f.prog.len() > 10);
        assert_ne!(f.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32, 0);
    }

    #[test]
    fn refuses_what_cannot_work() {
        let notify_no_path = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        assert!(compile(&notify_no_path)
            .err()
            .unwrap()
            .to_string()
            .contains("listenerPath"));
        let default_notify = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"
        }));
        assert!(validate(&default_notify).is_err());
        let bad_index = profile(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        }));
        assert!(compile(&bad_index).is_err());
    }
}
