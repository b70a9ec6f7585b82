//! Errors of the build.

use std::path::PathBuf;

use crate::oci;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Base(#[from] super::base::BaseError),
    #[error("cannot pull `{image}`, the image this app wraps")]
    Wrap {
        image: String,
        #[source]
        source: Box<crate::registry::Error>,
    },
    #[error("cannot add the app source `{}` to its layer", path.display())]
    SourceLayer {
        path: PathBuf,
        #[source]
        source: oci::Error,
    },
    #[error("cannot write the image to `{}`", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: oci::Error,
    },
    #[error("cannot read the ignore file `{}`", path.display())]
    Ignore {
        path: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("cannot write the layer cache in `{}`", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{tag}` is not a valid image name")]
    Tag {
        tag: String,
        #[source]
        source: oci::Error,
    },
    #[error(transparent)]
    Oci(oci::Error),
}
