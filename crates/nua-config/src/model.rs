//! The nua-config types. Keys are kebab-case as written in the files, except inside `[env]`
//! specs (`unique_user`, …) and the free-form tables (`[docker]`, volume `options`), which
//! are kept exactly as written. These types generate `schemas/nua-config.schema.json`; their
//! doc comments become the schema's descriptions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::services::{Backup, Healthcheck, Port, Provider, ProxyOptions, Volume};

/// A free-form value passed through unchanged (docker options, volume options).
pub type Free = serde_json::Value;

/// A nua-config: the description of one application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NuaConfig {
    /// Who the application is: id, version, release and descriptive fields.
    pub metadata: Metadata,
    /// How the image is built.
    #[serde(default)]
    pub build: Build,
    /// How the application starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// Environment variables of the application container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Options passed as written to `docker run` (e.g. `auto_remove`, `restart_policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<BTreeMap<String, Free>>,
    /// Ports, by name. A port named `web` is the app's web port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port: BTreeMap<String, Port>,
    /// Volumes mounted in the application container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<Volume>,
    /// Other containers or volumes the application needs (databases, caches, sub-apps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provider: Vec<Provider>,
    /// How Docker checks that the application is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// How the reverse proxy serves the web port (body size, timeouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyOptions>,
    /// How the application's volumes are backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

/// `[metadata]`: identity and description of the application.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Metadata {
    /// Application id, used in the image name `nua-<id>`.
    pub id: String,
    /// Version of the packaged software; available as `{version}` in placeholders.
    pub version: String,
    /// Packaging release: bumped when the packaging changes and the software does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u64>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Authors of the software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// One-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagline: Option<String>,
    /// Longer description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Home page of the software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
    /// Free tags for catalogues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Deployment profile(s) the app is meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<OneOrMany>,
}

/// A string or a list of strings: commands, packages. A single string is one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The items as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// How the image is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BuildMethod {
    /// Build from a base image of `base-images/`, the source and the build commands.
    Build,
    /// Take `base-image` as it is and add only the metadata layer.
    Wrap,
}

/// The builder: a base image name of `base-images/`, as a string (`"node-16"`) or as a table
/// (`{ name = "ruby", version = "3.2" }`, which means the same as `"ruby-3.2"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Builder {
    Name(String),
    Spec(BuilderSpec),
}

/// A builder given as a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuilderSpec {
    /// Base name (`ruby`, `node`, `python`).
    pub name: String,
    /// Version, appended as `<name>-<version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl Builder {
    /// The base image name: `node-16` for both `"node-16"` and `{name="node", version="16"}`.
    pub fn image_name(&self) -> String {
        match self {
            Builder::Name(n) => n.clone(),
            Builder::Spec(BuilderSpec {
                name,
                version: Some(v),
            }) => format!("{name}-{v}"),
            Builder::Spec(BuilderSpec {
                name,
                version: None,
            }) => name.clone(),
        }
    }
}

/// `[build]`: how the image is built. In `src-url`, `git-url`, `git-branch`, `base-image` and
/// `project`, `{key}` is replaced by the metadata value of `key` (`{version}`, `{id}`, …) and
/// `{{` / `}}` stand for literal braces (Python `str.format` rules, kept for compatibility).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Build {
    /// License of the packaged software (SPDX id or free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// `build` or `wrap`; when absent, `wrap` if `base-image` is set, else `build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<BuildMethod>,
    /// Base image of the build (see [`Builder`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<Builder>,
    /// Several builders, layered in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builders: Option<Vec<Builder>>,
    /// Debian packages needed only during the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<OneOrMany>,
    /// Build commands, run as user `nua` in the source folder. Braces are literal here:
    /// `{NAME}` and `{{`/`}}` are only processed by the run-time environment expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<OneOrMany>,
    /// Commands checking the build result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<OneOrMany>,
    /// Sub-folder of the source to build (placeholders expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// URL of a source archive (placeholders expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_url: Option<String>,
    /// SHA-256 of the `src-url` archive: 64 hexadecimal characters, optionally prefixed by
    /// `sha256:`; normalized to lower case without prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_checksum: Option<String>,
    /// Git repository of the source (placeholders expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    /// Branch or tag of `git-url` (placeholders expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_branch: Option<String>,
    /// Image to wrap (method `wrap`), e.g. `tuxgasy/dolibarr:{version}` (placeholders expanded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image: Option<String>,
    /// Nua meta-packages (e.g. `postgres-client`) installing client libraries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_packages: Option<OneOrMany>,
    /// Commands run before the build commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_build: Option<OneOrMany>,
    /// Python packages or wheel globs to `pip install` (e.g. `*.whl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pip_install: Option<OneOrMany>,
}

/// `[run]`: what the container does.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Run {
    /// Debian packages kept in the final image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<OneOrMany>,
    /// Commands run at container start, before `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_run: Option<OneOrMany>,
    /// Start command(s); the last one runs in the foreground.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<OneOrMany>,
    /// Commands run with `docker exec` once the container is up. `{NAME}` is replaced by
    /// the value of env variable `NAME` at run time, and `{{`/`}}` stand for literal braces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_run: Option<OneOrMany>,
    /// Container status to wait for before `post-run` (e.g. `created`, `running`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_run_status: Option<String>,
    /// The app must never run twice on its volumes (a database file, a lock): an upgrade
    /// stops the old container before starting the new one, while the proxy answers 503
    /// with `Retry-After`, instead of running both during the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_writer: Option<bool>,
}

/// An env value: a plain value (its type is kept) or a table saying where the value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum EnvValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Spec(EnvSpec),
}

/// A computed env value. Flags accept `true` or the string `"true"` (older files quote them);
/// they are normalized to booleans.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    /// Take the value from a provider (its name) or, when empty or absent, from the deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The key to read in `from` (`hostname`, `domain`, a provider env key, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Generate a random value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random: Option<Flag>,
    /// Length of a random value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u32>,
    /// Type of a random value (`str`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Show the generated value to the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<Flag>,
    /// Keep the generated value across deployments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<Flag>,
    /// A user name unique to this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_user: Option<Flag>,
    /// A database name unique to this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_db: Option<Flag>,
    /// The server's external IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<Flag>,
    /// A value internal to Nua's orchestrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nua_internal: Option<Flag>,
}

/// A boolean that may be written `true` or `"true"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Flag(#[schemars(with = "FlagSchema")] pub bool);

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(untagged)]
enum FlagSchema {
    Bool(bool),
    Str(FlagWord),
}

#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum FlagWord {
    True,
    False,
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Flag, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            B(bool),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::B(b) => Ok(Flag(b)),
            Raw::S(s) if s.eq_ignore_ascii_case("true") => Ok(Flag(true)),
            Raw::S(s) if s.eq_ignore_ascii_case("false") => Ok(Flag(false)),
            Raw::S(s) => Err(serde::de::Error::custom(format!(
                "expected true or false, found `{s}`"
            ))),
        }
    }
}

/// The kind of an env value, as the orchestrator tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvKind {
    Plain,
    From,
    Random,
    UniqueUser,
    UniqueDb,
    ExternalIp,
    NuaInternal,
}

impl EnvValue {
    /// The value as the container sees it, for a literal one (`KEY = "value"`, a number, a
    /// boolean); `None` for one computed at deployment.
    pub fn literal(&self) -> Option<String> {
        match self {
            EnvValue::Bool(b) => Some(b.to_string()),
            EnvValue::Int(i) => Some(i.to_string()),
            EnvValue::Float(f) => Some(f.to_string()),
            EnvValue::Str(s) => Some(s.clone()),
            EnvValue::Spec(_) => None,
        }
    }

    /// What kind of value this is.
    pub fn kind(&self) -> EnvKind {
        let on = |f: Option<Flag>| f.is_some_and(|f| f.0);
        match self {
            EnvValue::Spec(s) if on(s.random) => EnvKind::Random,
            EnvValue::Spec(s) if on(s.unique_user) => EnvKind::UniqueUser,
            EnvValue::Spec(s) if on(s.unique_db) => EnvKind::UniqueDb,
            EnvValue::Spec(s) if on(s.external_ip) => EnvKind::ExternalIp,
            EnvValue::Spec(s) if on(s.nua_internal) => EnvKind::NuaInternal,
            EnvValue::Spec(_) => EnvKind::From,
            _ => EnvKind::Plain,
        }
    }
}
