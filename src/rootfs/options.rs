//! fstab-style mount options of config.json, turned into what mount(2) and
//! mount_setattr(2) take. Pure: no syscalls here, so it is unit-tested.

use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;

use crate::error::{Error, Result};
use crate::sys;

/// What one spec mount's `options` ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set (ro, nosuid, bind, rec, ...).
    pub flags: MsFlags,
    /// Flags the user explicitly turned off (rw, suid, dev, exec, ...): a
    /// remount must not re-add them from the source mount.
    pub cleared: MsFlags,
    /// Propagation changes, applied in order after the mount exists.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes (rro, rnosuid, ...) for mount_setattr(AT_RECURSIVE).
    pub rec_set: u64,
    pub rec_clear: u64,
    /// The recursive atime mode (one MOUNT_ATTR_*ATIME value), if asked for.
    pub rec_atime: Option<u64>,
    /// Everything mount(2) does not know as a flag, passed as fs data
    /// (`mode=755,size=65536k`, `newinstance,ptmxmode=0666`).
    pub data: String,
    /// "tmpcopyup": seed a tmpfs with what the image has at its destination.
    pub copy_up: bool,
    /// "idmap" (false) or "ridmap" (true: the mounts below it too): an
    /// idmapped bind mount.
    pub idmap: Option<bool>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_set: 0,
            rec_clear: 0,
            rec_atime: None,
            data: String::new(),
            copy_up: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    pub fn is_recursive(&self) -> bool {
        self.flags.contains(MsFlags::MS_REC)
    }

    /// The flags that need a remount after a bind: a bind mount ignores
    /// everything but MS_BIND|MS_REC on creation.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    pub fn data(&self) -> Option<&str> {
        (!self.data.is_empty()).then_some(self.data.as_str())
    }

    /// Does the user say anything about access times? If not, a remount keeps
    /// the source's atime mode (it is locked in a user namespace).
    pub fn sets_atime(&self) -> bool {
        let atime = MsFlags::MS_NOATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
        self.flags.intersects(atime) || self.cleared.intersects(atime)
    }
}

/// Every option name `parse` knows (for `hull features`); a unit test keeps
/// it in step with the tables below.
pub const KNOWN: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rw",
    "silent",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "rrelatime",
    "ratime",
    "rnostrictatime",
    "rnorelatime",
    "rstrictatime",
    "rnoatime",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rnosymfollow",
    "rsymfollow",
    "tmpcopyup",
    "notmpcopyup",
    "idmap",
    "ridmap",
];

/// Is `name` an option hull interprets (rather than passes as fs data)?
#[cfg(test)]
fn is_known(name: &str) -> bool {
    flag(name).is_some()
        || propagation(name).is_some()
        || rec_atime(name).is_some()
        || rec_attr(name).is_some()
        || matches!(
            name,
            "rnorelatime" | "tmpcopyup" | "notmpcopyup" | "idmap" | "ridmap"
        )
}

/// MS_NOSYMFOLLOW (Linux 5.10) and its statfs bit, which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);
const ST_NOSYMFOLLOW: FsFlags = FsFlags::from_bits_retain(0x2000);

/// Set (true) or clear (false) a flag, runc's table.
fn flag(name: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    Some(match name {
        "acl" => (true, F::MS_POSIXACL),
        "async" => (false, F::MS_SYNCHRONOUS),
        "atime" => (false, F::MS_NOATIME),
        "bind" => (true, F::MS_BIND),
        "defaults" => (true, F::empty()),
        "dev" => (false, F::MS_NODEV),
        "diratime" => (false, F::MS_NODIRATIME),
        "dirsync" => (true, F::MS_DIRSYNC),
        "exec" => (false, F::MS_NOEXEC),
        "iversion" => (true, F::MS_I_VERSION),
        "lazytime" => (true, F::MS_LAZYTIME),
        "loud" => (false, F::MS_SILENT),
        "mand" => (true, F::MS_MANDLOCK),
        "noacl" => (false, F::MS_POSIXACL),
        "noatime" => (true, F::MS_NOATIME),
        "nodev" => (true, F::MS_NODEV),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "noexec" => (true, F::MS_NOEXEC),
        "noiversion" => (false, F::MS_I_VERSION),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "nomand" => (false, F::MS_MANDLOCK),
        "norelatime" => (false, F::MS_RELATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "nosuid" => (true, F::MS_NOSUID),
        "nosymfollow" => (true, MS_NOSYMFOLLOW),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        "relatime" => (true, F::MS_RELATIME),
        "remount" => (true, F::MS_REMOUNT),
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "silent" => (true, F::MS_SILENT),
        "strictatime" => (true, F::MS_STRICTATIME),
        "suid" => (false, F::MS_NOSUID),
        "symfollow" => (false, MS_NOSYMFOLLOW),
        "sync" => (true, F::MS_SYNCHRONOUS),
        _ => return None,
    })
}

/// Mount propagation names, shared by mount options and rootfsPropagation.
pub fn propagation(name: &str) -> Option<MsFlags> {
    use MsFlags as F;
    Some(match name {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    })
}

/// The recursive atime mode options: the atime bits are one field.
/// "ratime" and "rnostrictatime" (the kernel's default mode, like mount(8)'s
/// "atime"/"nostrictatime") are relatime; runc 1.1 asks the kernel to clear
/// part of the field there, which it refuses (EINVAL). "rnorelatime" is not
/// here: see `parse`.
fn rec_atime(name: &str) -> Option<u64> {
    use sys::{MOUNT_ATTR_NOATIME, MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME};
    Some(match name {
        "rrelatime" | "ratime" | "rnostrictatime" => MOUNT_ATTR_RELATIME,
        "rstrictatime" => MOUNT_ATTR_STRICTATIME,
        "rnoatime" => MOUNT_ATTR_NOATIME,
        _ => return None,
    })
}

/// Recursive attributes (runc's "rro" family): set (true) or clear (false).
fn rec_attr(name: &str) -> Option<(bool, u64)> {
    use sys::{
        MOUNT_ATTR_NODEV as NODEV, MOUNT_ATTR_NODIRATIME as NODIRATIME,
        MOUNT_ATTR_NOEXEC as NOEXEC, MOUNT_ATTR_NOSUID as NOSUID, MOUNT_ATTR_RDONLY as RDONLY,
    };
    Some(match name {
        "rro" => (true, RDONLY),
        "rrw" => (false, RDONLY),
        "rnosuid" => (true, NOSUID),
        "rsuid" => (false, NOSUID),
        "rnodev" => (true, NODEV),
        "rdev" => (false, NODEV),
        "rnoexec" => (true, NOEXEC),
        "rexec" => (false, NOEXEC),
        "rnodiratime" => (true, NODIRATIME),
        "rdiratime" => (false, NODIRATIME),
        "rnosymfollow" => (true, sys::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (false, sys::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Parse a spec mount's options. Later options win over earlier ones, like
/// mount(8): `ro,rw` is read-write.
pub fn parse<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    for opt in options {
        let opt = opt.as_ref();
        if let Some((set, f)) = flag(opt) {
            if set {
                out.flags |= f;
                out.cleared -= f;
            } else {
                out.flags -= f;
                out.cleared |= f;
            }
        } else if let Some(p) = propagation(opt) {
            out.propagation.push(p);
        } else if let Some((set, a)) = rec_attr(opt) {
            if set {
                out.rec_set |= a;
                out.rec_clear &= !a;
            } else {
                out.rec_clear |= a;
                out.rec_set &= !a;
            }
        } else if let Some(a) = rec_atime(opt) {
            out.rec_atime = Some(a);
        } else if opt == "rnorelatime" {
            // As runc: "clear relatime" names no atime mode of its own, so
            // the mount keeps the one it has (like "norelatime" on a bind
            // remount), unless another option sets one.
        } else if opt == "tmpcopyup" || opt == "notmpcopyup" {
            out.copy_up = opt == "tmpcopyup";
        } else if opt == "idmap" || opt == "ridmap" {
            out.idmap = Some(opt == "ridmap");
        } else if !opt.is_empty() {
            data.push(opt);
        }
    }
    out.data = data.join(",");
    out
}

/// The flags a bind remount must carry over from the mount it changes,
/// given that mount's statvfs flags: nosuid/nodev/noexec/ro and the atime
/// mode are locked in a user namespace (dropping them is EPERM), and outside
/// one silently dropping them would weaken what the source promised. The
/// user's explicit options (`suid`, `rw`, `strictatime`, ...) still win.
pub fn kept_flags(st: FsFlags, opts: &MountOptions) -> MsFlags {
    use MsFlags as F;
    let mut keep = F::empty();
    for (s, f) in [
        (FsFlags::ST_RDONLY, F::MS_RDONLY),
        (FsFlags::ST_NOSUID, F::MS_NOSUID),
        (FsFlags::ST_NODEV, F::MS_NODEV),
        (FsFlags::ST_NOEXEC, F::MS_NOEXEC),
        (FsFlags::ST_NODIRATIME, F::MS_NODIRATIME),
        (ST_NOSYMFOLLOW, MS_NOSYMFOLLOW),
    ] {
        if st.contains(s) && !opts.cleared.contains(f) {
            keep |= f;
        }
    }
    if !opts.sets_atime() {
        keep |= if st.contains(FsFlags::ST_NOATIME) {
            F::MS_NOATIME
        } else if st.contains(FsFlags::ST_RELATIME) {
            F::MS_RELATIME
        } else {
            F::MS_STRICTATIME
        };
    }
    keep
}

/// `linux.rootfsPropagation` for "/" inside the container's mount namespace.
/// Always recursive, so no mount made for the container can reach the host
/// (unless the user asked for shared). Default: rslave, like runc.
pub fn root_propagation(value: Option<&str>) -> Result<MsFlags> {
    match value.unwrap_or("") {
        "" => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        v => propagation(v).map(|f| f | MsFlags::MS_REC).ok_or_else(|| {
            Error::new("linux.rootfsPropagation")
                .detail(format!("unknown value {v:?}"))
                .hint("use shared, slave, private or unbindable")
        }),
    }
}

/// The propagation "/" gets before the mounts are made. "unbindable" waits
/// for `finalize`: an unbindable tree could not be bind-mounted from (the
/// rootfs onto itself, host /sys, cgroup directories), and it is a limit on
/// what others may bind, not on what leaks, so rslave protects the host
/// meanwhile.
pub fn prepare_propagation(value: Option<&str>) -> Result<MsFlags> {
    let flags = root_propagation(value)?;
    if flags.contains(MsFlags::MS_UNBINDABLE) {
        return root_propagation(None);
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MsFlags as F;

    #[test]
    fn tmpfs_dev_options() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, F::MS_NOSUID | F::MS_STRICTATIME);
        assert_eq!(o.data(), Some("mode=755,size=65536k"));
        assert!(!o.flags.contains(F::MS_BIND));
        assert!(o.sets_atime());
    }

    #[test]
    fn devpts_data_is_kept_in_order() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.flags, F::MS_NOSUID | F::MS_NOEXEC);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    }

    #[test]
    fn rbind_ro_with_propagation() {
        let o = parse(&["rbind", "ro", "rslave", "nosuid"]);
        assert!(o.flags.contains(F::MS_BIND) && o.is_recursive());
        assert_eq!(o.remount_flags(), F::MS_RDONLY | F::MS_NOSUID);
        assert_eq!(o.propagation, vec![F::MS_SLAVE | F::MS_REC]);
        assert_eq!(o.data(), None);
    }

    #[test]
    fn later_options_win_and_clears_are_remembered() {
        let o = parse(&["ro", "rw", "nosuid", "suid", "exec"]);
        assert!(o.flags.is_empty());
        assert_eq!(o.cleared, F::MS_RDONLY | F::MS_NOSUID | F::MS_NOEXEC);
        let o = parse(&["rw", "ro"]);
        assert_eq!(o.flags, F::MS_RDONLY);
        assert!(o.cleared.is_empty());
    }

    #[test]
    fn plain_bind_needs_no_remount() {
        let o = parse(&["bind", "rw", "private"]);
        assert!(o.flags.contains(F::MS_BIND) && !o.is_recursive());
        assert!(o.remount_flags().is_empty());
        assert_eq!(o.propagation, vec![F::MS_PRIVATE]);
    }

    #[test]
    fn atime_options() {
        assert!(!parse(&["ro", "nosuid"]).sets_atime());
        assert!(parse(&["norelatime"]).sets_atime());
        let o = parse(&["relatime", "nodiratime", "noatime"]);
        assert_eq!(o.flags, F::MS_RELATIME | F::MS_NODIRATIME | F::MS_NOATIME);
    }

    #[test]
    fn recursive_attributes() {
        let o = parse(&["rbind", "rro", "rnosuid", "rrw", "rnoatime"]);
        assert_eq!(o.rec_set, sys::MOUNT_ATTR_NOSUID);
        assert_eq!(o.rec_clear, sys::MOUNT_ATTR_RDONLY);
        assert_eq!(o.rec_atime, Some(sys::MOUNT_ATTR_NOATIME));
        assert!(o.remount_flags().is_empty());
        assert!(o.data.is_empty());
    }

    #[test]
    fn symfollow_options() {
        let o = parse(&["nosymfollow", "rnosymfollow"]);
        assert_eq!(o.flags, MS_NOSYMFOLLOW);
        assert_eq!(o.rec_set, sys::MOUNT_ATTR_NOSYMFOLLOW);
        let o = parse(&["nosymfollow", "symfollow", "rnosymfollow", "rsymfollow"]);
        assert!(o.flags.is_empty());
        assert_eq!(o.cleared, MS_NOSYMFOLLOW);
        assert_eq!(o.rec_clear, sys::MOUNT_ATTR_NOSYMFOLLOW);
        assert!(o.data.is_empty());
        // A nosymfollow source stays so through a bind remount.
        let st = FsFlags::from_bits_retain(0x2000) | FsFlags::ST_RELATIME;
        assert_eq!(
            kept_flags(st, &parse(&["bind", "ro"])),
            MS_NOSYMFOLLOW | F::MS_RELATIME
        );
    }

    #[test]
    fn rnorelatime_keeps_the_atime_mode() {
        let o = parse(&["rnorelatime"]);
        assert_eq!(o.rec_atime, None);
        assert!(o.data.is_empty());
        let o = parse(&["rnoatime", "rnorelatime"]);
        assert_eq!(o.rec_atime, Some(sys::MOUNT_ATTR_NOATIME));
        assert_eq!(parse(&["ratime"]).rec_atime, Some(sys::MOUNT_ATTR_RELATIME));
        assert_eq!(
            parse(&["rstrictatime"]).rec_atime,
            Some(sys::MOUNT_ATTR_STRICTATIME)
        );
    }

    #[test]
    fn tmpcopyup_is_not_data() {
        let o = parse(&["tmpcopyup", "size=1m"]);
        assert!(o.copy_up);
        assert_eq!(o.data, "size=1m");
        assert!(!parse(&["tmpcopyup", "notmpcopyup"]).copy_up);
    }

    #[test]
    fn unknown_options_are_data() {
        assert_eq!(parse(&["rbind", "bogus", "idmapx"]).data, "bogus,idmapx");
    }

    #[test]
    fn idmap_options() {
        assert_eq!(parse(&["rbind", "idmap"]).idmap, Some(false));
        assert_eq!(parse(&["rbind", "ridmap"]).idmap, Some(true));
        assert_eq!(parse(&["rbind"]).idmap, None);
        assert!(parse(&["ridmap"]).data.is_empty());
    }

    #[test]
    fn kept_flags_carry_locked_ones() {
        let st = FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_RELATIME;
        let o = parse(&["bind", "ro"]);
        assert_eq!(
            kept_flags(st, &o),
            F::MS_NOSUID | F::MS_NODEV | F::MS_RELATIME
        );
        // Explicit "suid" and an explicit atime choice win.
        let o = parse(&["bind", "ro", "suid", "noatime"]);
        assert_eq!(kept_flags(st, &o), F::MS_NODEV);
        // No atime flag on the source means strictatime.
        let o = parse(&["bind", "ro"]);
        assert_eq!(
            kept_flags(FsFlags::ST_RDONLY, &o),
            F::MS_RDONLY | F::MS_STRICTATIME
        );
        // "rw" on a read-only source is the user's call.
        let o = parse(&["bind", "rw", "nosuid"]);
        assert_eq!(
            kept_flags(FsFlags::ST_RDONLY | FsFlags::ST_NOATIME, &o),
            F::MS_NOATIME
        );
    }

    #[test]
    fn root_propagation_values() {
        assert_eq!(root_propagation(None).unwrap(), F::MS_SLAVE | F::MS_REC);
        assert_eq!(
            root_propagation(Some("shared")).unwrap(),
            F::MS_SHARED | F::MS_REC
        );
        assert_eq!(
            root_propagation(Some("rprivate")).unwrap(),
            F::MS_PRIVATE | F::MS_REC
        );
        assert!(root_propagation(Some("bogus")).is_err());
        assert_eq!(
            prepare_propagation(Some("unbindable")).unwrap(),
            F::MS_SLAVE | F::MS_REC
        );
        assert_eq!(
            prepare_propagation(Some("private")).unwrap(),
            F::MS_PRIVATE | F::MS_REC
        );
        assert!(prepare_propagation(Some("bogus")).is_err());
    }
}

#[cfg(test)]
mod known_tests {
    #[test]
    fn every_known_option_is_interpreted() {
        for name in super::KNOWN {
            assert!(super::is_known(name), "{name}");
        }
    }
}
