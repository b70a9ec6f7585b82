//! Docker Swarm: services, their tasks, Swarm secrets, overlay networks and nodes.
//!
//! A [`Swarm`] is Docker Engine in swarm mode, reached through one of its managers. Where an
//! [`crate::Engine`] creates and starts containers, a Swarm is told what a service should be
//! ([`Swarm::put_service`]) and carries it out itself: it starts the tasks, replaces them in
//! the order the service's update settings give, gated by the image's health check, and rolls
//! an update back when the new tasks fail. What runs where is read back from its tasks.

pub mod fake;

use std::time::Duration;

use serde::Serialize;

use crate::{Error, Labels, Limits, Mount, Restart, VolumeSpec};

/// A service: one replicated component, as Swarm is asked to run it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    pub name: String,
    pub image: String,
    /// `KEY=VALUE`, added to the image's. Never a secret: those are [`ServiceSpec::secrets`].
    pub env: Vec<String>,
    /// Labels of the service (and of its tasks' containers).
    pub labels: Labels,
    /// Overlay networks to join, each with the names the service answers to on it.
    pub networks: Vec<(String, Vec<String>)>,
    pub mounts: Vec<Mount>,
    /// The named volumes of `mounts` as Swarm creates them on a node (labels, driver).
    pub volumes: Vec<VolumeSpec>,
    /// Swarm secrets given to the tasks as files under `/run/secrets/`.
    pub secrets: Vec<SecretFile>,
    /// Replaces the image's `Entrypoint` (then the image's `Cmd` is dropped).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's `Cmd`.
    pub command: Option<Vec<String>>,
    /// Placement constraints (`node.id==…`, `node.labels.db==yes`).
    pub constraints: Vec<String>,
    /// 0 keeps the service with no task running (a stopped instance).
    pub replicas: u64,
    /// How a task is replaced by an update.
    pub order: Order,
    /// How long an updated task is watched before the update moves on; a task that fails in
    /// that time rolls the update back.
    pub monitor: Duration,
    /// Time between SIGTERM and SIGKILL when a task stops.
    pub stop_grace: Duration,
    pub init: bool,
    pub limits: Limits,
    /// When Swarm starts a task again: `unless-stopped` and `always` are any exit (a
    /// stopped service has no task to start), `on-failure` a failed one, `no` never.
    pub restart: Restart,
    /// The health check, replacing the image's (`argv`, run without a shell); the image's
    /// when absent.
    pub health_check: Option<Vec<String>>,
    /// How often the health check runs (the image's settings are kept otherwise).
    pub health_interval: Duration,
    /// Ports published on each node running a task (host mode: no routing mesh).
    pub host_ports: Vec<HostPort>,
}

/// A Swarm secret mounted as a file in a service's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFile {
    /// The secret's name in the swarm.
    pub secret: String,
    /// The file's name under `/run/secrets/`.
    pub file: String,
}

/// A port published on the node itself (`mode=host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    pub container: u16,
    pub host: u16,
}

/// How an update replaces a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// The new task starts, and must be healthy, before the old one stops.
    #[default]
    StartFirst,
    /// The old task stops first (an app that must never run twice).
    StopFirst,
}

/// Where a service's latest update is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
}

/// A service as Swarm has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    pub id: String,
    pub name: String,
    pub labels: Labels,
    /// The image of its current spec.
    pub image: String,
    pub replicas: u64,
    pub constraints: Vec<String>,
    /// The secrets its current spec names.
    pub secrets: Vec<String>,
    /// Its latest update, if it had one.
    pub update: Option<Update>,
}

/// A service's latest update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub state: UpdateState,
    /// Swarm's message (`update completed`, or why it rolled back).
    pub message: String,
    /// When it started, as Swarm says it: another update has another.
    pub started: String,
}

/// The state of a task (Swarm's own words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Not yet running: new, allocated, pending, assigned, accepted, preparing, ready.
    Pending,
    /// Started, and waiting for its health check to pass.
    Starting,
    Running,
    Complete,
    Shutdown,
    Failed,
    Rejected,
    /// Removed, or orphaned (its node is gone).
    Gone,
}

/// The label of a task's container spec that [`TaskInfo::digest`] reads.
pub const SPEC_LABEL: &str = "nua.spec";

/// One task of a service: a container on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub node: String,
    pub state: TaskState,
    /// What Swarm wants of it: [`TaskState::Running`], or [`TaskState::Shutdown`].
    pub desired: TaskState,
    /// Swarm's message, and its error when the task failed.
    pub message: String,
    pub error: Option<String>,
    /// Its container (on `node`), once it has one.
    pub container: Option<String>,
    pub exit_code: Option<i64>,
    pub image: String,
    /// The `nua.spec` label of its container's spec: which version of the service it runs.
    pub digest: Option<String>,
}

/// A node of the swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    pub id: String,
    pub hostname: String,
    /// `ready`, `down`, `unknown`, `disconnected`.
    pub state: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
    pub manager: bool,
    pub leader: bool,
    pub address: String,
    pub labels: Labels,
}

/// Docker Engine in swarm mode, through one of its managers.
pub trait Swarm: Sync {
    /// This engine's node, when it is a manager of a swarm; `None` when it is in none (or
    /// only a worker, which cannot change services).
    fn manager(&self) -> Result<Option<String>, Error>;
    fn nodes(&self) -> Result<Vec<NodeInfo>, Error>;
    /// Create an attachable overlay network; an existing one of that name is kept.
    fn create_overlay(&self, name: &str, labels: &Labels) -> Result<(), Error>;
    /// Create a secret; one of that name is kept (a secret's content never changes, so a
    /// new content has a new name).
    fn create_secret(&self, name: &str, data: &[u8], labels: &Labels) -> Result<(), Error>;
    /// The names of the secrets carrying `label=value`.
    fn secrets(&self, label: &str, value: &str) -> Result<Vec<String>, Error>;
    /// Remove a secret; one that does not exist is no error, one a service uses is refused.
    fn remove_secret(&self, name: &str) -> Result<(), Error>;
    fn service(&self, name: &str) -> Result<Option<ServiceInfo>, Error>;
    /// Every service carrying the label `label`.
    fn services(&self, label: &str) -> Result<Vec<ServiceInfo>, Error>;
    /// Create the service, or update it to `spec`. Swarm carries the update out after this
    /// returns: [`Swarm::service`] tells how it went.
    fn put_service(&self, spec: &ServiceSpec) -> Result<(), Error>;
    /// Run `replicas` tasks of a service, its spec otherwise unchanged.
    fn scale(&self, name: &str, replicas: u64) -> Result<(), Error>;
    /// Remove a service and its tasks; one that does not exist is no error.
    fn remove_service(&self, name: &str) -> Result<(), Error>;
    /// The tasks of a service that Swarm still lists, newest first.
    fn tasks(&self, service: &str) -> Result<Vec<TaskInfo>, Error>;
}
