//! Instances as containers of this Docker Engine: Nua creates, starts, replaces and removes
//! each container itself, and tells when it is ready.

use std::time::{Duration, Instant};

use nua_runtime::{
    ContainerInfo, ContainerSpec, Engine, HealthStatus, LogOptions, PortBinding, State,
};

use super::{
    not_ready, previous_name, route, Applied, Context, Error, Platform, Routes, Unit, SPEC_LABEL,
};
use crate::instance::{Container, Desired, Role, INSTANCE_LABEL};
use crate::supervise;

/// Containers on one Docker Engine.
pub struct Containers<'a> {
    pub engine: &'a dyn Engine,
}

impl Platform for Containers<'_> {
    fn accepts(&self, container: &Container, unit: &Unit) -> Result<(), Error> {
        if unit.placement.is_empty() {
            return Ok(());
        }
        Err(Error::Options {
            name: container.name.clone(),
            message: "`placement` places the services of a Docker Swarm, and this instance \
                      runs on one Docker Engine (`NUA_ENGINE=swarm` deploys on a swarm)"
                .to_owned(),
        })
    }

    fn network(&self, desired: &Desired) -> Result<(), Error> {
        let instance =
            nua_runtime::Labels::from([(INSTANCE_LABEL.to_owned(), desired.label.clone())]);
        self.engine.create_network(&desired.network, &instance)?;
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
        let engine = self.engine;
        for volume in &unit.volumes {
            // An existing volume is kept as it is: it holds the data.
            if !engine
                .volumes(INSTANCE_LABEL, &desired.label)?
                .contains(&volume.name)
            {
                engine.create_volume(volume)?;
                applied.volumes_created.push(volume.name.clone());
            }
        }
        let spec = unit.spec;
        let existing = engine.container(&container.name)?;
        let keep = existing
            .as_ref()
            .is_some_and(|c| c.labels.get(SPEC_LABEL) == Some(&unit.digest));
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
                return switch(engine, desired, container, spec, proxy, ctx, applied);
            }
            Some((_, proxy)) => {
                // It must not run twice: its requests get 503 while it is replaced.
                route(proxy, desired, true)?;
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
            return Ok(());
        }
        let info = engine.container(&container.name)?;
        if info.as_ref().is_some_and(|c| c.state == State::Paused) {
            // Frozen on purpose (`nua pause`): left so until thawed.
            return Ok(());
        }
        let restarts = info.as_ref().map_or(0, |c| c.restart_count);
        if !info.is_some_and(|c| c.state == State::Running) {
            engine.start_container(&container.name)?;
            applied.started.push(container.name.clone());
        }
        // The next container starts once this one is ready; the deploy ends once the
        // app is.
        ready(engine, desired, container, &container.name, ctx, restarts)?;
        if let Some(proxy) = maintenance {
            route(proxy, desired, false)?;
        }
        Ok(())
    }

    fn stop(&self, desired: &Desired, applied: &mut Applied) -> Result<(), Error> {
        let engine = self.engine;
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
        Ok(())
    }

    fn halt(&self, container: &Container) -> Result<(), Error> {
        Ok(self
            .engine
            .stop_container(&container.name, Duration::from_secs(30))?)
    }

    fn prune(&self, desired: &Desired, applied: &mut Applied) -> Result<(), Error> {
        let engine = self.engine;
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
        Ok(())
    }

    fn remove(&self, label: &str, network: &str) -> Result<Vec<String>, Error> {
        let engine = self.engine;
        let mut removed = Vec::new();
        for found in engine.containers(INSTANCE_LABEL)? {
            if found.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(label) {
                engine.stop_container(&found.name, Duration::from_secs(10))?;
                engine.remove_container(&found.name)?;
                removed.push(found.name);
            }
        }
        engine.remove_network(network)?;
        Ok(removed)
    }

    fn running(&self, container: &Container) -> Result<Option<ContainerInfo>, Error> {
        Ok(self.engine.container(&container.name)?)
    }
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
    engine: &dyn Engine,
    desired: &Desired,
    container: &Container,
    mut spec: ContainerSpec,
    proxy: &dyn Routes,
    ctx: &Context<'_>,
    applied: &mut Applied,
) -> Result<(), Error> {
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
        .and_then(|()| ready(engine, desired, container, &next, ctx, 0))
        .and_then(|()| route(proxy, desired, false));
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

/// How often readiness is looked at (Docker's state and health, the ready check).
const POLL: Duration = Duration::from_millis(200);

/// Wait for `container` to be ready: Docker says it is healthy, or its ready check (the
/// app's health check, a provider's protocol check, run as soon as it runs rather than after
/// Docker's first interval) passes, or, with neither, it has kept running for
/// [`supervise::SETTLE`]. An error with its last lines when it exits, is unhealthy, or is not
/// ready in time, or exits and is restarted by Docker (more than `restarts` times).
fn ready(
    engine: &dyn Engine,
    desired: &Desired,
    container: &Container,
    name: &str,
    ctx: &Context<'_>,
    restarts: i64,
) -> Result<(), Error> {
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
    Err(not_ready(desired, container, why, &lines))
}
