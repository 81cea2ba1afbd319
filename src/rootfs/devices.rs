//! Device nodes and the standard /dev symlinks, created inside the rootfs.
//! In a new user namespace mknod is not allowed: like runc, an empty file is
//! created and the host's node bind-mounted onto it.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknodat, umask, Mode, SFlag};
use nix::unistd::{fchownat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use super::resolve::{fd_path, name_path};
use super::Ctx;
use crate::error::{Context, Error, Result};

/// A device to create: the spec's, or one of the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

const DEFAULTS: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

fn from_spec(d: &LinuxDevice) -> Result<Device> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::new("linux.devices")
                .at(d.path())
                .detail("type \"a\" is not a device node type"))
        }
    };
    // makedev keeps 32 bits of each: a bigger number would make a node of
    // another device (2^32 + 1 is 1, and 1:1 is /dev/mem).
    let num = |n: i64| {
        u32::try_from(n).map(u64::from).map_err(|_| {
            Error::new("linux.devices")
                .at(d.path())
                .detail(format!("major/minor {n} is out of range"))
                .hint("device numbers are 0-4294967295")
        })
    };
    Ok(Device {
        path: d.path().clone(),
        kind,
        major: num(d.major())?,
        minor: num(d.minor())?,
        // Only permission bits: the type comes from `kind`.
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// The default devices (unless the spec names the same path) then the spec's.
pub fn device_list(spec: Option<&[LinuxDevice]>) -> Result<Vec<Device>> {
    let spec = spec.unwrap_or(&[]);
    let mut out: Vec<Device> = DEFAULTS
        .iter()
        .filter(|(p, ..)| !spec.iter().any(|d| d.path() == Path::new(p)))
        .map(|&(p, major, minor)| Device {
            path: PathBuf::from(p),
            kind: SFlag::S_IFCHR,
            major,
            minor,
            mode: 0o666,
            uid: None,
            gid: None,
        })
        .collect();
    for d in spec {
        out.push(from_spec(d)?);
    }
    Ok(out)
}

/// runc skips all /dev setup when /dev itself is a bind from the host.
pub fn dev_is_bound(mounts: &[Mount]) -> bool {
    mounts
        .iter()
        .any(|m| super::mounts::is_dev(m.destination()) && super::mounts::is_bind(m))
}

/// Create every device and the /dev symlinks.
pub fn create(ctx: &Ctx) -> Result<()> {
    let spec = ctx.cfg.spec;
    let devices = device_list(spec.linux().as_ref().and_then(|l| l.devices().as_deref()))?;
    // The node's mode is exactly what the spec says, not what umask leaves.
    let old = umask(Mode::empty());
    let made = devices.iter().try_for_each(|d| node(ctx, d));
    umask(old);
    made?;

    // /dev/ptmx is whatever devpts is (or will be) mounted at /dev/pts,
    // never a node of the image: as runc, with or without a devpts mount.
    let (dev, _) = ctx.root.parent_of(Path::new("/dev/ptmx"))?;
    match unlinkat(Some(dev.as_raw_fd()), "ptmx", UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::sys("remove", Some(Path::new("/dev/ptmx")), e)),
    }
    link(ctx, "pts/ptmx", "/dev/ptmx")?;
    link(ctx, "/proc/self/fd", "/dev/fd")?;
    link(ctx, "/proc/self/fd/0", "/dev/stdin")?;
    link(ctx, "/proc/self/fd/1", "/dev/stdout")?;
    link(ctx, "/proc/self/fd/2", "/dev/stderr")?;
    // Only where the kernel has a kcore: the host's /proc tells (runc's
    // test, whether or not the container mounts a proc).
    if Path::new("/proc/kcore").exists() {
        link(ctx, "/proc/kcore", "/dev/core")?;
    }
    Ok(())
}

/// symlink `at` -> `target`; an existing entry is left alone (runc too).
fn link(ctx: &Ctx, target: &str, at: &str) -> Result<()> {
    let (dir, name) = ctx.root.parent_of(Path::new(at))?;
    match symlinkat(target, Some(dir.as_raw_fd()), name_path(&name)) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::sys("symlink", Some(Path::new(at)), e)),
    }
}

fn node(ctx: &Ctx, d: &Device) -> Result<()> {
    if ctx.cfg.in_userns {
        return bind_node(ctx, d);
    }
    let (dir, name) = ctx.root.parent_of(&d.path)?;
    let dev = makedev(d.major, d.minor);
    let perm = Mode::from_bits_truncate(d.mode);
    match mknodat(Some(dir.as_raw_fd()), name_path(&name), d.kind, perm, dev) {
        Ok(()) => {}
        // Something is already there (the image's own node): keep it.
        Err(Errno::EEXIST) => return Ok(()),
        Err(Errno::EPERM) => return bind_node(ctx, d),
        Err(e) => return Err(Error::sys("mknod", Some(&d.path), e)),
    }
    if d.uid.is_some() || d.gid.is_some() {
        fchownat(
            Some(dir.as_raw_fd()),
            name_path(&name),
            d.uid.map(Uid::from_raw),
            d.gid.map(Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .step_at("chown", &d.path)?;
    }
    Ok(())
}

/// Bind the host's node at the same path onto an empty file in the rootfs.
fn bind_node(ctx: &Ctx, d: &Device) -> Result<()> {
    let target = ctx.root.create_file(&d.path)?;
    mount(
        Some(&d.path),
        &fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .step_at("bind device", &d.path)
    .map_err(|e| e.hint_if(Errno::ENOENT, "the device does not exist on the host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dev(json: &str) -> LinuxDevice {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_then_spec_devices_with_override() {
        let fuse = spec_dev(
            r#"{"path":"/dev/fuse","type":"c","major":10,"minor":229,"fileMode":8630,"uid":0,"gid":0}"#,
        );
        let null =
            spec_dev(r#"{"path":"/dev/null","type":"c","major":1,"minor":3,"fileMode":438}"#);
        let list = device_list(Some(&[fuse, null])).unwrap();
        assert_eq!(list.len(), 7);
        assert_eq!(
            list.iter()
                .filter(|d| d.path == Path::new("/dev/null"))
                .count(),
            1
        );
        let f = list
            .iter()
            .find(|d| d.path == Path::new("/dev/fuse"))
            .unwrap();
        // 8630 = 0o20666: the type bits are dropped, the kind says char.
        assert_eq!(f.mode, 0o666);
        assert_eq!(f.kind, SFlag::S_IFCHR);
        assert_eq!((f.major, f.minor), (10, 229));
    }

    #[test]
    fn fifo_and_block() {
        let p = spec_dev(r#"{"path":"/dev/p","type":"p"}"#);
        let b = spec_dev(r#"{"path":"/dev/sda","type":"b","major":8,"minor":0}"#);
        let list = device_list(Some(&[p, b])).unwrap();
        assert_eq!(list[6].kind, SFlag::S_IFIFO);
        assert_eq!(list[7].kind, SFlag::S_IFBLK);
        assert!(device_list(Some(&[spec_dev(r#"{"path":"/dev/x","type":"a"}"#)])).is_err());
    }

    /// A number beyond 32 bits is refused, not cut: makedev(2^32 + 1, 1)
    /// is 1:1, /dev/mem (found with the fuzz target `config`).
    #[test]
    fn device_numbers_beyond_32_bits_are_refused() {
        let big = spec_dev(r#"{"path":"/dev/x","type":"c","major":4294967297,"minor":1}"#);
        let err = device_list(Some(&[big])).unwrap_err().to_string();
        assert!(err.contains("4294967297 is out of range"), "{err}");
        let big = spec_dev(r#"{"path":"/dev/x","type":"c","major":1,"minor":4294967296}"#);
        assert!(device_list(Some(&[big])).is_err());
        let max = spec_dev(r#"{"path":"/dev/x","type":"c","major":4294967295,"minor":0}"#);
        assert!(device_list(Some(&[max])).is_ok());
    }

    #[test]
    fn dev_bind_detection() {
        let m: Vec<Mount> = serde_json::from_str(
            r#"[{"destination":"/dev","type":"bind","source":"/dev","options":["rbind"]}]"#,
        )
        .unwrap();
        assert!(dev_is_bound(&m));
        let m: Vec<Mount> =
            serde_json::from_str(r#"[{"destination":"/dev","type":"tmpfs","source":"tmpfs"}]"#)
                .unwrap();
        assert!(!dev_is_bound(&m));
    }
}
