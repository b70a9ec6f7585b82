//! One handler per command, each a thin wrapper over library calls.

pub mod base;
pub mod build;
pub mod cache;
pub mod check;
pub mod inspect;
pub mod pull;
pub mod push;
