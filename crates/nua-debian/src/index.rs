//! Fetch the signed `InRelease` and the `Packages.xz` indexes of every suite of a source,
//! verified, into one [`Index`] of the packages available for one architecture: for each
//! name the highest version across the suites wins, and each package remembers the suite it
//! came from (its URL depends on it).
//!
//! A tie goes to the suite listed later: a point release copies the security fixes into the
//! release while `SUITE-security` keeps them until the next fix, so a fix stays "from
//! `SUITE-security`" (what `nua-pack base outdated` and the tests rely on) across point
//! releases instead of changing suite at each one.
//!
//! Each `Packages.xz` is stored in the blob store under the SHA256 that InRelease lists for
//! it, so a later run downloads only InRelease (a few hundred KiB) when nothing changed.

use std::collections::BTreeMap;
use std::io::{BufReader, Read, Write};

use nua_oci::{self as oci, BlobStore, Digest};

use super::deb822;
use super::error::{Error, HttpKind, Result};
use super::pgp::{verify_cleartext, Keyring};
use super::relation::{self, Dep};
use super::release::{self, Release};
use super::resolve::Locked;
use super::source::Source;
use super::status::Installed;
use super::version::Version;
use nua_oci::http::{BodyError, Http};

/// One binary package of the index (relations kept as text, parsed when resolving).
#[derive(Debug, Clone)]
pub struct Package {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub multi_arch: Option<String>,
    pub essential: bool,
    pub priority: String,
    pub depends: String,
    pub pre_depends: String,
    pub provides: Vec<Dep>,
    /// The suite whose index lists this version (`bookworm-security`).
    pub suite: String,
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// The packages of one or more suites for one architecture (newest version of each name).
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub arch: String,
    /// The newest `Date` of the signed `InRelease` files the index was read from.
    pub date: Option<String>,
    /// Each suite read, in order, with the `Date` of its `InRelease`.
    pub dates: Vec<(String, String)>,
    pub(crate) packages: BTreeMap<String, Package>,
    /// Virtual name → (provider, provided version), providers sorted by name.
    pub(crate) providers: BTreeMap<String, Vec<(String, Option<Version>)>>,
}

impl Index {
    /// A package by name.
    pub fn get(&self, name: &str) -> Option<&Package> {
        self.packages.get(name)
    }

    /// `pkg`, resolved from this index earlier, as an installed package (with the
    /// `Provides` the index gives it), for resolving what is added on top of it.
    pub fn installed(&self, pkg: &Locked) -> Installed {
        let provides = self
            .get(&pkg.name)
            .map(|p| {
                p.provides
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        Installed {
            name: pkg.name.clone(),
            version: pkg.version.clone(),
            architecture: pkg.architecture.clone(),
            provides,
        }
    }

    /// Number of packages.
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    /// Whether the index has no package.
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// Build an index from `Packages` data; `file` names it in errors.
    pub fn from_packages(input: impl Read, arch: &str, file: &str) -> Result<Index> {
        let mut index = Index {
            arch: arch.to_owned(),
            ..Index::default()
        };
        index.add_packages(input, "", file)?;
        Ok(index)
    }

    /// Merge the `Packages` data of `suite` into the index: a version higher than the one
    /// there replaces it, and so does the same version from another suite (suites are added
    /// in order: a tie goes to the later one, see the module doc).
    pub fn add_packages(&mut self, input: impl Read, suite: &str, file: &str) -> Result<()> {
        let reader = deb822::Reader::new(BufReader::with_capacity(1 << 16, input), file);
        for para in reader {
            let para = para?;
            let field = |name: &str| para.get(name).unwrap_or("");
            let architecture = field("Architecture");
            if architecture != self.arch && architecture != "all" {
                continue;
            }
            let missing = |what: &str| Error::Parse {
                file: file.to_owned(),
                line: 0,
                reason: format!("package `{}` has no valid `{what}`", field("Package")),
            };
            let pkg = Package {
                name: para
                    .get("Package")
                    .ok_or_else(|| missing("Package"))?
                    .to_owned(),
                version: Version::parse(field("Version"))?,
                architecture: architecture.to_owned(),
                multi_arch: para.get("Multi-Arch").map(str::to_owned),
                essential: field("Essential") == "yes",
                priority: field("Priority").to_owned(),
                depends: field("Depends").to_owned(),
                pre_depends: field("Pre-Depends").to_owned(),
                provides: relation::parse_provides(field("Provides"), &self.arch)?,
                suite: suite.to_owned(),
                filename: para
                    .get("Filename")
                    .ok_or_else(|| missing("Filename"))?
                    .to_owned(),
                size: field("Size").parse().map_err(|_| missing("Size"))?,
                sha256: para
                    .get("SHA256")
                    .ok_or_else(|| missing("SHA256"))?
                    .to_owned(),
            };
            let newer = self.packages.get(&pkg.name).is_none_or(|old| {
                pkg.version > old.version || (pkg.version == old.version && old.suite != suite)
            });
            if newer {
                self.packages.insert(pkg.name.clone(), pkg);
            }
        }
        self.providers.clear();
        for pkg in self.packages.values() {
            for p in &pkg.provides {
                let version = p.version.as_ref().map(|(_, v)| v.clone());
                let list = self.providers.entry(p.name.clone()).or_default();
                list.push((pkg.name.clone(), version));
            }
        }
        Ok(())
    }
}

/// Fetch and verify the indexes of every suite of `src` (see the module doc).
pub fn fetch_index(src: &Source, store: &BlobStore) -> Result<Index> {
    let http = Http::new()?;
    let mut index = Index {
        arch: src.arch.clone(),
        ..Index::default()
    };
    let mut newest: Option<(u64, String)> = None;
    for suite in &src.suites {
        let release = fetch_release(src, suite, &http)?;
        let date = release.date.clone().unwrap_or_default();
        if let Some(t) = release::parse_date(&date) {
            if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                newest = Some((t, date.clone()));
            }
        }
        index.dates.push((suite.clone(), date));
        fetch_suite(src, suite, &release, store, &http, &mut index)?;
    }
    index.date = newest.map(|(_, d)| d);
    Ok(index)
}

/// Fetch the `Packages.xz` of each component of one suite (unless in the store) into `index`.
fn fetch_suite(
    src: &Source,
    suite: &str,
    release: &Release,
    store: &BlobStore,
    http: &Http,
    index: &mut Index,
) -> Result<()> {
    for component in &src.components {
        let dir = format!("{component}/binary-{}", src.arch);
        let path = format!("{dir}/Packages.xz");
        let entry = release.file(&path)?;
        let digest = Digest::from_hex(&entry.sha256)?;
        if !store.contains(&digest) {
            let url = if release.acquire_by_hash {
                src.dists_url(suite, &format!("{dir}/by-hash/SHA256/{}", entry.sha256))
            } else {
                src.dists_url(suite, &path)
            };
            let mismatch = |expected: String, actual: String| Error::IndexMismatch {
                suite: suite.to_owned(),
                file: path.clone(),
                expected,
                actual,
            };
            http.get(&url, |body| {
                let mut blob = store.writer().map_err(|e| BodyError::Fatal(e.into()))?;
                std::io::copy(&mut body.take(entry.size + 1), &mut blob)?;
                blob.flush()?;
                if blob.len() != entry.size {
                    let (want, got) = (entry.size, blob.len());
                    return Err(BodyError::Fatal(mismatch(
                        format!("{want} bytes"),
                        format!("{got} bytes"),
                    )));
                }
                blob.commit(Some(&digest)).map_err(|e| {
                    BodyError::Fatal(match e {
                        oci::Error::DigestMismatch {
                            expected, actual, ..
                        } => mismatch(expected.to_string(), actual.to_string()),
                        other => other.into(),
                    })
                })
            })?;
        }
        let blob = store.open_blob(&digest)?;
        let xz = liblzma::read::XzDecoder::new(BufReader::new(blob));
        index.add_packages(xz, suite, &format!("dists/{suite}/{path}"))?;
    }
    Ok(())
}

/// Download the InRelease of `suite`, check its signature and (outside snapshots) its
/// `Valid-Until`. A suite the mirror does not have (404) is [`Error::NoSuite`].
fn fetch_release(src: &Source, suite: &str, http: &Http) -> Result<Release> {
    let url = src.dists_url(suite, "InRelease");
    let bytes = http
        .get_bytes(&url, 64 << 20)
        .map_err(|e| match Error::from(e) {
            Error::Http {
                kind: HttpKind::Status(404),
                url,
                ..
            } => Error::NoSuite {
                suite: suite.to_owned(),
                url,
            },
            other => other,
        })?;
    verify_suite_release(src, suite, &bytes, release::now())
}

/// The raw (unverified) InRelease of the release suite of `src`, for callers that keep or
/// inspect it.
pub fn fetch_in_release(src: &Source) -> Result<Vec<u8>> {
    Ok(Http::new()?.get_bytes(&src.dists_url(&src.suite, "InRelease"), 64 << 20)?)
}

/// Verify an InRelease of the release suite of `src` as fetched (`now` in Unix seconds) and
/// parse it.
pub fn verify_release(src: &Source, in_release: &[u8], now: u64) -> Result<Release> {
    verify_suite_release(src, &src.suite, in_release, now)
}

fn verify_suite_release(src: &Source, suite: &str, in_release: &[u8], now: u64) -> Result<Release> {
    let keyring = Keyring::load(&src.keyring)?;
    let text = verify_cleartext(in_release, &keyring, suite, &src.keyring)?;
    let release = Release::parse(&text, suite)?;
    if src.snapshot.is_none() {
        release.check_valid_until(now)?;
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_version_and_arch_filter() {
        let text = "Package: a\nVersion: 1.0\nArchitecture: amd64\nFilename: p/a1.deb\nSize: 1\nSHA256: x\n\n\
                    Package: a\nVersion: 1.1\nArchitecture: amd64\nFilename: p/a2.deb\nSize: 1\nSHA256: x\nProvides: v (= 2)\n\n\
                    Package: b\nVersion: 9\nArchitecture: i386\nFilename: p/b.deb\nSize: 1\nSHA256: x\n";
        let index = Index::from_packages(text.as_bytes(), "amd64", "Packages").unwrap();
        assert_eq!(index.len(), 1);
        assert_eq!(index.get("a").unwrap().filename, "p/a2.deb");
        assert_eq!(index.providers["v"][0].0, "a");
    }

    fn packages(entries: &[(&str, &str, &str)]) -> String {
        let mut text = String::new();
        for (name, version, extra) in entries {
            text.push_str(&format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{extra}\
                 Filename: pool/{name}_{version}.deb\nSize: 1\nSHA256: x\n\n"
            ));
        }
        text
    }

    #[test]
    fn suites_merge_highest_version_later_suite_on_a_tie() {
        let mut index = Index {
            arch: "amd64".into(),
            ..Index::default()
        };
        let main = packages(&[
            ("libssl3", "3.0.20-1~deb12u2", ""),
            ("tzdata", "2025b-0+deb12u1", ""),
            ("base-files", "12.4+deb12u11", ""),
            ("mawk", "1.3.4", "Provides: awk\n"),
        ]);
        let updates = packages(&[("tzdata", "2025b-0+deb12u2", "")]);
        // The same version as the release's (after a point release): still a security fix.
        let security = packages(&[
            ("libssl3", "3.0.22-1~deb12u2", ""),
            ("base-files", "12.4+deb12u11", ""),
            ("tzdata", "2025b-0+deb12u1", ""),
            ("gawk", "5.2", "Provides: awk\n"),
        ]);
        for (suite, text) in [
            ("bookworm", &main),
            ("bookworm-updates", &updates),
            ("bookworm-security", &security),
        ] {
            index.add_packages(text.as_bytes(), suite, suite).unwrap();
        }
        let got = |name: &str| {
            let p = index.get(name).unwrap();
            (p.version.to_string(), p.suite.as_str())
        };
        assert_eq!(
            got("libssl3"),
            ("3.0.22-1~deb12u2".into(), "bookworm-security")
        );
        assert_eq!(
            got("tzdata"),
            ("2025b-0+deb12u2".into(), "bookworm-updates")
        );
        assert_eq!(
            got("base-files"),
            ("12.4+deb12u11".into(), "bookworm-security")
        );
        let libssl3 = index.get("libssl3").unwrap();
        assert_eq!(libssl3.filename, "pool/libssl3_3.0.22-1~deb12u2.deb");
        // Providers come from every suite.
        let awk: Vec<&str> = index.providers["awk"]
            .iter()
            .map(|p| p.0.as_str())
            .collect();
        assert_eq!(awk, ["gawk", "mawk"]);
        // What is resolved carries its suite into the lock.
        let request = crate::Request {
            include: vec!["libssl3".into()],
            ..crate::Request::default()
        };
        let locked = index.resolve(&request, &[]).unwrap();
        assert_eq!(locked[0].suite, "bookworm-security");
    }

    #[test]
    fn missing_fields_name_the_package() {
        let text = "Package: a\nVersion: 1.0\nArchitecture: all\nFilename: p/a.deb\nSHA256: x\n";
        let err = Index::from_packages(text.as_bytes(), "amd64", "Packages").unwrap_err();
        assert!(err.to_string().contains("`a` has no valid `Size`"), "{err}");
    }
}
