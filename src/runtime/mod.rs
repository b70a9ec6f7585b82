//! The bridge to Docker Engine at run time, and the only user of bollard (feature `runtime`).
//!
//! Orchestration talks to an [`Engine`], so it can be tested without Docker; [`Docker`] is
//! the real one. This first piece loads image tarballs; running containers comes next.

mod docker;

use std::path::{Path, PathBuf};

pub use docker::Docker;

/// What an engine reports after loading an image tarball.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Loaded {
    /// The tags the engine named (`nua-foo:1.0-1`).
    pub tags: Vec<String>,
    /// The image ID the engine gives the first tag: the digest of the image config.
    pub image_id: String,
    /// Bytes of the tarball sent.
    pub bytes_sent: u64,
}

/// A container engine.
pub trait Engine {
    /// Verify an image tarball (every digest and size), stream it into the engine, and check
    /// that the engine's image ID is the tarball's config digest.
    fn load_image(&self, tarball: &Path) -> Result<Loaded, Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Docker daemon at `{endpoint}`")]
    Connect {
        endpoint: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot read `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker refused the image `{}`: {message}", path.display())]
    LoadRefused { path: PathBuf, message: String },
    #[error("`{}` is not a valid image; nothing was loaded", path.display())]
    NotAnImage {
        path: PathBuf,
        #[source]
        source: crate::oci::Error,
    },
    #[error(
        "Docker gave `{tag}` the image ID {actual}, but `{}` has the config {expected}",
        path.display()
    )]
    IdMismatch {
        path: PathBuf,
        tag: String,
        expected: String,
        actual: String,
    },
    #[error("Docker loaded `{}` but named no image", path.display())]
    NothingLoaded { path: PathBuf },
    #[error("the Docker API call `{call}` failed")]
    Api {
        call: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}
