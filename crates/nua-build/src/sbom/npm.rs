//! npm's lockfiles read into [`Component`]s: what `npm ci` or `npm install` put in the app's
//! `node_modules`.

use serde_json::{Map, Value};

use super::parse::sorted;
use super::{Component, Ecosystem, SbomError};

/// How npm installed the tree a lockfile describes, which tells which of its entries are
/// on disk.
///
/// For the hidden lockfile `node_modules/.package-lock.json`, the default (omit nothing):
/// npm writes it from the tree actually installed. For a project's `package-lock.json`, say
/// what `npm ci`/`npm install` left out, since that lockfile lists every dependency.
#[derive(Debug, Clone, Default)]
pub struct NpmInstall {
    /// `--omit=dev` (or `NODE_ENV=production`).
    pub omit_dev: bool,
    /// `--omit=optional`.
    pub omit_optional: bool,
    /// `--omit=peer`.
    pub omit_peer: bool,
    /// The Node.js `process.arch` of the image (`x64`, `arm64`): packages restricted to other
    /// CPUs are skipped. `None` keeps them.
    pub cpu: Option<String>,
}

/// The npm packages of a lockfile: the `packages` map of lockfile versions 2 and 3 (keys
/// `node_modules/a/node_modules/@scope/b`), else the `dependencies` tree of version 1.
/// The root project, links to workspace folders and `file:` dependencies are the app's own
/// code, not components. Duplicates (one version installed at several paths) are listed once.
pub fn npm_components(lock_json: &[u8], install: &NpmInstall) -> Result<Vec<Component>, SbomError> {
    let lock: Value =
        serde_json::from_slice(lock_json).map_err(|source| SbomError::NpmLockfile {
            reason: "is not valid JSON".to_owned(),
            source: Some(source),
        })?;
    let malformed = |reason: &str| SbomError::NpmLockfile {
        reason: reason.to_owned(),
        source: None,
    };
    let lock = lock
        .as_object()
        .ok_or_else(|| malformed("is not a JSON object"))?;
    let mut out = Vec::new();
    if let Some(packages) = lock.get("packages") {
        let packages = packages
            .as_object()
            .ok_or_else(|| malformed("has a `packages` that is not an object"))?;
        for (path, entry) in packages {
            // "" is the root project; keys without `node_modules/` are workspace folders.
            let Some((_, key_name)) = path.rsplit_once("node_modules/") else {
                continue;
            };
            let Some(entry) = entry.as_object() else {
                return Err(malformed(&format!(
                    "has an entry `{path}` that is not an object"
                )));
            };
            if flag(entry, "link") || !installed(entry, install) {
                continue;
            }
            // An alias (`"foo": "npm:bar@1"`) is installed under its alias, named in `name`.
            let name = entry
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(key_name);
            if let Some(version) = entry.get("version").and_then(Value::as_str) {
                out.push(npm_component(name, version, entry));
            }
        }
    } else if let Some(dependencies) = lock.get("dependencies") {
        collect_v1(dependencies, install, &mut out).map_err(|e| malformed(&e))?;
    } else {
        return Err(malformed("has neither `packages` nor `dependencies`"));
    }
    Ok(sorted(out))
}

/// The `dependencies` tree of a version 1 lockfile, nested `dependencies` included.
fn collect_v1(tree: &Value, install: &NpmInstall, out: &mut Vec<Component>) -> Result<(), String> {
    let tree = tree
        .as_object()
        .ok_or("has a `dependencies` that is not an object")?;
    for (key, entry) in tree {
        let entry = entry
            .as_object()
            .ok_or_else(|| format!("has a dependency `{key}` that is not an object"))?;
        if !installed(entry, install) {
            continue;
        }
        let version = entry.get("version").and_then(Value::as_str).unwrap_or("");
        // Version 1 writes an alias as `"version": "npm:bar@1.0.0"`.
        let (name, version) = match version
            .strip_prefix("npm:")
            .and_then(|a| a.rsplit_once('@'))
        {
            Some((name, version)) if !name.is_empty() => (name, version),
            _ => (key.as_str(), version),
        };
        if !version.is_empty() && !version.starts_with("file:") {
            out.push(npm_component(name, version, entry));
        }
        if let Some(nested) = entry.get("dependencies") {
            collect_v1(nested, install, out)?;
        }
    }
    Ok(())
}

fn npm_component(name: &str, version: &str, entry: &Map<String, Value>) -> Component {
    Component {
        ecosystem: Ecosystem::Npm,
        name: name.to_owned(),
        version: version.to_owned(),
        architecture: None,
        license: entry
            .get("license")
            .and_then(Value::as_str)
            .map(str::to_owned),
        distro: None,
    }
}

fn flag(entry: &Map<String, Value>, key: &str) -> bool {
    entry.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Whether npm put a lockfile entry on disk: not in a group the install omitted (an entry
/// that is `devOptional` goes only when both dev and optional ones do), and not restricted
/// by `os`/`cpu` to another platform. Images are Linux.
fn installed(entry: &Map<String, Value>, install: &NpmInstall) -> bool {
    let omitted = (flag(entry, "dev") && install.omit_dev)
        || (flag(entry, "optional") && install.omit_optional)
        || (flag(entry, "devOptional") && install.omit_dev && install.omit_optional)
        || (flag(entry, "peer") && install.omit_peer);
    let cpu_ok = install
        .cpu
        .as_deref()
        .is_none_or(|cpu| platform_allows(entry.get("cpu"), cpu));
    !omitted && platform_allows(entry.get("os"), "linux") && cpu_ok
}

/// npm's `os`/`cpu` rule: a list of allowed values and `!`-prefixed excluded ones; the
/// current platform must not be excluded, and must be allowed when any value is allowed.
fn platform_allows(rule: Option<&Value>, current: &str) -> bool {
    let values: Vec<&str> = match rule {
        Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(value)) => vec![value.as_str()],
        _ => return true,
    };
    let (excluded, allowed): (Vec<&str>, Vec<&str>) =
        values.into_iter().partition(|v| v.starts_with('!'));
    !excluded
        .iter()
        .any(|v| v.strip_prefix('!') == Some(current))
        && (allowed.is_empty() || allowed.contains(&current))
}

#[cfg(test)]
mod tests {
    use super::super::tests::ids;
    use super::*;

    const LOCK_V3: &str = r#"{
      "name": "node-hello", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": {"name": "node-hello", "version": "1.0.0", "dependencies": {"express": "^4.19.2"}},
        "node_modules/express": {"version": "4.19.2", "resolved": "https://registry.npmjs.org/express/-/express-4.19.2.tgz", "license": "MIT"},
        "node_modules/debug": {"version": "2.6.9", "license": "MIT"},
        "node_modules/send/node_modules/debug": {"version": "2.6.9", "license": "MIT"},
        "node_modules/send/node_modules/ms": {"version": "2.1.3", "license": "MIT"},
        "node_modules/ms": {"version": "2.0.0", "license": "MIT"},
        "node_modules/@types/node": {"version": "20.14.2", "dev": true, "license": "MIT"},
        "node_modules/@babel/code-frame": {"version": "7.24.7", "devOptional": true},
        "node_modules/@img/sharp-libvips-linux-x64": {"version": "1.0.2", "optional": true, "os": ["linux"], "cpu": ["x64"]},
        "node_modules/@img/sharp-darwin-arm64": {"version": "0.33.4", "optional": true, "os": ["darwin"], "cpu": ["arm64"]},
        "node_modules/string-width-cjs": {"name": "string-width", "version": "4.2.3"},
        "node_modules/lib": {"resolved": "packages/lib", "link": true},
        "packages/lib": {"name": "lib", "version": "0.1.0"}
      }
    }"#;

    #[test]
    fn npm_v3_nested_scoped_aliased_and_omitted() {
        let all = npm_components(LOCK_V3.as_bytes(), &NpmInstall::default()).unwrap();
        assert_eq!(
            ids(&all),
            [
                "@babel/code-frame@7.24.7",
                "@img/sharp-libvips-linux-x64@1.0.2",
                "@types/node@20.14.2",
                "debug@2.6.9",
                "express@4.19.2",
                "ms@2.0.0",
                "ms@2.1.3",
                "string-width@4.2.3",
            ]
        );
        assert_eq!(all[2].purl(), "pkg:npm/%40types/node@20.14.2");
        assert_eq!(all[4].license.as_deref(), Some("MIT"));

        let production = NpmInstall {
            omit_dev: true,
            cpu: Some("arm64".to_owned()),
            ..NpmInstall::default()
        };
        let got = npm_components(LOCK_V3.as_bytes(), &production).unwrap();
        let names: Vec<&str> = got.iter().map(|c| c.name.as_str()).collect();
        // devOptional stays unless optional ones are omitted too; x64-only is skipped.
        assert_eq!(
            names,
            [
                "@babel/code-frame",
                "debug",
                "express",
                "ms",
                "ms",
                "string-width"
            ]
        );
    }

    #[test]
    fn npm_v1_tree() {
        let lock = r#"{
          "name": "old-app", "version": "1.0.0", "lockfileVersion": 1, "requires": true,
          "dependencies": {
            "accepts": {"version": "1.3.8", "requires": {"mime-types": "~2.1.34"}},
            "mime-types": {"version": "2.1.35", "dependencies": {
              "mime-db": {"version": "1.52.0"}
            }},
            "@sindresorhus/is": {"version": "0.14.0"},
            "mocha": {"version": "10.4.0", "dev": true},
            "str": {"version": "npm:string-width@4.2.3"},
            "local": {"version": "file:../local"}
          }
        }"#;
        let install = NpmInstall {
            omit_dev: true,
            ..NpmInstall::default()
        };
        let got = npm_components(lock.as_bytes(), &install).unwrap();
        assert_eq!(
            ids(&got),
            [
                "@sindresorhus/is@0.14.0",
                "accepts@1.3.8",
                "mime-db@1.52.0",
                "mime-types@2.1.35",
                "string-width@4.2.3",
            ]
        );
    }

    #[test]
    fn npm_errors_say_what_is_wrong() {
        let not_json = npm_components(b"{", &NpmInstall::default()).unwrap_err();
        assert!(
            not_json.to_string().contains("not valid JSON"),
            "{not_json}"
        );
        let empty = npm_components(b"{}", &NpmInstall::default()).unwrap_err();
        assert!(empty.to_string().contains("neither"), "{empty}");
        let bad = npm_components(
            br#"{"packages": {"node_modules/a": 1}}"#,
            &NpmInstall::default(),
        )
        .unwrap_err();
        assert!(bad.to_string().contains("`node_modules/a`"), "{bad}");
    }
}
