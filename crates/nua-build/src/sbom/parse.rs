//! The package managers' own records of what they installed, read into [`Component`]s: the
//! dpkg status file and the `*.dist-info` folders of a Python environment (npm's lockfiles
//! are in [`super::npm`]).

use super::{Component, Ecosystem, SbomError};
use nua_debian::{self as debian, deb822};

/// The Debian packages whose files are in the image, from the content of
/// `/var/lib/dpkg/status`; `distro` (`debian-12`) goes into their purls. Packages removed
/// but not purged (`config-files`) have no files left and are not listed.
pub fn debian_components(status: &[u8], distro: &str) -> Result<Vec<Component>, SbomError> {
    let installed =
        debian::parse_status(status).map_err(|source| SbomError::DpkgStatus { source })?;
    Ok(sorted(
        installed
            .into_iter()
            .map(|package| Component {
                ecosystem: Ecosystem::Debian,
                name: package.name,
                version: package.version,
                architecture: Some(package.architecture).filter(|a| !a.is_empty()),
                license: None,
                distro: Some(distro.to_owned()).filter(|d| !d.is_empty()),
            })
            .collect(),
    ))
}

/// One `*.dist-info` folder of a Python environment's `site-packages`.
#[derive(Debug, Clone, Default)]
pub struct DistInfo {
    /// The folder's name, `Flask-3.0.3.dist-info`.
    pub dir_name: String,
    /// The content of its `METADATA` file, when it could be read.
    pub metadata: Option<Vec<u8>>,
}

/// The Python packages of an environment, one per `*.dist-info` folder.
///
/// `METADATA` is preferred when given: it has the project's name as published (the folder
/// name is escaped) and its license. Without it, the folder name is split as the "Recording
/// installed projects" spec writes it, `{name}-{version}.dist-info` with `-` escaped as `_`
/// in both parts, so the first `-` separates them. A folder that fits neither is skipped.
pub fn python_components(dist_infos: &[DistInfo]) -> Vec<Component> {
    let components = dist_infos
        .iter()
        .filter_map(|info| {
            let from_metadata = info.metadata.as_deref().and_then(core_metadata);
            let (name, version, license) = match from_metadata {
                Some(found) => found,
                None => {
                    let stem = info.dir_name.strip_suffix(".dist-info")?;
                    let (name, version) = stem.split_once('-')?;
                    (name.to_owned(), version.to_owned(), None)
                }
            };
            (!name.is_empty() && !version.is_empty()).then_some(Component {
                ecosystem: Ecosystem::Python,
                name,
                version,
                architecture: None,
                license,
                distro: None,
            })
        })
        .collect();
    sorted(components)
}

/// `Name`, `Version` and the license of a core metadata file (RFC 822 headers, then the
/// description). `License-Expression` (metadata 2.4) is an SPDX expression by definition;
/// the older `License` is free text and only useful when it happens to be an SPDX id.
fn core_metadata(metadata: &[u8]) -> Option<(String, String, Option<String>)> {
    let headers = deb822::Reader::new(metadata, "METADATA").next()?.ok()?;
    let name = headers.get("Name")?.to_owned();
    let version = headers.get("Version")?.to_owned();
    let license = headers
        .get("License-Expression")
        .or_else(|| headers.get("License"))
        .map(str::to_owned);
    Some((name, version, license))
}

/// Sorted by name then version, each component once: the order of the document.
pub(super) fn sorted(mut components: Vec<Component>) -> Vec<Component> {
    components.sort();
    components.dedup();
    components
}

#[cfg(test)]
mod tests {
    use super::super::tests::ids;
    use super::*;

    #[test]
    fn debian_skips_config_files_and_keeps_epochs() {
        let status = b"Package: libc6\nStatus: install ok installed\nPriority: optional\n\
Section: libs\nInstalled-Size: 12986\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\
Architecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u7\n\
Description: GNU C Library: Shared libraries\n Contains the standard libraries.\n\n\
Package: nginx-common\nStatus: deinstall ok config-files\nArchitecture: all\n\
Version: 1.22.1-9\nConffiles:\n /etc/nginx/nginx.conf 0123456789abcdef0123456789abcdef\n\n\
Package: bsdutils\nEssential: yes\nStatus: install ok installed\nArchitecture: amd64\n\
Source: util-linux (2.38.1-5)\nVersion: 1:2.38.1-5+b1\n";
        let got = debian_components(status, "debian-12").unwrap();
        assert_eq!(
            ids(&got),
            ["bsdutils@1:2.38.1-5+b1", "libc6@2.36-9+deb12u7"]
        );
        assert_eq!(
            got[0].purl(),
            "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12"
        );
        assert!(debian_components(b"Package a\n", "debian-12").is_err());
    }

    fn dist_info(dir_name: &str, metadata: Option<&str>) -> DistInfo {
        DistInfo {
            dir_name: dir_name.to_owned(),
            metadata: metadata.map(|m| m.as_bytes().to_vec()),
        }
    }

    #[test]
    fn python_from_folder_names() {
        let got = python_components(&[
            dist_info("typing_extensions-4.12.2.dist-info", None),
            dist_info("Flask-3.0.3.dist-info", None),
            dist_info("zope.interface-6.4.post2.dist-info", None),
            dist_info("ruamel.yaml.clib-0.2.8.dist-info", None),
            dist_info("__pycache__", None),
            dist_info("noversion.dist-info", None),
        ]);
        assert_eq!(
            ids(&got),
            [
                "Flask@3.0.3",
                "ruamel.yaml.clib@0.2.8",
                "typing_extensions@4.12.2",
                "zope.interface@6.4.post2",
            ]
        );
        let purls: Vec<String> = got.iter().map(Component::purl).collect();
        assert_eq!(
            purls,
            [
                "pkg:pypi/flask@3.0.3",
                "pkg:pypi/ruamel-yaml-clib@0.2.8",
                "pkg:pypi/typing-extensions@4.12.2",
                "pkg:pypi/zope-interface@6.4.post2",
            ]
        );
    }

    #[test]
    fn python_metadata_wins_over_the_folder_name() {
        let metadata = "Metadata-Version: 2.4\nName: Jinja2\nVersion: 3.1.4\n\
Summary: A very fast and expressive template engine.\nLicense-Expression: BSD-3-Clause\n\
Classifier: Programming Language :: Python\nRequires-Dist: MarkupSafe>=2.0\n\n\
Jinja is a fast, expressive, extensible templating engine.\n\nNot: a header\n";
        let got = python_components(&[
            dist_info("jinja2-3.1.4.dist-info", Some(metadata)),
            // Unreadable metadata falls back to the folder name.
            dist_info("MarkupSafe-2.1.5.dist-info", Some("not a header line\n")),
        ]);
        assert_eq!(ids(&got), ["Jinja2@3.1.4", "MarkupSafe@2.1.5"]);
        assert_eq!(got[0].license.as_deref(), Some("BSD-3-Clause"));
    }
}
