//! Deploy files: the `[[site]]` lists `nua deploy` reads (TOML, JSON or YAML, as the
//! original Nua's `deploy-examples`). Each site names an image and what is laid over its own
//! nua-config: domain, label, env, ports, volumes, provider overrides, Docker options.
//!
//! Loaded like a nua-config: parsed with positions, the values the original read its own way
//! read the same way with a warning (a volume `type = "volume"`, Docker's `source` and
//! `mode = "rw"`), checked against the JSON Schema of [`DeployFile`] (unknown keys are errors
//! with file, line, column and a did-you-mean), deserialized, then checked: a domain is
//! `host` or `host/path`, a label is a name Docker accepts, labels and domains are unique.
//! The `[[site.test]]` tables of the corpus are accepted and kept as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{Error, Pos, Problem, Warning};
use super::model::{EnvValue, Free};
use super::parse::{Entry, Format, Kind, Node};
use super::services::{Port, Volume};

/// A deploy file: the sites of one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployFile {
    /// The sites to run: one instance each.
    pub site: Vec<Site>,
}

/// `[[site]]`: one instance of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Site {
    /// The app: an image tarball, an app folder (built first), an image Docker has, or a
    /// registry reference.
    pub image: String,
    /// Where it answers: `host`, or `host/path` for an app under a path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The instance's name (letters, digits, `_`, `.`, `-`); by default made from the image
    /// and the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Variables laid over the app's `[env]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Ports laid over the app's `[port]`, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port: BTreeMap<String, Port>,
    /// Volumes replacing the app's of the same target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<Volume>,
    /// Overrides of the app's providers, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider: Vec<ProviderOverride>,
    /// Docker options of the app container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker: BTreeMap<String, Free>,
    /// The instance's private network (by default named after the label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Checks of the running site (`url`, `expect_status`, `expect_str`), kept as written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<BTreeMap<String, Free>>,
}

/// `[[site.provider]]`: what a site changes in one provider of its app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProviderOverride {
    /// The provider's `name` in the app's nua-config.
    pub name: String,
    /// Variables laid over the provider's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Ports laid over the provider's, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port: BTreeMap<String, Port>,
    /// Volumes replacing the provider's of the same target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<Volume>,
    /// Docker options of the provider's container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub docker: BTreeMap<String, Free>,
}

/// A loaded deploy file.
#[derive(Debug, Clone)]
pub struct LoadedDeploy {
    pub deploy: DeployFile,
    pub file: PathBuf,
    pub warnings: Vec<Warning>,
}

/// The JSON Schema of deploy files (draft 2020-12): `schemas/nua-deploy.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let mut value = schemars::schema_for!(DeployFile).to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://nua.rocks/schemas/nua-deploy.schema.json".into(),
        );
    }
    value
}

/// The schema rendered as the checked-in file: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a schema serializes");
    text.push('\n');
    text
}

fn cached_schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(json_schema)
}

/// Load the deploy file `path` (`.toml`, `.json`, `.yaml` or `.yml`).
pub fn load_deploy(path: &Path) -> Result<LoadedDeploy, Error> {
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Format::Toml,
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ => {
            return Err(Error::Extension {
                path: path.to_path_buf(),
            })
        }
    };
    let text = std::fs::read_to_string(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Missing {
            path: path.to_path_buf(),
        },
        _ => Error::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let (deploy, warnings) = load_deploy_str(&text, format, path)?;
    Ok(LoadedDeploy {
        deploy,
        file: path.to_path_buf(),
        warnings,
    })
}

/// Load a deploy file from its text; `file` is only used in messages.
pub fn load_deploy_str(
    text: &str,
    format: Format,
    file: &Path,
) -> Result<(DeployFile, Vec<Warning>), Error> {
    let invalid = |mut problems: Vec<Problem>| {
        problems.sort_by_key(|p| (p.line, p.col));
        Error::Invalid {
            file: file.to_path_buf(),
            problems,
        }
    };
    let mut tree = super::parse_table(
        text,
        format,
        file,
        "a deploy file must be a table of `site` entries",
    )?;
    let (mut warnings, mut problems) = docker_volume_keys(&mut tree);
    let findings = super::validate::check(&mut tree, cached_schema());
    warnings.extend(findings.warnings);
    problems.extend(findings.problems);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let deploy: DeployFile = serde_path_to_error::deserialize(tree.to_json()).map_err(|e| {
        let path = super::path_of(e.path());
        let message = format!("`{}`: {}", super::messages::display_path(&path), e.inner());
        invalid(vec![Problem::new(tree.locate(&path), message)])
    })?;
    let problems = check(&deploy, &tree);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    Ok((deploy, super::located(warnings, file)))
}

/// The volumes of sites and of their provider overrides, written as Docker mounts are
/// (`type = "volume"`, `source`, `mode = "rw"`), read as nua-config volumes with a warning.
fn docker_volume_keys(root: &mut Node) -> (Vec<(Pos, String)>, Vec<Problem>) {
    let (mut warnings, mut problems) = (Vec::new(), Vec::new());
    let mut one = |vol: &mut Node, place: String| {
        let (w, p) = super::legacy::docker_volume(vol, &place);
        warnings.extend(w);
        problems.extend(p);
    };
    for (i, site) in items(root, "site").into_iter().enumerate() {
        for (j, provider) in items(site, "provider").into_iter().enumerate() {
            for (k, vol) in items(provider, "volume").into_iter().enumerate() {
                one(vol, format!("site[{i}].provider[{j}].volume[{k}]"));
            }
        }
        for (j, vol) in items(site, "volume").into_iter().enumerate() {
            one(vol, format!("site[{i}].volume[{j}]"));
        }
    }
    (warnings, problems)
}

/// The tables of the array at `key` of `node`.
fn items<'n>(node: &'n mut Node, key: &str) -> Vec<&'n mut Node> {
    match node.get_mut(key) {
        Some(Entry {
            value: Node {
                kind: Kind::Array(items),
                ..
            },
            ..
        }) => items.iter_mut().filter(|i| i.entries().is_some()).collect(),
        _ => Vec::new(),
    }
}

/// What the schema cannot say: domains and labels well formed and not used twice.
fn check(deploy: &DeployFile, tree: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |i: usize, key: &str| tree.locate(&["site".into(), i.to_string(), key.into()]);
    let mut domains: BTreeMap<&str, usize> = BTreeMap::new();
    let mut labels: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, site) in deploy.site.iter().enumerate() {
        if let Some(domain) = &site.domain {
            if let Err(why) = check_domain(domain) {
                problems.push(
                    Problem::new(at(i, "domain"), format!("`site[{i}].domain`: {why}"))
                        .with_hint("write `host` or `host/path`, e.g. `notes.example.com/app`"),
                );
            } else if let Some(first) = domains.insert(domain, i) {
                problems.push(Problem::new(
                    at(i, "domain"),
                    format!("`site[{i}].domain` `{domain}` is the domain of `site[{first}]` too"),
                ));
            }
        }
        if let Some(label) = &site.label {
            let valid = !label.is_empty()
                && label
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric())
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                problems.push(
                    Problem::new(
                        at(i, "label"),
                        format!("`site[{i}].label` `{label}` cannot name containers"),
                    )
                    .with_hint(
                        "use letters, digits, `_`, `.` and `-`, starting with a letter or digit",
                    ),
                );
            } else if let Some(first) = labels.insert(label, i) {
                problems.push(Problem::new(
                    at(i, "label"),
                    format!("`site[{i}].label` `{label}` is the label of `site[{first}]` too"),
                ));
            }
        }
    }
    problems
}

/// `host` or `host/path`: a DNS name (or `localhost`) and an optional path without `..`.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, path) = domain.split_once('/').unwrap_or((domain, ""));
    if domain.contains("://") {
        return Err(format!(
            "`{domain}` has a scheme; the scheme is Nua's to choose"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("`{host}` is not a host name"));
    }
    // The path goes into the proxy's configuration: plain URL characters only.
    let plain = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'));
    if !plain || path.split('/').any(|c| c == ".." || c == ".") {
        return Err(format!(
            "the path `/{path}` is not a plain path (letters, digits, `-`, `_`, `.`, `~` and `/`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn load(text: &str) -> Result<(DeployFile, Vec<Warning>), Error> {
        load_deploy_str(text, Format::Toml, Path::new("deploy.toml"))
    }

    #[test]
    fn sites_keep_their_overrides_and_tests() {
        let (deploy, warnings) = load(
            "[[site]]\nimage = \"notes:1\"\ndomain = \"a.example.com/notes\"\nlabel = \"a\"\n\
             env = { MODE = \"prod\", WORKERS = 4 }\n\
             [[site.provider]]\nname = \"database\"\n\
             [[site.provider.volume]]\ntype = \"volume\"\nsource = \"pg_a\"\n\
             target = \"/var/lib/postgresql/data\"\nmode = \"rw\"\n\
             [[site.test]]\nurl = \"https://a.example.com/notes\"\nexpect_status = 200\n",
        )
        .unwrap();
        let site = &deploy.site[0];
        assert_eq!(site.domain.as_deref(), Some("a.example.com/notes"));
        let volume = &site.provider[0].volume[0];
        assert_eq!(volume.name.as_deref(), Some("pg_a"));
        assert_eq!(volume.kind, Some(crate::VolumeType::Managed));
        assert_eq!(site.test[0]["expect_status"], 200);
        let said: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(said.len(), 3, "{said:?}");
    }

    #[rstest]
    #[case(
        "[[site]]\nimage = \"x\"\ndomian = \"a.com\"\n",
        "deploy.toml:3:1: unknown key `domian` in `site[0]`",
        Some("did you mean `domain`?")
    )]
    #[case(
        "[[site]]\nimage = \"x\"\ndomain = \"https://a.com\"\n",
        "deploy.toml:3:1: `site[0].domain`: `https://a.com` has a scheme",
        None
    )]
    #[case(
        "[[site]]\nimage = \"x\"\ndomain = \"a.com\"\n[[site]]\nimage = \"y\"\ndomain = \"a.com\"\n",
        "deploy.toml:6:1: `site[1].domain` `a.com` is the domain of `site[0]` too",
        None
    )]
    #[case(
        "[[site]]\nimage = \"x\"\ndomain = \"a_b.com\"\n",
        "deploy.toml:3:1: `site[0].domain`: `a_b.com` is not a host name",
        None
    )]
    #[case(
        "[[site]]\nimage = \"x\"\ndomain = \"a.com/x;return 200\"\n",
        "deploy.toml:3:1: `site[0].domain`: the path `/x;return 200` is not a plain path",
        None
    )]
    #[case(
        "[[site]]\nimage = \"x\"\nlabel = \"a b\"\n",
        "deploy.toml:3:1: `site[0].label` `a b` cannot name containers",
        None
    )]
    #[case(
        "[[site]]\ndomain = \"a.com\"\n",
        "deploy.toml:1:1: the `[[site]]` entry #1 (`site[0]`) is missing the required key `image`",
        None
    )]
    #[case(
        "[[site]]\nimage = \"x\"\n[[site.volume]]\nsource = \"v\"\nmode = \"ro\"\ntarget = \"/t\"\n",
        "deploy.toml:5:8: `mode = \"ro\"` in `site[0].volume[0]`",
        None
    )]
    fn bad_sites_are_located(#[case] text: &str, #[case] starts: &str, #[case] hint: Option<&str>) {
        let err = load(text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with(starts), "{message}");
        if let Some(hint) = hint {
            let given = err.hint().unwrap_or_default();
            assert!(given.contains(hint), "{message}\nhint: {given}");
        }
    }
}
