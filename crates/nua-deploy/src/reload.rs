//! `nua run --watch`: one app whose container is replaced by one of a new image, without a
//! refused connection. Nua holds the app's host ports itself ([`Relay`]); each container
//! publishes its ports on ports Docker chooses on 127.0.0.1, and the relay forwards to the
//! container that serves now.
//!
//! A replacement starts beside the serving container (named `NAME.next`), is gated by the
//! image's own health check run at once and then every [`CHECK_EVERY`] (Docker's first check
//! waits a whole interval), or, without one, by its ports accepting and holding a connection.
//! Only then does the relay send new connections to it; the old container keeps those it
//! has until they end (at most [`DRAIN`]), is stopped and removed, and the new one takes the
//! app's name. A replacement that exits or fails its check is removed and the old one serves
//! on.
//!
//! Faster still, a replacement need not be started: a standby container of the serving
//! image (`NAME.standby`) is started in advance with its command held by a shell waiting for
//! SIGUSR1. When a new image differs from the standby's only by files added or changed
//! (`nua_runtime::patch_between`), those files are written into it, its command is
//! released, and it is gated and takes over as a replacement would: no image to register
//! and no container to start on the way to the new version.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::local::{self, HostPorts, Plan, Request};
use super::relay::{BindError, Relay, RelayHandle};
use super::supervise::{self, Outcome, SETTLE};
use nua_runtime::{CheckResult, Engine, HealthStatus, PortBinding, Protocol, State};

/// The name a replacement has until it takes over.
pub const NEXT: &str = ".next";
/// The name a replaced container has, followed by a number, until it is removed.
pub const OLD: &str = ".old.";
/// On each container of a watched app, the ports it answers on as the user sees them (the
/// ones Nua holds; JSON of [`PortBinding`]s): the container publishes on ports Docker
/// chooses.
pub const PORTS_LABEL: &str = "nua.ports";
/// The name of the container started in advance of the next change.
pub const STANDBY: &str = ".standby";
/// The standby's process: a shell that waits until SIGUSR1, then ends its wait and becomes
/// the image's command (its arguments), keeping its PID.
/// Without `sleep` it cannot wait: it exits, and the standby is not used.
const HELD: &str = "command -v sleep >/dev/null || exit 127; \
                    trap 'kill $! 2>/dev/null; wait $! 2>/dev/null; exec \"$@\"' USR1; \
                    while :; do sleep 3600 & wait $!; done";
/// The signal that releases a standby's command.
const RELEASE: &str = "SIGUSR1";
/// How often the health check is run while a container starts.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long connections made to the old container may take to end before it is stopped.
pub const DRAIN: Duration = Duration::from_secs(2);
/// Lines of output shown of a new version that exited: enough for the error that made it
/// exit, above what its server prints as it stops (gunicorn's own traceback is 20 lines).
pub const FAILED_LINES: u64 = 60;
/// How long a container without a health check has to accept connections, or one whose
/// check Docker does not run has to pass it.
pub const ACCEPT_WITHIN: Duration = Duration::from_secs(60);
/// How long a connection must stay open for a port to count as served (a port Docker
/// publishes accepts at once, and closes when nothing listens behind it).
const HOLD: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(25);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Start(#[from] supervise::Error),
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error(transparent)]
    Plan(#[from] local::Error),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(
        "`{name}` publishes {port}/udp: `--watch` holds TCP ports only, and a UDP port cannot \
         be held while one container replaces another"
    )]
    Udp { name: String, port: u16 },
    #[error("Docker did not say on which port `{name}` publishes {port}/tcp")]
    NoBoundPort { name: String, port: u16 },
}

/// The app, its held ports, and the container serving behind them.
pub struct Held {
    name: String,
    relay: Relay,
    /// The ports as the user sees them.
    pub published: Vec<local::Published>,
    /// The container the relay forwards to, if one serves.
    current: Option<String>,
    generation: u64,
    /// The standby, when one was started.
    standby: Option<Standby>,
    /// How long a version has to serve when nothing else ends its wait ([`ACCEPT_WITHIN`]).
    patience: Duration,
}

/// Why the standby cannot become a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("no standby")]
    None,
    #[error("the standby stopped")]
    Stopped,
    #[error("the container's settings changed")]
    Settings,
}

/// A standby container: of which image, and the container it was planned as (its name and
/// image reference aside), which a new version must be planned as too.
struct Standby {
    image_id: String,
    spec: nua_runtime::ContainerSpec,
}

/// A replacement that serves now, under the app's name; [`Switched::retire`] stops what it
/// replaced, and may run aside (it waits for connections to end, then for the old container
/// to stop).
#[must_use = "the old container runs until it is retired"]
pub struct Switched {
    old: Option<String>,
    generation: u64,
    relay: RelayHandle,
}

impl Switched {
    /// Once the connections made to the replaced container have ended (at most [`DRAIN`]),
    /// stop it (SIGTERM, then SIGKILL after `timeout`) and remove it.
    pub fn retire(self, engine: &dyn Engine, timeout: Duration) -> Result<(), Error> {
        self.relay.drain(self.generation, DRAIN);
        if let Some(old) = &self.old {
            let _ = engine.stop_container(old, timeout);
            match engine.remove_container(old) {
                Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
                // Removed meanwhile by [`Held::stop`].
                Err(_) if gone_soon(engine, old) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

impl Held {
    /// Plan the app (its host ports, as `nua run` would publish them), hold those ports, and
    /// start its first container behind them; the outcome of its start. An outcome other
    /// than `Healthy` or `Running` leaves the ports held with nothing serving.
    pub fn start(
        engine: &dyn Engine,
        request: &Request,
        ports: &dyn HostPorts,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<(Held, Plan, Outcome), Error> {
        let plan = local::plan(request, ports, &[])?;
        if let Some(udp) = plan.published.iter().find(|p| p.protocol == Protocol::Udp) {
            return Err(Error::Udp {
                name: request.name.clone(),
                port: udp.container,
            });
        }
        let addrs: Vec<SocketAddr> = plan
            .published
            .iter()
            .map(|p| SocketAddr::new(p.host_ip, p.host))
            .collect();
        let relay = Relay::bind(&addrs)?;
        let mut held = Held {
            name: request.name.clone(),
            relay,
            published: plan.published.clone(),
            current: None,
            generation: 0,
            standby: None,
            patience: ACCEPT_WITHIN,
        };
        if let Some(existing) = engine.container(&request.name)? {
            if !existing.labels.contains_key(local::APP_LABEL) {
                return Err(supervise::Error::Foreign {
                    name: request.name.clone(),
                }
                .into());
            }
            if matches!(
                existing.state,
                State::Running | State::Restarting | State::Paused
            ) {
                return Err(supervise::Error::Running {
                    name: request.name.clone(),
                }
                .into());
            }
            engine.remove_container(&request.name)?;
        }
        // What a `nua` killed during a reload left: its replacement, the ones it retired.
        for leftover in spare_containers(engine, &request.name)? {
            let _ = engine.remove_container(&leftover);
        }
        let outcome = held.launch(engine, request, &request.name, &plan, interrupted)?;
        match (serves(&outcome), held.current.clone()) {
            (true, Some(current)) => held.forward_to(engine, &current)?,
            // Its last lines are in the outcome; the next version gets its name.
            (false, Some(current)) if outcome != Outcome::Interrupted => {
                let _ = engine.remove_container(&current);
                held.current = None;
            }
            _ => {}
        }
        Ok((held, plan, outcome))
    }

    /// The app's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the container serving now (the app's, or the replacement's until it is
    /// retired).
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Start a container of `request` beside the serving one and, once it serves, send new
    /// connections to it. `Ok(Err(outcome))`: it did not get to serve (it exited, failed its
    /// health check, or the user interrupted); it was removed and the old one serves on.
    pub fn replace(
        &mut self,
        engine: &dyn Engine,
        request: &Request,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Result<Switched, Outcome>, Error> {
        let next = format!("{}{NEXT}", self.name);
        // A replacement left by a `nua` that was killed mid-way.
        match engine.remove_container(&next) {
            Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let plan = local::plan(request, &DockerChooses, &[])?;
        let old = self.current.take();
        let outcome = match self.launch(engine, request, &next, &plan, interrupted) {
            Ok(outcome) => outcome,
            Err(err) => {
                self.current = old;
                return Err(err);
            }
        };
        self.take_over(engine, old, outcome)
    }

    /// The image ID of the standby, when it still runs held and a container of `request`
    /// would be planned as it was: then [`Held::patch`] can make it `request`'s, given the
    /// files that turn its image into `request`'s. A standby that stopped is removed.
    pub fn standby_for(
        &mut self,
        engine: &dyn Engine,
        request: &Request,
    ) -> Result<Result<String, Unfit>, Error> {
        let Some(standby) = &self.standby else {
            return Ok(Err(Unfit::None));
        };
        let name = format!("{}{STANDBY}", self.name);
        let running = engine
            .container(&name)?
            .is_some_and(|c| c.state == State::Running);
        if !running {
            self.drop_standby(engine);
            return Ok(Err(Unfit::Stopped));
        }
        let plan = local::plan(request, &DockerChooses, &[])?;
        match same_run(&plan.spec, &standby.spec) {
            true => Ok(Ok(standby.image_id.clone())),
            false => Ok(Err(Unfit::Settings)),
        }
    }

    /// Start a standby of `request`'s image (replacing any other): its container as
    /// [`Held::replace`] would start it, but with the image's command held until released
    /// and no health check of Docker's (the gate runs the check itself).
    pub fn prepare_standby(&mut self, engine: &dyn Engine, request: &Request) -> Result<(), Error> {
        self.standby = None;
        let name = format!("{}{STANDBY}", self.name);
        // Whatever has the name: a standby that failed to go, one a killed `nua` left.
        match engine.remove_container(&name) {
            Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let plan = local::plan(request, &DockerChooses, &[])?;
        let details = &request.details;
        let argv: Vec<String> = details
            .entrypoint
            .iter()
            .chain(plan.spec.command.as_ref().unwrap_or(&details.cmd))
            .cloned()
            .collect();
        if argv.is_empty() {
            return Ok(());
        }
        let mut spec = plan.spec.clone();
        spec.name = name.clone();
        self.label_ports(&mut spec);
        // The image itself, not the app's tag, which a later build may move.
        if !details.id.is_empty() {
            spec.image = details.id.clone();
        }
        spec.entrypoint = Some(
            ["/bin/sh", "-c", HELD, "nua-standby"]
                .map(str::to_owned)
                .to_vec(),
        );
        spec.command = Some(argv);
        spec.no_health_check = true;
        prepare(engine, &plan)?;
        for port in &mut spec.ports {
            port.host = 0;
        }
        engine.create_container(&spec)?;
        if let Err(err) = engine.start_container(&name) {
            let _ = engine.remove_container(&name);
            return Err(err.into());
        }
        self.standby = Some(Standby {
            image_id: details.id.clone(),
            spec: plan.spec,
        });
        Ok(())
    }

    /// Make the standby a container of `request` by writing `archive` into it (the files
    /// that turn its image into `request`'s: see [`Held::standby_for`]), release its command,
    /// and once it serves, send new connections to it, as [`Held::replace`] does.
    pub fn patch(
        &mut self,
        engine: &dyn Engine,
        request: &Request,
        archive: &[u8],
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Result<Switched, Outcome>, Error> {
        let standby = format!("{}{STANDBY}", self.name);
        let next = format!("{}{NEXT}", self.name);
        self.standby = None;
        match engine.remove_container(&next) {
            Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        let released = engine
            .put_files(&standby, archive)
            .and_then(|()| engine.signal_container(&standby, RELEASE))
            .and_then(|()| engine.rename_container(&standby, &next));
        if let Err(err) = released {
            let _ = engine.remove_container(&standby);
            return Err(err.into());
        }
        let old = self.current.take();
        self.current = Some(next.clone());
        let gated = self.bound(engine, &next).and_then(|bound| {
            let probe: Vec<SocketAddr> = bound.into_values().collect();
            let health = request.details.health_command();
            let gate = Gate {
                health: health.as_deref(),
                probe: &probe,
                patience: self.patience,
            };
            Ok(wait_serving(engine, &next, &gate, interrupted)?)
        });
        let outcome = match gated {
            Ok(outcome) => outcome,
            Err(err) => {
                let _ = engine.remove_container(&next);
                self.current = old;
                return Err(err);
            }
        };
        self.take_over(engine, old, outcome)
    }

    /// The first of `paths` (relative to the root) that a container of the standby's plan
    /// has a volume, host folder or tmpfs mounted at or above: a file written there would
    /// go into the mount, where the image's would be hidden by it.
    pub fn mounted<'p>(&self, paths: &'p [String]) -> Option<&'p str> {
        let standby = self.standby.as_ref()?;
        let targets: Vec<String> = standby
            .spec
            .mounts
            .iter()
            .map(|m| m.target().trim_matches('/').to_owned())
            .collect();
        paths.iter().map(String::as_str).find(|path| {
            targets.iter().any(|target| {
                target.is_empty()
                    || *path == target.as_str()
                    || path.starts_with(&format!("{target}/"))
            })
        })
    }

    /// Say on a container which ports the app answers on ([`PORTS_LABEL`]).
    fn label_ports(&self, spec: &mut nua_runtime::ContainerSpec) {
        let held: Vec<PortBinding> = self.published.iter().map(|p| p.binding()).collect();
        if let Ok(json) = serde_json::to_string(&held) {
            spec.labels.insert(PORTS_LABEL.to_owned(), json);
        }
    }

    /// Remove the standby, if any.
    fn drop_standby(&mut self, engine: &dyn Engine) {
        if self.standby.take().is_some() {
            let _ = engine.remove_container(&format!("{}{STANDBY}", self.name));
        }
    }

    /// After the start of `NAME.next` came `outcome`: if it serves, send new connections to
    /// it and give it the app's name; if not, remove it and let `old` serve on.
    fn take_over(
        &mut self,
        engine: &dyn Engine,
        old: Option<String>,
        outcome: Outcome,
    ) -> Result<Result<Switched, Outcome>, Error> {
        let next = format!("{}{NEXT}", self.name);
        if !serves(&outcome) {
            let _ = engine.remove_container(&next);
            self.current = old;
            return Ok(Err(outcome));
        }
        self.forward_to(engine, &next)?;
        // Names at once, so that `nua logs NAME` and `nua stop NAME` mean the new one: the
        // old one is `NAME.old.N` until it is retired.
        let old = match old {
            Some(old) => {
                let retired = format!("{}{OLD}{}", self.name, self.generation);
                let _ = engine.remove_container(&retired);
                engine.rename_container(&old, &retired)?;
                Some(retired)
            }
            None => None,
        };
        engine.rename_container(&next, &self.name)?;
        self.current = Some(self.name.clone());
        Ok(Ok(Switched {
            old,
            generation: self.generation,
            relay: self.relay.handle(),
        }))
    }

    /// Forget the serving container (it exited): connections wait for the next one.
    pub fn lost(&mut self) {
        self.current = None;
        self.generation = self.relay.switch(BTreeMap::new());
    }

    /// Stop and remove the serving container and any replacement; the ports are released
    /// when `self` is dropped.
    pub fn stop(&mut self, engine: &dyn Engine, timeout: Duration) -> Result<(), Error> {
        // The serving one first, given its time to stop; then whatever else has one of the
        // app's names (a replacement, those being retired aside, whose stop this ends).
        if let Some(current) = self.current.take() {
            let _ = engine.stop_container(&current, timeout);
        }
        let others = spare_containers(engine, &self.name)?;
        let mut failed = None;
        for name in std::iter::once(self.name.clone()).chain(others) {
            match engine.remove_container(&name) {
                Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
                // Being removed already (a second Ctrl-C hurried it): gone in a moment.
                Err(err) => {
                    if !gone_soon(engine, &name) {
                        failed.get_or_insert(err);
                    }
                }
            }
        }
        match failed {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }

    /// Create and start the container `name` of `plan` (its ports on ports Docker chooses),
    /// and wait until it serves or cannot.
    fn launch(
        &mut self,
        engine: &dyn Engine,
        request: &Request,
        name: &str,
        plan: &Plan,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Outcome, Error> {
        prepare(engine, plan)?;
        let mut spec = plan.spec.clone();
        spec.name = name.to_owned();
        self.label_ports(&mut spec);
        for port in &mut spec.ports {
            port.host = 0;
        }
        engine.create_container(&spec)?;
        if let Err(err) = engine.start_container(name) {
            let _ = engine.remove_container(name);
            return Err(err.into());
        }
        self.current = Some(name.to_owned());
        let probe = self.bound(engine, name)?.into_values().collect::<Vec<_>>();
        let health = request.details.health_command();
        let gate = Gate {
            health: health.as_deref(),
            probe: &probe,
            patience: self.patience,
        };
        Ok(wait_serving(engine, name, &gate, interrupted)?)
    }

    /// Where the container `name` publishes each held port: held port → address.
    fn bound(&self, engine: &dyn Engine, name: &str) -> Result<BTreeMap<u16, SocketAddr>, Error> {
        let info = supervise::inspect(engine, name)?;
        let mut bound = BTreeMap::new();
        for port in &self.published {
            let binding = info
                .ports
                .iter()
                .find(|b: &&PortBinding| {
                    b.container == port.container && b.protocol == port.protocol && b.host != 0
                })
                .ok_or_else(|| Error::NoBoundPort {
                    name: self.name.clone(),
                    port: port.container,
                })?;
            let ip = match binding.host_ip {
                ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                ip => ip,
            };
            bound.insert(port.host, SocketAddr::new(ip, binding.host));
        }
        Ok(bound)
    }

    fn forward_to(&mut self, engine: &dyn Engine, name: &str) -> Result<(), Error> {
        let targets = self.bound(engine, name)?;
        self.generation = self.relay.switch(targets);
        Ok(())
    }
}

/// Make what a container of `plan` mounts: its host folders and volumes.
fn prepare(engine: &dyn Engine, plan: &Plan) -> Result<(), Error> {
    for dir in &plan.directories {
        std::fs::create_dir_all(dir).map_err(|source| supervise::Error::Directory {
            path: dir.clone(),
            source,
        })?;
    }
    for volume in &plan.volumes {
        engine.create_volume(volume)?;
    }
    Ok(())
}

/// Whether containers of these two specs run alike, their image aside (the image's files
/// are what a patch changes; its config must be the same, which the patch checks).
fn same_run(a: &nua_runtime::ContainerSpec, b: &nua_runtime::ContainerSpec) -> bool {
    let image_aside = |spec: &nua_runtime::ContainerSpec| {
        let mut labels = spec.labels.clone();
        labels.remove(local::IMAGE_LABEL);
        nua_runtime::ContainerSpec {
            image: String::new(),
            labels,
            ..spec.clone()
        }
    };
    image_aside(a) == image_aside(b)
}

/// The containers of the app `name` other than the one under its name: a replacement
/// (`NAME.next`), replaced ones (`NAME.old.N`) and the standby (`NAME.standby`).
pub(crate) fn spare_containers(
    engine: &dyn Engine,
    name: &str,
) -> Result<Vec<String>, nua_runtime::Error> {
    Ok(engine
        .containers(local::APP_LABEL)?
        .into_iter()
        .filter(|c| spare_of(c) == Some(name))
        .map(|c| c.name)
        .collect())
}

/// The app a container is a spare of (its replacement, a replaced one, its standby), if it
/// is one.
pub(crate) fn spare_of(container: &nua_runtime::ContainerInfo) -> Option<&str> {
    let app = container.labels.get(local::APP_LABEL)?;
    let rest = container
        .name
        .strip_prefix(app.as_str())?
        .strip_prefix('.')?;
    (rest == &NEXT[1..] || rest == &STANDBY[1..] || rest.starts_with(&OLD[1..]))
        .then_some(app.as_str())
}

/// Whether the container `name` is gone within a few seconds.
fn gone_soon(engine: &dyn Engine, name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(engine.container(name), Ok(None)) {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

fn serves(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Healthy | Outcome::Running)
}

/// Host ports for a replacement's plan: Docker chooses them as it starts (the held ones are
/// ours already), so none needs probing.
struct DockerChooses;

impl HostPorts for DockerChooses {
    fn is_free(&self, _port: u16, _protocol: Protocol) -> bool {
        true
    }

    fn any_free(&self, _protocol: Protocol, _not: &[u16]) -> Option<u16> {
        Some(0)
    }
}

/// What tells that a starting container serves: its image's health check (`health`, run
/// in it), else its published ports (`probe`) accepting and holding a connection; and how
/// long it has when Docker does not end the wait (`patience`).
#[derive(Debug, Clone, Copy)]
pub struct Gate<'a> {
    pub health: Option<&'a [String]>,
    pub probe: &'a [SocketAddr],
    pub patience: Duration,
}

/// Wait until the started container `name` serves, as `gate` says: its health check passes,
/// or Docker says it is healthy; without a health check, each port of the probe accepts and
/// holds a connection, or, with no port either, it has kept running for [`SETTLE`]. Ends
/// early when it exits, Docker finds it unhealthy, the gate's patience runs out (when Docker
/// does not check it), or `interrupted` says so; a check still running then (one that
/// hangs) is ended by removing the container, which is not going to serve.
pub fn wait_serving(
    engine: &dyn Engine,
    name: &str,
    gate: &Gate<'_>,
    interrupted: &dyn Fn() -> bool,
) -> Result<Outcome, supervise::Error> {
    std::thread::scope(|scope| {
        let mut check = None;
        let outcome = watch_start(
            engine,
            name,
            gate,
            interrupted,
            &mut |command| {
                let args: Vec<String> = command.to_vec();
                scope.spawn(move || {
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    engine.exec(name, &args)
                })
            },
            &mut check,
        );
        if let Some(running) = check.take() {
            if !running.is_finished() && !matches!(outcome, Ok(Outcome::Healthy)) {
                let _ = engine.remove_container(name);
            }
            let _ = running.join();
        }
        outcome
    })
}

type Check<'scope> =
    std::thread::ScopedJoinHandle<'scope, Result<nua_runtime::ExecOutput, nua_runtime::Error>>;

/// The loop of [`wait_serving`]; `check` holds the health check running now, started with
/// `spawn`.
fn watch_start<'scope>(
    engine: &dyn Engine,
    name: &str,
    gate: &Gate<'_>,
    interrupted: &dyn Fn() -> bool,
    spawn: &mut dyn FnMut(&[String]) -> Check<'scope>,
    check: &mut Option<Check<'scope>>,
) -> Result<Outcome, supervise::Error> {
    let Gate {
        health,
        probe,
        patience,
    } = *gate;
    let started = Instant::now();
    let mut next_check = started;
    let mut check_started = started;
    let mut failed_checks: Vec<CheckResult> = Vec::new();
    loop {
        if interrupted() {
            return Ok(Outcome::Interrupted);
        }
        let info = supervise::inspect(engine, name)?;
        if matches!(info.state, State::Exited | State::Dead) || info.restart_count > 0 {
            let code = info.exit_code.unwrap_or(-1);
            return supervise::exited_with(engine, name, code, FAILED_LINES);
        }
        match info.health.as_ref().map(|h| h.status) {
            Some(HealthStatus::Healthy) => return Ok(Outcome::Healthy),
            Some(HealthStatus::Unhealthy) => {
                let mut checks = failed_checks;
                checks.extend(info.health.map(|h| h.log).unwrap_or_default());
                return Ok(Outcome::Unhealthy { checks });
            }
            _ => {}
        }
        match health {
            // Docker does not check it (a standby's check is off): then a version whose check
            // never passes must not hold the next change for ever.
            Some(_) if info.health.is_none() && started.elapsed() > patience => {
                let mut checks = failed_checks;
                checks.push(CheckResult {
                    exit_code: -1,
                    output: format!(
                        "its health check did not pass within {} s",
                        patience.as_secs_f64()
                    ),
                });
                return Ok(Outcome::Unhealthy { checks });
            }
            Some(_) if check.as_ref().is_some_and(|c| c.is_finished()) => {
                let done = check.take().expect("checked above").join();
                // A container that has just exited refuses the exec: seen on the next turn.
                if let Ok(Ok(result)) = done {
                    if result.exit_code == 0 {
                        return Ok(Outcome::Healthy);
                    }
                    let mut output = result.stdout;
                    output.extend_from_slice(&result.stderr);
                    failed_checks.push(CheckResult {
                        exit_code: result.exit_code,
                        output: String::from_utf8_lossy(&output).into_owned(),
                    });
                    let keep = failed_checks.len().saturating_sub(3);
                    failed_checks.drain(..keep);
                }
                // From the start of the check that failed: a check slower than
                // CHECK_EVERY (a Python one) is run again at once.
                next_check = check_started + CHECK_EVERY;
            }
            Some(command) if check.is_none() && Instant::now() >= next_check => {
                check_started = Instant::now();
                *check = Some(spawn(command));
            }
            Some(_) => {}
            None if !probe.is_empty() => {
                if probe.iter().all(|addr| holds(*addr)) {
                    return Ok(Outcome::Running);
                }
                if started.elapsed() > patience {
                    return Ok(Outcome::Unhealthy {
                        checks: vec![CheckResult {
                            exit_code: -1,
                            output: format!(
                                "nothing accepted connections within {} s",
                                patience.as_secs_f64()
                            ),
                        }],
                    });
                }
            }
            None if started.elapsed() >= SETTLE => return Ok(Outcome::Running),
            None => {}
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a connection to `addr` is accepted and kept open for [`HOLD`] (or answered).
fn holds(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, HOLD) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(HOLD));
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        // Closed: nothing listens behind Docker's proxy.
        Ok(0) => false,
        // It spoke first (a banner).
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[cfg(test)]
mod tests;
