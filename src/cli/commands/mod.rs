//! One handler per command, each a thin wrapper over library calls.

pub mod build;
pub mod check;
