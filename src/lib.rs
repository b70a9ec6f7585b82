//! Nua: describe an application once in a `nua-config` file, build it into an OCI image
//! without a Docker daemon and without root, and run it.
//!
//! Data flows one way: `cli → build → (config, oci)`. Nothing in [`oci`] knows about Nua;
//! nothing below [`cli`] prints.

pub mod cli;

pub use nua_build as build;
pub use nua_config as config;
pub use nua_debian as debian;
#[cfg(feature = "runtime")]
pub use nua_deploy as deploy;
pub use nua_oci as oci;
pub use nua_oci::http;
pub use nua_registry as registry;
#[cfg(feature = "runtime")]
pub use nua_runtime as runtime;
pub use nua_sandbox as sandbox;
