//! Nua: describe an application once in a `nua-config` file, build it into an OCI image
//! without a Docker daemon and without root, and run it.
//!
//! Data flows one way: `cli → build → (config, oci)`. Nothing in [`oci`] knows about Nua;
//! nothing below [`cli`] prints.

pub mod build;
pub mod cli;
pub mod config;
pub mod debian;
#[cfg(feature = "runtime")]
pub mod deploy;
pub mod http;
pub mod oci;
pub mod registry;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod sandbox;
