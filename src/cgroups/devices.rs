//! Device access rules: the spec's list followed by the devices every
//! container may use (runc appends the same ones), as v1 devices.allow /
//! devices.deny lines or as a cgroup-v2 eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

use super::resources::DeviceRule;

/// One rule: type 'a' | 'b' | 'c', major/minor (None = any), access "rwm".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: String,
}

impl Rule {
    fn new(typ: char, major: Option<u32>, minor: Option<u32>, access: &str) -> Rule {
        Rule {
            allow: true,
            typ,
            major,
            minor,
            access: access.to_string(),
        }
    }

    /// "c 1:3 rwm", as devices.allow and devices.deny take it.
    pub fn v1_line(&self) -> String {
        let n = |v: Option<u32>| v.map(|v| v.to_string()).unwrap_or_else(|| "*".into());
        if self.typ == 'a' {
            return "a".to_string();
        }
        format!(
            "{} {}:{} {}",
            self.typ,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The devices any container may use: runc's default allow list.
pub fn defaults() -> Vec<Rule> {
    vec![
        Rule::new('c', None, None, "m"),
        Rule::new('b', None, None, "m"),
        Rule::new('c', Some(1), Some(3), "rwm"), // /dev/null
        Rule::new('c', Some(1), Some(8), "rwm"), // /dev/random
        Rule::new('c', Some(1), Some(7), "rwm"), // /dev/full
        Rule::new('c', Some(5), Some(0), "rwm"), // /dev/tty
        Rule::new('c', Some(1), Some(5), "rwm"), // /dev/zero
        Rule::new('c', Some(1), Some(9), "rwm"), // /dev/urandom
        Rule::new('c', Some(5), Some(1), "rwm"), // /dev/console
        Rule::new('c', Some(136), None, "rwm"),  // /dev/pts/*
        Rule::new('c', Some(5), Some(2), "rwm"), // /dev/ptmx
        Rule::new('c', Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

/// The spec's rules, then the defaults (runc applies these even when the
/// spec has no device rules).
pub fn rules(spec_rules: &[DeviceRule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = spec_rules
        .iter()
        .map(|r| {
            let typ = r
                .typ
                .as_deref()
                .and_then(|t| t.chars().next())
                .filter(|c| matches!(c, 'a' | 'b' | 'c' | 'u' | 'p'))
                .unwrap_or('a');
            // 'u' (unbuffered char) and 'p' (fifo) are chars for the cgroup.
            let typ = if typ == 'u' { 'c' } else { typ };
            // Resources::from_json refuses numbers beyond u32; one that
            // comes here anyway saturates to a number no device has,
            // never wraps to another device's.
            let num = |v: Option<i64>| {
                v.filter(|v| *v >= 0)
                    .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            };
            let access = r
                .access
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "rwm".into());
            Rule {
                allow: r.allow,
                typ,
                major: num(r.major),
                minor: num(r.minor),
                access,
            }
        })
        .filter(|r| r.typ != 'p')
        .collect();
    out.extend(defaults());
    out
}

// eBPF, hand-assembled. struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type; type 1 = block, 2 = char; access 1 = mknod, 2 = read, 4 = write.
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let o = off.to_le_bytes();
    let i = imm.to_le_bytes();
    [
        code,
        (src << 4) | (dst & 0xf),
        o[0],
        o[1],
        i[0],
        i[1],
        i[2],
        i[3],
    ]
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |b, c| {
        b | match c {
            'm' => 1,
            'r' => 2,
            'w' => 4,
            _ => 0,
        }
    })
}

/// The program: the last matching rule decides (as with v1's lists, where a
/// later line overrides an earlier one); no match denies.
pub fn program(rules: &[Rule]) -> Vec<[u8; 8]> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),      // r2 = access_type
        insn(AND_K, 2, 0, 0, 0xffff), // r2 = type
        insn(LDX_W, 3, 1, 0, 0),      // r3 = access_type
        insn(RSH_K, 3, 0, 0, 16),     // r3 = access
        insn(LDX_W, 4, 1, 4, 0),      // r4 = major
        insn(LDX_W, 5, 1, 8, 0),      // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut block: Vec<[u8; 8]> = Vec::new();
        // Jumps are patched to the end of this block once its size is known.
        let mut jumps = Vec::new();
        if r.typ != 'a' {
            jumps.push(block.len());
            block.push(insn(JNE_K, 2, 0, 0, if r.typ == 'b' { 1 } else { 2 }));
        }
        let bits = access_bits(&r.access);
        if bits != 7 && r.typ != 'a' {
            // the request must ask only for access this rule names
            block.push(insn(MOV_X, 1, 3, 0, 0));
            block.push(insn(AND_K, 1, 0, 0, !bits & 7));
            jumps.push(block.len());
            block.push(insn(JNE_K, 1, 0, 0, 0));
        }
        if let (Some(m), true) = (r.major, r.typ != 'a') {
            jumps.push(block.len());
            block.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let (Some(m), true) = (r.minor, r.typ != 'a') {
            jumps.push(block.len());
            block.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(insn(MOV_K, 0, 0, 0, r.allow as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let end = block.len();
        for j in jumps {
            let off = (end - j - 1) as i16;
            block[j][2..4].copy_from_slice(&off.to_le_bytes());
        }
        p.extend(block);
        if r.typ == 'a' {
            // Nothing after an unconditional rule can be reached.
            return p;
        }
    }
    p.push(insn(MOV_K, 0, 0, 0, 0));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions `program` emits.
    fn run(p: &[[u8; 8]], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = p[pc];
            let (dst, src) = ((i[1] & 0xf) as usize, (i[1] >> 4) as usize);
            let off = i16::from_le_bytes([i[2], i[3]]);
            let imm = i32::from_le_bytes([i[4], i[5], i[6], i[7]]) as i64 as u64;
            pc += 1;
            match i[0] {
                LDX_W => r[dst] = ctx[off as usize / 4] as u64,
                AND_K => r[dst] &= imm,
                RSH_K => r[dst] >>= imm,
                MOV_K => r[dst] = imm,
                MOV_X => r[dst] = r[src],
                JNE_K => {
                    if r[dst] != imm {
                        pc = (pc as i64 + off as i64) as usize
                    }
                }
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_follows_rules() {
        let spec = [DeviceRule {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        }];
        let p = program(&rules(&spec));
        assert_eq!(run(&p, 2, 2, 1, 3), 1, "/dev/null read");
        assert_eq!(run(&p, 2, 6, 136, 4), 1, "pts rw");
        assert_eq!(run(&p, 2, 2, 42, 0), 0, "42:0 read");
        assert_eq!(run(&p, 2, 1, 42, 0), 1, "mknod of any char");
        assert_eq!(run(&p, 1, 2, 7, 0), 0, "block read");
        let spec = [
            spec[0].clone(),
            DeviceRule {
                allow: true,
                typ: Some("c".into()),
                major: Some(42),
                minor: None,
                access: Some("r".into()),
            },
        ];
        let p = program(&rules(&spec));
        assert_eq!(run(&p, 2, 2, 42, 7), 1);
        assert_eq!(run(&p, 2, 4, 42, 7), 0, "write not allowed");
    }

    #[test]
    fn allow_all_short_circuits() {
        let spec = [DeviceRule {
            allow: true,
            access: Some("rwm".into()),
            ..Default::default()
        }];
        // The defaults come after; the 'a' rule is evaluated after them (reversed) but allows all.
        let p = program(&rules(&spec));
        assert_eq!(run(&p, 1, 2, 8, 0), 1);
        assert_eq!(rules(&spec)[0].v1_line(), "a");
        assert_eq!(defaults()[9].v1_line(), "c 136:* rwm");
    }
}
