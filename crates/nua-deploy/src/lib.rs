//! The orchestrator: instances of apps on Docker, through [`nua_runtime::Engine`] only.
//!
//! Its first piece runs one instance on this machine (`nua run`): [`target`] tells what the
//! user gave (an app folder, an image archive, a reference), [`image`] reads the nua-config
//! an image carries, [`local`] turns an image and its nua-config into a container to
//! create, [`supervise`] starts it and watches it, [`kept`] keeps its generated values
//! between runs, and [`apps`] finds and stops what `nua run` started. The command line
//! builds an app folder itself (this crate never depends on nua-build) and hands the image
//! over. Deployments with providers, a proxy and TLS come later.

pub mod apply;
pub mod apps;
pub mod backup;
pub mod image;
pub mod instance;
pub mod kept;
pub mod local;
pub mod options;
pub mod proxy;
pub mod relay;
pub mod reload;
pub mod state;
pub mod supervise;
pub mod target;
#[cfg(test)]
mod testing;
pub mod values;
