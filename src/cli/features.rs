//! `hull features`: what this build supports, in the runtime-spec features
//! format (containerd's shim asks for it).

use crate::error::Result;

const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];
const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];
const SECCOMP_ARCHS: &[&str] = &["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"];
const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
];

pub fn features() -> Result<()> {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    let doc = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::state::SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::options::KNOWN,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": SECCOMP_ARCHS,
                "knownFlags": SECCOMP_FLAGS,
                "supportedFlags": SECCOMP_FLAGS,
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
        },
        "annotations": {
            "dev.hull.version": env!("CARGO_PKG_VERSION"),
        },
    });
    println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised seccomp name is one a profile may use: it parses in
    /// a spec and compiles.
    #[test]
    fn advertised_seccomp_names_compile() {
        let syscalls: Vec<_> = SECCOMP_ACTIONS
            .iter()
            .filter(|a| **a != "SCMP_ACT_NOTIFY")
            .zip([
                "getpid", "getppid", "getuid", "getgid", "geteuid", "getegid", "getpgrp", "getsid",
            ])
            .map(|(a, name)| serde_json::json!({"names": [name], "action": a}))
            .chain(SECCOMP_OPERATORS.iter().map(|op| {
                serde_json::json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                                   "args": [{"index": 1, "value": 1, "valueTwo": 1, "op": op}]})
            }))
            .collect();
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": SECCOMP_ARCHS,
            "flags": SECCOMP_FLAGS,
            "syscalls": syscalls,
        });
        let seccomp = serde_json::from_value(profile).expect("a valid profile");
        crate::security::seccomp::compile(&seccomp).expect("compiles");
    }
}
