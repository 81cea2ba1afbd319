//! Resources on the cgroup2 hierarchy: everything on a unified host; on a
//! hybrid host only what v1 lacks (hugetlb) and raw `unified` keys.

use std::fs;
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use super::devices;
use super::resources::{Resources, ThrottleDevice};
use super::{read, write, Paths, When};
use crate::error::{Context, Error, Result};
use crate::sys;

/// Enable controllers in the subtree_control of the directories between our
/// own cgroup (included) and the container's (excluded): all that are
/// available on a v2 host, only the ones the spec needs on a hybrid host.
pub fn enable_controllers(paths: &Paths, leaf: &Path, res: &Resources) -> Result<()> {
    let wanted: Option<Vec<String>> = if paths.v2_only() {
        None
    } else {
        let mut w = Vec::new();
        if res.hugepage_limits.as_ref().is_some_and(|h| !h.is_empty())
            && paths.v1("hugetlb").is_none()
        {
            w.push("hugetlb".to_string());
        }
        for k in res.unified.iter().flat_map(|u| u.keys()) {
            if let Some((c, _)) = k.split_once('.') {
                if c != "cgroup" {
                    w.push(c.to_string());
                }
            }
        }
        if w.is_empty() {
            return Ok(());
        }
        Some(w)
    };
    let created: Vec<PathBuf> = paths
        .dirs
        .iter()
        .find(|d| d.v2)
        .map(|d| d.created.clone())
        .unwrap_or_default();
    let top = created.first().map(PathBuf::as_path).unwrap_or(leaf);
    let mut chain: Vec<&Path> = top.parent().into_iter().collect();
    chain.extend(created.iter().map(PathBuf::as_path).filter(|p| *p != leaf));
    for dir in chain {
        let available = read(dir, "cgroup.controllers").unwrap_or_default();
        let enabled = read(dir, "cgroup.subtree_control").unwrap_or_default();
        for c in available.split_whitespace() {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if wanted.as_ref().is_some_and(|w| !w.iter().any(|x| x == c)) {
                continue;
            }
            // Best effort: a controller we cannot enable shows up as a
            // missing file when (and only if) the spec uses it.
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
    Ok(())
}

/// cpu.shares (2..262144) → cpu.weight (1..10000), as runc and crun convert.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262144) - 2) * 9999 / 262142
}

/// blkio weight (10..1000) → io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.clamp(10, 1000) as u64 - 10) * 9999 / 990
}

/// The spec's memory.swap is memory+swap (v1's meaning); v2's memory.swap.max
/// is swap alone.
pub fn swap_max(swap: i64, limit: Option<i64>) -> Result<String> {
    if swap < 0 {
        return Ok("max".into());
    }
    match limit {
        Some(l) if l > 0 => {
            if swap < l {
                Err(
                    Error::new(format!("memory.swap {swap} is below memory.limit {l}"))
                        .hint("memory.swap is memory+swap: make it at least the limit"),
                )
            } else {
                Ok((swap - l).to_string())
            }
        }
        _ => Err(Error::new("memory.swap without memory.limit")
            .hint("set linux.resources.memory.limit too")),
    }
}

pub fn apply(paths: &Paths, res: &Resources, when: When) -> Result<()> {
    let Some(dir) = paths.unified() else {
        return Ok(());
    };
    if paths.v2_only() {
        apply_controllers(dir, res)?;
        if when == When::Create || res.devices.is_some() {
            install_devices(dir, res, when)?;
        }
    } else if let Some(h) = res
        .hugepage_limits
        .as_ref()
        .filter(|_| paths.v1("hugetlb").is_none())
    {
        for l in h {
            write(
                dir,
                &format!("hugetlb.{}.max", l.page_size),
                &l.limit.to_string(),
            )?;
        }
    }
    for (k, v) in res.unified.iter().flatten() {
        if k.contains('/') || k.starts_with('.') {
            return Err(Error::new(format!("invalid unified key {k:?}")));
        }
        write(dir, k, v)?;
    }
    Ok(())
}

fn apply_controllers(dir: &Path, res: &Resources) -> Result<()> {
    if let Some(m) = &res.memory {
        let limit = m.limit.filter(|v| *v != 0);
        // -1 alone for memory: memory and swap unlimited (runc's rule).
        let swap = m.swap.filter(|v| *v != 0).or(limit.filter(|l| *l == -1));
        if let Some(s) = swap {
            // An update may give the swap alone: the limit is the one in force.
            let limit = limit.or_else(|| read(dir, "memory.max").and_then(|v| v.parse().ok()));
            let v = swap_max(s, limit)?;
            write(dir, "memory.swap.max", &v)?;
        }
        if let Some(l) = limit {
            write(
                dir,
                "memory.max",
                &if l < 0 { "max".into() } else { l.to_string() },
            )?;
        }
        if let Some(r) = m.reservation.filter(|v| *v != 0) {
            write(
                dir,
                "memory.low",
                &if r < 0 { "max".into() } else { r.to_string() },
            )?;
        }
        // swappiness and disableOOMKiller have no v2 file: ignored, as runc does.
    }
    if let Some(c) = &res.cpu {
        if let Some(w) = c.shares.map(shares_to_weight).filter(|w| *w != 0) {
            write(dir, "cpu.weight", &w.to_string())?;
        }
        let quota = c.quota.filter(|v| *v != 0);
        let period = c.period.filter(|v| *v != 0);
        if quota.is_some() || period.is_some() {
            let mut v = match quota {
                Some(q) if q > 0 => q.to_string(),
                Some(_) => "max".into(),
                // The period alone (an update): keep the quota in force.
                None => read(dir, "cpu.max")
                    .and_then(|v| v.split_whitespace().next().map(str::to_string))
                    .unwrap_or_else(|| "max".into()),
            };
            if let Some(p) = period {
                v.push_str(&format!(" {p}"));
            }
            write(dir, "cpu.max", &v)?;
        }
        if let Some(b) = c.burst {
            write(dir, "cpu.max.burst", &b.to_string())?;
        }
        if c.realtime_period.is_some_and(|v| v != 0) || c.realtime_runtime.is_some_and(|v| v != 0) {
            return Err(Error::new("set cpu.realtimeRuntime/realtimePeriod")
                .at(dir)
                .detail("cgroup v2 has no realtime cpu controller")
                .hint("drop the realtime settings"));
        }
        if let Some(i) = c.idle {
            write(dir, "cpu.idle", &i.to_string())?;
        }
        if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems.as_deref().filter(|s| !s.is_empty()) {
            write(dir, "cpuset.mems", mems)?;
        }
    }
    if let Some(p) = &res.pids {
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".into()
        };
        write(dir, "pids.max", &v)?;
    }
    if let Some(b) = &res.block_io {
        let bfq = dir.join("io.bfq.weight").exists();
        if let Some(w) = b.weight.filter(|v| *v != 0) {
            if bfq {
                write(dir, "io.bfq.weight", &w.to_string())?;
            } else {
                write(
                    dir,
                    "io.weight",
                    &format!("default {}", blkio_to_io_weight(w)),
                )?;
            }
        }
        for d in b.weight_device.iter().flatten() {
            if let Some(w) = d.weight {
                if bfq {
                    write(
                        dir,
                        "io.bfq.weight",
                        &format!("{}:{} {}", d.major, d.minor, w),
                    )?;
                } else {
                    let v = blkio_to_io_weight(w);
                    write(dir, "io.weight", &format!("{}:{} {}", d.major, d.minor, v))?;
                }
            }
        }
        let throttles: [(&str, &Option<Vec<ThrottleDevice>>); 4] = [
            ("rbps", &b.throttle_read_bps_device),
            ("wbps", &b.throttle_write_bps_device),
            ("riops", &b.throttle_read_iops_device),
            ("wiops", &b.throttle_write_iops_device),
        ];
        for (key, list) in throttles {
            for d in list.iter().flatten() {
                write(
                    dir,
                    "io.max",
                    &format!("{}:{} {key}={}", d.major, d.minor, d.rate),
                )?;
            }
        }
    }
    for l in res.hugepage_limits.iter().flatten() {
        write(
            dir,
            &format!("hugetlb.{}.max", l.page_size),
            &l.limit.to_string(),
        )?;
    }
    Ok(())
}

/// v2 has no devices files: an eBPF program attached to the cgroup decides.
/// On update the new program takes the old one's place in one step
/// (BPF_F_REPLACE), so no device is denied on the way; with several
/// attached (another runtime's), the new one is attached before the old
/// ones go, so nothing is ever allowed that neither set allows.
fn install_devices(dir: &Path, res: &Resources, when: When) -> Result<()> {
    let rules = devices::rules(res.devices.as_deref().unwrap_or(&[]))?;
    let prog = devices::program(&rules);
    let fd = sys::bpf_load_cgroup_device(&prog).map_err(|(e, log)| {
        Error::sys("load device filter (eBPF)", None, e)
            .detail(log)
            .hint_if(
                nix::errno::Errno::EPERM,
                "loading eBPF needs CAP_SYS_ADMIN (or CAP_BPF)",
            )
    })?;
    let cg = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(sys::own_fd)
    .step_at("open cgroup", dir)?;
    use std::os::fd::AsFd;
    let old = match when {
        When::Create => Vec::new(),
        When::Update => {
            sys::bpf_cgroup_device_progs(cg.as_fd()).step_at("list device filters (eBPF)", dir)?
        }
    };
    let replace = match old.as_slice() {
        [one] => Some(one.as_fd()),
        _ => None,
    };
    sys::bpf_attach_cgroup_device(cg.as_fd(), fd.as_fd(), replace)
        .step_at("attach device filter (eBPF)", dir)?;
    if replace.is_none() {
        for p in &old {
            sys::bpf_detach_cgroup_device(cg.as_fd(), p.as_fd())
                .step_at("detach old device filter (eBPF)", dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262144), 10000);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10000);
        assert_eq!(swap_max(-1, Some(5)).unwrap(), "max");
        assert_eq!(swap_max(200, Some(100)).unwrap(), "100");
        assert!(swap_max(50, Some(100)).is_err());
        assert!(swap_max(50, None).is_err());
    }
}
