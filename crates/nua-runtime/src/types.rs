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
    /// The image's health check as Docker keeps it (`["CMD-SHELL", "…"]` or `["CMD", …]`);
    /// `None` when it has none or disables it (`NONE`).
    pub health_check: Option<Vec<String>>,
    /// What a container runs: `entrypoint` then `cmd` (either may be empty).
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

impl ImageDetails {
    /// The health check's command, as `exec` runs it: a `CMD-SHELL` test through `/bin/sh
    /// -c`, a `CMD` test as it is.
    pub fn health_command(&self) -> Option<Vec<String>> {
        let test = self.health_check.as_ref()?;
        let (kind, rest) = test.split_first()?;
        match kind.as_str() {
            "CMD-SHELL" => Some(
                ["/bin/sh", "-c"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(rest.first().cloned())
                    .collect(),
            ),
            "CMD" if !rest.is_empty() => Some(rest.to_vec()),
            _ => None,
        }
    }
}

/// The transport of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub container: u16,
    pub protocol: Protocol,
    pub host_ip: IpAddr,
    /// 0 in a [`ContainerSpec`]: a free port the engine chooses as the container starts
    /// ([`ContainerInfo::ports`] of the running container gives it).
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
    /// The network to join: a bridge network's name, or `none` for no network but the
    /// loopback interface; Docker's default bridge when absent.
    pub network: Option<String>,
    /// Other names the container answers to on `network` (a provider's name).
    pub aliases: Vec<String>,
    /// What Docker does when the container stops by itself.
    pub restart: Restart,
    pub limits: Limits,
    /// Run Docker's init (tini) as PID 1: it forwards signals, so a process that does not
    /// handle SIGTERM as PID 1 still stops at once, and reaps zombies.
    pub init: bool,
    /// The command to run, replacing the image's `Cmd` (its `Entrypoint` stays); the
    /// image's when absent.
    pub command: Option<Vec<String>>,
    /// Replaces the image's `Entrypoint`; then `command` is all the image's `Cmd` gives (an
    /// image's `Cmd` is dropped when the entrypoint is replaced).
    pub entrypoint: Option<Vec<String>>,
    /// Run no health check, whatever the image says.
    pub no_health_check: bool,
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

/// A command to run in a running container with
/// [`Engine::exec_stream`](super::Engine::exec_stream).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Exec {
    /// The program and its arguments (no shell is involved).
    pub command: Vec<String>,
    /// `KEY=VALUE`, added to the container's environment for this command only.
    pub env: Vec<String>,
    /// `user`, `user:group`, `uid` or `uid:gid`; the container's user when absent.
    pub user: Option<String>,
}

impl Exec {
    /// A command run as the container's user, with its environment.
    pub fn new<S: Into<String>>(command: impl IntoIterator<Item = S>) -> Exec {
        Exec {
            command: command.into_iter().map(Into::into).collect(),
            ..Exec::default()
        }
    }

    /// The program run (the first word of the command), to name it in messages.
    pub fn program(&self) -> &str {
        self.command.first().map_or("", String::as_str)
    }
}

/// The values of `env` are secrets as often as not (a database password): only the names
/// are shown.
impl std::fmt::Debug for Exec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) => format!("{key}=***"),
                None => pair.clone(),
            })
            .collect();
        f.debug_struct("Exec")
            .field("command", &self.command)
            .field("env", &env)
            .field("user", &self.user)
            .finish()
    }
}

/// How a command run with [`Engine::exec_stream`](super::Engine::exec_stream) ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecStatus {
    /// `-1` when Docker reports none.
    pub exit_code: i64,
    /// The end of its standard error (the last [`MAX_EXEC_STDERR`] bytes).
    pub stderr: Vec<u8>,
}

/// How much of the standard error of a command run with
/// [`Engine::exec_stream`](super::Engine::exec_stream) is kept: its end, where the reason of
/// a failure is.
pub const MAX_EXEC_STDERR: usize = 64 * 1024;

impl ExecStatus {
    /// Add `bytes` of standard error, keeping only the last [`MAX_EXEC_STDERR`].
    pub(crate) fn push_stderr(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(MAX_EXEC_STDERR)..];
        let over = (self.stderr.len() + bytes.len()).saturating_sub(MAX_EXEC_STDERR);
        self.stderr.drain(..over);
        self.stderr.extend_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_end_of_an_execs_stderr_is_kept() {
        let mut status = ExecStatus::default();
        status.push_stderr(&[b'a'; MAX_EXEC_STDERR - 1]);
        status.push_stderr(b"bc");
        assert_eq!(status.stderr.len(), MAX_EXEC_STDERR);
        assert!(status.stderr.starts_with(b"aa") && status.stderr.ends_with(b"abc"));
        let mut long = vec![b'x'; MAX_EXEC_STDERR];
        long.extend_from_slice(b"end");
        status.push_stderr(&long);
        assert_eq!(status.stderr.len(), MAX_EXEC_STDERR);
        assert!(status.stderr.starts_with(b"xxx") && status.stderr.ends_with(b"xend"));
    }

    #[test]
    fn the_values_of_an_execs_env_are_not_shown() {
        let exec = Exec {
            command: vec!["psql".into()],
            env: vec!["PGPASSWORD=hunter2".into(), "PGUSER=app".into()],
            user: None,
        };
        let shown = format!("{exec:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("=app"),
            "{shown}"
        );
        assert!(shown.contains("PGPASSWORD=***"), "{shown}");
    }
}
