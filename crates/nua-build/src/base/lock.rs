//! `base-images/<name>.lock`: the exact packages of every step of a base, with their hashes,
//! so that a base built from its lock is the same image on any machine and any day.
//!
//! A lock names the fingerprint of the definitions it was made from; when a definition
//! changes, the lock is stale and the base is resolved again from the live archive (with a
//! warning) until `nua-pack base lock NAME` is run.
//!
//! Each package records the suite it comes from (`bookworm-security`: its URL is in the
//! security archive), and the lock lists the `Date` of every suite's index it was resolved
//! from; `archive-date`, the newest of them, clamps the base's timestamps. Locks written
//! before suites were recorded still parse: their packages are from the lock's `suite`.

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
    /// The Debian suite of the bootstrap (its release: `bookworm`).
    pub suite: String,
    /// The newest `Date` of the signed `InRelease` files the lock was resolved from: the
    /// upper bound of the base's timestamps.
    pub archive_date: String,
    /// For a base that starts from a registry image: that image, pinned by digest
    /// (`registry.example/team/base:1@sha256:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Every suite's index the lock was resolved from, in order of preference, with its date
    /// (empty in locks written before suites were recorded).
    #[serde(rename = "index", default)]
    pub indexes: Vec<IndexDate>,
    /// The steps, in build order.
    #[serde(rename = "step")]
    pub steps: Vec<LockedStep>,
}

/// The suite of one index a lock was resolved from, and the `Date` of its `InRelease`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDate {
    pub suite: String,
    pub date: String,
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
        let mut lock: Lock = toml::from_str(text).map_err(|source| BaseError::Definition {
            path: file.into(),
            message: source.to_string(),
        })?;
        // A lock written before suites were recorded: every package is from its release.
        for step in &mut lock.steps {
            for pkg in step.packages.iter_mut().filter(|p| p.suite.is_empty()) {
                pkg.suite = lock.suite.clone();
            }
        }
        Ok(lock)
    }

    /// The lock of base `name` in `catalog`, if it has one.
    pub fn of(catalog: &super::Catalog, name: &str) -> Result<Option<Lock>, BaseError> {
        let file = format!("base-images/{name}.lock");
        catalog
            .lock_text(name)
            .map(|text| Lock::parse(text, &file))
            .transpose()
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
            image: None,
            indexes: vec![
                IndexDate {
                    suite: "bookworm".into(),
                    date: "Sat, 08 Nov 2026 09:12:31 UTC".into(),
                },
                IndexDate {
                    suite: "bookworm-security".into(),
                    date: "Sat, 08 Nov 2026 08:00:00 UTC".into(),
                },
            ],
            steps: vec![LockedStep {
                name: "bootstrap".into(),
                packages: vec![debian::Locked {
                    name: "libssl3".into(),
                    version: "3.0.22-1~deb12u2".into(),
                    suite: "bookworm-security".into(),
                    architecture: "amd64".into(),
                    filename: "pool/updates/main/o/openssl/libssl3_3.0.22-1~deb12u2_amd64.deb"
                        .into(),
                    size: 70_000,
                    sha256: "ab".repeat(32),
                }],
            }],
        };
        let text = lock.to_text();
        assert!(text.starts_with("# The packages of base image `python`"));
        assert!(text.contains("[[step.package]]"), "{text}");
        assert!(
            text.contains("[[index]]\nsuite = \"bookworm-security\"\n"),
            "{text}"
        );
        assert!(
            text.contains("suite = \"bookworm-security\"\narch"),
            "{text}"
        );
        assert_eq!(Lock::parse(&text, "python.lock").unwrap(), lock);
        let err = Lock::parse("base = 1", "python.lock")
            .unwrap_err()
            .to_string();
        assert!(err.contains("python.lock"), "{err}");
    }

    /// A lock of a user's own `NUA_BASE_IMAGES`, written before suites were recorded: no
    /// `[[index]]`, no `suite` per package. Its packages are from the release suite.
    #[test]
    fn a_lock_without_suites_still_parses() {
        let text = "base = \"mine\"\nfingerprint = \"sha256:00\"\nsuite = \"bookworm\"\n\
            archive-date = \"Sat, 08 Nov 2026 09:12:31 UTC\"\n\n[[step]]\nname = \"bootstrap\"\n\n\
            [[step.package]]\nname = \"base-files\"\nversion = \"12.4+deb12u7\"\n\
            architecture = \"amd64\"\nfilename = \"pool/main/b/base-files/b.deb\"\n\
            size = 70000\nsha256 = \"ab\"\n";
        let lock = Lock::parse(text, "mine.lock").unwrap();
        assert!(lock.indexes.is_empty());
        let pkg = &lock.step("bootstrap").unwrap().packages[0];
        assert_eq!(pkg.suite, "bookworm");
        assert_eq!(pkg.version, "12.4+deb12u7");
    }
}
