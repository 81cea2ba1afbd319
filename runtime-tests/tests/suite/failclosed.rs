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
    // `test` and `read` are shell builtins: they answer even if / moved.
    let script = r#"
        before=$(wc -l < /proc/self/mountinfo)
        "$0" --root "$1" create --bundle "$2" "$3" 2>"$4"
        echo "rc=$?"
        test -e "$5" && echo root=same || echo root=moved
        after=$(wc -l < /proc/self/mountinfo)
        [ "$before" = "$after" ] && echo mounts=same || echo "mounts=$before->$after"
    "#;
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .arg(&c.rt.bin)
        .arg(&c.rt.root)
        .arg(&bundle)
        .arg(&id)
        .arg(&err)
        .arg(&marker)
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
