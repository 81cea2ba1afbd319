//! process.oomScoreAdj, process.scheduler, process.ioPriority and
//! linux.personality: applied in the container before the uid switch.
//! Also what a realtime scheduler needs first: a realtime budget in the
//! container's cpu cgroup (`rt_budget`, at create), and the runtime spec's
//! spelling of the scheduler flags (`spec_flag_spelling`, when parsing).

use std::borrow::Cow;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process, Spec,
};

use super::procfs::Procfs;
use crate::error::{Context, Error, Result};
use crate::sys;

pub fn oom_score_adj(process: &Process) -> Result<()> {
    let Some(adj) = process.oom_score_adj() else {
        return Ok(());
    };
    let proc = Procfs::open().map_err(|e| e.within("process.oomScoreAdj"))?;
    let pid = nix::unistd::getpid();
    proc.write(&format!("{pid}/oom_score_adj"), adj.to_string().as_bytes())
        .map_err(|e| {
            e.within("process.oomScoreAdj").hint_if(
                Errno::EACCES,
                "lowering oom_score_adj needs CAP_SYS_RESOURCE, which this host does not give",
            )
        })
}

pub fn scheduler(process: &Process) -> Result<()> {
    let Some(s) = process.scheduler() else {
        return Ok(());
    };
    use LinuxSchedulerPolicy as P;
    let policy = match s.policy() {
        P::SchedOther => libc::SCHED_OTHER,
        P::SchedFifo => libc::SCHED_FIFO,
        P::SchedRr => libc::SCHED_RR,
        P::SchedBatch => libc::SCHED_BATCH,
        P::SchedIdle => libc::SCHED_IDLE,
        P::SchedDeadline => 6,
        P::SchedIso => {
            return Err(
                Error::new("process.scheduler").detail("SCHED_ISO is not implemented by Linux")
            )
        }
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        use LinuxSchedulerFlag as F;
        flags |= match f {
            F::SchedResetOnFork => 0x01,
            F::SchedFlagReclaim => 0x02,
            F::SchedFlagDLOverrun => 0x04,
            F::SchedFlagKeepPolicy => 0x08,
            F::SchedFlagKeepParams => 0x10,
            F::SchedFlagUtilClampMin => 0x20,
            F::SchedFlagUtilClampMax => 0x40,
        };
    }
    let mut attr = sys::SchedAttr {
        policy: policy as u32,
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    sys::sched_setattr_self(&mut attr)
        .step("process.scheduler: sched_setattr")
        .map_err(|e| {
            e.detail(format!("policy {:?}", s.policy()))
                .hint_if(
                    Errno::EINVAL,
                    "check priority (1-99 for FIFO/RR, 0 otherwise) and nice",
                )
                .hint_if(
                    Errno::EPERM,
                    "a realtime policy needs a realtime budget in the container's cpu cgroup (linux.resources.cpu.realtimeRuntime)",
                )
        })
}

/// oci-spec 0.10 spells two scheduler flags otherwise than the runtime spec
/// ("SCHED_RESET_ON_FORK", "SCHED_FLAG_D_L_OVERRUN"): the spec's spelling
/// is rewritten to oci-spec's in process.scheduler.flags before parsing.
/// Configs without these flags (nearly all) are not touched or copied.
pub fn spec_flag_spelling(config: &[u8]) -> Cow<'_, [u8]> {
    const RENAMES: [(&str, &str); 2] = [
        ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
        ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
    ];
    let mentions = |name: &str| config.windows(name.len()).any(|w| w == name.as_bytes());
    if !RENAMES.iter().any(|(spec, _)| mentions(spec)) {
        return Cow::Borrowed(config);
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(config) else {
        // Not JSON: the parser names the error.
        return Cow::Borrowed(config);
    };
    let Some(flags) = value
        .pointer_mut("/process/scheduler/flags")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Cow::Borrowed(config);
    };
    for flag in flags {
        if let Some((_, ours)) = RENAMES.iter().find(|(spec, _)| flag == spec) {
            *flag = (*ours).into();
        }
    }
    Cow::Owned(serde_json::to_vec(&value).expect("a JSON value serialises"))
}

/// With realtime group scheduling (cgroup v1 cpu controller), a new cpu
/// cgroup has no realtime budget (cpu.rt_runtime_us 0): the kernel then
/// refuses SCHED_FIFO/SCHED_RR to its tasks (EPERM) and refuses to move a
/// realtime task into it (EINVAL), so no order of "set the policy" and "join
/// the cgroup" works. When process.scheduler asks for such a policy and
/// linux.resources.cpu.realtimeRuntime does not say, the container's cgroup
/// gets the budget its parent has left, before the init joins it.
pub fn rt_budget(spec: &Spec, cgroups: &crate::cgroups::Paths) -> Result<()> {
    let realtime = spec
        .process()
        .as_ref()
        .and_then(|p| p.scheduler().as_ref())
        .is_some_and(|s| {
            matches!(
                s.policy(),
                LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
            )
        });
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.cpu().as_ref())
        .is_some_and(|c| c.realtime_runtime().is_some());
    let Some(dir) = cgroups.v1("cpu") else {
        return Ok(());
    };
    if !realtime || configured || rt_value(dir, "cpu.rt_runtime_us") != Some(0) {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(dir);
    let period = rt_value(dir, "cpu.rt_period_us").unwrap_or(1_000_000);
    // What the parent grants, less what its other children hold, as a
    // share of our period (the kernel compares runtime/period ratios).
    let share = |d: &Path| -> f64 {
        let runtime = rt_value(d, "cpu.rt_runtime_us").unwrap_or(0);
        let p = rt_value(d, "cpu.rt_period_us").unwrap_or(period).max(1);
        // -1: unlimited (a root with sched_rt_runtime_us -1).
        if runtime < 0 {
            1.0
        } else {
            runtime as f64 / p as f64
        }
    };
    let siblings: f64 = std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.as_path() != dir && p.join("cpu.rt_runtime_us").exists())
        .map(|p| share(&p))
        .sum();
    let budget = ((share(parent) - siblings) * period as f64).floor() as i64;
    let file = dir.join("cpu.rt_runtime_us");
    let hint = "set linux.resources.cpu.realtimeRuntime, or free realtime budget (cpu.rt_runtime_us) in the parent cgroup";
    if budget <= 0 {
        return Err(
            Error::new("process.scheduler: give the cpu cgroup a realtime budget")
                .at(&file)
                .detail(format!("{} has no realtime budget left", parent.display()))
                .hint(hint),
        );
    }
    std::fs::write(&file, budget.to_string())
        .step_at(
            "process.scheduler: give the cpu cgroup a realtime budget",
            &file,
        )
        .map_err(|e| e.hint(hint))
}

fn rt_value(dir: &Path, file: &str) -> Option<i64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub fn io_priority(process: &Process) -> Result<()> {
    let Some(p) = process.io_priority() else {
        return Ok(());
    };
    let class = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&p.priority()) {
        return Err(Error::new("process.ioPriority")
            .detail(format!("priority {} is out of range 0-7", p.priority())));
    }
    sys::ioprio_set_self(class, p.priority() as u32).step("process.ioPriority: ioprio_set")
}

pub fn personality(p: Option<&LinuxPersonality>) -> Result<()> {
    let Some(p) = p else {
        return Ok(());
    };
    const PER_LINUX: u64 = 0x0000;
    const PER_LINUX32: u64 = 0x0008;
    let domain = match p.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    if let Some(flag) = p.flags().iter().flatten().next() {
        return Err(Error::new("linux.personality")
            .detail(format!("flag {flag:?} is not supported"))
            .hint("runc supports none either; remove personality.flags"));
    }
    sys::set_personality(domain).step("linux.personality")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_flags_in_the_spec_spelling_parse() {
        let config = br#"{"ociVersion": "1.2.0", "process": {"cwd": "/", "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_OTHER",
                          "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_RECLAIM"]},
            "env": ["X=SCHED_FLAG_RESET_ON_FORK"]}}"#;
        let spec: Spec = serde_json::from_slice(&spec_flag_spelling(config)).unwrap();
        let process = spec.process().as_ref().unwrap();
        let flags = process
            .scheduler()
            .as_ref()
            .unwrap()
            .flags()
            .clone()
            .unwrap();
        assert_eq!(
            flags,
            [
                LinuxSchedulerFlag::SchedResetOnFork,
                LinuxSchedulerFlag::SchedFlagDLOverrun,
                LinuxSchedulerFlag::SchedFlagReclaim
            ]
        );
        // Only the flags are rewritten.
        assert_eq!(
            process.env().as_ref().unwrap()[0],
            "X=SCHED_FLAG_RESET_ON_FORK"
        );
        let plain = br#"{"ociVersion": "1.2.0"}"#;
        assert!(matches!(spec_flag_spelling(plain), Cow::Borrowed(_)));
    }
}
