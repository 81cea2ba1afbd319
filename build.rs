//! Embeds the git commit for `hull --version` (dockerd shows it in `docker
//! info`). A build outside a git checkout (a source tarball) says "unknown",
//! or what HULL_COMMIT names.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HULL_COMMIT");
    let commit = std::env::var("HULL_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=HULL_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (a branch switch), the branch's
    // ref and packed-refs (a commit). Paths that do not exist are left out,
    // or cargo would rerun this script on every build.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            if Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    // Without a git checkout, an empty watch list would rerun this script on
    // every change of any file: watch the script alone.
    println!("cargo:rerun-if-changed=build.rs");
}
