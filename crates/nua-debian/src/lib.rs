//! Bootstrap a Debian root from the archive: the signed `InRelease`, the `Packages` indexes,
//! dependency resolution, verified `.deb` downloads into the blob store, and one image layer
//! holding the unpacked packages plus the dpkg database, for the sandbox to configure.
//!
//! It does not run anything: the caller runs [`configure_script`] inside the sandbox. It does
//! not print: [`download`] reports through a callback. It does not check `Conflicts`/`Breaks`.
//!
//! # Final shapes (issue 4 contract)
//!
//! ```text
//! Source { mirror, security_mirror, suite, suites, components, arch, keyring, snapshot }
//! default_suites("bookworm") -> [bookworm, bookworm-updates, bookworm-security]
//! Source::from_host(suite) -> Result<Source>          // /etc/apt sources, else deb.debian.org
//! Source::at_snapshot(self, "20240101T000000Z") -> Source
//! fetch_index(&Source, &BlobStore) -> Result<Index>    // every suite's InRelease verified,
//!                                                      // Packages.xz cached, highest wins
//! Index::resolve(&self, &Request, &[Installed]) -> Result<Vec<Locked>>   // sorted by name
//! Request { include: Vec<String>, essential: bool, required: bool }
//! Locked { name, version, suite, architecture, filename, size, sha256 }   // serde, for locks
//! parse_status(&[u8]) -> Result<Vec<Installed>>
//! download(&Source, &[Locked], &BlobStore, &(dyn Fn(Event) + Sync)) -> Result<()>  // 4 workers
//! unpack_layer(&[Locked], &BlobStore, installed_status: Option<&[u8]>, &Source, &LayerOptions)
//!     -> Result<oci::Layer>       // Source: arch (merged-/usr dirs) and the apt source written
//! configure_script(&[Locked], &BlobStore) -> Result<String>   // order from the .debs' control
//! configure_env(source_date_epoch) -> Vec<(String, String)>   // the env the script expects
//! ```
//!
//! Also public for callers and tests: [`fetch_in_release`], [`verify_release`],
//! [`download_with`] (worker count), [`package_digest`], the [`deb822`], [`version`],
//! [`relation`] and [`pgp`] parsers.
//!
//! # Example
//!
//! ```no_run
//! use nua_debian::{self as debian, Request};
//! use nua_oci::{BlobStore, LayerOptions};
//! # fn main() -> Result<(), nua_debian::Error> {
//! let store = BlobStore::open("/tmp/nua-cache")?;
//! let src = debian::Source::from_host("bookworm")?;
//! let index = debian::fetch_index(&src, &store)?;
//! let req = Request { include: vec!["apt".into()], essential: true, required: false };
//! let pkgs = index.resolve(&req, &[])?;
//! debian::download(&src, &pkgs, &store, &|_event| {})?;
//! let layer = debian::unpack_layer(&pkgs, &store, None, &src, &LayerOptions::default())?;
//! let script = debian::configure_script(&pkgs, &store)?; // run as root in the sandbox
//! # let _ = (layer, script);
//! # Ok(())
//! # }
//! ```

mod configure;
mod deb;
pub mod deb822;
mod download;
mod dpkg_db;
mod error;
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
pub use release::{parse_date, Release};
pub use resolve::{Locked, Request};
pub use source::{default_suites, is_security, Source};
pub use status::{parse_status, Installed};
pub use unpack::unpack_layer;
