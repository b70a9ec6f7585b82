//! OCI image primitives: digests, canonical JSON, the blob store, the deterministic layer
//! writer, image config/manifest/index, OCI layouts (directory or hybrid tarball) and a reader.
//!
//! Nothing here knows about Nua, prints or touches the network: callers hand in paths and
//! readers and get typed results back.

pub mod canonical;
pub mod digest;
pub mod error;
pub mod image;
pub mod layer;
pub mod layout;
pub mod name;
pub mod reader;
pub mod store;
mod tar_writer;

pub use digest::{Digest, Sha256Writer};
pub use error::{Error, Result};
pub use image::{
    write_image, ContainerConfig, Descriptor, Healthcheck, History, ImageConfig, ImageRef,
    ImageSpec, Manifest,
};
pub use layer::{Compression, DeviceKind, Layer, LayerOptions, LayerWriter, Meta};
pub use layout::{write_layout_dir, write_tarball};
pub use name::ImageName;
pub use reader::{ImageArchive, ImageInfo, ReadOptions};
pub use store::{BlobInfo, BlobStore, BlobWriter};
