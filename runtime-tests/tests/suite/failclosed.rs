//! Fail-closed tests: configs that must be refused before they can touch the
//! caller, and error lines that stay one safe line whatever a config holds.
//! These are hull-only: runc 1.1.5 sets up the rootfs in the caller's own
//! mount namespace when the config has no mount namespace (it pivots the
//! caller's root), and echoes raw values in its errors.

use std::process::Command;

use runtime_tests::fixture::{config, Ctx};
use runtime_tests::harness::{t, Kind, Test};
use runtime_tests::{ensure, Outcome, TestResult};
use serde_json::{json, Value};

pub const TESTS: &[Test] = &[
    t("fc_no_linux_section", Kind::HullOnly, no_linux_section),
    t("fc_no_mount_namespace", Kind::HullOnly, no_mount_namespace),
    t(
        "fc_mount_namespace_path",
        Kind::HullOnly,
        mount_namespace_path,
    ),
    t(
        "fc_error_control_chars",
        Kind::HullOnly,
        error_control_chars,
    ),
    t("fc_error_huge_value", Kind::HullOnly, error_huge_value),
    t("fc_signals_not_inherited", Kind::Oci, signals_not_inherited),
    t("fc_bad_inputs", Kind::HullOnly, bad_inputs),
];

/// `create` of `cfg` run inside a private mount namespace made for this test
/// (so that a regression pivots that namespace, never the host's). Returns
/// the create's stderr after checking that it failed with exit 1 on one line,
/// that the namespace's root and mount table are what they were, and that
/// nothing is left.
fn refused_without_touching_caller(c: &Ctx, cfg: &Value) -> Result<String, Outcome> {
    let bundle = c.bundle(cfg)?;
    let marker = c.dir("marker")?.join("still-the-callers-root");
    std::fs::write(&marker, "")?;
    let id = c.id();
    let err = bundle.join("create.err");
    // `test` is a shell builtin: it answers even if / moved. Mounts are
    // counted by the rootfs path only: other tests mount and unmount
    // elsewhere meanwhile.
    let script = r#"
        "$0" --root "$1" create --bundle "$2" "$3" 2>"$4"
        echo "rc=$?"
        test -e "$5" && echo root=same || echo root=moved
        n=$(grep -c -F -- "$6" /proc/self/mountinfo)
        [ "$n" = 0 ] && echo mounts=same || echo "mounts=$n over the rootfs"
    "#;
    let rootfs = cfg["root"]["path"].as_str().unwrap_or("/").to_string();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(&c.rt.bin)
        .arg(&c.rt.root)
        .arg(&bundle)
        .arg(&id)
        .arg(&err)
        .arg(&marker)
        .arg(&rootfs)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    ensure!(
        stdout.contains("root=same") && stdout.contains("mounts=same"),
        "the caller's mount namespace changed: {stdout} (stderr {stderr:?})"
    );
    ensure!(
        stdout.contains("rc=1"),
        "create must exit 1: {stdout} {stderr:?}"
    );
    ensure!(
        stderr.trim().lines().count() == 1,
        "error is not one line: {stderr:?}"
    );
    ensure!(c.rt.is_gone(&id), "container {id} was left behind");
    ensure!(
        !c.rt.root.join(&id).exists(),
        "state dir of {id} left behind"
    );
    Ok(stderr)
}

fn no_linux_section(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    let obj = cfg.as_object_mut().expect("object");
    obj.remove("linux");
    obj.remove("hostname");
    let err = refused_without_touching_caller(c, &cfg)?;
    ensure!(
        err.contains("mount namespace"),
        "error should say why: {err}"
    );
    Ok(())
}

fn no_mount_namespace(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "uts"}]);
    let err = refused_without_touching_caller(c, &cfg)?;
    ensure!(
        err.contains("mount namespace"),
        "error should say why: {err}"
    );
    Ok(())
}

fn mount_namespace_path(c: &Ctx) -> TestResult {
    // The path is read by the runtime, which runs in the test's private
    // namespace: /proc/self/ns/mnt is the caller's own mount namespace.
    let mut cfg = config(&["true"]);
    cfg["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "uts"}, {"type": "ipc"},
        {"type": "mount", "path": "/proc/self/ns/mnt"}
    ]);
    let err = refused_without_touching_caller(c, &cfg)?;
    ensure!(
        err.contains("/proc/self/ns/mnt"),
        "error should name the path: {err}"
    );
    Ok(())
}

fn error_control_chars(c: &Ctx) -> TestResult {
    let mut cfg = config(&["true"]);
    cfg["process"]["capabilities"]["bounding"] =
        json!(["CAP_CHOWN\nhull: forged second line\u{1b}[31m"]);
    let id = c.id();
    let out = c.rt.create(&id, &c.bundle(&cfg)?).code(1)?;
    ensure!(
        out.stderr.trim_end().lines().count() == 1,
        "a newline in a value split the error: {:?}",
        out.stderr
    );
    ensure!(
        !out.stderr.contains('\u{1b}'),
        "raw escape echoed: {:?}",
        out.stderr
    );
    ensure!(
        out.stderr.contains("\\n"),
        "newline not shown escaped: {:?}",
        out.stderr
    );
    ensure!(c.rt.is_gone(&id), "container {id} was left behind");
    Ok(())
}

fn error_huge_value(c: &Ctx) -> TestResult {
    let huge = format!("CAP_{}", "A".repeat(200_000));
    let mut cfg = config(&["true"]);
    cfg["process"]["capabilities"]["bounding"] = json!([huge]);
    let id = c.id();
    let out = c.rt.create(&id, &c.bundle(&cfg)?).code(1)?;
    ensure!(
        out.stderr.len() < 2000,
        "error line is {} bytes: a value must be cut, not echoed whole",
        out.stderr.len()
    );
    ensure!(
        out.stderr.contains("CAP_AAAA") && out.stderr.contains('…'),
        "the value's start must identify it: {:?}",
        out.stderr
    );
    ensure!(
        out.stderr.matches("AAAAAAAAAA").count() <= 20,
        "value echoed more than once: {:?}",
        out.stderr
    );
    ensure!(c.rt.is_gone(&id), "container {id} was left behind");
    Ok(())
}

/// A runtime started with signals ignored (nohup, some CI runners) must not
/// pass them on: exec keeps SIG_IGN, and a shell cannot trap a signal that was
/// ignored when it started (sec_seccomp_args failed that way). runc resets
/// them too.
fn signals_not_inherited(c: &Ctx) -> TestResult {
    let cfg = config(&["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]);
    let bundle = c.bundle(&cfg)?;
    let id = c.id();
    let out = Command::new("sh")
        .args([
            "-c",
            "trap '' HUP INT QUIT USR1 USR2 TERM; exec \"$0\" --root \"$1\" run --bundle \"$2\" \"$3\"",
        ])
        .arg(&c.rt.bin)
        .arg(&c.rt.root)
        .arg(&bundle)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "run failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The bits of the signals ignored above (bit N-1 for signal N).
    let ours: u64 = [1u32, 2, 3, 10, 12, 15]
        .iter()
        .map(|n| 1u64 << (n - 1))
        .sum();
    for line in stdout.lines() {
        let mask = line.split_whitespace().nth(1).unwrap_or("?");
        let mask = u64::from_str_radix(mask, 16).unwrap_or(u64::MAX);
        ensure!(mask & ours == 0, "the container process inherited {line:?}");
    }
    ensure!(stdout.lines().count() == 2, "unexpected output: {stdout:?}");
    Ok(())
}

/// A bad input: what it changes in the default config, and extra create flags.
struct Bad {
    name: &'static str,
    edit: fn(&mut Value),
    flags: &'static [&'static str],
}

const fn bad(name: &'static str, edit: fn(&mut Value)) -> Bad {
    Bad {
        name,
        edit,
        flags: &[],
    }
}

const fn bad_flags(name: &'static str, flags: &'static [&'static str]) -> Bad {
    Bad {
        name,
        edit: |_| {},
        flags,
    }
}

/// Bad inputs that reach different layers (config parsing, validation,
/// namespaces, mounts, security, cgroups, storage and network extras): each
/// gives exit 1, one line on stderr naming hull, and leaves nothing — no
/// state dir, no mount, no process (the leak check sees the rest).
const BAD_INPUTS: &[Bad] = &[
    bad("args empty", |c| c["process"]["args"] = json!([])),
    bad("cwd relative", |c| c["process"]["cwd"] = json!("tmp")),
    // (a missing cwd is made, and a relative mount destination is taken from
    // /, as runc does: neither is a bad input)
    bad("cwd is a file", |c| {
        c["process"]["cwd"] = json!("/bin/busybox")
    }),
    bad("program missing", |c| {
        c["process"]["args"] = json!(["/no/such/bin"])
    }),
    bad("namespace unknown", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "foo"}))
    }),
    bad("namespace twice", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "pid"}))
    }),
    bad("namespace path missing", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time", "path": "/no/such/ns"}))
    }),
    bad("id maps without userns", |c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}])
    }),
    bad("userns without maps", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}))
    }),
    bad("hostname without uts", |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "uts")
    }),
    bad("rootfs is a file", |c| {
        c["root"]["path"] = json!("/etc/hostname")
    }),
    bad("mount into /proc/self", |c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/proc/self/x", "type": "tmpfs", "source": "tmpfs"}))
    }),
    bad("bind source missing", |c| {
        c["mounts"].as_array_mut().unwrap().push(json!(
            {"destination": "/data", "type": "bind", "source": "/no/such/src", "options": ["rbind"]}
        ))
    }),
    bad("mount type unknown", |c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data", "type": "nosuchfs", "source": "x"}))
    }),
    bad("capability unknown", |c| {
        c["process"]["capabilities"]["bounding"] = json!(["CAP_FOO"])
    }),
    // (a capability missing from this host's bounding set, where it is
    // missing, is checked by sec_caps_unavailable)
    bad("rlimit unknown", |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}])
    }),
    bad("rlimit above hard limit", |c| {
        c["process"]["rlimits"] =
                // Above fs.nr_open (2^20 unless raised): refused even with
                // CAP_SYS_RESOURCE.
                json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 31, "soft": 1u64 << 31}])
    }),
    bad("rlimit soft above hard", |c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 10, "soft": 20}])
    }),
    bad("seccomp action unknown", |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_FOO"})
    }),
    bad("sysctl not namespaced", |c| {
        c["linux"]["sysctl"] = json!({"kernel.panic": "1"})
    }),
    bad(
        "device type unknown",
        |c| {
            c["linux"]["devices"] = json!([{"path": "/dev/x", "type": "q", "major": 1, "minor": 3}])
        },
    ),
    bad("hook path relative", |c| {
        c["hooks"] = json!({"createRuntime": [{"path": "bin/true"}]})
    }),
    bad("memory limit too small", |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 4096})
    }),
    bad("user missing in userns", |c| {
        c["process"]["user"] = json!({"uid": 5000, "gid": 5000});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 1000}]);
    }),
    bad_flags("port out of range", &["-p", "70000:80"]),
    bad_flags("port range absurd", &["-p", "1-65535:1-65535"]),
    bad_flags("volume source missing", &["-v", "/no/such/src:/data"]),
    bad_flags("volume destination relative", &["-v", "/tmp:data"]),
    bad_flags("tmpfs option unknown", &["--tmpfs", "/t:bogus=1"]),
    bad_flags("network unknown", &["--network", "nosuchmode"]),
];

/// With BAD_INPUTS_REPORT=FILE, the test also writes a markdown table of
/// every case and the line it got there (for the issue notes).
fn bad_inputs(c: &Ctx) -> TestResult {
    let mut failures = Vec::new();
    let mut report = String::from("| bad input | exit | stderr |\n|---|---|---|\n");
    for case in BAD_INPUTS {
        let mut cfg = config(&["true"]);
        (case.edit)(&mut cfg);
        let bundle = c.bundle(&cfg)?;
        let id = c.id();
        let b = bundle.to_string_lossy().into_owned();
        let mut args = vec!["create", "--bundle", b.as_str()];
        args.extend_from_slice(case.flags);
        args.push(&id);
        let out = c.rt.exec(&args);
        let line = out.stderr.trim();
        let problem = if out.code != 1 {
            Some(format!("exit {}", out.code))
        } else if line.lines().count() != 1 || !line.starts_with("hull:") {
            Some("not one hull line".to_string())
        } else if !c.rt.is_gone(&id) || c.rt.root.join(&id).exists() {
            Some("container left behind".to_string())
        } else if !runtime_tests::util::host_mounts_mentioning(&b).is_empty() {
            Some("mount left behind".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{}: {p}: {:?}", case.name, out.stderr));
        }
        let shown = line.replace(&b, "<bundle>").replace(&id, "<id>");
        report.push_str(&format!("| {} | {} | `{shown}` |\n", case.name, out.code));
    }
    if let Some(path) = std::env::var_os("BAD_INPUTS_REPORT") {
        std::fs::write(path, report)?;
    }
    ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}
