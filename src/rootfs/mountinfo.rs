//! /proc/self/mountinfo and /proc/self/cgroup, parsed. Pure parsers, tested
//! with lines from a hybrid-cgroup host.

use std::path::{Path, PathBuf};

use crate::error::{Context, Result};

/// One line of /proc/self/mountinfo (the fields hull needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The path inside the filesystem that is mounted (field 4).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields: "shared:N", "master:N", ...
    pub optional: Vec<String>,
    pub fstype: String,
    /// Per-superblock options, e.g. "rw,cpu,cpuacct" or "rw,name=systemd".
    pub super_options: String,
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    Some(MountInfo {
        root: PathBuf::from(unescape(fields[3])),
        mount_point: PathBuf::from(unescape(fields[4])),
        optional: fields[6..sep].iter().map(|s| s.to_string()).collect(),
        fstype: fields[sep + 1].to_string(),
        super_options: fields[sep + 3].to_string(),
    })
}

pub fn read_mountinfo() -> Result<Vec<MountInfo>> {
    let path = Path::new("/proc/self/mountinfo");
    Ok(parse_mountinfo(
        &std::fs::read_to_string(path).step_at("read", path)?,
    ))
}

/// One line of /proc/self/cgroup: "4:memory:/a/b" or "0::/a/b" (cgroup2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    pub id: u32,
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

pub fn parse_proc_cgroup(text: &str) -> Vec<CgroupLine> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let id = it.next()?.parse().ok()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            Some(CgroupLine {
                id,
                controllers: ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect(),
                path: PathBuf::from(path),
            })
        })
        .collect()
}

pub fn read_proc_cgroup() -> Result<Vec<CgroupLine>> {
    let path = Path::new("/proc/self/cgroup");
    Ok(parse_proc_cgroup(
        &std::fs::read_to_string(path).step_at("read", path)?,
    ))
}

/// The mount whose mount point is the longest prefix of `path`.
pub fn mount_containing<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime master:5 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 22 0:40 / /with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_fields() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].optional, vec!["shared:1"]);
        assert_eq!(
            m[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[2].fstype, "cgroup");
        assert_eq!(m[2].super_options, "rw,cpu,cpuacct");
        assert_eq!(m[3].optional, vec!["master:5"]);
        assert_eq!(m[4].fstype, "cgroup2");
        assert_eq!(m[5].mount_point, PathBuf::from("/with space"));
    }

    #[test]
    fn containing_mount_is_longest_prefix() {
        let m = parse_mountinfo(HYBRID);
        let c = mount_containing(&m, Path::new("/sys/fs/cgroup/unified/x")).unwrap();
        assert_eq!(c.fstype, "cgroup2");
        let c = mount_containing(&m, Path::new("/var/lib/x")).unwrap();
        assert_eq!(c.mount_point, PathBuf::from("/"));
        // Component-wise, not string-wise.
        let c = mount_containing(&m, Path::new("/with spacer")).unwrap();
        assert_eq!(c.mount_point, PathBuf::from("/"));
    }

    #[test]
    fn parses_proc_cgroup() {
        let c = parse_proc_cgroup("4:memory:/process_api/0bf\n9:name=systemd:/\n0::/\n");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].controllers, vec!["memory"]);
        assert_eq!(c[0].path, PathBuf::from("/process_api/0bf"));
        assert_eq!(c[1].controllers, vec!["name=systemd"]);
        assert_eq!(c[2].id, 0);
        assert!(c[2].controllers.is_empty());
    }
}
