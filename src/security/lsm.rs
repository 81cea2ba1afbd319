//! process.apparmorProfile and process.selinuxLabel. This host has neither
//! LSM; asking for one is a clear error, never silently ignored. Where the
//! LSM exists, the label for the next exec is written through a verified
//! procfs fd (CVE-2025-52881 class).

use oci_spec::runtime::Process;

use super::procfs::Procfs;
use crate::error::{Error, Result};

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    // selinuxfs is mounted where the kernel has SELinux enabled.
    std::fs::read_to_string("/proc/filesystems").is_ok_and(|s| s.contains("selinuxfs"))
        && std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

fn wanted(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Before anything is created: refuse what this host cannot do.
pub fn validate(process: &Process) -> Result<()> {
    if let Some(p) = wanted(process.apparmor_profile()) {
        if !apparmor_enabled() {
            return Err(Error::new("process.apparmorProfile")
                .detail(format!(
                    "{p:?} asked for, but AppArmor is not enabled on this host"
                ))
                .hint("remove apparmorProfile from the config"));
        }
    }
    if let Some(l) = wanted(process.selinux_label()) {
        if !selinux_enabled() {
            return Err(Error::new("process.selinuxLabel")
                .detail(format!(
                    "{l:?} asked for, but SELinux is not enabled on this host"
                ))
                .hint("remove selinuxLabel from the config"));
        }
    }
    Ok(())
}

/// In the container, before execve: label the exec.
pub fn apply(process: &Process) -> Result<()> {
    let profile = wanted(process.apparmor_profile());
    let label = wanted(process.selinux_label());
    if profile.is_none() && label.is_none() {
        return Ok(());
    }
    validate(process)?;
    let proc = Procfs::open()?;
    let tid = nix::unistd::gettid();
    if let Some(p) = profile {
        proc.write(
            &format!("{tid}/attr/apparmor/exec"),
            format!("exec {p}").as_bytes(),
        )
        .map_err(|e| e.within("apply apparmorProfile"))?;
    }
    if let Some(l) = label {
        proc.write(&format!("{tid}/attr/exec"), l.as_bytes())
            .map_err(|e| e.within("apply selinuxLabel"))?;
    }
    Ok(())
}
