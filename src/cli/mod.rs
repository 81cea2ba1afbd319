//! One file per group of commands; each command is one function.

pub mod attach;
pub mod cgroups;
pub mod check;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod gc;
pub mod image;
pub mod image_cli;
pub mod inspect;
pub mod lifecycle;
pub mod logs;
pub mod network;
pub mod out;
pub mod overrides;
pub mod registry;
pub mod remove;
pub mod spec;
pub mod stop;
pub mod storage;
pub mod table;
