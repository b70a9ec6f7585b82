//! The one error type of the `sandbox` module.
//!
//! Each variant names the path, layer or setup step it is about; when the user can do
//! something, [`Error::hint`] says what. The cause lives in `#[source]` and is not repeated
//! in the message.

use std::path::PathBuf;

/// Result alias of the `sandbox` module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while preparing, running or committing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel or the machine does not allow what the sandbox needs.
    #[error("the sandbox cannot run here: {what}")]
    Unsupported {
        what: String,
        /// What to do about it (see [`Error::hint`]).
        fix: String,
    },

    /// A file system operation on the host side failed.
    #[error("I/O error on `{}`", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A system call made while setting up namespaces or mounts failed.
    #[error("sandbox setup failed while {step}")]
    Setup {
        step: String,
        #[source]
        source: std::io::Error,
    },

    /// Writing the uid/gid maps of the user namespace failed.
    #[error("cannot map ids into the user namespace with `{tool}`: {message}")]
    IdMap { tool: String, message: String },

    /// A task run inside the user namespace (unpack, commit, read, remove) failed there.
    #[error("{task} failed inside the user namespace: {message}")]
    InNamespace { task: String, message: String },

    /// A tar entry of a layer tries to leave the root or cannot be stored safely.
    #[error("layer {layer}: refusing entry `{entry}`: {reason}")]
    HostileEntry {
        layer: String,
        entry: String,
        reason: String,
    },

    /// An unpacked layer does not hash to the DiffID its descriptor announced.
    #[error("layer {blob} uncompresses to {actual}, not to its DiffID {expected}: the blob is corrupt or was tampered with")]
    DiffId {
        blob: String,
        expected: String,
        actual: String,
    },

    /// A command cannot be run as asked (bad argv, env, cwd or bind).
    #[error("invalid command: {0}")]
    Command(String),

    /// Reading a layer blob or writing the committed layer failed.
    #[error(transparent)]
    Oci(#[from] nua_oci::Error),
}

/// Attach the path to an I/O error.
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

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unsupported { fix, .. } => Some(fix.clone()),
            Error::IdMap { .. } => Some(
                "check `/etc/subuid` and `/etc/subgid` for this user, or `apt-get install uidmap`"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_subject_and_the_fix() {
        let e = Error::Unsupported {
            what: "unprivileged user namespaces are disabled".into(),
            fix: "sysctl -w kernel.unprivileged_userns_clone=1".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("disabled") && !text.contains("hint:"),
            "{text}"
        );
        let hint = e.hint().unwrap_or_default();
        assert!(hint.starts_with("sysctl"), "{hint}");
        let e = Error::HostileEntry {
            layer: "sha256:ab".into(),
            entry: "../x".into(),
            reason: "it climbs out with `..`".into(),
        };
        assert_eq!(
            e.to_string(),
            "layer sha256:ab: refusing entry `../x`: it climbs out with `..`"
        );
    }
}
