//! Base images: the definitions of `base-images/` and `layers/`, their lock files, the
//! builder names of nua-config that resolve to them, and the building of a base from Debian
//! packages in the sandbox, cached step by step.
//!
//! A base is a chain: a Debian bootstrap (`[bootstrap]`), then the layers of each base in
//! the chain (`from = "debian-bookworm"`, `layers = ["python"]`). Each step with packages
//! gives two layers: the unpacked packages with their dpkg database, then what their
//! maintainer scripts and the step's commands changed, run in the sandbox with no network.
//! Every layer is cached under a key made of its parent's key and its inputs (the locked
//! package hashes, the commands), so a base is built once and shared by every app.

mod catalog;
mod lock;
mod make;
mod names;
mod plan;

use std::path::PathBuf;

pub use catalog::{BaseDef, Bootstrap, Catalog, LayerDef};
pub use lock::{Lock, LockedStep};
pub use make::{build_base, BaseImage, BaseOptions};
pub use names::{Resolved, DEFAULT_BASE};
pub use plan::{lock_base, Plan, PlannedStep};

/// What can go wrong with base definitions and base builds.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("cannot read `{}`", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{}` is not a valid definition: {message}", path.display())]
    Definition { path: PathBuf, message: String },
    #[error("there is no base image `{name}` (known: {})", known.join(", "))]
    UnknownBase { name: String, known: Vec<String> },
    #[error("no base image matches builder `{builder}` (known: {})", known.join(", "))]
    UnknownBuilder { builder: String, known: Vec<String> },
    #[error("base image `{base}` uses layer `{layer}`, which `layers/` does not define")]
    UnknownLayer { base: String, layer: String },
    #[error("base image `{name}` is built `from` itself")]
    Cycle { name: String },
    #[error("cannot resolve the packages of `{base}`, step `{step}`")]
    Debian {
        base: String,
        step: String,
        #[source]
        source: Box<crate::debian::Error>,
    },
    #[error("the sandbox cannot run step `{step}` of base `{base}`")]
    Sandbox {
        base: String,
        step: String,
        #[source]
        source: Box<crate::sandbox::Error>,
    },
    #[error("step `{step}` of base `{base}` failed ({status}); its last lines:\n{tail}")]
    StepFailed {
        base: String,
        step: String,
        status: String,
        tail: String,
    },
    #[error("cannot write the layer cache in `{}`", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
}
