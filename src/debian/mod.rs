//! Bootstrap a Debian root from the archive: the signed `InRelease`, the `Packages` indexes,
//! dependency resolution, verified `.deb` downloads into the blob store, and one image layer
//! holding the unpacked packages plus the dpkg database, for the sandbox to configure.
mod configure;
mod deb;
pub mod deb822;
mod download;
mod dpkg_db;
mod error;
mod http;
mod index;
pub mod pgp;
pub mod relation;
mod release;
mod resolve;
mod source;
mod status;
mod unpack;
pub mod version;

pub use configure::{configure_env, configure_script};
pub use download::{download, download_with, package_digest, Event, DEFAULT_WORKERS};
pub use error::{Error, HttpKind, Result};
pub use index::{fetch_in_release, fetch_index, verify_release, Index, Package};
pub use release::Release;
pub use resolve::{Locked, Request};
pub use source::Source;
pub use status::{parse_status, Installed};
pub use unpack::unpack_layer;
