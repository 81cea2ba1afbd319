//! Device access rules: the spec's list followed by the devices every
//! container may use (runc appends the same ones), as v1 devices.allow /
//! devices.deny lines or as a cgroup-v2 eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE).

use super::resources::DeviceRule;
use crate::error::{Error, Result};

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
/// spec has no device rules). A type other than a, b or c is refused (runc
/// too); access is normalised as runc does: r, w and m kept in that order,
/// anything else dropped ("rwa" is "rw"), and none of them left is refused.
/// The kernel would refuse both with a bare EINVAL.
pub fn rules(spec_rules: &[DeviceRule]) -> Result<Vec<Rule>> {
    let mut out = Vec::with_capacity(spec_rules.len() + 12);
    for (i, r) in spec_rules.iter().enumerate() {
        let field = |f: &str| format!("linux.resources.devices[{i}].{f}");
        let bad = |f: &str, v: &str, why: &str| {
            Error::new(format!("invalid configuration: {} {v:?}", field(f))).detail(why.to_string())
        };
        let typ = match r.typ.as_deref().unwrap_or("a") {
            "" | "a" => 'a',
            "b" => 'b',
            "c" => 'c',
            t => return Err(bad("type", t, "a device rule's type is a, b or c")),
        };
        let access = match r.access.as_deref().filter(|a| !a.is_empty()) {
            None => "rwm".to_string(),
            Some(a) => {
                let kept = bits_to_access(access_bits(a));
                if kept.is_empty() {
                    return Err(bad("access", a, "access is made of r, w and m"));
                }
                kept
            }
        };
        // Resources::from_json refuses numbers beyond u32; one that comes
        // here anyway saturates to a number no device has, never wraps to
        // another device's.
        let num = |v: Option<i64>| {
            v.filter(|v| *v >= 0)
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        out.push(Rule {
            allow: r.allow,
            typ,
            major: num(r.major),
            minor: num(r.minor),
            access,
        });
    }
    out.extend(defaults());
    Ok(out)
}

/// The access bits (m 1, r 2, w 4) as "rwm" letters, in that order.
fn bits_to_access(bits: i32) -> String {
    [('r', 2), ('w', 4), ('m', 1)]
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(c, _)| *c)
        .collect()
}

/// What a v1 devices cgroup holds: a default for every device, and
/// exceptions to it (one per type and numbers, with their access bits).
#[derive(Debug, Clone, PartialEq, Eq)]
struct V1Devices {
    allow_all: bool,
    exceptions: Vec<(char, Option<u32>, Option<u32>, i32)>,
}

impl V1Devices {
    /// devices.list: "a *:* rwm" alone when everything is allowed (the
    /// kernel then shows no exceptions), else the allowed exceptions.
    fn parse(list: &str) -> Option<V1Devices> {
        let mut exceptions = Vec::new();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace();
            let (typ, nums, access) = (it.next()?, it.next()?, it.next().unwrap_or(""));
            if typ == "a" {
                return None;
            }
            let (maj, min) = nums.split_once(':')?;
            let n = |s: &str| {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            exceptions.push((typ.chars().next()?, n(maj)?, n(min)?, access_bits(access)));
        }
        Some(V1Devices {
            allow_all: false,
            exceptions,
        })
    }

    /// Writing `r` to devices.allow or devices.deny, as the kernel does it.
    fn write(&mut self, r: &Rule) {
        if r.typ == 'a' {
            self.allow_all = r.allow;
            self.exceptions.clear();
            return;
        }
        let bits = access_bits(&r.access);
        let key = |e: &&mut (char, Option<u32>, Option<u32>, i32)| {
            e.0 == r.typ && e.1 == r.major && e.2 == r.minor
        };
        if r.allow == self.allow_all {
            // Back to the default for these bits: the exception shrinks.
            if let Some(e) = self.exceptions.iter_mut().find(key) {
                e.3 &= !bits;
            }
            self.exceptions.retain(|e| e.3 != 0);
        } else if let Some(e) = self.exceptions.iter_mut().find(key) {
            e.3 |= bits;
        } else {
            self.exceptions.push((r.typ, r.major, r.minor, bits));
        }
    }

    fn bits(&self, typ: char, major: Option<u32>, minor: Option<u32>) -> i32 {
        self.exceptions
            .iter()
            .find(|e| e.0 == typ && e.1 == major && e.2 == minor)
            .map_or(0, |e| e.3)
    }
}

/// The writes that take a v1 devices cgroup whose devices.list reads
/// `list` to what `rules` give. Where both deny by default (every real
/// config), only the difference is written, access taken away first: a
/// device both allow stays usable throughout. Otherwise the rules are
/// written in order, as at create.
pub fn v1_update(list: &str, rules: &[Rule]) -> Vec<Rule> {
    let Some(now) = V1Devices::parse(list) else {
        return rules.to_vec();
    };
    let mut want = now.clone();
    for r in rules {
        want.write(r);
    }
    if want.allow_all {
        return rules.to_vec();
    }
    let rule = |allow: bool, e: &(char, Option<u32>, Option<u32>, i32), bits: i32| Rule {
        allow,
        typ: e.0,
        major: e.1,
        minor: e.2,
        access: bits_to_access(bits),
    };
    let mut out = Vec::new();
    for e in &now.exceptions {
        let gone = e.3 & !want.bits(e.0, e.1, e.2);
        if gone != 0 {
            out.push(rule(false, e, gone));
        }
    }
    for e in &want.exceptions {
        let new = e.3 & !now.bits(e.0, e.1, e.2);
        if new != 0 {
            out.push(rule(true, e, new));
        }
    }
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
        let p = program(&rules(&spec).unwrap());
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
        let p = program(&rules(&spec).unwrap());
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
        let p = program(&rules(&spec).unwrap());
        assert_eq!(run(&p, 1, 2, 8, 0), 1);
        assert_eq!(rules(&spec).unwrap()[0].v1_line(), "a");
        assert_eq!(defaults()[9].v1_line(), "c 136:* rwm");
    }

    fn rule(typ: &str, major: i64, access: &str) -> DeviceRule {
        DeviceRule {
            allow: true,
            typ: Some(typ.into()),
            major: Some(major),
            minor: Some(0),
            access: Some(access.into()),
        }
    }

    #[test]
    fn access_is_normalised_and_types_checked() {
        for (given, want) in [
            ("rwa", "rw"),
            ("wr", "rw"),
            ("mrw", "rwm"),
            ("rwmrw", "rwm"),
            ("", "rwm"),
        ] {
            assert_eq!(
                rules(&[rule("c", 42, given)]).unwrap()[0].access,
                want,
                "{given}"
            );
        }
        assert!(rules(&[rule("c", 42, "x")]).is_err());
        let e = rules(&[rule("z", 42, "r")]).unwrap_err().to_string();
        assert!(e.contains("devices[0].type"), "{e}");
    }

    #[test]
    fn v1_update_writes_only_the_difference() {
        let deny_all = DeviceRule {
            allow: false,
            access: Some("rwm".into()),
            ..Default::default()
        };
        let before = rules(&[deny_all.clone(), rule("c", 42, "rw")]).unwrap();
        // What the kernel lists after `before` was written at create.
        let mut model = V1Devices {
            allow_all: true,
            exceptions: vec![],
        };
        for r in &before {
            model.write(r);
        }
        let list: String = model
            .exceptions
            .iter()
            .map(|e| {
                let r = Rule {
                    allow: true,
                    typ: e.0,
                    major: e.1,
                    minor: e.2,
                    access: bits_to_access(e.3),
                };
                r.v1_line() + "\n"
            })
            .collect();
        assert!(list.contains("c 42:0 rw\n"), "{list}");
        // Same rules: nothing to write, /dev/null is never denied on the way.
        assert!(v1_update(&list, &before).is_empty());
        let after = rules(&[deny_all, rule("c", 42, "r"), rule("b", 8, "r")]).unwrap();
        let lines: Vec<String> = v1_update(&list, &after)
            .iter()
            .map(|r| format!("{} {}", if r.allow { "allow" } else { "deny" }, r.v1_line()))
            .collect();
        assert_eq!(lines, ["deny c 42:0 w", "allow b 8:0 r"]);
        // From allow-all the rules are written as they are.
        assert_eq!(v1_update("a *:* rwm\n", &after), after);
    }
}
