//! One handler per command, each a thin wrapper over library calls.

pub mod base;
pub mod build;
pub mod check;
#[cfg(feature = "runtime")]
pub mod load;
