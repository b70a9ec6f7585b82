//! The software bill of materials every image carries at `/nua/metadata/sbom.json`: an SPDX 2.3
//! JSON document listing the Debian packages, the Python packages of `/nua/venv` and the npm
//! packages of the app's `node_modules`, each with a package URL (purl) that vulnerability
//! scanners match on.
//!
//! Everything here is pure: the build reads the files out of the image's root filesystem and
//! hands their bytes to [`debian_components`], [`python_components`] and [`npm_components`],
//! then writes what [`spdx_json`] returns. No file system, no network, no clock: the same
//! inputs give the same bytes, so the metadata layer keeps its digest from build to build.
//!
//! It does not scan files (`filesAnalyzed` is false for every package) and does not guess
//! licenses: a package gets a declared license only when it declares a plain SPDX license id.

mod npm;
mod parse;
mod spdx;

pub use npm::{npm_components, NpmInstall};
pub use parse::{debian_components, python_components, DistInfo};
pub use spdx::{spdx_json, spdx_license_id};

/// Where `/nua/metadata/sbom.json` is in the image.
pub use nua_config::layout::in_layer::SBOM_FILE;

/// The package manager a component was installed by. The order of the variants is the order
/// of the packages in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ecosystem {
    Debian,
    Python,
    Npm,
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Component {
    pub ecosystem: Ecosystem,
    /// The name as its package manager spells it (`libc6`, `Flask`, `@types/node`).
    pub name: String,
    pub version: String,
    /// Debian only: the dpkg architecture (`amd64`, `all`).
    pub architecture: Option<String>,
    /// The license the package declares, as written; only a plain SPDX id reaches the
    /// document (see [`spdx_license_id`]).
    pub license: Option<String>,
    /// Debian only: the distribution it was installed from (`debian-12`), for the purl.
    pub distro: Option<String>,
}

impl Component {
    /// The package URL (<https://github.com/package-url/purl-spec>) of the component, in
    /// canonical form: what scanners such as grype and trivy look packages up by.
    pub fn purl(&self) -> String {
        let version = purl_encode(&self.version);
        match self.ecosystem {
            Ecosystem::Debian => {
                let distro = self.distro.as_deref().unwrap_or_default();
                // The purl namespace is the vendor: `debian` for `debian-12`.
                let vendor = match distro.split('-').next() {
                    Some(v) if !v.is_empty() => v.to_ascii_lowercase(),
                    _ => "debian".to_owned(),
                };
                // Qualifiers are sorted by key in a canonical purl.
                let mut qualifiers = Vec::new();
                if let Some(arch) = self.architecture.as_deref().filter(|a| !a.is_empty()) {
                    qualifiers.push(format!("arch={}", purl_encode(arch)));
                }
                if !distro.is_empty() {
                    qualifiers.push(format!("distro={}", purl_encode(distro)));
                }
                let mut purl = format!(
                    "pkg:deb/{}/{}@{version}",
                    purl_encode(&vendor),
                    purl_encode(&self.name)
                );
                if !qualifiers.is_empty() {
                    purl.push('?');
                    purl.push_str(&qualifiers.join("&"));
                }
                purl
            }
            Ecosystem::Python => format!("pkg:pypi/{}@{version}", pep503_name(&self.name)),
            Ecosystem::Npm => {
                // The purl-spec npm type: the scope is the namespace, both lowercased.
                let name = self.name.to_lowercase();
                match name.split_once('/') {
                    Some((scope, name)) if scope.starts_with('@') => format!(
                        "pkg:npm/{}/{}@{version}",
                        purl_encode(scope),
                        purl_encode(name)
                    ),
                    _ => format!("pkg:npm/{}@{version}", purl_encode(&name)),
                }
            }
        }
    }
}

/// The normalized name of a Python project (PEP 503): lowercase, every run of `-`, `_` and
/// `.` replaced by one `-`. The purl-spec pypi type asks for the same, and it is how pip
/// matches `Flask`, `flask` and `typing_extensions`/`typing-extensions`.
pub fn pep503_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    out
}

/// Percent-encode a purl component. The purl spec leaves letters, digits, `.-_~` and the
/// colon alone ("the colon ':', whether used as a Separator Character or otherwise" MUST
/// NOT be encoded, hence `attr@1:2.4.47-2%2Bb1` in its test suite) and encodes everything
/// else, UTF-8 byte by byte.
fn purl_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What the document says about the app the image runs.
#[derive(Debug, Clone, Copy)]
pub struct AppInfo<'a> {
    /// The app id of the nua-config.
    pub id: &'a str,
    pub version: &'a str,
    /// The image's name (`nua-<id>:<version>-<release>`), which names the document.
    pub image_tag: &'a str,
    /// The app's license (`[build] license`), as written.
    pub license: Option<&'a str>,
}

/// Why the inputs of the SBOM could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    /// The dpkg status file of the image is not valid deb822.
    #[error("cannot list the Debian packages of the image")]
    DpkgStatus {
        #[source]
        source: nua_debian::Error,
    },
    /// The npm lockfile is not JSON, or not the shape npm writes.
    #[error("cannot list the npm packages of the app: the lockfile {reason}")]
    NpmLockfile {
        reason: String,
        #[source]
        source: Option<serde_json::Error>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component with only what every ecosystem has.
    pub(super) fn component(ecosystem: Ecosystem, name: &str, version: &str) -> Component {
        Component {
            ecosystem,
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: None,
            license: None,
            distro: None,
        }
    }

    /// `name@version` of each component, to compare lists at a glance.
    pub(super) fn ids(components: &[Component]) -> Vec<String> {
        components
            .iter()
            .map(|c| format!("{}@{}", c.name, c.version))
            .collect()
    }

    #[rstest::rstest]
    // The purl spec's own cases: the epoch colon stays, `+` is encoded.
    #[case(
        Ecosystem::Debian,
        "attr",
        "1:2.4.47-2+b1",
        Some("amd64"),
        Some("debian-12"),
        "pkg:deb/debian/attr@1:2.4.47-2%2Bb1?arch=amd64&distro=debian-12"
    )]
    #[case(
        Ecosystem::Debian,
        "attr",
        "1:2.4.47-2+b1",
        None,
        Some("ubuntu-22.04"),
        "pkg:deb/ubuntu/attr@1:2.4.47-2%2Bb1?distro=ubuntu-22.04"
    )]
    #[case(
        Ecosystem::Python,
        "My.PyPI_.--._Package",
        "1.11.1.dev1",
        None,
        None,
        "pkg:pypi/my-pypi-package@1.11.1.dev1"
    )]
    #[case(
        Ecosystem::Python,
        "typing_extensions",
        "4.12.2",
        None,
        None,
        "pkg:pypi/typing-extensions@4.12.2"
    )]
    #[case(
        Ecosystem::Python,
        "torch",
        "2.3.0+cpu",
        None,
        None,
        "pkg:pypi/torch@2.3.0%2Bcpu"
    )]
    #[case(
        Ecosystem::Npm,
        "@Angular/animation",
        "12.3.1",
        None,
        None,
        "pkg:npm/%40angular/animation@12.3.1"
    )]
    #[case(
        Ecosystem::Npm,
        "JSONStream",
        "1.3.5",
        None,
        None,
        "pkg:npm/jsonstream@1.3.5"
    )]
    fn purls(
        #[case] ecosystem: Ecosystem,
        #[case] name: &str,
        #[case] version: &str,
        #[case] architecture: Option<&str>,
        #[case] distro: Option<&str>,
        #[case] expected: &str,
    ) {
        let c = Component {
            architecture: architecture.map(str::to_owned),
            distro: distro.map(str::to_owned),
            ..component(ecosystem, name, version)
        };
        assert_eq!(c.purl(), expected);
    }

    #[test]
    fn pep_503_names() {
        assert_eq!(pep503_name("zope.interface"), "zope-interface");
        assert_eq!(pep503_name("Ruamel__Yaml..Clib"), "ruamel-yaml-clib");
    }
}
