//! The one error type of the `registry` module.
//!
//! Every variant names the registry, the reference or the blob it is about; what to do next,
//! when there is something, comes from [`Error::hint`], never inside the message. No variant carries a password or a token: credentials are named by
//! where they came from ([`CredentialSource`]), never by value.

use std::path::PathBuf;

use nua_oci::http::HttpKind;
use nua_oci::{self as oci, Digest};

use super::auth::CredentialSource;

/// Result alias of the `registry` module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not parse, with the reason.
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference { reference: String, reason: String },

    /// A request failed for good (after `retries` retries).
    #[error("{method} `{url}` failed: {kind} (after {retries} retries){}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Http {
        method: String,
        url: String,
        kind: HttpKind,
        retries: u32,
        /// What the registry said, from its JSON error body.
        detail: Option<String>,
        #[source]
        source: Option<reqwest::Error>,
    },

    /// The registry asks for credentials and none were found.
    #[error("registry `{registry}` requires authentication and no credentials were found (tried {tried})")]
    AuthRequired { registry: String, tried: String },

    /// The registry refused the credentials it was given.
    #[error("registry `{registry}` refused the credentials from {credentials}")]
    Unauthorized {
        registry: String,
        credentials: CredentialSource,
    },

    /// Authenticated, but not allowed to do this.
    #[error("registry `{registry}` denied {action} access to `{repository}` (credentials from {credentials})")]
    Denied {
        registry: String,
        repository: String,
        action: &'static str,
        credentials: CredentialSource,
    },

    /// A credential source could not be read (config file, helper).
    #[error("cannot read credentials from {credentials}: {reason}")]
    Credentials {
        credentials: CredentialSource,
        reason: String,
    },

    /// The manifest, or the tag, does not exist.
    #[error("`{reference}` not found on registry `{registry}`")]
    NotFound { registry: String, reference: String },

    /// A manifest we cannot use.
    #[error("unusable manifest of `{reference}`: {reason}")]
    Manifest { reference: String, reason: String },

    /// No manifest of an index matches the wanted platform.
    #[error("`{reference}` has no image for platform `{wanted}` (it has: {available})")]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },

    /// A platform string that is not `os/arch[/variant]`.
    #[error("invalid platform `{value}`: expected `os/arch[/variant]`, e.g. `linux/amd64`")]
    InvalidPlatform { value: String },

    /// Content that does not hash to its digest: refused, nothing stored.
    #[error("blob `{expected}` from `{origin}` does not match its digest: expected `{expected}`, got `{actual}`; nothing was stored")]
    Digest {
        origin: String,
        expected: Digest,
        actual: Digest,
    },

    /// A blob that came twice with the wrong content: the registry, not the link, is at fault.
    #[error("blob `{expected}` from `{origin}` does not match its digest twice: expected `{expected}`, got `{first}`, then `{second}`; nothing was stored")]
    DigestTwice {
        origin: String,
        expected: Digest,
        first: Digest,
        second: Digest,
    },

    /// A download given up: `reason` says how its last attempt ended (a stall with its rate,
    /// a broken connection, a short body).
    #[error("downloading blob `{digest}` from `{origin}` failed: {reason}; gave up after {retries} retries without progress and {resumes} resumes after progress, with {received} of {size} bytes received{}", if *kept { " (kept: the next pull resumes from there)" } else { "" })]
    Transfer {
        origin: String,
        digest: Digest,
        reason: String,
        retries: u32,
        resumes: u32,
        received: u64,
        size: u64,
        /// Whether the bytes received are kept for the next pull.
        kept: bool,
    },

    /// The storage host a registry redirected a blob to refused it (a signed URL that expired
    /// or a storage policy): not the registry's credentials.
    #[error("the storage URL `{url}` that registry `{registry}` redirected `{what}` to answered 403 Forbidden (after 1 retry)")]
    StorageDenied {
        registry: String,
        what: String,
        /// Without its query, which holds the signature.
        url: String,
    },

    /// Content that does not have its announced size: refused, nothing stored.
    #[error("blob `{digest}` from `{origin}` has {actual} bytes, its descriptor says {expected}; nothing was stored")]
    Size {
        origin: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },

    /// The registry answered something the protocol does not allow.
    #[error("registry `{registry}` answered unexpectedly: {reason}")]
    Protocol { registry: String, reason: String },

    /// A local file could not be read or written.
    #[error("I/O error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The blob store or an image archive failed.
    #[error(transparent)]
    Oci(#[from] oci::Error),
}

impl Error {
    /// What the user can do about it, when there is something: the text of a `hint:` line,
    /// without that prefix. Errors of nua-oci carried here give theirs.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::AuthRequired { registry, .. } => Some(format!(
                "pass `--username USER --password-stdin`, or run `docker login {registry}`"
            )),
            Error::Unauthorized { .. } => {
                Some("check the user name and password (or token) of that source".into())
            }
            Error::NoPlatform { .. } => Some("pick one with `--platform`".into()),
            Error::Transfer { .. } => Some(format!(
                "try again later, or set the low-speed limit for a slow link with `{}` (bytes per \
                 second) and `{}` (seconds)",
                nua_oci::http::NUA_LOW_SPEED_LIMIT,
                nua_oci::http::NUA_LOW_SPEED_TIME
            )),
            Error::DigestTwice { .. } => Some(
                "the registry serves content that does not match its digest: tell its operator"
                    .into(),
            ),
            Error::StorageDenied { .. } => Some(
                "the registry's storage refused a signed URL; check the registry's storage \
                 configuration and the clocks of both machines"
                    .into(),
            ),
            Error::Oci(e) => e.hint(),
            _ => None,
        }
    }

    /// The HTTP kind, when the error is an HTTP failure.
    pub fn http_kind(&self) -> Option<HttpKind> {
        match self {
            Error::Http { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_are_beside_the_message_never_in_it() {
        let errors = [
            Error::AuthRequired {
                registry: "r:5000".into(),
                tried: "Docker's config".into(),
            },
            Error::Unauthorized {
                registry: "r:5000".into(),
                credentials: CredentialSource::CommandLine,
            },
            Error::NoPlatform {
                reference: "r:5000/app:1".into(),
                wanted: "linux/arm64".into(),
                available: "linux/amd64".into(),
            },
        ];
        for error in &errors {
            assert!(!error.to_string().contains("hint"), "{error}");
            assert!(error.hint().is_some_and(|h| !h.starts_with("hint")));
        }
        assert_eq!(
            errors[0].hint().unwrap(),
            "pass `--username USER --password-stdin`, or run `docker login r:5000`"
        );
        assert_eq!(errors[2].hint().unwrap(), "pick one with `--platform`");
        let wrapped = Error::Oci(oci::Error::PathEscape {
            entry: "../x".into(),
        });
        assert_eq!(wrapped.hint(), None);
    }
}
