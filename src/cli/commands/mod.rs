//! One handler per command, each a thin wrapper over library calls.

pub mod base;
pub mod build;
pub mod cache;
pub mod check;
pub mod inspect;
#[cfg(feature = "runtime")]
pub mod load;
#[cfg(feature = "runtime")]
pub mod ps;
pub mod pull;
pub mod push;
#[cfg(feature = "runtime")]
pub mod run;
