//! `base-images/<name>.lock`: the exact packages of every step of a base, with their hashes,
//! so that a base built from its lock is the same image on any machine and any day.
//!
//! A lock names the fingerprint of the definitions it was made from; when a definition
//! changes, the lock is stale and the base is resolved again from the live archive (with a
//! warning) until `nua-pack base lock NAME` is run.

use serde::{Deserialize, Serialize};

use super::BaseError;
use nua_debian as debian;

/// The packages of every step of one base.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    /// Which base this lock is for.
    pub base: String,
    /// [`super::Catalog::fingerprint`] of the definitions the lock was resolved from.
    pub fingerprint: String,
    /// The Debian suite of the bootstrap.
    pub suite: String,
    /// The `Date` of the suite's signed `InRelease` when the lock was made.
    pub archive_date: String,
    /// The steps, in build order.
    #[serde(rename = "step")]
    pub steps: Vec<LockedStep>,
}

/// The packages one step installs (a bootstrap or a layer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedStep {
    /// `bootstrap` or the layer's name.
    pub name: String,
    #[serde(rename = "package", default)]
    pub packages: Vec<debian::Locked>,
}

impl Lock {
    /// Parse a lock file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Lock, BaseError> {
        toml::from_str(text).map_err(|source| BaseError::Definition {
            path: file.into(),
            message: source.to_string(),
        })
    }

    /// The lock file's text: a header that says how it was made, then TOML.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).expect("a lock serializes to TOML");
        format!(
            "# The packages of base image `{}`, made by `nua-pack base lock {}`.\n\
             # Do not edit: building from this file gives the same image digest every time.\n\n\
             {body}",
            self.base, self.base
        )
    }

    /// The packages of step `name`.
    pub fn step(&self, name: &str) -> Option<&LockedStep> {
        self.steps.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_text() {
        let lock = Lock {
            base: "python".into(),
            fingerprint: "sha256:00".into(),
            suite: "bookworm".into(),
            archive_date: "Sat, 08 Nov 2026 09:12:31 UTC".into(),
            steps: vec![LockedStep {
                name: "bootstrap".into(),
                packages: vec![debian::Locked {
                    name: "base-files".into(),
                    version: "12.4+deb12u7".into(),
                    architecture: "amd64".into(),
                    filename: "pool/main/b/base-files/base-files_12.4+deb12u7_amd64.deb".into(),
                    size: 70_000,
                    sha256: "ab".repeat(32),
                }],
            }],
        };
        let text = lock.to_text();
        assert!(text.starts_with("# The packages of base image `python`"));
        assert!(text.contains("[[step.package]]"), "{text}");
        assert_eq!(Lock::parse(&text, "python.lock").unwrap(), lock);
        let err = Lock::parse("base = 1", "python.lock")
            .unwrap_err()
            .to_string();
        assert!(err.contains("python.lock"), "{err}");
    }
}
