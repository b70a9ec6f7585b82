//! The orchestrator: instances of apps on Docker, through [`nua_runtime::Engine`] only.
//!
//! Its first piece runs one instance on this machine (`nua run`): [`local`] turns an image
//! and its nua-config into a container to create, [`supervise`] starts it and watches it.
//! Deployments with providers, a proxy and TLS come later.

pub mod local;
pub mod supervise;
#[cfg(test)]
mod testing;
