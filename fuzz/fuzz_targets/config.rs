//! config.json as `create` reads it: parsed, validated, and everything the
//! create path derives from the spec before it touches the host (mount
//! options, device nodes, cgroup resources and the device program, network
//! annotations, the seccomp filter compiled in memory, never loaded).
#![no_main]

use std::path::Path;

use hull::cgroups::{devices, Resources};
use libfuzzer_sys::fuzz_target;
use nix::sys::stat::{major, makedev, minor};

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = hull::bundle::parse_spec(data) else {
        return;
    };
    let valid = hull::bundle::validate(&spec, Path::new("config.json")).is_ok();
    for m in spec.mounts().iter().flatten() {
        let _ = hull::rootfs::options::parse(m.options().as_deref().unwrap_or_default());
    }
    let linux = spec.linux().as_ref();
    let _ = hull::rootfs::options::prepare_propagation(
        linux.and_then(|l| l.rootfs_propagation().as_deref()),
    );
    let _ = hull::network::Config::from_spec(&spec);
    if let Ok(nodes) = hull::rootfs::device_list(linux.and_then(|l| l.devices().as_deref())) {
        // The node made is the device the spec named.
        for d in nodes {
            let dev = makedev(d.major, d.minor);
            assert_eq!((major(dev), minor(dev)), (d.major, d.minor), "{d:?}");
        }
    }
    if let Ok(res) = Resources::from_spec(&spec) {
        device_program(res.devices.as_deref().unwrap_or_default());
    }
    if !valid {
        return;
    }
    if let Some(seccomp) = linux.and_then(|l| l.seccomp().as_ref()) {
        let _ = hull::security::seccomp::compile(seccomp);
    }
});

/// The device rules keep the numbers the spec gave (a wrapped major would
/// allow another device); in the cgroup-v2 program every jump lands inside
/// it and the last instruction is an exit (the verifier refuses the rest).
fn device_program(spec_rules: &[hull::cgroups::resources::DeviceRule]) {
    // A rule of another type than a, b or c, or with no access left, is
    // refused whole (as runc does).
    let Ok(rules) = devices::rules(spec_rules) else {
        return;
    };
    for (r, rule) in spec_rules.iter().zip(&rules) {
        for (want, got) in [(r.major, rule.major), (r.minor, rule.minor)] {
            let want = want.filter(|n| *n >= 0).map(|n| n as u64);
            assert_eq!(got.map(u64::from), want, "{r:?} became {rule:?}");
        }
    }
    let p = devices::program(&rules);
    assert_eq!(p.last().unwrap()[0], 0x95, "ends with exit");
    for (i, insn) in p.iter().enumerate() {
        if insn[0] == 0x55 {
            let off = i16::from_le_bytes([insn[2], insn[3]]);
            let target = i as i64 + 1 + off as i64;
            assert!(off >= 0 && (target as usize) < p.len(), "jump {i} +{off}");
        }
    }
}
