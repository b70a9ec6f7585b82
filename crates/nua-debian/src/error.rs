//! The one error type of the `debian` module.
//!
//! Every variant names the suite, package, file or URL it is about; [`Error::hint`] says
//! what to do next, where there is something. The cause lives in `#[source]` and is not
//! repeated in the message.

use std::path::PathBuf;

use nua_oci as oci;

/// Result alias of the `debian` module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use nua_oci::http::HttpKind;

/// Everything that can go wrong while bootstrapping from a Debian archive.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("I/O error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An apt source file of the host could not be understood.
    #[error("cannot read the apt source `{}`: {reason}", path.display())]
    Sources { path: PathBuf, reason: String },

    /// A request to the archive failed (after `retries` retries).
    #[error("fetching `{url}` failed: {kind} (after {retries} retries)")]
    Http {
        url: String,
        kind: HttpKind,
        retries: u32,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The keyring could not be read or holds no usable key.
    #[error("cannot use the keyring `{}`: {reason}", path.display())]
    Keyring { path: PathBuf, reason: String },

    /// InRelease is not signed by a key of the keyring: the repository is refused.
    #[error("the `InRelease` of suite `{suite}` has no valid signature from `{}`: {reason}", keyring.display())]
    Signature {
        suite: String,
        keyring: PathBuf,
        reason: String,
    },

    /// InRelease is past its `Valid-Until` date.
    #[error("the mirror has no suite `{suite}` (`{url}` is not found)")]
    NoSuite { suite: String, url: String },

    #[error("the `InRelease` of suite `{suite}` expired on {valid_until}")]
    Expired { suite: String, valid_until: String },

    /// InRelease misses something needed (a field, a listed index).
    #[error("the `InRelease` of suite `{suite}` is unusable: {reason}")]
    Release { suite: String, reason: String },

    /// An index file does not match what InRelease lists for it.
    #[error("index `{file}` of suite `{suite}` does not match `InRelease`: expected {expected}, got {actual}")]
    IndexMismatch {
        suite: String,
        file: String,
        expected: String,
        actual: String,
    },

    /// A deb822 file (Packages, status, InRelease, .sources) is malformed.
    #[error("cannot parse `{file}` at line {line}: {reason}")]
    Parse {
        file: String,
        line: usize,
        reason: String,
    },

    /// A version string does not follow Debian Policy 5.6.12.
    #[error("invalid version `{value}`: {reason}")]
    Version { value: String, reason: &'static str },

    /// A dependency field does not parse.
    #[error("invalid relation `{value}`: {reason}")]
    Relation { value: String, reason: String },

    /// A package needed by the resolution is not in the index.
    #[error("package `{package}` cannot be installed: {reason}{}", needed_by.as_ref().map(|n| format!(" (needed by `{n}`)")).unwrap_or_default())]
    Unresolvable {
        package: String,
        needed_by: Option<String>,
        reason: String,
    },

    /// A downloaded `.deb` does not hash to the SHA256 of the index.
    #[error("package `{package}` ({filename}) fails its hash check: expected sha256 {expected}, got {actual}")]
    PackageDigest {
        package: String,
        filename: String,
        expected: String,
        actual: String,
    },

    /// A downloaded `.deb` does not have the size of the index.
    #[error("package `{package}` ({filename}) has {actual} bytes, the index says {expected}; nothing was kept")]
    PackageSize {
        package: String,
        filename: String,
        expected: u64,
        actual: u64,
    },

    /// A locked package is not in the blob store (call `download` first).
    #[error("package `{package}` is not in the blob store")]
    NotDownloaded { package: String },

    /// A `.deb` is not a valid Debian binary package (deb(5)).
    #[error("package `{package}` is not a valid .deb: {reason}")]
    Deb { package: String, reason: String },

    /// A `.deb` entry would land outside the root or through a symlink.
    #[error("package `{package}` has an unsafe entry `{entry}`: {reason}; refused")]
    UnsafeEntry {
        package: String,
        entry: String,
        reason: &'static str,
    },

    /// The blob store or the layer writer failed.
    #[error(transparent)]
    Oci(#[from] oci::Error),
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::Http { .. } => "check the mirror URL and the network, or pick another mirror",
            Error::Keyring { .. } => {
                "install `debian-archive-keyring` or point `Signed-By` at the right key"
            }
            Error::Signature { .. } => "the mirror may be tampered with or the keyring outdated",
            Error::NoSuite { .. } => {
                "check the suite's name, or list the suites the mirror has in `suites`"
            }
            Error::Expired { .. } => {
                "the mirror is stale (or replayed); use another mirror, or a snapshot"
            }
            Error::IndexMismatch { .. } => "the mirror may be syncing; retry later",
            Error::Unresolvable { .. } => "check the name, the suite and the components",
            Error::PackageDigest { .. } => {
                "the mirror or the index is corrupt or tampered with; nothing was kept"
            }
            Error::NotDownloaded { .. } => "run the download step first",
            _ => return None,
        };
        Some(hint.to_owned())
    }
}

/// Attach a path to `std::io` errors.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}

impl From<nua_oci::http::HttpError> for Error {
    fn from(e: nua_oci::http::HttpError) -> Error {
        let nua_oci::http::HttpError {
            url,
            kind,
            retries,
            source,
        } = e;
        Error::Http {
            url,
            kind,
            retries,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_apart_from_the_message() {
        let err = Error::NotDownloaded {
            package: "libc6".into(),
        };
        assert_eq!(err.to_string(), "package `libc6` is not in the blob store");
        assert_eq!(err.hint().as_deref(), Some("run the download step first"));
        let err = Error::Release {
            suite: "bookworm".into(),
            reason: "no `Date`".into(),
        };
        assert_eq!(err.hint(), None);
    }
}
