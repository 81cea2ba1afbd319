//! Capabilities: the five sets of process.capabilities, applied the way runc
//! does (bounding first, keep caps across the uid switch, then one capset,
//! then ambient), with one difference that closes CVE-2022-29162: the
//! inheritable set is exactly what the config lists — empty when it lists
//! none — never a copy of another set and never what hull itself inherited.
//!
//! When a seccomp filter must be loaded without no_new_privs (which needs
//! CAP_SYS_ADMIN), CAP_SYS_ADMIN stays in the permitted set until
//! `Final::apply_last` right before execve; otherwise the sets are final
//! when `apply` returns.

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Process};

use crate::error::{Error, Result};
use crate::sys;

/// The sets the process must hold at execve (bitmasks, bit N = cap N).
#[derive(Debug, Clone, Copy, Default)]
pub struct Final {
    effective: u64,
    permitted: u64,
    inheritable: u64,
    /// CAP_SYS_ADMIN was kept for the seccomp load: `apply_last` drops it.
    pending: bool,
}

/// A capability name as the config spells it (CAP_NET_ADMIN).
fn convert(set: Option<&Capabilities>, supported: &CapsHashSet) -> CapsHashSet {
    set.into_iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Capability>().ok())
        // Capabilities this kernel does not know are skipped, as runc does.
        .filter(|c| supported.contains(c))
        .collect()
}

fn mask(set: &CapsHashSet) -> u64 {
    set.iter().fold(0, |m, c| m | c.bitmask())
}

fn names(mask: u64) -> String {
    let mut v: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect();
    v.sort();
    v.join(", ")
}

/// Drop what the bounding set must not hold and raise keep-caps, while we
/// are still root with every capability. Call before the uid switch.
/// Returns what `after_user_switch` needs.
pub fn before_user_switch(process: &Process) -> Result<Option<Plan>> {
    let Some(spec) = process.capabilities() else {
        return Ok(None);
    };
    let supported = caps::runtime::thread_all_supported();
    let plan = Plan {
        bounding: convert(spec.bounding().as_ref(), &supported),
        effective: convert(spec.effective().as_ref(), &supported),
        permitted: convert(spec.permitted().as_ref(), &supported),
        inheritable: convert(spec.inheritable().as_ref(), &supported),
        ambient: convert(spec.ambient().as_ref(), &supported),
    };
    for cap in &supported {
        if !plan.bounding.contains(cap) {
            caps::drop(None, CapSet::Bounding, *cap).map_err(|e| {
                Error::new(format!("drop {cap} from the bounding set")).detail(e.to_string())
            })?;
        }
    }
    // Without keep-caps, setresuid to a non-root uid would empty the
    // permitted set before we could set it.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| Error::sys("set keep-caps", None, e))?;
    Ok(Some(plan))
}

pub struct Plan {
    bounding: CapsHashSet,
    effective: CapsHashSet,
    permitted: CapsHashSet,
    inheritable: CapsHashSet,
    ambient: CapsHashSet,
}

/// After setresuid: set effective, permitted and inheritable in one capset,
/// then the ambient set. `keep_sys_admin`: leave CAP_SYS_ADMIN in effective
/// and permitted for a seccomp load that follows (see the module doc).
/// Without a plan (no process.capabilities), only the inheritable and
/// ambient sets are cleared: nothing hull inherited may leak.
pub fn after_user_switch(plan: Option<Plan>, keep_sys_admin: bool) -> Result<Final> {
    let Some(plan) = plan else {
        let current = current_sets()?;
        let _ = keep_sys_admin; // hull's own sets are kept whole: CAP_SYS_ADMIN included
        let fin = Final {
            inheritable: 0,
            pending: false,
            ..current
        };
        apply_sets(&fin, None)?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| Error::new("clear the ambient capability set").detail(e.to_string()))?;
        return Ok(fin);
    };
    nix::sys::prctl::set_keepcaps(false).map_err(|e| Error::sys("clear keep-caps", None, e))?;
    let mut fin = Final {
        effective: mask(&plan.effective),
        permitted: mask(&plan.permitted),
        inheritable: mask(&plan.inheritable),
        pending: false,
    };
    let admin = Capability::CAP_SYS_ADMIN.bitmask();
    fin.pending = keep_sys_admin && fin.effective & admin == 0;
    let extra = if fin.pending { admin } else { 0 };
    let now = Final {
        effective: fin.effective | extra,
        permitted: fin.permitted | extra,
        inheritable: fin.inheritable,
        pending: false,
    };
    apply_sets(&now, Some(&plan))?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| Error::new("clear the ambient capability set").detail(e.to_string()))?;
    // An ambient capability must be permitted and inheritable; runc skips
    // the others silently (`runc spec` lists ambient without inheritable
    // since CVE-2022-29162), and so do we.
    for cap in plan
        .ambient
        .iter()
        .filter(|c| plan.permitted.contains(c) && plan.inheritable.contains(c))
    {
        caps::raise(None, CapSet::Ambient, *cap).map_err(|e| {
            Error::new(format!("raise {cap} in the ambient set"))
                .detail(e.to_string())
                .hint("an ambient capability must also be in permitted and inheritable")
        })?;
    }
    Ok(fin)
}

fn current_sets() -> Result<Final> {
    let read = |set| {
        caps::read(None, set)
            .map(|s| mask(&s))
            .map_err(|e| Error::new("read capabilities").detail(e.to_string()))
    };
    Ok(Final {
        effective: read(CapSet::Effective)?,
        permitted: read(CapSet::Permitted)?,
        inheritable: read(CapSet::Inheritable)?,
        pending: false,
    })
}

fn apply_sets(sets: &Final, plan: Option<&Plan>) -> Result<()> {
    sys::capset(sets.effective, sets.permitted, sets.inheritable).map_err(|e| {
        let mut err = Error::sys("set capabilities", None, e);
        if e == Errno::EPERM {
            // Name what we could not grant: not held by hull, or (for
            // inheritable) outside the bounding set.
            let have = current_sets().map(|c| c.permitted).unwrap_or(u64::MAX);
            let bounding = plan.map(|p| mask(&p.bounding)).unwrap_or(u64::MAX);
            let missing = (sets.permitted & !have) | (sets.inheritable & !(have & bounding));
            if missing != 0 {
                err = err
                    .detail(format!("not available to hull: {}", names(missing)))
                    .hint(
                        "this host's bounding set lacks it (CAP_SYS_RESOURCE here); \
                         remove it from process.capabilities",
                    );
            }
        }
        err
    })
}

impl Final {
    /// These sets once `apply_last` has run: nothing is left to drop.
    pub fn settled(self) -> Final {
        Final {
            pending: false,
            ..self
        }
    }

    /// Right before execve: drop what was kept for the seccomp load.
    /// Lowering sets never fails for lack of privilege.
    pub fn apply_last(&self) -> Result<()> {
        if self.pending {
            apply_sets(self, None)?;
        }
        Ok(())
    }
}
