//! The one error type of the `oci` module.
//!
//! Every variant names what it is about (a path, a blob, a tar entry) so a caller can print
//! it as is; the cause lives in `#[source]` and is never repeated in the message.

use std::path::PathBuf;

use super::digest::Digest;

/// Result alias of the `oci` module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or writing images.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("I/O error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stream (a tar entry, a compressor, a blob being written) failed.
    #[error("I/O error while {context}")]
    Stream {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A string is not a valid `algorithm:hex` digest.
    #[error("invalid digest `{value}`: {reason}")]
    InvalidDigest { value: String, reason: &'static str },

    /// Content does not hash to the digest it was announced with.
    #[error("digest mismatch for {blob}: expected `{expected}`, got `{actual}`")]
    DigestMismatch {
        blob: String,
        expected: Digest,
        actual: Digest,
    },

    /// Content does not have the size it was announced with.
    #[error("size mismatch for {blob}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        blob: String,
        expected: u64,
        actual: u64,
    },

    /// A stored blob whose bytes no longer hash to its name (a disk fault, tampering). It was
    /// moved aside, out of `blobs/`, so the next fetch writes it again.
    #[error(
        "blob `{digest}` at `{}` is corrupt (its bytes hash to `{actual}`): {}; it will be fetched again on the next pull or build",
        path.display(),
        moved_aside(moved_to.as_deref())
    )]
    CorruptBlob {
        digest: Digest,
        actual: Digest,
        path: PathBuf,
        /// Where it went; `None` when another process moved it first.
        moved_to: Option<PathBuf>,
    },

    /// A file of an image that holds more bytes than its descriptor (or tar header) gives:
    /// reading stopped one byte past that size.
    #[error("{blob} holds more than the {expected} bytes its descriptor gives; refused")]
    Oversized { blob: String, expected: u64 },

    /// A file of an image that is a device, a fifo or a folder where a blob must be a regular
    /// file: refused before reading it.
    #[error("`{blob}` in `{}` is a {kind}, not a regular file; refused before reading", location.display())]
    NotRegular {
        blob: String,
        location: PathBuf,
        kind: String,
    },

    /// A hard link of an image tarball whose target is not an earlier entry of the archive.
    #[error("`{entry}` in `{}` is a hard link to `{target}`, which is no earlier file of the archive", location.display())]
    DanglingLink {
        entry: String,
        target: String,
        location: PathBuf,
    },

    /// A blob is referenced but not present.
    #[error("blob `{digest}` not found in {location}")]
    BlobNotFound { digest: Digest, location: String },

    /// A tar entry path leaves the root it is extracted into (`..` or absolute).
    #[error("tar entry `{entry}` escapes the archive root")]
    PathEscape { entry: String },

    /// A path that cannot be stored in a layer (empty, not UTF-8 where it must be, ...).
    #[error("invalid path `{path}` in layer: {reason}")]
    InvalidPath { path: String, reason: &'static str },

    /// A tar entry of a kind a layer cannot carry.
    #[error("tar entry `{entry}` has unsupported type {kind}")]
    UnsupportedEntry { entry: String, kind: String },

    /// Input handed in as a tar archive (after gzip/zstd detection) that is not one.
    #[error("not a tar archive: {reason}")]
    NotATar { reason: String },

    /// A file gave fewer bytes than its declared size.
    #[error("`{entry}` is shorter than its declared size of {expected} bytes")]
    ShortRead { entry: String, expected: u64 },

    /// JSON that could not be (de)serialized.
    #[error("invalid JSON in {what}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// An image name for a layout, like `nua-foo:1.0-1`, that cannot be parsed.
    #[error("invalid image name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },

    /// An image reference, like `registry:5000/ns/app@sha256:…`, that cannot be parsed.
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// An image layout or archive that is structurally wrong.
    #[error("invalid image in `{}`: {reason}", location.display())]
    InvalidImage { location: PathBuf, reason: String },
}

impl Error {
    /// What the user can do about it, when there is something: the text of a `hint:` line,
    /// without that prefix. Errors wrapping these delegate to it, as every library error type
    /// of Nua does.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::CorruptBlob { .. } => Some(
                "run the command again to fetch the blob; `nua-pack cache verify` checks every \
                 cached blob"
                    .into(),
            ),
            _ => None,
        }
    }
}

fn moved_aside(to: Option<&std::path::Path>) -> String {
    match to {
        Some(to) => format!("moved aside to `{}`", to.display()),
        None => "already moved aside".into(),
    }
}

/// Bytes from untrusted input (a tar entry name, a tar library message quoting one) made safe
/// to show: invalid UTF-8 becomes U+FFFD and control characters are escaped (`\u{1b}`), so an
/// error message can never carry terminal escape sequences or raw binary.
pub fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().collect()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An `io::Error` whose message may quote untrusted bytes, with its message made
/// [`printable`] (same kind; the tar crate puts entry names and raw header fields in its).
pub fn printable_io(e: std::io::Error) -> std::io::Error {
    let message = e.to_string();
    let clean = printable(message.as_bytes());
    if clean == message {
        e
    } else {
        std::io::Error::new(e.kind(), clean)
    }
}

/// Attach a path to an `io::Error`: `fs::read(p).at(p)?`.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
    fn during(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| {
            carried(source).unwrap_or_else(|source| Error::Io {
                path: path.into(),
                source,
            })
        })
    }

    fn during(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| {
            carried(source).unwrap_or_else(|source| Error::Stream {
                context: context(),
                source,
            })
        })
    }
}

/// The [`Error`] a reader of ours put in an `io::Error` (a bounded blob reader saying the
/// blob is too large), given back as is: it names the blob already.
fn carried(e: std::io::Error) -> std::result::Result<Error, std::io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        return Err(e);
    }
    let inner = e.into_inner().expect("checked above");
    Ok(*inner.downcast::<Error>().expect("checked above"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_control_characters_and_invalid_utf8() {
        assert_eq!(printable(b"nua/app/index.html"), "nua/app/index.html");
        assert_eq!(printable("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(printable(b"a\x1b[31mb\n\xff"), "a\\u{1b}[31mb\\n\u{fffd}");
        let e = printable_io(std::io::Error::other("bad \x07 field"));
        assert_eq!(e.to_string(), "bad \\u{7} field");
    }
}
