//! hull as a library: every module of the runtime, so that the binary
//! (main.rs), the unit tests and the fuzz targets (fuzz/) reach the same code.
//! The command line lives in main.rs; nothing here parses argv.

pub mod bundle;
pub mod cgroups;
pub mod cli;
pub mod console;
pub mod create;
pub mod error;
pub mod failpoint;
pub mod image;
pub mod jsonfile;
pub mod log;
pub mod monitor;
pub mod network;
pub mod overrides;
pub mod owner;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod signal;
pub mod start;
pub mod state;
pub mod storage;
pub mod sys;
pub mod template;
pub mod time;
