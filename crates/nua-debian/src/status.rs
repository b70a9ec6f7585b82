//! The dpkg status file (dpkg(1), `/var/lib/dpkg/status`): what is installed in a root.

use serde::{Deserialize, Serialize};

use super::deb822;
use super::error::Result;

/// A package a root already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The `Provides` field as written (empty when none).
    pub provides: String,
}

/// The packages of a status file whose files are on disk (any state but `not-installed`
/// and `config-files`), sorted by name.
pub fn parse_status(status: &[u8]) -> Result<Vec<Installed>> {
    let mut out = Vec::new();
    let reader = deb822::Reader::new(status, "/var/lib/dpkg/status");
    for para in reader {
        let para = para?;
        let state = para.get("Status").unwrap_or("");
        let on_disk = state
            .split_whitespace()
            .nth(2)
            .is_some_and(|s| s != "not-installed" && s != "config-files");
        let (Some(name), Some(version), true) = (para.get("Package"), para.get("Version"), on_disk)
        else {
            continue;
        };
        out.push(Installed {
            name: name.to_owned(),
            version: version.to_owned(),
            architecture: para.get("Architecture").unwrap_or("").to_owned(),
            provides: para.get("Provides").unwrap_or("").to_owned(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_packages_on_disk() {
        let status = b"Package: b\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\
                       Provides: x\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                       Package: a\nStatus: install ok unpacked\nVersion: 1:2-3\n";
        let got = parse_status(status).unwrap();
        let names: Vec<&str> = got.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(got[1].provides, "x");
        assert_eq!(got[0].version, "1:2-3");
    }
}
