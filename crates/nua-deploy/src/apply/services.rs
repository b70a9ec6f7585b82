//! Instances as services of a Docker Swarm: each component a service of one task on the
//! instance's overlay network, found there by its name (DNS round robin: Swarm's virtual IPs
//! need IPVS, which not every kernel has). Swarm replaces a task itself, in the order the
//! service says (`start-first`, or `stop-first` for a `single-writer` app), gated by the
//! health check, and rolls an update back when the new task fails; Nua waits for the
//! outcome and reports it as it does on one engine.
//!
//! - **Secrets** never reach `docker service inspect`: a variable holding one is a Swarm
//!   secret. The database images' own variables are given as `KEY_FILE` (the official
//!   images and Nua's read them); the others are written to one secret,
//!   `/run/secrets/nua-env`, that a shell reads before it runs the image's command, so any
//!   image with `/bin/sh` takes them. A secret's name carries a digest of its content: a new
//!   value is a new secret, and the old one is removed once no service uses it.
//! - **Data stays where it is**: a component with volumes is placed on a node (this
//!   manager's, when it is first made) and kept there, as its service's `node.id`
//!   constraint says.
//! - **Health**: the image's health check (a provider's protocol check, when its module has
//!   one), run every [`HEALTH_INTERVAL`] so that a new task is found ready within seconds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use nua_runtime::swarm::{Order, SecretFile, ServiceInfo, ServiceSpec, TaskState, UpdateState};
use nua_runtime::{ContainerInfo, Engine, Labels, LogOptions, Swarm};

use super::{not_ready, route, Applied, Context, Error, Platform, Unit, SPEC_LABEL};
use crate::instance::{Container, Desired, Role, INSTANCE_LABEL};

/// How long an updated task is watched before the update is done: a task failing in that
/// time rolls it back.
pub const MONITOR: Duration = Duration::from_secs(5);
/// How often a task's health check runs.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
/// Tasks that fail one after the other before a new service is said not to start.
const FAILED_TASKS: usize = 3;
/// The file, under `/run/secrets/`, of the secret variables an image cannot read from files.
pub const ENV_FILE: &str = "nua-env";
/// How long a service's tasks have to stop.
const DOWN: Duration = Duration::from_secs(60);
/// How often the service and its tasks are looked at.
const POLL: Duration = Duration::from_millis(250);

/// What a wait compares with: what the service was before this converge.
struct Since {
    /// A spec was sent (else the service is as wanted, and only its readiness is awaited).
    put: bool,
    /// When its latest update before started.
    update: Option<String>,
    /// Swarm replaces running tasks: the update's outcome is what counts.
    updating: bool,
    /// Its tasks before (their failures are not this version's).
    tasks: BTreeSet<String>,
}

/// Services of a Swarm, through one of its managers.
pub struct Services<'a> {
    engine: &'a dyn Engine,
    swarm: &'a dyn Swarm,
    /// This manager's node: where a component that keeps data is first placed.
    node: String,
}

impl<'a> Services<'a> {
    /// The Swarm `swarm` manages, for instance `label`: an error when it manages none.
    pub fn new(engine: &'a dyn Engine, swarm: &'a dyn Swarm, label: &str) -> Result<Self, Error> {
        let node = swarm.manager()?.ok_or_else(|| Error::NoSwarm {
            label: label.to_owned(),
        })?;
        Ok(Services {
            engine,
            swarm,
            node,
        })
    }

    fn instance_labels(label: &str) -> Labels {
        Labels::from([(INSTANCE_LABEL.to_owned(), label.to_owned())])
    }

    /// The service `unit` becomes, its secrets made.
    fn service_spec(
        &self,
        desired: &Desired,
        container: &Container,
        unit: &Unit,
        existing: Option<&ServiceInfo>,
        stopped: bool,
    ) -> Result<ServiceSpec, Error> {
        let spec = &unit.spec;
        let labels = Self::instance_labels(&desired.label);
        let mut env = Vec::new();
        let mut secrets = Vec::new();
        let mut exported = String::new();
        for item in &spec.env {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            if !unit.secret.contains(key) {
                env.push(item.clone());
            } else if reads_file(container.module.as_deref(), key) {
                let name = secret_name(&spec.name, key, value);
                self.swarm.create_secret(&name, value.as_bytes(), &labels)?;
                secrets.push(SecretFile {
                    secret: name,
                    file: key.to_owned(),
                });
                env.push(format!("{key}_FILE=/run/secrets/{key}"));
            } else {
                exported.push_str(&format!("export {key}={}\n", quoted(value)));
            }
        }
        let (mut entrypoint, mut command) = (spec.entrypoint.clone(), spec.command.clone());
        let details = self.engine.image(&spec.image)?;
        if !exported.is_empty() {
            let name = secret_name(&spec.name, ENV_FILE, &exported);
            self.swarm
                .create_secret(&name, exported.as_bytes(), &labels)?;
            secrets.push(SecretFile {
                secret: name,
                file: ENV_FILE.to_owned(),
            });
            // The image's own command, run by a shell that has read the secrets first.
            let details = details
                .as_ref()
                .ok_or_else(|| nua_runtime::Error::NoSuchImage {
                    reference: spec.image.clone(),
                })?;
            let mut argv = entrypoint
                .take()
                .unwrap_or_else(|| details.entrypoint.clone());
            argv.extend(command.take().unwrap_or_else(|| details.cmd.clone()));
            entrypoint = Some(vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!(". /run/secrets/{ENV_FILE} && exec \"$@\""),
                "sh".to_owned(),
            ]);
            command = Some(argv);
        }
        // Where the data is, the component stays: on the node it was first made on, unless
        // the deploy file places it.
        let mut constraints = Vec::new();
        if !unit.volumes.is_empty() {
            let pinned = existing
                .and_then(|s| s.constraints.iter().find(|c| c.starts_with("node.id==")))
                .cloned();
            let here = unit
                .placement
                .is_empty()
                .then(|| format!("node.id=={}", self.node));
            constraints.extend(pinned.or(here));
        }
        constraints.extend(unit.placement.iter().cloned());
        let image_check = details.as_ref().and_then(|d| d.health_check.clone());
        let health_check = match (&container.ready_check, container.role) {
            (Some(check), Role::Provider) => Some(check.clone()),
            // An image without a `HEALTHCHECK` (a wrapped or pulled one) is gated by the
            // nua-config's check all the same.
            (Some(check), Role::App) if image_check.is_none() => Some(check.clone()),
            _ => image_check.and_then(|test| {
                // `CMD-SHELL x` is `/bin/sh -c x`; `CMD a b` is `a b`.
                match test.split_first() {
                    Some((kind, rest)) if kind == "CMD-SHELL" => Some(
                        ["/bin/sh", "-c"]
                            .iter()
                            .map(|s| (*s).to_owned())
                            .chain(rest.iter().cloned())
                            .collect(),
                    ),
                    Some((kind, rest)) if kind == "CMD" => Some(rest.to_vec()),
                    _ => None,
                }
            }),
        };
        // An app with a domain is on the proxy's network too, where nginx finds it by name.
        let mut networks = vec![(desired.network.clone(), spec.aliases.clone())];
        if container.role == Role::App && desired.domain.is_some() {
            networks.push((crate::proxy::swarm::NETWORK.to_owned(), Vec::new()));
        }
        let mut service_labels = spec.labels.clone();
        service_labels.insert(SPEC_LABEL.to_owned(), unit.digest.clone());
        Ok(ServiceSpec {
            name: spec.name.clone(),
            image: spec.image.clone(),
            env,
            labels: service_labels,
            networks,
            mounts: spec.mounts.clone(),
            volumes: unit.volumes.clone(),
            secrets,
            entrypoint,
            command,
            constraints,
            replicas: u64::from(!stopped),
            order: if container.single_writer {
                Order::StopFirst
            } else {
                Order::StartFirst
            },
            monitor: MONITOR,
            stop_grace: Duration::from_secs(10),
            init: spec.init,
            limits: spec.limits,
            restart: spec.restart,
            health_check,
            health_interval: HEALTH_INTERVAL,
            host_ports: Vec::new(),
        })
    }

    /// Wait until service `name` runs a ready task of digest `digest`: after an update,
    /// until Swarm says it completed; an error with the failed task's last lines when Swarm
    /// rolled it back, when new tasks keep failing, or when none is ready in time.
    fn wait(
        &self,
        desired: &Desired,
        container: &Container,
        digest: &str,
        since: &Since,
        ctx: &Context<'_>,
    ) -> Result<(), Error> {
        let name = &container.name;
        let started = Instant::now();
        let why = loop {
            let service = self
                .swarm
                .service(name)?
                .ok_or_else(|| nua_runtime::Error::NoSuchService { name: name.clone() })?;
            let tasks = self.swarm.tasks(name)?;
            let ready = tasks.iter().any(|t| {
                t.desired == TaskState::Running
                    && t.state == TaskState::Running
                    && t.digest.as_deref() == Some(digest)
            });
            let in_progress = service.update.as_ref().is_some_and(|u| {
                matches!(
                    u.state,
                    UpdateState::Updating | UpdateState::RollbackStarted
                )
            });
            if !since.put {
                // Nothing was asked: an update in progress (a deploy killed while Swarm
                // carries it out) is awaited, one that ended is the past.
                if ready && !in_progress {
                    return Ok(());
                }
            }
            // What this put made Swarm do: an update that started after it.
            let update = service
                .update
                .as_ref()
                .filter(|u| since.put && Some(&u.started) != since.update.as_ref());
            match update.map(|u| u.state) {
                Some(UpdateState::Completed) if ready => return Ok(()),
                Some(
                    UpdateState::RollbackStarted
                    | UpdateState::RollbackPaused
                    | UpdateState::RollbackCompleted,
                ) => {
                    let message = update.map(|u| u.message.clone()).unwrap_or_default();
                    break format!("Swarm rolled the update back ({message})");
                }
                Some(UpdateState::Paused) => {
                    let message = update.map(|u| u.message.clone()).unwrap_or_default();
                    break format!("Swarm paused the update ({message})");
                }
                Some(_) => {}
                None if ready && !since.updating && since.put => return Ok(()),
                None => {}
            }
            // Tasks of this version that failed since: those of its history do not count.
            let failed = tasks
                .iter()
                .filter(|t| {
                    matches!(t.state, TaskState::Failed | TaskState::Rejected)
                        && t.digest.as_deref() == Some(digest)
                        && !since.tasks.contains(&t.id)
                })
                .count();
            // An update rolls itself back; a new service's tasks are restarted forever.
            if !since.updating && failed >= FAILED_TASKS {
                break format!("{failed} of its tasks failed");
            }
            if started.elapsed() > ctx.ready_timeout {
                let seconds = ctx.ready_timeout.as_secs();
                let pending = tasks
                    .iter()
                    .find(|t| t.digest.as_deref() == Some(digest) && t.state == TaskState::Pending);
                break match pending {
                    // Not placed, or its image not found: Swarm says why.
                    Some(task) => format!(
                        "Swarm has not started a task of it in {seconds}s ({}); `nua nodes` \
                         shows the nodes, and `[docker] placement` where it may run",
                        task.error.clone().unwrap_or_else(|| task.message.clone())
                    ),
                    None => format!("its health check has not passed in {seconds}s"),
                };
            }
            std::thread::sleep(POLL);
        };
        let tasks = self.swarm.tasks(name).unwrap_or_default();
        // The newest task of this version that failed, else the newest that did not run.
        let ours = || {
            tasks
                .iter()
                .filter(|t| t.digest.as_deref() == Some(digest) && !since.tasks.contains(&t.id))
        };
        let failed = ours()
            .find(|t| matches!(t.state, TaskState::Failed | TaskState::Rejected))
            .or_else(|| ours().find(|t| t.state != TaskState::Running));
        let mut lines = Vec::new();
        if let Some(task) = failed {
            let error = task.error.clone().unwrap_or_else(|| task.message.clone());
            lines.push(format!("  (task {}: {error})", short(&task.id)));
            if let Some(id) = &task.container {
                let options = LogOptions {
                    follow: false,
                    tail: Some(20),
                };
                // Its container is on this node only when Swarm placed it here.
                let _ = self.engine.logs(id, options, &mut |line| {
                    lines.push(format!("  {}", line.text));
                    std::ops::ControlFlow::Continue(())
                });
            }
        }
        Err(not_ready(desired, container, why, &lines))
    }

    /// Remove the instance's secrets no service uses any more.
    fn sweep_secrets(&self, label: &str) -> Result<(), Error> {
        let used: BTreeSet<String> = self
            .swarm
            .services(INSTANCE_LABEL)?
            .into_iter()
            .flat_map(|s| s.secrets)
            .collect();
        for secret in self.swarm.secrets(INSTANCE_LABEL, label)? {
            if !used.contains(&secret) {
                match self.swarm.remove_secret(&secret) {
                    // A service took it in between (a rollback puts old ones back).
                    Err(nua_runtime::Error::InUse { .. }) | Ok(()) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Wait (a minute at most) until service `name` runs no task; an error when one still
    /// runs then.
    fn down(&self, name: &str) -> Result<(), Error> {
        let until = Instant::now() + DOWN;
        loop {
            let running = self
                .swarm
                .tasks(name)?
                .into_iter()
                .find(|t| matches!(t.state, TaskState::Running | TaskState::Starting));
            match running {
                None => return Ok(()),
                Some(task) if Instant::now() > until => {
                    return Err(Error::StillRunning {
                        name: name.to_owned(),
                        node: task.node,
                        seconds: DOWN.as_secs(),
                    })
                }
                Some(_) => std::thread::sleep(POLL),
            }
        }
    }

    fn ours<'s>(&self, services: &'s [ServiceInfo], label: &str) -> Vec<&'s ServiceInfo> {
        services
            .iter()
            .filter(|s| s.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(label))
            .collect()
    }
}

impl Platform for Services<'_> {
    fn accepts(&self, container: &Container, unit: &Unit) -> Result<(), Error> {
        let refuse = |message: String| {
            Err(Error::NotOnSwarm {
                name: container.name.clone(),
                message,
            })
        };
        if unit.spec.limits.shm_bytes.is_some() {
            return refuse(
                "`shm_size`: a Swarm service has no size of `/dev/shm` to set; remove the \
                 option"
                    .to_owned(),
            );
        }
        if let Some(port) = container.ports.iter().find(|p| p.proxy.is_some()) {
            return refuse(format!(
                "port `{}` asks the proxy for a TCP stream, which Nua's proxy on a swarm does \
                 not serve yet",
                port.name
            ));
        }
        // What a shell reads from `nua-env` must be a shell variable's name.
        let shell_name = |key: &str| {
            key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        let module = container.module.as_deref();
        if let Some(key) = unit
            .secret
            .iter()
            .find(|k| !reads_file(module, k) && !shell_name(k))
        {
            return refuse(format!(
                "the variable `{key}` holds a secret, which a task reads from a file as a \
                 shell variable, and `{key}` is not a shell variable's name; rename it"
            ));
        }
        // Data stays on one node: a placement must name it.
        let names_a_node = unit
            .placement
            .iter()
            .any(|c| c.starts_with("node.id") || c.starts_with("node.hostname"));
        if !unit.volumes.is_empty() && !unit.placement.is_empty() && !names_a_node {
            return refuse(
                "`placement` of a component with volumes must name its node (`node.hostname \
                 == NAME` or `node.id == ID`): its data is on that node's disk, and Swarm \
                 would start it empty on another"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn network(&self, desired: &Desired) -> Result<(), Error> {
        let labels = Self::instance_labels(&desired.label);
        self.swarm.create_overlay(&desired.network, &labels)?;
        if desired.domain.is_some() {
            let proxy = Labels::from([(crate::proxy::swarm::LABEL.to_owned(), "swarm".to_owned())]);
            self.swarm
                .create_overlay(crate::proxy::swarm::NETWORK, &proxy)?;
        }
        Ok(())
    }

    fn converge(
        &self,
        desired: &Desired,
        container: &Container,
        unit: Unit,
        ctx: &Context<'_>,
        applied: &mut Applied,
    ) -> Result<(), Error> {
        let name = &container.name;
        let existing = self.swarm.service(name)?;
        let replicas = u64::from(!ctx.stopped);
        let same = existing
            .as_ref()
            .is_some_and(|s| s.labels.get(SPEC_LABEL) == Some(&unit.digest));
        let scaled = existing.as_ref().is_some_and(|s| s.replicas != replicas);
        let put = !same || scaled;
        let since = Since {
            put,
            update: existing
                .as_ref()
                .and_then(|s| s.update.as_ref())
                .map(|u| u.started.clone()),
            // Swarm replaces running tasks by an update, whose outcome is awaited; a service
            // that ran none starts its new task at once.
            updating: !same && existing.as_ref().is_some_and(|s| s.replicas > 0),
            tasks: if put {
                self.swarm.tasks(name)?.into_iter().map(|t| t.id).collect()
            } else {
                BTreeSet::new()
            },
        };
        let spec = if put {
            Some(self.service_spec(desired, container, &unit, existing.as_ref(), ctx.stopped)?)
        } else {
            None
        };
        // A `single-writer` app is stopped before its new task starts: meanwhile the proxy
        // answers 503 with `Retry-After` itself, rather than try a task that is going away
        // (whose address Docker's DNS and nginx may still give for a second).
        let maintenance = match ctx.proxy {
            Some(proxy)
                if since.updating
                    && !ctx.stopped
                    && container.single_writer
                    && container.role == Role::App
                    && desired.domain.is_some() =>
            {
                route(proxy, desired, true)?;
                Some(proxy)
            }
            _ => None,
        };
        let updated = (|| {
            if let Some(spec) = &spec {
                self.swarm.put_service(spec)?;
                match (&existing, same) {
                    (None, _) | (Some(_), false) => applied.created.push(name.clone()),
                    (Some(_), true) if ctx.stopped => applied.stopped.push(name.clone()),
                    (Some(_), true) => applied.started.push(name.clone()),
                }
            }
            if ctx.stopped {
                return Ok(());
            }
            // The next component starts once this one is ready; the deploy ends once the app
            // is.
            let waited = self.wait(desired, container, &unit.digest, &since, ctx);
            if waited.is_err() {
                // The secrets of a version Swarm rolled back are not needed.
                let _ = self.sweep_secrets(&desired.label);
            }
            waited
        })();
        // Served again, whatever the outcome: by the new task, or by the old version when
        // Swarm was refused the update or rolled it back (the deploy then routes the version
        // it records); while no task answers, the proxy's own 503 stands in. The update's
        // error comes first.
        match maintenance {
            Some(proxy) => {
                let routed = route(proxy, desired, false);
                updated.and(routed)
            }
            None => updated,
        }
    }

    fn stop(&self, desired: &Desired, _applied: &mut Applied) -> Result<(), Error> {
        // Each service was scaled to no task as it converged; wait until they are down.
        for container in desired.containers.iter().rev() {
            self.down(&container.name)?;
        }
        Ok(())
    }

    fn halt(&self, container: &Container) -> Result<(), Error> {
        self.swarm.scale(&container.name, 0)?;
        self.down(&container.name)
    }

    fn prune(&self, desired: &Desired, applied: &mut Applied) -> Result<(), Error> {
        let services = self.swarm.services(INSTANCE_LABEL)?;
        for service in self.ours(&services, &desired.label) {
            if !desired.containers.iter().any(|c| c.name == service.name) {
                self.swarm.remove_service(&service.name)?;
                applied.removed.push(service.name.clone());
            }
        }
        self.sweep_secrets(&desired.label)
    }

    fn remove(&self, label: &str, network: &str) -> Result<Vec<String>, Error> {
        let services = self.swarm.services(INSTANCE_LABEL)?;
        let mut removed = Vec::new();
        for service in self.ours(&services, label) {
            self.swarm.remove_service(&service.name)?;
            removed.push(service.name.clone());
        }
        // Their containers stop on their nodes after the services are gone; the network and
        // the volumes are free once they have (here, on this node).
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until
            && self
                .engine
                .containers(INSTANCE_LABEL)?
                .iter()
                .any(|c| c.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(label))
        {
            std::thread::sleep(POLL);
        }
        let mut left = self.swarm.secrets(INSTANCE_LABEL, label)?;
        for secret in &left {
            self.swarm.remove_secret(secret)?;
        }
        removed.append(&mut left);
        // Swarm lets go of a network's endpoints a moment after the last task ends.
        let mut tries = 0;
        while let Err(err) = self.engine.remove_network(network) {
            tries += 1;
            if tries == 20 {
                return Err(err.into());
            }
            std::thread::sleep(POLL);
        }
        Ok(removed)
    }

    fn running(&self, container: &Container) -> Result<Option<ContainerInfo>, Error> {
        let tasks = self.swarm.tasks(&container.name)?;
        let task = tasks
            .iter()
            .filter(|t| t.desired == TaskState::Running && t.node == self.node)
            .find(|t| t.state == TaskState::Running)
            .or_else(|| tasks.iter().find(|t| t.node == self.node));
        match task.and_then(|t| t.container.as_ref()) {
            Some(id) => Ok(self.engine.container(id)?),
            None => Ok(None),
        }
    }
}

/// The variables the official database images, and Nua's, read from the file `KEY_FILE`
/// names.
fn reads_file(module: Option<&str>, key: &str) -> bool {
    match module {
        Some("postgres") => matches!(
            key,
            "POSTGRES_PASSWORD" | "POSTGRES_USER" | "POSTGRES_DB" | "POSTGRES_INITDB_ARGS"
        ),
        Some("mariadb") => {
            let rest = key
                .strip_prefix("MARIADB_")
                .or_else(|| key.strip_prefix("MYSQL_"));
            matches!(
                rest,
                Some("ROOT_PASSWORD" | "USER" | "PASSWORD" | "DATABASE")
            )
        }
        _ => false,
    }
}

/// A secret's name: the service's, and a digest of what it holds (a secret never changes;
/// another content is another secret). At most 64 characters, as Swarm wants.
fn secret_name(service: &str, key: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(value.as_bytes());
    let digest = hex::encode(&hasher.finalize()[..6]);
    let service: String = service.chars().take(64 - 13).collect();
    format!("{service}-{digest}")
}

/// `value` in single quotes for `sh`: a quote inside is closed, escaped and reopened.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
