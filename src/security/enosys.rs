//! The -ENOSYS stub that goes in front of a seccomp filter whose default
//! action refuses (runc does the same): a syscall numbered above every
//! syscall the profile names, for its architecture, is one the profile
//! cannot know (newer than it, or than libseccomp's table), and gets ENOSYS,
//! "this kernel has no such call", instead of the default errno. Programs
//! probe new syscalls and fall back only on ENOSYS: glibc's clone3 -> clone
//! (posix_spawn, pthread_create) and faccessat2 -> faccessat; an EPERM there
//! breaks them under any profile older than they are.
//!
//! The stub is classic BPF: load the architecture, jump to its section,
//! compare the syscall number with the profile's largest for that
//! architecture; anything else falls through to libseccomp's filter, which
//! follows the stub.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as A};

/// x32 calls arrive as AUDIT_ARCH_X86_64 with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;
/// Offsets in struct seccomp_data.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

/// The stub for `seccomp` with the filter's architectures `archs` (empty
/// when the profile needs none).
pub fn stub(seccomp: &LinuxSeccomp, archs: &[ScmpArch]) -> Vec<libc::sock_filter> {
    // Nothing to do when refusals are allowed through anyway, or already
    // say ENOSYS. Trace is "allow" too: a tracer handles new syscalls itself.
    if matches!(
        seccomp.default_action(),
        A::ScmpActAllow | A::ScmpActLog | A::ScmpActTrace
    ) || seccomp.default_errno_ret() == Some(libc::ENOSYS as u32)
    {
        return Vec::new();
    }
    let names: Vec<&str> = seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().iter().map(String::as_str))
        .collect();
    assemble(&largest_per_arch(&names, archs)).unwrap_or_default()
}

/// One architecture of the kernel (AUDIT_ARCH_*) and the largest syscall
/// number the profile names for it: its own ABI and, on x86_64, x32.
#[derive(Debug, Default, PartialEq)]
struct Section {
    audit_arch: u32,
    largest: Option<u32>,
    largest_x32: Option<u32>,
}

/// AUDIT_ARCH_* of an architecture libseccomp knows (x32 is x86_64's).
/// s390 is left out: it multiplexes unknown numbers through syscall 0,
/// which this stub does not special-case.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    use ScmpArch as S;
    Some(match arch {
        S::X86 => 0x4000_0003,
        S::X8664 | S::X32 => AUDIT_ARCH_X86_64,
        S::Arm => 0x4000_0028,
        S::Aarch64 => 0xC000_00B7,
        S::Mips => 0x0000_0008,
        S::Mips64 => 0x8000_0008,
        S::Mips64N32 => 0xA000_0008,
        S::Mipsel => 0x4000_0008,
        S::Mipsel64 => 0xC000_0008,
        S::Mipsel64N32 => 0xE000_0008,
        S::Ppc => 0x0000_0014,
        S::Ppc64 => 0x8000_0015,
        S::Ppc64Le => 0xC000_0015,
        S::Riscv64 => 0xC000_00F3,
        _ => return None,
    })
}

fn largest_per_arch(names: &[&str], archs: &[ScmpArch]) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for &arch in archs {
        let Some(audit) = audit_arch(arch) else {
            continue;
        };
        // Names this libseccomp does not know, or that do not exist on this
        // architecture (negative pseudo numbers), say nothing.
        let largest = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|nr| *nr >= 0)
            .map(|nr| nr as u32)
            .max();
        let Some(largest) = largest else { continue };
        let i = match sections.iter().position(|s| s.audit_arch == audit) {
            Some(i) => i,
            None => {
                sections.push(Section {
                    audit_arch: audit,
                    ..Default::default()
                });
                sections.len() - 1
            }
        };
        if arch == ScmpArch::X32 {
            sections[i].largest_x32 = Some(largest);
        } else {
            sections[i].largest = Some(largest);
        }
    }
    sections
}

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    Next,
    /// The `ret ENOSYS` at the end of the stub.
    Enosys,
    /// The first instruction after the stub: libseccomp's filter.
    Filter,
    Label(usize),
}

struct Op {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

/// A tiny assembler: jumps name their targets, `finish` turns them into
/// the relative offsets classic BPF wants.
#[derive(Default)]
struct Asm {
    ops: Vec<Op>,
    labels: Vec<usize>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.ops.push(Op { code, k, jt, jf });
    }

    /// A label to `place` later.
    fn label(&mut self) -> usize {
        self.labels.push(usize::MAX);
        self.labels.len() - 1
    }

    /// Put `label` at the next instruction.
    fn place(&mut self, label: usize) {
        self.labels[label] = self.ops.len();
    }

    /// Resolve the jumps; None when one is too long for classic BPF.
    fn finish(mut self) -> Option<Vec<libc::sock_filter>> {
        let enosys = self.ops.len();
        let ret_enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        self.op(BPF_RET_K, ret_enosys, To::Next, To::Next);
        let filter = self.ops.len();
        let target = |to: To, next: usize| match to {
            To::Next => next,
            To::Enosys => enosys,
            To::Filter => filter,
            To::Label(n) => self.labels[n],
        };
        self.ops
            .iter()
            .enumerate()
            .map(|(i, op)| {
                let next = i + 1;
                let off = |to| target(to, next).checked_sub(next);
                Some(if op.code == BPF_JMP_JA {
                    libc::sock_filter {
                        code: op.code,
                        jt: 0,
                        jf: 0,
                        k: u32::try_from(off(op.jt)?).ok()?,
                    }
                } else {
                    libc::sock_filter {
                        code: op.code,
                        jt: u8::try_from(off(op.jt)?).ok()?,
                        jf: u8::try_from(off(op.jf)?).ok()?,
                        k: op.k,
                    }
                })
            })
            .collect()
    }
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

fn assemble(sections: &[Section]) -> Option<Vec<libc::sock_filter>> {
    if sections.is_empty() {
        return None;
    }
    let mut asm = Asm::default();
    asm.op(BPF_LD_W_ABS, DATA_ARCH, To::Next, To::Next);
    let starts: Vec<usize> = sections.iter().map(|_| asm.label()).collect();
    for (s, start) in sections.iter().zip(&starts) {
        asm.op(BPF_JMP_JEQ_K, s.audit_arch, To::Label(*start), To::Next);
    }
    // An architecture the profile does not name: the filter decides.
    asm.op(BPF_JMP_JA, 0, To::Filter, To::Next);
    for (s, start) in sections.iter().zip(&starts) {
        asm.place(*start);
        asm.op(BPF_LD_W_ABS, DATA_NR, To::Next, To::Next);
        if s.audit_arch != AUDIT_ARCH_X86_64 {
            if let Some(max) = s.largest {
                asm.op(BPF_JMP_JGT_K, max, To::Enosys, To::Filter);
            }
            continue;
        }
        // x86_64: x32 numbers carry X32_SYSCALL_BIT and have their own largest.
        let x32 = s.largest_x32.map(|max| (max, asm.label()));
        let to_x32 = x32.map_or(To::Filter, |(_, l)| To::Label(l));
        asm.op(BPF_JMP_JSET_K, X32_SYSCALL_BIT, to_x32, To::Next);
        match s.largest {
            Some(max) => asm.op(BPF_JMP_JGT_K, max, To::Enosys, To::Filter),
            None => asm.op(BPF_JMP_JA, 0, To::Filter, To::Next),
        }
        if let Some((max, label)) = x32 {
            asm.place(label);
            asm.op(BPF_JMP_JGT_K, max, To::Enosys, To::Filter);
        }
    }
    asm.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stub run on one syscall: what it returns, or None when it falls
    /// through to the filter.
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while let Some(i) = prog.get(pc) {
            pc += 1;
            let jump = |taken: bool| usize::from(if taken { i.jt } else { i.jf });
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == DATA_ARCH { arch } else { nr },
                BPF_JMP_JA => pc += i.k as usize,
                BPF_JMP_JEQ_K => pc += jump(acc == i.k),
                BPF_JMP_JGT_K => pc += jump(acc > i.k),
                BPF_JMP_JSET_K => pc += jump(acc & i.k != 0),
                BPF_RET_K => return Some(i.k),
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
        assert_eq!(pc, prog.len(), "jumped past the filter's start");
        None
    }

    fn profile(default: &str, errno: Option<u32>) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": default,
            "defaultErrnoRet": errno,
            "syscalls": [{"names": ["read", "write", "unshare", "no_such_call"],
                          "action": "SCMP_ACT_ALLOW"}]
        }))
        .unwrap()
    }

    const I386: u32 = 0x4000_0003;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    fn newer_syscalls_get_enosys_per_architecture() {
        let archs = [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32];
        let prog = stub(&profile("SCMP_ACT_ERRNO", None), &archs);
        // x86_64: unshare is 272.
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 273), Some(ENOSYS));
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 272), None);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 83), None);
        // i386: unshare is 310.
        assert_eq!(eval(&prog, I386, 311), Some(ENOSYS));
        assert_eq!(eval(&prog, I386, 310), None);
        // x32: x86_64's numbers with the x32 bit.
        let x32 = |nr| X32_SYSCALL_BIT | nr;
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x32(273)), Some(ENOSYS));
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, x32(5)), None);
        // An architecture the profile does not name: the filter decides.
        assert_eq!(eval(&prog, 0xC000_00B7, 9999), None);
    }

    #[test]
    fn x32_calls_go_to_the_filter_when_the_profile_has_no_x32() {
        let prog = stub(&profile("SCMP_ACT_ERRNO", None), &[ScmpArch::X8664]);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 999), None);
        assert_eq!(eval(&prog, AUDIT_ARCH_X86_64, 999), Some(ENOSYS));
        assert_eq!(eval(&prog, I386, 999), None);
    }

    #[test]
    fn no_stub_when_refusals_pass_or_say_enosys() {
        let archs = [ScmpArch::X8664];
        for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            assert!(
                stub(&profile(default, None), &archs).is_empty(),
                "{default}"
            );
        }
        let enosys = profile("SCMP_ACT_ERRNO", Some(libc::ENOSYS as u32));
        assert!(stub(&enosys, &archs).is_empty());
        assert!(!stub(&profile("SCMP_ACT_KILL", None), &archs).is_empty());
    }
}
