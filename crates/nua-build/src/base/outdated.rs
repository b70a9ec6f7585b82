//! `nua-pack base outdated`: the locked packages of a base that the live archive has a newer
//! version of, security fixes first (issue 14). It compares each lock with the indexes of
//! its bootstrap's suites; it does not change any lock (`nua-pack base lock` does).

use std::collections::BTreeMap;

use serde::Serialize;

use super::catalog::Catalog;
use super::lock::Lock;
use super::plan::index_of;
use super::BaseError;
use nua_debian::{self as debian, version::Version};
use nua_oci::BlobStore;

/// One locked package the archive has a newer version of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outdated {
    pub base: String,
    /// The step of the lock that installs it (`bootstrap` or a layer's name).
    pub step: String,
    pub package: String,
    /// The version the lock pins, and the suite it was taken from.
    pub locked: String,
    pub locked_suite: String,
    /// The newest version of the archive, and its suite.
    pub available: String,
    pub suite: String,
    /// Whether the newer version is a security fix (it comes from a `*-security` suite).
    pub security: bool,
}

/// The outdated packages of the locks of `names` (every base when empty), security fixes
/// first, then by base, step and package. A base without a lock has nothing to compare.
pub fn outdated(
    catalog: &Catalog,
    names: &[String],
    mirror: Option<&str>,
    store: &BlobStore,
) -> Result<Vec<Outdated>, BaseError> {
    let names: Vec<String> = if names.is_empty() {
        catalog.names().map(str::to_owned).collect()
    } else {
        names.to_vec()
    };
    // One fetch per bootstrap: `python` and `ruby` share the indexes of `debian-bookworm`.
    let mut indexes: BTreeMap<String, debian::Index> = BTreeMap::new();
    let mut found = Vec::new();
    for name in &names {
        catalog.base(name)?;
        let Some(text) = catalog.lock_text(name) else {
            continue;
        };
        // A base on a registry image takes its packages from that image: its publisher
        // updates them (`base lock` pins the newest digest of its tag).
        if catalog.root_image(name)?.is_some() {
            continue;
        }
        let lock = Lock::parse(text, &format!("base-images/{name}.lock"))?;
        let bootstrap = catalog.chain(name)?[0].0.to_owned();
        if !indexes.contains_key(&bootstrap) {
            let (_, index) = index_of(catalog, name, mirror, store)?;
            indexes.insert(bootstrap.clone(), index);
        }
        found.extend(compare(&lock, &indexes[&bootstrap])?);
    }
    found.sort_by(|a, b| {
        (!a.security, &a.base, &a.step, &a.package).cmp(&(
            !b.security,
            &b.base,
            &b.step,
            &b.package,
        ))
    });
    Ok(found)
}

/// The packages of `lock` that `index` has a newer version of.
fn compare(lock: &Lock, index: &debian::Index) -> Result<Vec<Outdated>, BaseError> {
    let bad_version = |source| BaseError::Debian {
        base: lock.base.clone(),
        step: "lock".into(),
        source: Box::new(source),
    };
    let mut found = Vec::new();
    for step in &lock.steps {
        for pkg in &step.packages {
            let Some(live) = index.get(&pkg.name) else {
                continue;
            };
            let locked = Version::parse(&pkg.version).map_err(bad_version)?;
            if live.version > locked {
                found.push(Outdated {
                    base: lock.base.clone(),
                    step: step.name.clone(),
                    package: pkg.name.clone(),
                    locked: pkg.version.clone(),
                    locked_suite: pkg.suite.clone(),
                    available: live.version.to_string(),
                    suite: live.suite.clone(),
                    security: debian::is_security(&live.suite),
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::LockedStep;

    #[test]
    fn newer_versions_are_found_and_security_fixes_marked() {
        let mut index = debian::Index::default();
        index.arch = "amd64".into();
        let entry = |name: &str, version: &str| {
            format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
                 Filename: pool/{name}.deb\nSize: 1\nSHA256: x\n\n"
            )
        };
        let main = entry("libssl3", "3.0.20-1~deb12u2") + &entry("tzdata", "2025b");
        let updates = entry("tzdata", "2025c");
        let security = entry("libssl3", "3.0.22-1~deb12u2");
        for (suite, text) in [
            ("bookworm", main),
            ("bookworm-updates", updates),
            ("bookworm-security", security),
        ] {
            index.add_packages(text.as_bytes(), suite, suite).unwrap();
        }
        let pkg = |name: &str, version: &str| debian::Locked {
            name: name.into(),
            version: version.into(),
            suite: "bookworm".into(),
            architecture: "amd64".into(),
            filename: format!("pool/{name}.deb"),
            size: 1,
            sha256: "x".into(),
        };
        let lock = Lock {
            base: "b".into(),
            fingerprint: "sha256:00".into(),
            suite: "bookworm".into(),
            archive_date: String::new(),
            image: None,
            indexes: Vec::new(),
            steps: vec![LockedStep {
                name: "bootstrap".into(),
                packages: vec![
                    pkg("libssl3", "3.0.20-1~deb12u2"),
                    pkg("tzdata", "2025c"),
                    pkg("gone", "1"),
                ],
            }],
        };
        let found = compare(&lock, &index).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].package, "libssl3");
        assert_eq!(found[0].available, "3.0.22-1~deb12u2");
        assert_eq!(found[0].suite, "bookworm-security");
        assert!(found[0].security);
    }
}
