//! Ports, volumes, providers, health check and backup types of the nua-config.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Build, EnvValue, Free, OneOrMany, Run};

/// `[port.<name>]`: a port of the container and how it is published.
///
/// After loading, `protocol`, `ssl` and `web` are always set: `protocol` defaults to `tcp`,
/// `ssl` to `true`, and `web` is true for the port named `web` and for any port published
/// through the proxy. A port that is not `web` must say where it is published: `host` or
/// `proxy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port inside the container: a number or `{ key = "ENV_NAME" }`.
    pub container: PortNumber,
    /// Port published on the host: a number, `{ key = "ENV_NAME" }` or `"auto"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<PortNumber>,
    /// Port of the reverse proxy forwarding to this one: a number, `{ key = … }` or `"auto"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<PortNumber>,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Whether the proxy terminates TLS for this port (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl: Option<bool>,
    /// Whether this is a web port served through the reverse proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<bool>,
}

/// A port number, the name of an env variable holding it, or `"auto"` (chosen at deployment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortNumber {
    Number(u16),
    Env(PortFromEnv),
    Auto(AutoWord),
}

/// `{ key = "ENV_NAME" }`: the port is the value of an env variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PortFromEnv {
    /// Name of the env variable.
    pub key: String,
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoWord {
    Auto,
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

/// `[[volume]]`: storage mounted in a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Volume name, or the host path for `directory` and `bind` volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `managed` (default: a Docker volume), `directory`, `bind` or `tmpfs`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<VolumeType>,
    /// Mount point in the container.
    pub target: String,
    /// Docker volume driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver or mount options, passed exactly as written (`tmpfs_size`, `IdentityFile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, Free>>,
    /// How this volume is backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

/// Kind of volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Managed,
    Directory,
    Bind,
    Tmpfs,
}

/// The longest healthcheck duration, in seconds: 10 years. Docker takes durations in
/// nanoseconds (as a 64-bit integer); this keeps `seconds * 1e9` far from overflowing.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 60 * 60;

/// The most healthcheck retries: Docker reads them as a 32-bit integer, and a million failed
/// checks in a row is already no health check at all.
pub const MAX_RETRIES: u64 = 1_000_000;

/// `[healthcheck]`: Docker health check of the app container (times in seconds, at most 10
/// years; `retries` at most a million).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Healthcheck {
    /// Shell command; exit status 0 means healthy.
    pub command: String,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub interval: Option<u64>,
    /// Seconds before failures count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub start_period: Option<u64>,
    /// Seconds before a check is considered failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_SECONDS))]
    pub timeout: Option<u64>,
    /// Failures in a row before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_RETRIES))]
    pub retries: Option<u64>,
}

/// `[proxy]`: how the reverse proxy serves the app's web port.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProxyOptions {
    /// The largest request body, in MiB (nginx's `client_max_body_size`; default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_048_576))]
    pub max_body_mb: Option<u64>,
    /// Seconds to wait for the app's answer, or a websocket's next frame (default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86_400))]
    pub read_timeout: Option<u64>,
    /// Seconds to connect to the app (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub connect_timeout: Option<u64>,
}

/// `[backup]`: a backup method and when to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Method: `tgz_volumes`, `pg_dump`, `mysqldump`, `mongodump`, …
    pub method: String,
    /// How often, e.g. `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<String>,
    /// Options of the method (e.g. `destination`), passed as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, Free>>,
}

/// `[[provider]]`: a service the app needs. With `module-name`, the built-in module fills in
/// what the provider does not say (see `nua_config::providers`).
///
/// Another provider it depends on is named by `from` in its `[provider.env]`; dependencies
/// must not form a cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Provider {
    /// Name, unique in the config; also the container's host name on the app network.
    pub name: String,
    /// `docker-image`, `volume` or `app` (another app of the same source, built alongside).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Built-in module: `postgres`, `mariadb`, `mongo`, `redis-cache`, `sqlite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_name: Option<String>,
    /// Requirement on the module version, e.g. `>=14, <15`: the highest matching entry of
    /// `module-versions` gives `build.base-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_version: Option<String>,
    /// Versions the module offers (filled from the module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module_versions: Option<Vec<ModuleVersion>>,
    /// Whether the provider joins the app's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    /// Client meta-package(s) the app needs to talk to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<OneOrMany>,
    /// How the provider's image is obtained (`base-image`) or built (type `app`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// How a provider of type `app` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    /// Environment of the provider container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// Ports of the provider.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port: BTreeMap<String, Port>,
    /// Volumes of the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume: Vec<Volume>,
    /// Options passed as written to `docker run` for the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<BTreeMap<String, Free>>,
    /// How the provider's data is backed up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<Backup>,
}

/// One version a module offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModuleVersion {
    /// Version, dotted numbers.
    pub version: String,
    /// Architecture of the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Image reference.
    pub link: String,
}
