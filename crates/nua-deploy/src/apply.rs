//! Making the engine match the desired state of an instance, doing only what differs.
//!
//! Everything Nua creates carries `nua.instance` (and containers `nua.generation`,
//! `nua.role`, `nua.component`, and `nua.spec`, a digest of what they were created from);
//! nothing without those labels is ever touched. In order: the network, then each
//! container, providers first: its volumes (kept when they exist: data is never
//! recreated), then the container itself, kept when its `nua.spec` is the one wanted and
//! replaced otherwise, started when it is not running (one paused with `nua pause` is left
//! paused). Each must be ready (healthy, or running when its image has no health check)
//! before the next one starts, and the app before the apply ends; one that does not get
//! ready in time, or exits (and is restarted by its restart policy, `unless-stopped` unless
//! its `[docker]` options say otherwise), is an error with its last log lines.
//! Containers of the instance that the desired state no longer has are removed (their
//! volumes stay).
//!
//! Applying twice changes nothing the second time; applying after a crash anywhere
//! finishes what was left.

mod containers;
mod services;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use nua_runtime::{
    ContainerInfo, ContainerSpec, Engine, Labels, PortBinding, Protocol, Swarm, VolumeSpec,
};

use crate::instance::{
    Container, Desired, EngineKind, Role, GENERATION_LABEL, INSTANCE_LABEL, ROLE_LABEL,
};
use crate::local::{volume_mount, VolumeMount};
use crate::state;
use crate::values::{self, Component, Deployment};

pub use containers::Containers;
pub use services::Services;

/// The component a container is (`app` or a provider's name).
pub const COMPONENT_LABEL: &str = "nua.component";
/// A digest of the spec a container was created from.
pub const SPEC_LABEL: &str = "nua.spec";

/// How long a provider may take to get ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What applying did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    pub created: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub removed: Vec<String>,
    pub volumes_created: Vec<String>,
}

impl Applied {
    /// Nothing had to change.
    pub fn unchanged(&self) -> bool {
        self.created.is_empty()
            && self.started.is_empty()
            && self.stopped.is_empty()
            && self.removed.is_empty()
            && self.volumes_created.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error(transparent)]
    Values(Box<values::Error>),
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Volume(#[from] crate::local::Error),
    #[error("`[docker]` of `{name}`: {message}")]
    Options { name: String, message: String },
    #[error(
        "`{label}` runs on Docker Swarm, and this Docker Engine is not a manager of a swarm: \
         run Nua on a manager (`docker node ls` lists them), or make this one a manager \
         (`docker swarm init`, or `docker swarm join` with a manager token)"
    )]
    NoSwarm { label: String },
    #[error("the service `{name}` still runs a task on node `{node}` after {seconds}s")]
    StillRunning {
        name: String,
        node: String,
        seconds: u64,
    },
    #[error("`{name}` on Docker Swarm: {message}")]
    NotOnSwarm { name: String, message: String },
    #[error("the proxy cannot send `{label}`'s requests to its new app: {message}")]
    Proxy { label: String, message: String },
    #[error("{what} of `{label}` is not ready ({why}); its last lines:\n{tail}")]
    NotReady {
        label: String,
        /// `provider `database`` or `the app`.
        what: String,
        why: String,
        tail: String,
    },
}

/// The proxy in front of instances' domains, as an upgrade drives it.
pub trait Routes {
    /// Send the requests of `desired`'s domain to its app (on the port `desired` gives it),
    /// or, with `maintenance`, answer them 503 with `Retry-After`.
    fn route(&self, desired: &Desired, maintenance: bool) -> Result<(), String>;
}

/// Route `desired`'s domain to its app through `proxy`, or answer it 503 (`maintenance`).
fn route(proxy: &dyn Routes, desired: &Desired, maintenance: bool) -> Result<(), Error> {
    proxy
        .route(desired, maintenance)
        .map_err(|message| Error::Proxy {
            label: desired.label.clone(),
            message,
        })
}

/// Where and how to apply.
pub struct Context<'a> {
    pub engine: &'a dyn Engine,
    /// The Swarm the engine manages, for instances deployed on it (`None`: the engine is
    /// not asked to be one).
    pub swarm: Option<&'a dyn Swarm>,
    pub external_ip: Option<String>,
    pub ready_timeout: Duration,
    /// The instance is stopped on purpose: its containers are made, not started, and
    /// stopped when they run (the app first).
    pub stopped: bool,
    /// The proxy serving the instance's domain. With one, a new app container starts beside
    /// the running one (on another port), and the proxy is switched over once it is ready;
    /// a `single-writer` app is stopped first while the proxy answers 503.
    pub proxy: Option<&'a dyn Routes>,
    /// How long the old app keeps finishing its requests after the switch.
    pub drain: Duration,
}

/// What a component is to run: its container as Docker would create it (the environment
/// resolved, secrets included), the volumes to make for it, and which of its variables
/// hold secrets.
#[derive(Debug, Clone)]
pub struct Unit {
    pub spec: ContainerSpec,
    /// Managed volumes it mounts (an existing one is kept: it holds the data).
    pub volumes: Vec<VolumeSpec>,
    /// The variables of `spec.env` whose value is a generated secret, or read from one.
    pub secret: BTreeSet<String>,
    /// Swarm placement constraints (`[docker] placement`).
    pub placement: Vec<String>,
    /// A digest of `spec` and `placement` (its `nua.spec` label): another one means it must
    /// be replaced.
    pub digest: String,
}

/// Where an instance runs: containers on this Docker Engine ([`Containers`]) or services of
/// a Swarm ([`Services`]). [`apply`] decides what each component should be; a platform makes
/// it so, in its own way.
pub trait Platform {
    /// Whether it can run `unit` as asked: an error that says why not.
    fn accepts(&self, container: &Container, unit: &Unit) -> Result<(), Error>;
    /// Make the instance's private network.
    fn network(&self, desired: &Desired) -> Result<(), Error>;
    /// Make `container` run as `unit` says, replacing what runs now (health-gated, without
    /// a failed request where the platform can), and wait until it is ready; with
    /// `ctx.stopped`, make it without running it.
    fn converge(
        &self,
        desired: &Desired,
        container: &Container,
        unit: Unit,
        ctx: &Context<'_>,
        applied: &mut Applied,
    ) -> Result<(), Error>;
    /// Stop the instance's components (it is stopped on purpose): the app first.
    fn stop(&self, desired: &Desired, applied: &mut Applied) -> Result<(), Error>;
    /// Stop `container` until the next apply runs it again (its data is being restored).
    fn halt(&self, container: &Container) -> Result<(), Error>;
    /// Remove what the instance runs that `desired` no longer has (its volumes stay).
    fn prune(&self, desired: &Desired, applied: &mut Applied) -> Result<(), Error>;
    /// Remove everything the instance `label` runs, volumes aside; what was removed.
    fn remove(&self, label: &str, network: &str) -> Result<Vec<String>, Error>;
    /// The container running `container` now on this machine, if there is one (what
    /// `nua status` shows, where backups run their commands).
    fn running(&self, container: &Container) -> Result<Option<ContainerInfo>, Error>;
}

/// The platform of an instance: Docker's containers, or a Swarm's services (the engine
/// must then be a manager of one).
pub fn platform<'a>(desired: &Desired, ctx: &Context<'a>) -> Result<Box<dyn Platform + 'a>, Error> {
    Ok(match desired.engine {
        EngineKind::Docker => Box::new(Containers { engine: ctx.engine }),
        EngineKind::Swarm => {
            let swarm = ctx.swarm.ok_or_else(|| Error::NoSwarm {
                label: desired.label.clone(),
            })?;
            Box::new(Services::new(ctx.engine, swarm, &desired.label)?)
        }
    })
}

/// Make the engine match `desired`, generation `generation`; values are generated and kept
/// in `state`.
pub fn apply(
    desired: &Desired,
    generation: u64,
    ctx: &Context<'_>,
    state: &mut state::State,
) -> Result<Applied, Error> {
    let platform = platform(desired, ctx)?;
    let mut applied = Applied::default();
    let components: Vec<Component> = desired
        .containers
        .iter()
        .map(|c| Component {
            name: c.component.clone(),
            hostname: c.component.clone(),
            port: c.ports.first().map(|p| p.container),
            env: c.env.clone(),
        })
        .collect();
    let deployment = Deployment {
        label: desired.label.clone(),
        domain: desired.domain.clone(),
        external_ip: ctx.external_ip.clone(),
    };
    let env =
        values::resolve(&components, &deployment, state).map_err(|e| Error::Values(Box::new(e)))?;
    let secret = values::secret_keys(&components);
    // What each component is to run, and whether the platform can: all found before
    // anything is made.
    let mut units = Vec::new();
    for container in &desired.containers {
        let unit = unit(desired, container, generation, &env, &secret)?;
        platform.accepts(container, &unit)?;
        units.push(unit);
    }
    platform.network(desired)?;
    for (container, unit) in desired.containers.iter().zip(units) {
        platform.converge(desired, container, unit, ctx, &mut applied)?;
    }
    if ctx.stopped {
        platform.stop(desired, &mut applied)?;
    }
    // Components of the instance the desired state no longer has (a provider removed from
    // the config); their volumes stay.
    platform.prune(desired, &mut applied)?;
    Ok(applied)
}

/// What `container` of `desired` is to run at generation `generation`.
fn unit(
    desired: &Desired,
    container: &Container,
    generation: u64,
    env: &BTreeMap<String, Vec<(String, String)>>,
    secret: &BTreeSet<(String, String)>,
) -> Result<Unit, Error> {
    let options =
        crate::options::run_options(&container.docker).map_err(|message| Error::Options {
            name: container.name.clone(),
            message,
        })?;
    let instance = Labels::from([(INSTANCE_LABEL.to_owned(), desired.label.clone())]);
    let mut labels = instance.clone();
    labels.insert(ROLE_LABEL.to_owned(), role(container.role).to_owned());
    labels.insert(COMPONENT_LABEL.to_owned(), container.component.clone());
    let env = &env[&container.component];
    let mut spec = ContainerSpec {
        name: container.name.clone(),
        image: container.image.clone(),
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        ports: bindings(container),
        mounts: Vec::new(),
        labels,
        network: Some(desired.network.clone()),
        aliases: vec![container.component.clone()],
        restart: options.restart,
        limits: options.limits,
        init: options.init.unwrap_or(container.role == Role::App),
        command: None,
        ..ContainerSpec::default()
    };
    let placement = options.placement;
    let mut volumes = Vec::new();
    for volume in &container.volumes {
        let VolumeMount {
            mount,
            volume,
            directory,
        } = volume_mount(volume, &|name| name.to_owned(), instance.clone(), true)?;
        if let Some(dir) = directory {
            std::fs::create_dir_all(&dir).map_err(|source| nua_runtime::Error::Io {
                path: dir.clone(),
                source,
            })?;
        }
        volumes.extend(volume);
        spec.mounts.push(mount);
    }
    let mut digest = spec_digest(&spec);
    if !placement.is_empty() {
        // Without one, the digest is what it always was: a container is not recreated
        // because Nua learnt about placements.
        let mut hasher = Sha256::new();
        hasher.update(digest.as_bytes());
        for constraint in &placement {
            hasher.update([0]);
            hasher.update(constraint.as_bytes());
        }
        digest = hex::encode(&hasher.finalize()[..16]);
    }
    spec.labels.insert(SPEC_LABEL.to_owned(), digest.clone());
    spec.labels
        .insert(GENERATION_LABEL.to_owned(), generation.to_string());
    let secret = env
        .iter()
        .filter(|(key, _)| secret.contains(&(container.component.clone(), key.clone())))
        .map(|(key, _)| key.clone())
        .collect();
    Ok(Unit {
        spec,
        volumes,
        secret,
        placement,
        digest,
    })
}

/// `container` of `desired` did not get ready, for `why`; `lines` are its last ones.
fn not_ready(desired: &Desired, container: &Container, why: String, lines: &[String]) -> Error {
    let what = match container.role {
        Role::App => "the app".to_owned(),
        Role::Provider => format!("provider `{}`", container.component),
    };
    Error::NotReady {
        label: desired.label.clone(),
        what,
        why,
        tail: lines.join("\n"),
    }
}

/// The name of the app container a switch replaced, kept for a rollback.
pub fn previous_name(app: &str) -> String {
    format!("{app}-previous")
}

fn role(role: Role) -> &'static str {
    match role {
        Role::App => "app",
        Role::Provider => "provider",
    }
}

/// The app's ports on 127.0.0.1; a provider's are never published.
fn bindings(container: &Container) -> Vec<PortBinding> {
    container
        .ports
        .iter()
        .filter_map(|p| {
            Some(PortBinding {
                container: p.container,
                protocol: if p.protocol == "udp" {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
                host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                host: p.host?,
            })
        })
        .collect()
}

/// A digest of what makes a container: a different one means it must be created again.
/// The environment is part of it, hashed (a changed secret recreates the container) but
/// never stored.
fn spec_digest(spec: &ContainerSpec) -> String {
    let mut hasher = Sha256::new();
    let mut field = |text: &str| {
        hasher.update(text.as_bytes());
        hasher.update([0]);
    };
    field("nua-spec-v1");
    field(&spec.name);
    field(&spec.image);
    for item in &spec.env {
        field(item);
    }
    field(&format!("{:?}", spec.ports));
    field(&format!("{:?}", spec.mounts));
    field(&format!("{:?}", spec.network));
    field(&format!("{:?}", spec.aliases));
    field(&format!(
        "{:?} {:?} {}",
        spec.restart, spec.limits, spec.init
    ));
    let labels: BTreeMap<_, _> = spec.labels.iter().collect();
    field(&format!("{labels:?}"));
    hex::encode(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests;
