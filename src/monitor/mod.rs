//! The monitor of a detached container (`run -d`, `restart`): a small
//! process that is the init's parent, reaps it, records how it ended
//! (info.rs), keeps its output in a log, applies the restart policy,
//! serves `attach`, and removes the container on `--rm` or when the
//! caller's lease ends. No daemon: one monitor per container, gone with it.

pub mod info;

pub use info::Info;
