//! Resources on v1 hierarchies (legacy and hybrid hosts). Each controller is
//! written only when the container has a v1 directory for it; what v1 lacks
//! on a hybrid host (e.g. hugetlb) is v2.rs's.

use std::path::Path;

use nix::errno::Errno;

use super::devices;
use super::resources::{Resources, ThrottleDevice};
use super::{read, write, Paths, When};
use crate::error::{Error, Result};

/// A v1 cpuset cgroup with no cpus or no mems cannot take a process
/// (ENOSPC). A new one starts so, and so may a directory that already
/// existed on the way (made by hand, or by an older runtime): fill each,
/// from the nearest ancestor that has both down to `leaf`, with its
/// parent's, as runc does (and as the kernel's clone_children would).
pub fn fill_cpuset(leaf: &Path) -> Result<()> {
    const FILES: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
    let mut empty = Vec::new();
    let mut dir = Some(leaf);
    while let Some(d) = dir {
        let values: Vec<Option<String>> = FILES.iter().map(|f| read(d, f)).collect();
        // No file: above the hierarchy's root; both set: filled already.
        if values.iter().any(Option::is_none) || values.iter().flatten().all(|v| !v.is_empty()) {
            break;
        }
        empty.push(d);
        dir = d.parent();
    }
    for d in empty.into_iter().rev() {
        let parent = d.parent().unwrap_or(d);
        for f in FILES {
            if read(d, f).unwrap_or_default().is_empty() {
                write(d, f, &read(parent, f).unwrap_or_default())?;
            }
        }
    }
    Ok(())
}

/// What "unlimited" is for memory files: -1 is accepted by every v1 file.
fn mem(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// A v1 memory value in bytes, unlimited as the largest.
fn bytes(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// memory.limit_in_bytes and memory.memsw.limit_in_bytes (memory+swap):
/// the kernel keeps memsw >= memory at every step, so memsw goes first when
/// it grows and last when it shrinks. `-1` alone for memory means memory
/// and swap unlimited (runc's rule).
fn memory_and_swap(dir: &Path, limit: Option<i64>, swap: Option<i64>) -> Result<()> {
    let has_swap = dir.join(MEMSW).exists();
    let swap = match (limit, swap) {
        (Some(-1), None) if has_swap => Some(-1),
        _ => swap,
    };
    if swap.is_some() && !has_swap {
        return Err(Error::new("set memory.swap")
            .at(dir.join(MEMSW))
            .detail("this kernel has no swap accounting")
            .hint("drop linux.resources.memory.swap"));
    }
    let current = |f: &str| read(dir, f).and_then(|v| v.parse::<u64>().ok());
    match (limit, swap) {
        (Some(l), Some(s)) => {
            if s >= 0 && (l < 0 || s < l) {
                return Err(Error::new(format!(
                    "memory+swap limit {} is below the memory limit {}",
                    mem(s),
                    mem(l)
                ))
                .hint("memory.swap is memory plus swap: make it at least the memory limit"));
            }
            if current(MEMSW).is_some_and(|now| bytes(s) >= now) {
                write(dir, MEMSW, &mem(s))?;
                write(dir, LIMIT, &mem(l))
            } else {
                write(dir, LIMIT, &mem(l))?;
                write(dir, MEMSW, &mem(s))
            }
        }
        (Some(l), None) => {
            if let Some(memsw) = current(MEMSW).filter(|m| bytes(l) > *m) {
                return Err(Error::new(format!(
                    "memory limit {} is above the memory+swap limit {memsw}",
                    mem(l)
                ))
                .at(dir.join(MEMSW))
                .hint("raise the memory+swap limit too (--memory-swap, or -1 for unlimited)"));
            }
            write(dir, LIMIT, &mem(l))
        }
        (None, Some(s)) => {
            if let Some(limit) = current(LIMIT).filter(|l| bytes(s) < *l) {
                return Err(Error::new(format!(
                    "memory+swap limit {} is below the memory limit {limit}",
                    mem(s)
                ))
                .at(dir.join(LIMIT))
                .hint("lower the memory limit too (--memory)"));
            }
            write(dir, MEMSW, &mem(s))
        }
        (None, None) => Ok(()),
    }
}

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";
const KMEM_TCP: &str = "memory.kmem.tcp.limit_in_bytes";

pub fn apply(paths: &Paths, res: &Resources, when: When) -> Result<()> {
    if paths.v2_only() {
        return Ok(());
    }
    if let (Some(m), Some(dir)) = (&res.memory, paths.v1("memory")) {
        memory_and_swap(dir, m.limit.filter(|v| *v != 0), m.swap.filter(|v| *v != 0))?;
        if let Some(r) = m.reservation.filter(|v| *v != 0) {
            write(dir, "memory.soft_limit_in_bytes", &mem(r))?;
        }
        if let Some(s) = m.swappiness {
            if s > 100 {
                return Err(Error::new(format!("invalid memory.swappiness {s}"))
                    .at(dir.join("memory.swappiness"))
                    .hint("use 0 to 100"));
            }
            write(dir, "memory.swappiness", &s.to_string())?;
        }
        if m.disable_oom_killer == Some(true) {
            write(dir, "memory.oom_control", "1")?;
        }
        // The TCP buffer limit still works on v1 kernels that have the file;
        // runc 1.1 ignores it. memory.kernel stays ignored (as runc): newer
        // kernels accept kmem.limit_in_bytes but do nothing with it.
        if let Some(t) = m.kernel_tcp.filter(|v| *v != 0) {
            if dir.join(KMEM_TCP).exists() {
                write(dir, KMEM_TCP, &mem(t))?;
            } else {
                eprintln!(
                    "hull: warning: memory.kernelTCP is ignored: this kernel has no {KMEM_TCP}"
                );
            }
        }
    }
    if let Some(n) = &res.network {
        // check.rs made sure the controllers are there.
        if let (Some(id), Some(dir)) = (n.class_id, paths.v1("net_cls")) {
            write(dir, "net_cls.classid", &id.to_string())?;
        }
        if let Some(dir) = paths.v1("net_prio") {
            for p in n.priorities.iter().flatten() {
                write(
                    dir,
                    "net_prio.ifpriomap",
                    &format!("{} {}", p.name, p.priority),
                )?;
            }
        }
    }
    if let Some(c) = &res.cpu {
        if let Some(dir) = paths.v1("cpu") {
            if let Some(s) = c.shares.filter(|v| *v != 0) {
                write(dir, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period.filter(|v| *v != 0) {
                write(dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota.filter(|v| *v != 0) {
                write(dir, "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(b) = c.burst {
                write(dir, "cpu.cfs_burst_us", &b.to_string())?;
            }
            if let Some(p) = c.realtime_period.filter(|v| *v != 0) {
                write(dir, "cpu.rt_period_us", &p.to_string())?;
            }
            if let Some(r) = c.realtime_runtime.filter(|v| *v != 0) {
                write(dir, "cpu.rt_runtime_us", &r.to_string())?;
            }
            if let Some(i) = c.idle {
                write(dir, "cpu.idle", &i.to_string())?;
            }
        }
        if let Some(dir) = paths.v1("cpuset") {
            if let Some(cpus) = c.cpus.as_deref().filter(|s| !s.is_empty()) {
                write(dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems.as_deref().filter(|s| !s.is_empty()) {
                write(dir, "cpuset.mems", mems)?;
            }
        }
    }
    if let (Some(p), Some(dir)) = (&res.pids, paths.v1("pids")) {
        let v = if p.limit > 0 {
            p.limit.to_string()
        } else {
            "max".into()
        };
        write(dir, "pids.max", &v)?;
    }
    if let (Some(b), Some(dir)) = (&res.block_io, paths.v1("blkio")) {
        // Weights: blkio.weight (CFQ) or blkio.bfq.weight (BFQ), if any.
        let weight_file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| dir.join(f).exists());
        let need = |what: &str| {
            Error::sys(
                format!("set {what}"),
                Some(&dir.join("blkio.weight")),
                Errno::ENOENT,
            )
            .hint("this kernel's I/O scheduler has no blkio weights; drop the weight settings")
        };
        if let Some(w) = b.weight.filter(|v| *v != 0) {
            write(
                dir,
                weight_file.ok_or_else(|| need("blockIO.weight"))?,
                &w.to_string(),
            )?;
        }
        if let Some(w) = b.leaf_weight.filter(|v| *v != 0) {
            write(dir, "blkio.leaf_weight", &w.to_string())?;
        }
        for d in b.weight_device.iter().flatten() {
            if let Some(w) = d.weight {
                let f = weight_file
                    .map(|f| format!("{f}_device"))
                    .ok_or_else(|| need("blockIO.weightDevice"))?;
                write(dir, &f, &format!("{}:{} {}", d.major, d.minor, w))?;
            }
        }
        let throttles: [(&str, &Option<Vec<ThrottleDevice>>); 4] = [
            (
                "blkio.throttle.read_bps_device",
                &b.throttle_read_bps_device,
            ),
            (
                "blkio.throttle.write_bps_device",
                &b.throttle_write_bps_device,
            ),
            (
                "blkio.throttle.read_iops_device",
                &b.throttle_read_iops_device,
            ),
            (
                "blkio.throttle.write_iops_device",
                &b.throttle_write_iops_device,
            ),
        ];
        for (file, list) in throttles {
            for d in list.iter().flatten() {
                write(dir, file, &format!("{}:{} {}", d.major, d.minor, d.rate))?;
            }
        }
    }
    if let (Some(h), Some(dir)) = (&res.hugepage_limits, paths.v1("hugetlb")) {
        for l in h {
            write(
                dir,
                &format!("hugetlb.{}.limit_in_bytes", l.page_size),
                &l.limit.to_string(),
            )?;
        }
    }
    if let (Some(dir), true) = (
        paths.v1("devices"),
        when == When::Create || res.devices.is_some(),
    ) {
        let mut rules = devices::rules(res.devices.as_deref().unwrap_or(&[]))?;
        if when == When::Update {
            rules = devices::v1_update(&read(dir, "devices.list").unwrap_or_default(), &rules);
        }
        for r in rules {
            let file = if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            write(dir, file, &r.v1_line())?;
        }
    }
    Ok(())
}
