//! One file per group of commands; each command is one function.

pub mod cgroups;
pub mod check;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod gc;
pub mod inspect;
pub mod lifecycle;
pub mod network;
pub mod out;
pub mod overrides;
pub mod spec;
pub mod storage;
