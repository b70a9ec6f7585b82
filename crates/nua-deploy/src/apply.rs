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

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use nua_runtime::{
    ContainerSpec, Engine, HealthStatus, Labels, LogOptions, PortBinding, Protocol, State,
};

use crate::instance::{Container, Desired, Role, GENERATION_LABEL, INSTANCE_LABEL, ROLE_LABEL};
use crate::local::{volume_mount, VolumeMount};
use crate::state;
use crate::supervise;
use crate::values::{self, Component, Deployment};

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
    #[error("the proxy cannot send `{label}`'s requests to its new app: {message}")]
    Proxy { label: String, message: String },
    #[error("{what} of `{label}` is not ready after {}s ({why}); its last lines:\n{tail}", timeout.as_secs())]
    NotReady {
        label: String,
        /// `provider `database`` or `the app`.
        what: String,
        why: String,
        timeout: Duration,
        tail: String,
    },
}

/// The proxy in front of instances' domains, as an upgrade drives it.
pub trait Routes {
    /// Send the requests of `desired`'s domain to its app (on the port `desired` gives it),
    /// or, with `maintenance`, answer them 503 with `Retry-After`.
    fn route(&self, desired: &Desired, maintenance: bool) -> Result<(), String>;
}

/// Where and how to apply.
pub struct Context<'a> {
    pub engine: &'a dyn Engine,
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

/// Make the engine match `desired`, generation `generation`; values are generated and kept
/// in `state`.
pub fn apply(
    desired: &Desired,
    generation: u64,
    ctx: &Context<'_>,
    state: &mut state::State,
) -> Result<Applied, Error> {
    let engine = ctx.engine;
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
    let instance = Labels::from([(INSTANCE_LABEL.to_owned(), desired.label.clone())]);
    engine.create_network(&desired.network, &instance)?;
    for container in &desired.containers {
        let options =
            crate::options::run_options(&container.docker).map_err(|message| Error::Options {
                name: container.name.clone(),
                message,
            })?;
        let mut labels = instance.clone();
        labels.insert(ROLE_LABEL.to_owned(), role(container.role).to_owned());
        labels.insert(COMPONENT_LABEL.to_owned(), container.component.clone());
        let mut spec = ContainerSpec {
            name: container.name.clone(),
            image: container.image.clone(),
            env: env[&container.component]
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
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
            if let Some(volume) = volume {
                // An existing volume is kept as it is: it holds the data.
                if !engine
                    .volumes(INSTANCE_LABEL, &desired.label)?
                    .contains(&volume.name)
                {
                    engine.create_volume(&volume)?;
                    applied.volumes_created.push(volume.name.clone());
                }
            }
            spec.mounts.push(mount);
        }
        let digest = spec_digest(&spec);
        spec.labels.insert(SPEC_LABEL.to_owned(), digest.clone());
        spec.labels
            .insert(GENERATION_LABEL.to_owned(), generation.to_string());
        let existing = engine.container(&container.name)?;
        let keep = existing
            .as_ref()
            .is_some_and(|c| c.labels.get(SPEC_LABEL) == Some(&digest));
        // An app serving a domain through the proxy is replaced without a failed request.
        let proxy = match (&existing, ctx.proxy) {
            (Some(old), Some(proxy))
                if !keep
                    && !ctx.stopped
                    && container.role == Role::App
                    && desired.domain.is_some()
                    && old.state == State::Running =>
            {
                Some((old, proxy))
            }
            _ => None,
        };
        let mut maintenance = None;
        match proxy {
            Some((old, proxy)) if !container.single_writer && apart(&old.ports, &spec.ports) => {
                switch(desired, container, spec, proxy, ctx, &mut applied)?;
                continue;
            }
            Some((_, proxy)) => {
                // It must not run twice: its requests get 503 while it is replaced.
                proxy.route(desired, true).map_err(|message| Error::Proxy {
                    label: desired.label.clone(),
                    message,
                })?;
                maintenance = Some(proxy);
            }
            None => {}
        }
        if !keep {
            if existing.is_some() {
                engine.stop_container(&container.name, Duration::from_secs(10))?;
                engine.remove_container(&container.name)?;
                applied.removed.push(container.name.clone());
            }
            engine.create_container(&spec)?;
            applied.created.push(container.name.clone());
        }
        if ctx.stopped {
            continue;
        }
        let info = engine.container(&container.name)?;
        if info.as_ref().is_some_and(|c| c.state == State::Paused) {
            // Frozen on purpose (`nua pause`): left so until thawed.
            continue;
        }
        let restarts = info.as_ref().map_or(0, |c| c.restart_count);
        if !info.is_some_and(|c| c.state == State::Running) {
            engine.start_container(&container.name)?;
            applied.started.push(container.name.clone());
        }
        // The next container starts once this one is ready; the deploy ends once the
        // app is.
        ready(desired, container, &container.name, ctx, restarts)?;
        if let Some(proxy) = maintenance {
            proxy
                .route(desired, false)
                .map_err(|message| Error::Proxy {
                    label: desired.label.clone(),
                    message,
                })?;
        }
    }
    if ctx.stopped {
        // The app first, then what it depends on.
        for container in desired.containers.iter().rev() {
            let state = engine.container(&container.name)?.map(|c| c.state);
            if state == Some(State::Paused) {
                engine.set_paused(&container.name, false)?;
            }
            if matches!(
                state,
                Some(State::Running | State::Restarting | State::Paused)
            ) {
                engine.stop_container(&container.name, Duration::from_secs(10))?;
                applied.stopped.push(container.name.clone());
            }
        }
    }
    // Containers of the instance the desired state no longer has (a provider removed from
    // the config); their volumes stay.
    for found in engine.containers(INSTANCE_LABEL)? {
        let ours = found.labels.get(INSTANCE_LABEL) == Some(&desired.label);
        // The app a switch replaced is kept, stopped, for a rollback.
        let wanted = desired
            .containers
            .iter()
            .any(|c| c.name == found.name || previous_name(&c.name) == found.name);
        if ours && !wanted {
            engine.stop_container(&found.name, Duration::from_secs(10))?;
            engine.remove_container(&found.name)?;
            applied.removed.push(found.name);
        }
    }
    Ok(applied)
}

/// The name of the app container a switch replaced, kept for a rollback.
pub fn previous_name(app: &str) -> String {
    format!("{app}-previous")
}

/// Whether the new container publishes none of the host ports of the old one, so both can
/// run at once.
fn apart(old: &[PortBinding], new: &[PortBinding]) -> bool {
    !new.is_empty() && new.iter().all(|n| old.iter().all(|o| o.host != n.host))
}

/// Replace the running app `container` by one made from `spec` without a failed request:
/// the new one starts beside it (as `NAME-next`, on its own port); once it is ready, the
/// proxy sends it the requests, the old one finishes its own for `ctx.drain`, then stops
/// and is kept as `NAME-previous`; the new one takes the name. Until the proxy has switched,
/// a failure removes the new one and leaves the old one serving.
fn switch(
    desired: &Desired,
    container: &Container,
    mut spec: ContainerSpec,
    proxy: &dyn Routes,
    ctx: &Context<'_>,
    applied: &mut Applied,
) -> Result<(), Error> {
    let engine = ctx.engine;
    let name = &container.name;
    let next = format!("{name}-next");
    // A switch interrupted earlier left its new container behind.
    if engine.container(&next)?.is_some() {
        engine.remove_container(&next)?;
    }
    spec.name = next.clone();
    engine.create_container(&spec)?;
    let started = engine
        .start_container(&next)
        .map_err(Error::from)
        .and_then(|()| ready(desired, container, &next, ctx, 0))
        .and_then(|()| {
            proxy.route(desired, false).map_err(|message| Error::Proxy {
                label: desired.label.clone(),
                message,
            })
        });
    if let Err(err) = started {
        let _ = engine.remove_container(&next);
        return Err(err);
    }
    std::thread::sleep(ctx.drain);
    engine.stop_container(name, Duration::from_secs(10))?;
    let previous = previous_name(name);
    if engine.container(&previous)?.is_some() {
        engine.remove_container(&previous)?;
    }
    engine.rename_container(name, &previous)?;
    engine.rename_container(&next, name)?;
    applied.created.push(name.clone());
    applied.stopped.push(previous);
    Ok(())
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

/// How often readiness is looked at (Docker's state and health, the ready check).
const POLL: Duration = Duration::from_millis(200);

/// Wait for `container` to be ready: Docker says it is healthy, or its ready check (the
/// app's health check, a provider's protocol check, run as soon as it runs rather than after
/// Docker's first interval) passes, or, with neither, it has kept running for
/// [`supervise::SETTLE`]. An error with its last lines when it exits, is unhealthy, or is not
/// ready in time, or exits and is restarted by Docker (more than `restarts` times).
fn ready(
    desired: &Desired,
    container: &Container,
    name: &str,
    ctx: &Context<'_>,
    restarts: i64,
) -> Result<(), Error> {
    let engine = ctx.engine;
    let started = Instant::now();
    let why = loop {
        let info = engine
            .container(name)?
            .ok_or_else(|| nua_runtime::Error::NoSuchContainer {
                name: name.to_owned(),
            })?;
        if matches!(info.state, State::Exited | State::Dead) {
            break format!("it exited with code {}", info.exit_code.unwrap_or(-1));
        }
        // Under a restart policy, an exit shows as a restart rather than as `exited`.
        if info.restart_count > restarts {
            break match info.exit_code {
                Some(code) => format!("it exited with code {code} and Docker restarted it"),
                None => "it exited and Docker restarted it".to_owned(),
            };
        }
        let health = info.health.as_ref().map(|h| h.status);
        match health {
            Some(HealthStatus::Healthy) => return Ok(()),
            Some(HealthStatus::Unhealthy) => break "its health check fails".to_owned(),
            _ => {}
        }
        if info.state == State::Running {
            match &container.ready_check {
                Some(check) => {
                    let argv: Vec<&str> = check.iter().map(String::as_str).collect();
                    // A container still starting may refuse an exec: asked again next time.
                    if engine.exec(name, &argv).is_ok_and(|o| o.exit_code == 0) {
                        return Ok(());
                    }
                }
                None if health.is_none() && started.elapsed() >= supervise::SETTLE => {
                    return Ok(());
                }
                None => {}
            }
        }
        if started.elapsed() > ctx.ready_timeout {
            break "its health check has not passed yet".to_owned();
        }
        std::thread::sleep(POLL);
    };
    let mut lines = Vec::new();
    let options = LogOptions {
        follow: false,
        tail: Some(20),
    };
    let _ = engine.logs(name, options, &mut |line| {
        lines.push(format!("  {}", line.text));
        std::ops::ControlFlow::Continue(())
    });
    let what = match container.role {
        Role::App => "the app".to_owned(),
        Role::Provider => format!("provider `{}`", container.component),
    };
    Err(Error::NotReady {
        label: desired.label.clone(),
        what,
        why,
        timeout: ctx.ready_timeout,
        tail: lines.join("\n"),
    })
}

#[cfg(test)]
mod tests;
