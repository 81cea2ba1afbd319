//! One file per group of commands; each command is one function.

pub mod inspect;
pub mod lifecycle;
pub mod spec;
