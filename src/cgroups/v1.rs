//! Resources on v1 hierarchies (legacy and hybrid hosts). Each controller is
//! written only when the container has a v1 directory for it; what v1 lacks
//! on a hybrid host (e.g. hugetlb) is v2.rs's.

use std::path::Path;

use nix::errno::Errno;

use super::devices;
use super::resources::{Resources, ThrottleDevice};
use super::{read, write, Paths};
use crate::error::{Error, Result};

/// A new v1 cpuset cgroup starts with no cpus and no mems: no process could
/// join it. Copy the parent's, as the kernel's clone_children would.
pub fn inherit_cpuset(dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(dir);
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if read(dir, f).unwrap_or_default().is_empty() {
            let v = read(parent, f).unwrap_or_default();
            write(dir, f, &v)?;
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

pub fn apply(paths: &Paths, res: &Resources, with_devices: bool) -> Result<()> {
    if paths.v2_only() {
        return Ok(());
    }
    if let (Some(m), Some(dir)) = (&res.memory, paths.v1("memory")) {
        let limit = m.limit.filter(|v| *v != 0);
        let swap = m.swap.filter(|v| *v != 0);
        if swap.is_some() && !dir.join("memory.memsw.limit_in_bytes").exists() {
            return Err(Error::new("set memory.swap")
                .at(dir.join("memory.memsw.limit_in_bytes"))
                .detail("this kernel has no swap accounting")
                .hint("drop linux.resources.memory.swap"));
        }
        match (limit, swap) {
            (Some(l), Some(s)) => {
                // memsw must stay >= limit at every step: the order depends
                // on whether the limits go up or down.
                if write(dir, "memory.limit_in_bytes", &mem(l)).is_err() {
                    write(dir, "memory.memsw.limit_in_bytes", &mem(s))?;
                    write(dir, "memory.limit_in_bytes", &mem(l))?;
                } else {
                    write(dir, "memory.memsw.limit_in_bytes", &mem(s))?;
                }
            }
            (Some(l), None) => write(dir, "memory.limit_in_bytes", &mem(l))?,
            (None, Some(s)) => write(dir, "memory.memsw.limit_in_bytes", &mem(s))?,
            (None, None) => {}
        }
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
        // memory.kernel / kernelTCP: deprecated, ignored as runc 1.1 does.
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
    if with_devices {
        if let Some(dir) = paths.v1("devices") {
            for r in devices::rules(res.devices.as_deref().unwrap_or(&[])) {
                let file = if r.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(dir, file, &r.v1_line())?;
            }
        }
    }
    Ok(())
}
