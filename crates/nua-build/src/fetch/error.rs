//! The one error type of [`super`]: each variant names the URL or the repository and reference
//! it is about; [`FetchError::hint`] says what the user can do, when there is something.

use std::path::PathBuf;

use nua_oci::http::{HttpError, HttpKind};
use nua_oci::{self as oci, Digest};

/// Everything that can go wrong while getting an app's source.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The source archive could not be downloaded (after the retries of [`nua_oci::http`]).
    #[error("downloading the source archive `{url}` failed: {kind} (after {retries} retries)", url = redact(url))]
    Download {
        url: String,
        kind: HttpKind,
        retries: u32,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The server sent more than [`super::MAX_ARCHIVE_SIZE`] bytes.
    #[error("the source archive `{url}` is larger than {limit} bytes; nothing was kept", url = redact(url))]
    TooLarge { url: String, limit: u64 },

    /// `src-checksum` is not 64 hexadecimal characters (the loader normally catches this).
    #[error("`src-checksum` of `{url}` is not a sha256 digest: `{value}`", url = redact(url))]
    InvalidChecksum { url: String, value: String },

    /// The archive does not hash to `src-checksum`.
    #[error("the source archive `{url}` has digest `{actual}`, but `src-checksum` says `{expected}`; nothing was kept", url = redact(url))]
    Checksum {
        url: String,
        expected: Digest,
        actual: Digest,
    },

    /// The content is not an archive format this module reads.
    #[error("the source archive `{url}` is {found}: unsupported archive format, supported: {}", super::archive::SUPPORTED, url = redact(url))]
    UnsupportedFormat { url: String, found: String },

    /// The archive could not be read: truncated, corrupt, or an unsupported variant.
    #[error("cannot read the source archive `{url}` (corrupt or truncated?)", url = redact(url))]
    Archive {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// An entry would write outside the source folder, or is otherwise refused.
    #[error("refusing entry `{entry}` of the source archive `{url}`: {reason}; nothing was extracted", url = redact(url))]
    Hostile {
        url: String,
        entry: String,
        reason: String,
    },

    /// `git` cannot be started.
    #[error("`git` is needed to fetch `{url}` (`git-url`) but cannot be run", url = redact(url))]
    GitMissing {
        url: String,
        #[source]
        source: std::io::Error,
    },

    /// git cannot read the repository: wrong URL, no access, network.
    #[error("git cannot read the repository `{url}`:\n  {stderr}", url = redact(url))]
    GitRepository { url: String, stderr: String },

    /// The repository has no such branch or tag (or no commit at all, for `HEAD`).
    #[error("the repository `{url}` has no branch or tag `{reference}`{}", tail(stderr), url = redact(url))]
    GitReference {
        url: String,
        reference: String,
        stderr: String,
    },

    /// The clone is not at the commit that `pin` found: the branch moved in between.
    #[error("`{reference}` of `{url}` is at commit {actual}, but the build was planned for {expected}", url = redact(url))]
    GitMoved {
        url: String,
        reference: String,
        expected: String,
        actual: String,
    },

    /// Any other failure of a git command.
    #[error("`git {command}` failed for `{url}`:\n  {stderr}", url = redact(url))]
    Git {
        url: String,
        command: String,
        stderr: String,
    },

    /// `project` is absolute or climbs out with `..` (or a symlink).
    #[error("`project` = `{project}` {reason}")]
    ProjectPath {
        project: String,
        reason: &'static str,
    },

    /// `project` names no folder of the source.
    #[error(
        "`project` = `{project}` is not a folder of the source; {} has: {}",
        place(parent),
        list(available)
    )]
    ProjectMissing {
        project: String,
        /// The deepest existing folder on the way to `project`, relative to the source
        /// (empty: the source itself).
        parent: PathBuf,
        /// Its sub-folders.
        available: Vec<String>,
    },

    /// There is nothing to fetch for a local source.
    #[error("the source is the local app folder: there is nothing to fetch")]
    NothingToFetch,

    /// A file system operation failed.
    #[error("I/O error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] oci::Error),
}

impl FetchError {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            FetchError::Download { kind, .. } => download_hint(*kind),
            FetchError::TooLarge { .. } => "check that `src-url` names a source archive",
            FetchError::InvalidChecksum { .. } => {
                "write the 64 hexadecimal characters of the archive's sha256"
            }
            FetchError::Checksum { .. } => {
                "the file changed on the server or was tampered with; check where it comes \
                 from before updating `src-checksum`"
            }
            FetchError::UnsupportedFormat { .. } => "point `src-url` at a source archive",
            FetchError::Hostile { .. } => "the archive is broken or malicious",
            FetchError::GitMissing { .. } => "install it, e.g. `apt-get install git`",
            FetchError::GitRepository { .. } => {
                "check `git-url`, and that the repository is public or reachable from here"
            }
            FetchError::GitReference { .. } => "check `git-branch` (a branch or tag name)",
            FetchError::GitMoved { .. } => "the branch moved while building; run the build again",
            FetchError::ProjectPath { .. } => {
                "`project` is a folder relative to the source, like `server` or `apps/web`"
            }
            FetchError::ProjectMissing { .. } => "check `project` in `[build]`",
            FetchError::Archive { .. }
            | FetchError::Git { .. }
            | FetchError::NothingToFetch
            | FetchError::Io { .. }
            | FetchError::Store(_) => return None,
        };
        Some(hint.to_owned())
    }
}

impl From<HttpError> for FetchError {
    fn from(e: HttpError) -> FetchError {
        FetchError::Download {
            url: e.url,
            kind: e.kind,
            retries: e.retries,
            // reqwest's message would quote the URL, token included.
            source: e.source.map(reqwest::Error::without_url),
        }
    }
}

/// `url` without its user information: a `git-url` or `src-url` may carry a token
/// (`https://user:token@host/…`), which must never reach a message.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

fn download_hint(kind: HttpKind) -> &'static str {
    match kind {
        HttpKind::Status(404 | 410) => {
            "the server has no such file: check `src-url` (and the `{version}` it may contain)"
        }
        HttpKind::Status(401 | 403) => "the server refuses access: the archive must be public",
        HttpKind::Status(_) => "the server refused the request; check `src-url` or retry later",
        HttpKind::Connect | HttpKind::Timeout => {
            "check the host name of `src-url`, the network, and the proxy settings"
        }
        HttpKind::TooLong | HttpKind::Other => "check `src-url`",
    }
}

/// Git's last words, on their own line, when there are some.
fn tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(":\n  {stderr}")
    }
}

/// A folder of the source, as the user knows it.
fn place(parent: &std::path::Path) -> String {
    if parent.as_os_str().is_empty() {
        "the source".to_owned()
    } else {
        format!("`{}`", parent.display())
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no folders".to_owned()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Attach a path to an `io::Error`: `fs::create_dir(p).at(p)?`.
pub(super) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, FetchError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T, FetchError> {
        self.map_err(|source| FetchError::Io {
            path: path.into(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_urls_are_never_shown() {
        assert_eq!(
            redact("https://user:s3cret@git.example/r.git"),
            "https://***@git.example/r.git"
        );
        assert_eq!(redact("https://tok@h/a@b"), "https://***@h/a@b");
        assert_eq!(redact("https://h/x.tar.gz"), "https://h/x.tar.gz");
        assert_eq!(redact("git@github.com:o/r.git"), "git@github.com:o/r.git");
        let err = FetchError::GitRepository {
            url: "https://x:s3cret@h/r.git".into(),
            stderr: String::new(),
        };
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn hints_are_apart_from_the_message() {
        let err = FetchError::GitMissing {
            url: "https://h/r.git".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert!(!err.to_string().contains("hint:"), "{err}");
        assert_eq!(
            err.hint().as_deref(),
            Some("install it, e.g. `apt-get install git`")
        );
        assert_eq!(FetchError::NothingToFetch.hint(), None);
    }
}
