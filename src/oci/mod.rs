//! OCI image primitives: digests, canonical JSON, the blob store, the deterministic layer
//! writer, image config/manifest/index, OCI layouts (directory or hybrid tarball) and a reader.
//!
//! Nothing here knows about Nua, prints or touches the network: callers hand in paths and
//! readers and get typed results back.

pub mod canonical;
pub mod digest;
pub mod error;
pub mod store;

pub use digest::{Digest, Sha256Writer};
pub use error::{Error, Result};
pub use store::{BlobInfo, BlobStore, BlobWriter};
