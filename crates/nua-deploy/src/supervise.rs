//! Start a planned container and watch it: until it is healthy (or has been running a
//! moment, without a health check), until it exits, or until the user asks it to stop.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::local::{self, HostPorts, Plan, Request, APP_LABEL};
use nua_runtime::{CheckResult, ContainerInfo, Engine, HealthStatus, LogLine, LogOptions, State};

/// How long a container without a health check must keep running before it counts as
/// started (a start command that fails at once fails well within it).
pub const SETTLE: Duration = Duration::from_secs(2);
/// How often the engine is asked how the container is doing.
const POLL: Duration = Duration::from_millis(200);
/// Lines of output shown when a container exits at once.
pub const LAST_LINES: u64 = 20;
/// How many times a start is tried again on other ports when a host port turns out busy.
const PORT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error(transparent)]
    Plan(#[from] local::Error),
    #[error("`{name}` is already running")]
    Running { name: String },
    #[error("a container named `{name}` exists and was not made by `nua run`")]
    Foreign { name: String },
    #[error("cannot create the folder `{}` for a directory volume", path.display())]
    Directory {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Create the volumes and the container of `request` and start it. A stopped container of
/// the same app is replaced; a running one is refused. When Docker finds a host port busy
/// (someone took it since it was probed), the plan is made again without that port.
pub fn start(
    engine: &dyn Engine,
    request: &Request,
    ports: &dyn HostPorts,
) -> Result<(Plan, String), Error> {
    if let Some(existing) = engine.container(&request.name)? {
        if !existing.labels.contains_key(APP_LABEL) {
            return Err(Error::Foreign {
                name: request.name.clone(),
            });
        }
        if matches!(
            existing.state,
            State::Running | State::Restarting | State::Paused
        ) {
            return Err(Error::Running {
                name: request.name.clone(),
            });
        }
        engine.remove_container(&request.name)?;
    }
    let mut taken = Vec::new();
    let mut plan = local::plan(request, ports, &taken)?;
    for dir in &plan.directories {
        std::fs::create_dir_all(dir).map_err(|source| Error::Directory {
            path: dir.clone(),
            source,
        })?;
    }
    for volume in &plan.volumes {
        engine.create_volume(volume)?;
    }
    for attempt in 0.. {
        let id = engine.create_container(&plan.spec)?;
        match engine.start_container(&request.name) {
            Ok(()) => return Ok((plan, id)),
            Err(nua_runtime::Error::PortTaken { port }) if attempt < PORT_RETRIES => {
                engine.remove_container(&request.name)?;
                taken.push(port);
                // The new plan says again what the first said, and that the port moved.
                plan = local::plan(request, ports, &taken)?;
            }
            Err(err) => {
                // Leave nothing half-made behind.
                let _ = engine.remove_container(&request.name);
                return Err(err.into());
            }
        }
    }
    unreachable!("the loop returns")
}

/// Where a started container got to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Docker reports it healthy.
    Healthy,
    /// No health check, and it has kept running for [`SETTLE`].
    Running,
    /// It exited, with its last lines of output.
    Exited { code: i64, last_lines: Vec<LogLine> },
    /// Docker reports it unhealthy; the last checks, oldest first.
    Unhealthy { checks: Vec<CheckResult> },
    /// The user asked to stop.
    Interrupted,
}

/// Wait until the container is healthy, unhealthy, exited or (without a health check)
/// settled, or until `interrupted` says so.
pub fn wait_ready(
    engine: &dyn Engine,
    name: &str,
    interrupted: &dyn Fn() -> bool,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    loop {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        let info = inspect(engine, name)?;
        if matches!(info.state, State::Exited | State::Dead) {
            return exited(engine, name, info.exit_code.unwrap_or(-1));
        }
        match info.health {
            Some(health) => match health.status {
                HealthStatus::Healthy => return Ok(Outcome::Healthy),
                HealthStatus::Unhealthy => {
                    return Ok(Outcome::Unhealthy { checks: health.log });
                }
                HealthStatus::Starting => {}
            },
            None if started.elapsed() >= SETTLE => return Ok(Outcome::Running),
            None => {}
        }
        std::thread::sleep(POLL);
    }
}

/// [`wait_ready`] for an app left in the background (`nua run --detach`): an app that
/// exited as it started is removed (its last lines are in the outcome), as nothing would
/// follow it; an unhealthy one is left for `nua logs`.
pub fn wait_detached(
    engine: &dyn Engine,
    name: &str,
    interrupted: &dyn Fn() -> bool,
) -> Result<Outcome, Error> {
    let outcome = wait_ready(engine, name, interrupted)?;
    if matches!(outcome, Outcome::Exited { .. }) {
        engine.remove_container(name)?;
    }
    Ok(outcome)
}

/// The container `name`, which must exist.
pub(crate) fn inspect(engine: &dyn Engine, name: &str) -> Result<ContainerInfo, Error> {
    Ok(engine
        .container(name)?
        .ok_or_else(|| nua_runtime::Error::NoSuchContainer {
            name: name.to_owned(),
        })?)
}

/// The outcome of a container that exited with `code`, with its last lines of output.
pub(crate) fn exited(engine: &dyn Engine, name: &str, code: i64) -> Result<Outcome, Error> {
    exited_with(engine, name, code, LAST_LINES)
}

/// [`exited`], with up to `lines` of its last lines.
pub(crate) fn exited_with(
    engine: &dyn Engine,
    name: &str,
    code: i64,
    lines: u64,
) -> Result<Outcome, Error> {
    let mut last_lines = Vec::new();
    // A container removed as it exited (by hand, `--rm`) has no logs left to give: it
    // exited all the same.
    let _ = engine.logs(
        name,
        LogOptions {
            follow: false,
            tail: Some(lines),
        },
        &mut |line| {
            last_lines.push(line);
            ControlFlow::Continue(())
        },
    );
    Ok(Outcome::Exited { code, last_lines })
}

/// Follow the container in the foreground: its output goes to `output` as it comes, health
/// changes to `on_outcome` (`Healthy`, and later `Unhealthy` or `Healthy` again as Docker
/// says), until it exits, fails to become healthy, or `interrupted` says so. The container is
/// then stopped (at once, if `hurry` says so while it stops) and removed, its named volumes
/// kept, and the final outcome returned.
pub fn foreground(
    engine: &dyn Engine,
    name: &str,
    interrupted: &(dyn Fn() -> bool + Sync),
    hurry: &(dyn Fn() -> bool + Sync),
    output: &(dyn Fn(LogLine) + Sync),
    on_outcome: &mut dyn FnMut(&Outcome),
    stop_timeout: Duration,
) -> Result<Outcome, Error> {
    let outcome = std::thread::scope(|scope| {
        // The engine ends a followed log once the container has stopped, after its last
        // lines: what an app prints as it shuts down or crashes is shown too.
        let follower = scope.spawn(|| {
            engine.logs(
                name,
                LogOptions {
                    follow: true,
                    tail: None,
                },
                &mut |line| {
                    output(line);
                    ControlFlow::Continue(())
                },
            )
        });
        let outcome = watch(engine, name, interrupted, on_outcome);
        if !matches!(outcome, Ok(Outcome::Exited { .. })) {
            let stopping = scope.spawn(|| engine.stop_container(name, stop_timeout));
            let mut killed = false;
            while !stopping.is_finished() {
                if hurry() && !killed {
                    // Asked again: no more grace period.
                    let _ = engine.stop_container(name, Duration::ZERO);
                    killed = true;
                }
                std::thread::sleep(POLL);
            }
            if !matches!(stopping.join(), Ok(Ok(()))) {
                // A container that cannot be stopped is removed by force, which ends its log.
                let _ = engine.remove_container(name);
            }
        }
        let _ = follower.join();
        outcome
    });
    let removed = engine.remove_container(name);
    let outcome = outcome?;
    match removed {
        Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => Ok(outcome),
        Err(err) => Err(err.into()),
    }
}

/// Until the container exits or the user interrupts: a container that does not get healthy
/// ends the watch; one that was healthy and turns unhealthy is reported and left running, as
/// Docker does (a slow moment is no reason to take an app down).
fn watch(
    engine: &dyn Engine,
    name: &str,
    interrupted: &dyn Fn() -> bool,
    on_outcome: &mut dyn FnMut(&Outcome),
) -> Result<Outcome, Error> {
    let first = wait_ready(engine, name, interrupted)?;
    on_outcome(&first);
    if !matches!(first, Outcome::Healthy | Outcome::Running) {
        return Ok(first);
    }
    let mut last = HealthStatus::Healthy;
    loop {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        let Some(info) = engine.container(name)? else {
            return Ok(Outcome::Interrupted);
        };
        if matches!(info.state, State::Exited | State::Dead) {
            // Its output was shown as it came.
            return Ok(Outcome::Exited {
                code: info.exit_code.unwrap_or(-1),
                last_lines: Vec::new(),
            });
        }
        if let Some(health) = info.health {
            if health.status != last && health.status != HealthStatus::Starting {
                last = health.status;
                on_outcome(&match last {
                    HealthStatus::Unhealthy => Outcome::Unhealthy { checks: health.log },
                    _ => Outcome::Healthy,
                });
            }
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests;
