//! The SPDX 2.3 JSON document (<https://spdx.github.io/spdx-spec/v2.3/>): one package for the
//! app, one per component, the document `DESCRIBES` the app and the app `CONTAINS` each
//! component.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{AppInfo, Component, Ecosystem};
use nua_oci as oci;

/// Where document namespaces live; the spec asks for a unique absolute URI, not a reachable one.
const NAMESPACE_BASE: &str = "https://nua.rocks/spdx/";

/// The SPDX 2.3 document of an image, as canonical JSON (keys sorted, no whitespace) ending
/// with a newline: the same inputs give the same bytes.
///
/// Components are sorted (ecosystem, name, version) and listed once however they are given.
/// `created` is `source_date_epoch`, so the document does not change between two builds of
/// the same inputs; the namespace is derived from a digest of everything else in the document.
pub fn spdx_json(app: &AppInfo<'_>, source_date_epoch: u64, components: &[Component]) -> Vec<u8> {
    let mut components = components.to_vec();
    components.sort();
    components.dedup();

    let mut ids = SpdxIds::default();
    let app_id = ids.unique(&format!("app-{}", app.id));
    let mut app_package = package(&app_id, app.id, app.version, app.license);
    app_package["primaryPackagePurpose"] = json!("CONTAINER");
    let mut packages = vec![app_package];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", &app_id)];
    for component in &components {
        let id = ids.unique(&component_id(component));
        let mut package = package(
            &id,
            &component.name,
            &component.version,
            component.license.as_deref(),
        );
        package["externalRefs"] = json!([{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": component.purl(),
        }]);
        packages.push(package);
        relationships.push(relationship(&app_id, "CONTAINS", &id));
    }

    let mut document = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": app.image_tag,
        "creationInfo": {
            "created": oci::image::rfc3339(source_date_epoch),
            "creators": [concat!("Tool: nua-pack-", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    });
    // Two different images must not share a namespace, and one image must keep its own:
    // the digest of the document without it does both.
    let digest = oci::Digest::of(&canonical(&document));
    document["documentNamespace"] = json!(format!(
        "{NAMESPACE_BASE}{}-{}",
        sanitize(app.id),
        digest.hex()
    ));
    let mut bytes = canonical(&document);
    bytes.push(b'\n');
    bytes
}

fn canonical(value: &Value) -> Vec<u8> {
    oci::canonical::to_vec(value).expect("a JSON value always serializes")
}

/// A package without files: `filesAnalyzed` false, so no verification code is required;
/// nothing concluded, and a declared license only when it is a known SPDX id.
fn package(id: &str, name: &str, version: &str, license: Option<&str>) -> Value {
    let declared = license.and_then(spdx_license_id).unwrap_or("NOASSERTION");
    json!({
        "SPDXID": id,
        "name": name,
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared,
        "copyrightText": "NOASSERTION",
    })
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({
        "spdxElementId": from,
        "relationshipType": kind,
        "relatedSpdxElement": to,
    })
}

/// The SPDXID a component asks for before collisions are resolved: its ecosystem, name,
/// version and (Debian) architecture, since one name can be installed for two architectures.
fn component_id(component: &Component) -> String {
    let ecosystem = match component.ecosystem {
        Ecosystem::Debian => "deb",
        Ecosystem::Python => "pypi",
        Ecosystem::Npm => "npm",
    };
    let name = component.name.trim_start_matches('@');
    let mut id = format!("{ecosystem}-{name}-{}", component.version);
    if let Some(arch) = &component.architecture {
        id.push('-');
        id.push_str(arch);
    }
    id
}

/// SPDXIDs handed out so far. The spec allows only letters, digits, `.` and `-` after
/// `SPDXRef-`, so names are sanitized, which can make two of them equal (`a+b`, `a-b`):
/// the later one gets a `-2`, `-3`… suffix. Components come sorted, so the same inputs
/// always get the same ids.
#[derive(Default)]
struct SpdxIds {
    taken: BTreeSet<String>,
}

impl SpdxIds {
    fn unique(&mut self, wanted: &str) -> String {
        let base = format!("SPDXRef-{}", sanitize(wanted));
        let mut id = base.clone();
        let mut n = 1;
        while self.taken.contains(&id) {
            n += 1;
            id = format!("{base}-{n}");
        }
        self.taken.insert(id.clone());
        id
    }
}

/// `value` with every character outside `[A-Za-z0-9.-]` replaced by `-`.
fn sanitize(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "unnamed".to_owned()
    } else {
        clean
    }
}

/// SPDX license ids common among Debian, PyPI and npm packages (all on the SPDX license
/// list, none deprecated). A declared license outside this list is not guessed at: the
/// document says `NOASSERTION` rather than risk an invalid license expression.
const LICENSE_IDS: &[&str] = &[
    "0BSD",
    "AFL-2.1",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-2.0",
    "BlueOak-1.0.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC0-1.0",
    "EPL-1.0",
    "EPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "HPND",
    "ISC",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "MIT",
    "MIT-0",
    "MPL-2.0",
    "OFL-1.1",
    "Python-2.0",
    "Unlicense",
    "WTFPL",
    "Zlib",
];

/// The SPDX license id `declared` is, in its canonical spelling (ids match
/// case-insensitively, SPDX 2.3 annex D), when it is one plain id this module knows.
pub fn spdx_license_id(declared: &str) -> Option<&'static str> {
    let declared = declared.trim();
    LICENSE_IDS
        .iter()
        .copied()
        .find(|id| id.eq_ignore_ascii_case(declared))
}

#[cfg(test)]
mod tests {
    use super::super::tests::component;
    use super::*;

    fn debian(name: &str, version: &str, arch: &str) -> Component {
        Component {
            architecture: Some(arch.to_owned()),
            distro: Some("debian-12".to_owned()),
            ..component(Ecosystem::Debian, name, version)
        }
    }

    const APP: AppInfo<'static> = AppInfo {
        id: "flask-hello",
        version: "1.0",
        image_tag: "nua-flask-hello:1.0-1",
        license: Some("mit"),
    };

    /// Every tricky case: epochs, multiarch, scoped npm, names that sanitize alike,
    /// duplicates, licenses known and not.
    fn example_components() -> Vec<Component> {
        let mut express = component(Ecosystem::Npm, "express", "4.19.2");
        express.license = Some("MIT".to_owned());
        let mut flask = component(Ecosystem::Python, "Flask", "3.0.3");
        flask.license = Some("BSD".to_owned());
        let components = vec![
            express.clone(),
            component(Ecosystem::Npm, "@types/node", "20.14.2"),
            component(Ecosystem::Npm, "types/node", "20.14.2"),
            flask,
            component(Ecosystem::Python, "typing_extensions", "4.12.2"),
            debian("bsdutils", "1:2.38.1-5+b1", "amd64"),
            debian("libc6", "2.36-9+deb12u7", "amd64"),
            debian("libc6", "2.36-9+deb12u7", "i386"),
            debian("libstdc++6", "12.2.0-14", "amd64"),
            express,
        ];
        components
    }

    fn example() -> Vec<u8> {
        spdx_json(&APP, 1_704_067_200, &example_components())
    }

    fn parsed() -> Value {
        serde_json::from_slice(&example()).unwrap()
    }

    #[test]
    fn document_header() {
        let doc = parsed();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["dataLicense"], "CC0-1.0");
        assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
        assert_eq!(doc["name"], "nua-flask-hello:1.0-1");
        assert_eq!(doc["creationInfo"]["created"], "2024-01-01T00:00:00Z");
        assert_eq!(
            doc["creationInfo"]["creators"][0],
            format!("Tool: nua-pack-{}", env!("CARGO_PKG_VERSION"))
        );
        let namespace = doc["documentNamespace"].as_str().unwrap();
        assert!(namespace.starts_with("https://nua.rocks/spdx/flask-hello-"));
        assert!(!namespace.contains('#'));
    }

    #[test]
    fn ids_are_valid_unique_and_sorted_packages() {
        let doc = parsed();
        let packages = doc["packages"].as_array().unwrap();
        // The app, then 9 components: the duplicate express is listed once.
        assert_eq!(packages.len(), 10);
        let ids: Vec<&str> = packages
            .iter()
            .map(|p| p["SPDXID"].as_str().unwrap())
            .collect();
        for id in &ids {
            let rest = id.strip_prefix("SPDXRef-").unwrap();
            assert!(
                rest.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
                "{id}"
            );
        }
        assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len());
        assert_eq!(
            ids,
            [
                "SPDXRef-app-flask-hello",
                "SPDXRef-deb-bsdutils-1-2.38.1-5-b1-amd64",
                "SPDXRef-deb-libc6-2.36-9-deb12u7-amd64",
                "SPDXRef-deb-libc6-2.36-9-deb12u7-i386",
                "SPDXRef-deb-libstdc--6-12.2.0-14-amd64",
                "SPDXRef-pypi-Flask-3.0.3",
                "SPDXRef-pypi-typing-extensions-4.12.2",
                "SPDXRef-npm-types-node-20.14.2",
                "SPDXRef-npm-express-4.19.2",
                "SPDXRef-npm-types-node-20.14.2-2",
            ]
        );
    }

    #[test]
    fn purls_and_licenses() {
        let doc = parsed();
        let purls: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
            .collect();
        assert_eq!(purls.len(), 9);
        assert!(
            purls.contains(&"pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64&distro=debian-12")
        );
        assert!(purls.contains(&"pkg:npm/%40types/node@20.14.2"));
        assert!(purls.contains(&"pkg:pypi/typing-extensions@4.12.2"));
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(packages[0]["licenseDeclared"], "MIT");
        assert_eq!(packages[5]["licenseDeclared"], "NOASSERTION"); // Flask's "BSD"
        assert_eq!(packages[8]["licenseDeclared"], "MIT");
        assert!(packages
            .iter()
            .all(|p| p["licenseConcluded"] == "NOASSERTION"));
        assert_eq!(
            packages[1]["externalRefs"][0]["referenceCategory"],
            "PACKAGE-MANAGER"
        );
    }

    #[test]
    fn relationships_describe_the_app_which_contains_the_rest() {
        let doc = parsed();
        let relationships = doc["relationships"].as_array().unwrap();
        assert_eq!(relationships.len(), 10);
        assert_eq!(relationships[0]["spdxElementId"], "SPDXRef-DOCUMENT");
        assert_eq!(relationships[0]["relationshipType"], "DESCRIBES");
        assert_eq!(
            relationships[0]["relatedSpdxElement"],
            "SPDXRef-app-flask-hello"
        );
        assert!(relationships[1..].iter().all(|r| {
            r["spdxElementId"] == "SPDXRef-app-flask-hello" && r["relationshipType"] == "CONTAINS"
        }));
    }

    #[test]
    fn same_inputs_same_bytes_other_inputs_other_namespace() {
        assert_eq!(example(), example());
        let bytes = example();
        assert!(bytes.ends_with(b"}\n"));
        let one = spdx_json(&APP, 0, &[]);
        let two = spdx_json(&APP, 0, &[component(Ecosystem::Npm, "a", "1")]);
        let namespace = |bytes: &[u8]| {
            let doc: Value = serde_json::from_slice(bytes).unwrap();
            doc["documentNamespace"].as_str().unwrap().to_owned()
        };
        assert_ne!(namespace(&one), namespace(&two));
    }

    #[test]
    fn license_ids_match_case_insensitively() {
        assert_eq!(spdx_license_id(" apache-2.0 "), Some("Apache-2.0"));
        assert_eq!(spdx_license_id("MIT OR Apache-2.0"), None);
        assert_eq!(spdx_license_id("BSD"), None);
    }

    /// Writes the example document where `NUA_SBOM_EXAMPLE` says, for an external validator:
    /// `NUA_SBOM_EXAMPLE=/tmp/sbom.json cargo test --lib build::sbom` then
    /// `pyspdxtools -i /tmp/sbom.json`.
    #[test]
    fn write_example_for_validators() {
        if let Some(path) = std::env::var_os("NUA_SBOM_EXAMPLE") {
            // Every license id this module may write, so the validator checks them all.
            let mut components = example_components();
            for id in LICENSE_IDS {
                let mut c = component(Ecosystem::Npm, &format!("licensed-{id}"), "1.0.0");
                c.license = Some((*id).to_owned());
                components.push(c);
            }
            std::fs::write(path, spdx_json(&APP, 1_704_067_200, &components)).unwrap();
        }
    }
}
