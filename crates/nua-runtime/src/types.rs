//! What goes in and out of an [`Engine`](super::Engine): plain data, no behaviour.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Labels of a container, volume or network, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// How to load an image.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Leave out the layers the engine already has (falls back to everything if refused).
    pub thin: bool,
    /// Hash every layer before sending anything. Only a caller that has just written the
    /// image from a store whose blobs were hashed as they went in may skip it (the engine
    /// still checks the DiffID of every layer it is sent).
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            thin: true,
            verify: true,
        }
    }
}

/// What an engine reports after loading an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loaded {
    /// The tags the engine named (`nua-foo:1.0-1`).
    pub tags: Vec<String>,
    /// The image ID the engine gives the first tag: the digest of the image config.
    pub image_id: String,
    /// Bytes of archive sent to the engine.
    pub bytes_sent: u64,
    /// Layers of the image, and how many of them were sent (the others the engine had).
    pub layers: usize,
    pub layers_sent: usize,
    /// Why a thin load was refused and the whole image sent instead, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fell_back: Option<String>,
}

/// An image as the engine knows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageDetails {
    /// `sha256:…` of the config.
    pub id: String,
    pub tags: Vec<String>,
    /// The layers' DiffIDs, bottom first.
    pub diff_ids: Vec<String>,
    /// `8000/tcp`, …
    pub exposed_ports: Vec<String>,
    pub env: Vec<String>,
    pub labels: Labels,
    pub has_healthcheck: bool,
}

/// The transport of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `8000/tcp`, `53/udp` or `8000` (tcp), as Docker writes exposed ports.
    pub fn parse_port(text: &str) -> Option<(u16, Protocol)> {
        let (number, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
        let protocol = match protocol {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => return None,
        };
        Some((number.parse().ok()?, protocol))
    }

    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortBinding {
    pub container: u16,
    pub protocol: Protocol,
    pub host_ip: IpAddr,
    pub host: u16,
}

/// Storage mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A named volume (created with [`Engine::create_volume`](super::Engine::create_volume)).
    Volume {
        name: String,
        target: String,
        read_only: bool,
    },
    /// A host folder.
    Bind {
        source: PathBuf,
        target: String,
        read_only: bool,
    },
    /// A tmpfs, gone when the container stops.
    Tmpfs {
        target: String,
        size_bytes: Option<i64>,
        mode: Option<i64>,
    },
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Volume { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// A named volume to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSpec {
    pub name: String,
    /// `local` when absent.
    pub driver: Option<String>,
    /// Driver options, as written.
    pub options: BTreeMap<String, String>,
    pub labels: Labels,
}

/// A container to create.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// `KEY=VALUE`, added to (and overriding) the image's.
    pub env: Vec<String>,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<Mount>,
    pub labels: Labels,
    pub network: Option<String>,
    /// Other names the container answers to on `network` (a provider's name).
    pub aliases: Vec<String>,
    /// What Docker does when the container stops by itself.
    pub restart: Restart,
    pub limits: Limits,
    /// Run Docker's init (tini) as PID 1: it forwards signals, so a process that does not
    /// handle SIGTERM as PID 1 still stops at once, and reaps zombies.
    pub init: bool,
}

/// Docker's restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times (0: no limit).
    OnFailure(u32),
}

/// Resource limits of a container (`None`: Docker's default, no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    /// CPU time in billionths of a CPU (`1_500_000_000` is one and a half).
    pub nano_cpus: Option<i64>,
    /// The size of `/dev/shm`.
    pub shm_bytes: Option<i64>,
    pub pids: Option<i64>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
}

/// What Docker says of a container's health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

/// One run of the health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub exit_code: i64,
    pub output: String,
}

/// A container's health: its status and the last checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub status: HealthStatus,
    /// The last checks, oldest first (Docker keeps five).
    pub log: Vec<CheckResult>,
}

/// A container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: State,
    /// The exit code, once exited (or, while restarting, of the last exit).
    pub exit_code: Option<i64>,
    /// How many times Docker restarted it under its restart policy.
    pub restart_count: i64,
    /// `None` when the image has no health check.
    pub health: Option<Health>,
    pub ports: Vec<PortBinding>,
    pub labels: Labels,
}

/// Which output [`Engine::logs`](super::Engine::logs) gives.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last lines.
    pub tail: Option<u64>,
}

/// Which of a container's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line of a container's output, without its line end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub stream: Stream,
    pub text: String,
}

/// What a command run in a container printed, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}
