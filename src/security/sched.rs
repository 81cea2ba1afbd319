//! process.oomScoreAdj, process.scheduler, process.ioPriority and
//! linux.personality: applied in the container before the uid switch.

use nix::errno::Errno;
use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Process,
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
            e.detail(format!("policy {:?}", s.policy())).hint_if(
                Errno::EINVAL,
                "check priority (1-99 for FIFO/RR, 0 otherwise) and nice",
            )
        })
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
