//! Black-box test library for runc-compatible container runtimes.
//!
//! The runtime under test is named by the `RUNTIME` environment variable (a path, or a
//! name looked up on `PATH`); by default it is the workspace's `target/release/hull`.
//! Every test drives the binary only through its command line, so the same suite runs
//! against runc (to prove the tests encode OCI/runc behaviour) and against hull.

pub mod fixture;
pub mod harness;
pub mod images;
pub mod runtime;
pub mod util;

pub use fixture::{config, suite, Ctx, Suite};
pub use harness::{Kind, Test};
pub use runtime::{Output, Runtime, Spawned};
pub use util::{Outcome, TestResult};
