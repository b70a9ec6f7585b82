//! OCI image primitives: digests, canonical JSON, the blob store, the deterministic layer
//! writer, image config/manifest/index, OCI layouts (directory or hybrid tarball) and a reader;
//! image references (the one parser), atomic file writes and the HTTP stack.
//!
//! Nothing here knows about Nua, prints or touches the network: callers hand in paths and
//! readers and get typed results back.
//!
//! # Example: from a directory to a loadable image tarball
//!
//! ```
//! use nua_oci::{
//!     write_image, write_tarball, BlobStore, ContainerConfig, ImageName, ImageSpec,
//!     LayerOptions, LayerWriter, Meta,
//! };
//! # fn main() -> Result<(), nua_oci::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let (cache, app_dir) = (tmp.path().join("cache"), tmp.path().join("app"));
//! # std::fs::create_dir_all(&app_dir).unwrap();
//! # std::fs::write(app_dir.join("index.html"), "hi").unwrap();
//! let store = BlobStore::open(&cache)?;
//! let opts = LayerOptions { source_date_epoch: 1_700_000_000, ..LayerOptions::default() };
//!
//! // The app's files under /nua/app, owned by the app user whatever the checkout says.
//! let mut layer = LayerWriter::new(&store, opts)?;
//! layer.append_dir_tree(&app_dir, "nua/app", Some((1000, 1000)), |_path, _md| true)?;
//! let app = layer.finish()?;
//!
//! // Generated files, from memory.
//! let mut layer = LayerWriter::new(&store, opts)?;
//! layer.add_dir("nua/metadata", &Meta::new(0o755))?;
//! layer.add_bytes("nua/metadata/nua-config.json", &Meta::new(0o644), br#"{"id":"foo"}"#)?;
//! let metadata = layer.finish()?;
//!
//! let config = ContainerConfig {
//!     cmd: Some(vec!["/nua/scripts/start".into()]),
//!     ..ContainerConfig::default()
//! };
//! let image = write_image(&store, &ImageSpec::new(vec![app, metadata], config, 1_700_000_000))?;
//! let names = [ImageName::parse("nua-foo:1.0-1")?];
//! write_tarball(&store, &image, &names, &tmp.path().join("nua-foo_1.0-1.tar"))?;
//! # Ok(())
//! # }
//! ```

pub mod canonical;
pub mod digest;
pub mod error;
pub mod fs;
pub mod http;
pub mod image;
pub mod layer;
pub mod layout;
pub mod name;
pub mod reader;
pub mod reference;
pub mod store;
mod tar_writer;

pub use digest::{Digest, Sha256Writer};
pub use error::{Error, Result};
pub use image::{
    write_image, ContainerConfig, Descriptor, Healthcheck, History, ImageConfig, ImageRef,
    ImageSpec, Manifest,
};
pub use layer::{
    tree_diff_id, Compression, DeviceKind, Layer, LayerOptions, LayerWriter, Meta, TreeOptions,
};
pub use layout::{tarball_is_current, write_layout_dir, write_tarball};
pub use name::ImageName;
pub use reader::{ImageArchive, ImageInfo, ReadOptions};
pub use reference::Reference;
pub use store::{BlobInfo, BlobState, BlobStore, BlobWriter, Quarantined};
