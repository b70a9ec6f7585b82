//! `nua deploy`, `nua status`, `nua remove`, `nua history`: instances of apps with their
//! providers on this server, recorded in the state database and applied to Docker.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::args::{
    DeployArgs, HistoryArgs, LabelArgs, ReconcileArgs, RemoveArgs, RollbackArgs, ServerAction,
    ServerArgs, StatusArgs,
};
use crate::load::docker;
use crate::run::{prepare, Knobs};
use nua::cli::{settings, Hint};
use nua::outln;
use nua_config::{NuaConfig, Provider, Site};
use nua_deploy::apply::{self, Applied, Context};
use nua_deploy::image;
use nua_deploy::instance::{
    self, Desired, EngineKind, Placement, Role, TakenPorts, INSTANCE_LABEL, PORT_RANGE,
};
use nua_deploy::state::{self, Kind, State};
use nua_deploy::target::Target;
use nua_runtime::{Docker, Engine as _, LoadOptions};

/// The Nua images that can stand for a module's image: (image repository, version, base of
/// `base-images/`). One is used when its version meets the provider's `module-version`
/// (`>=10.6` takes Nua's MariaDB 10.11 even though the module's newest link is 10.10), or,
/// for a provider without one, when it is the version of the image it names.
const OWN_PROVIDER_IMAGES: &[(&str, &str, &str)] = &[
    ("postgres", "15", "postgres-15"),
    ("mariadb", "10.11", "mariadb-10.11"),
    ("redis", "7.0", "redis-7"),
];

pub fn open_state() -> anyhow::Result<State> {
    let dir = state::default_dir();
    State::open(&dir)
        .map_err(|e| {
            let hint = e.hint();
            let err = anyhow::Error::new(e);
            match hint {
                Some(h) => err.context(Hint(h.into())),
                None => err,
            }
        })
        .with_context(|| format!("cannot open the state in `{}`", dir.display()))
}

/// Who asks: `user@host`.
fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

/// Ports held on 127.0.0.1: by the other instances (as recorded), or by another program.
struct HeldPorts<'a> {
    recorded: BTreeMap<u16, String>,
    /// The instance being deployed, and the ports its own containers hold (free for it).
    label: &'a str,
    own: Vec<u16>,
}

impl TakenPorts for HeldPorts<'_> {
    fn holder(&self, port: u16) -> Option<String> {
        if let Some(label) = self.recorded.get(&port) {
            return Some(label.clone());
        }
        if self.own.contains(&port) {
            return None;
        }
        let free = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).is_ok();
        (!free).then(|| format!("another program (not `{}`)", self.label))
    }
}

fn recorded_ports(state: &State, except: &str) -> anyhow::Result<BTreeMap<u16, String>> {
    let mut held = BTreeMap::new();
    for instance in state.instances()? {
        if instance.label == except {
            continue;
        }
        let Ok(desired) = serde_json::from_value::<Desired>(instance.desired) else {
            continue;
        };
        for container in &desired.containers {
            for port in container.ports.iter().filter_map(|p| p.host) {
                held.insert(port, instance.label.clone());
            }
        }
    }
    Ok(held)
}

/// What runs the instances `nua deploy` makes: `docker` (this server's engine; the
/// default) or `swarm` (services of the Docker Swarm this server's engine manages).
pub const NUA_ENGINE: &str = "NUA_ENGINE";

/// What runs this server's instances: `NUA_ENGINE` when it is set, else what the recorded
/// instances run on (so `nua server`, or a command run without the setting, keeps serving a
/// swarm's instances), else Docker.
pub fn engine_kind() -> anyhow::Result<EngineKind> {
    match std::env::var(NUA_ENGINE).unwrap_or_default().as_str() {
        "docker" => return Ok(EngineKind::Docker),
        "swarm" => return Ok(EngineKind::Swarm),
        "" => {}
        other => {
            return Err(anyhow::anyhow!(
                "`{NUA_ENGINE}={other}` is neither `docker` nor `swarm`"
            ))
        }
    }
    Ok(recorded_engines()?
        .into_iter()
        .next()
        .unwrap_or(EngineKind::Docker))
}

/// The engines the recorded instances run on.
fn recorded_engines() -> anyhow::Result<std::collections::BTreeSet<EngineKind>> {
    let mut engines = std::collections::BTreeSet::new();
    if let Some(state) = existing_state()? {
        for instance in state.instances()? {
            if let Ok(desired) = serde_json::from_value::<Desired>(instance.desired) {
                engines.insert(desired.engine);
            }
        }
    }
    Ok(engines)
}

/// Which provider images `nua deploy` prefers: `own` (Nua's, built from Debian, when it has
/// one for the version; the default) or `links` (the module's image, pulled).
pub const NUA_PROVIDER_IMAGES: &str = "NUA_PROVIDER_IMAGES";

/// The image of provider `provider`, in Docker: Nua's own when it has one for the version
/// the module chose (built once), else (or with `NUA_PROVIDER_IMAGES=links`) the module's
/// link, pulled with the registry client (the Docker Hub mirror setting applies).
fn provider_image(engine: &Docker, provider: &Provider, quiet: bool) -> anyhow::Result<String> {
    let link = provider
        .build
        .as_ref()
        .and_then(|b| b.base_image.clone())
        .unwrap_or_default();
    let prefer = std::env::var(NUA_PROVIDER_IMAGES).unwrap_or_default();
    if !matches!(prefer.as_str(), "" | "own" | "links") {
        return Err(anyhow::anyhow!(
            "`{NUA_PROVIDER_IMAGES}={prefer}` is neither `own` nor `links`"
        ));
    }
    let (repository, version) = link.rsplit_once(':').unwrap_or((&link, ""));
    let repository = repository.rsplit('/').next().unwrap_or_default();
    let own = OWN_PROVIDER_IMAGES
        .iter()
        .find(|(repo, own, _)| {
            *repo == repository
                && match (&provider.module_name, &provider.module_version) {
                    (Some(_), requirement) => {
                        nua_config::providers::meets(requirement.as_deref().unwrap_or(""), own)
                    }
                    (None, _) => nua_config::providers::meets(own, version),
                }
        })
        .filter(|_| prefer != "links");
    let runs = settings::cache_dir()?.join("run");
    fs_err::create_dir_all(&runs)?;
    let layout = tempfile::Builder::new()
        .prefix("provider-")
        .tempdir_in(&runs)?;
    let (tag, how) = match own {
        Some((_, _, base)) => (own_image(engine, base)?, "built from Debian"),
        None if link.is_empty() => {
            return Err(anyhow::anyhow!(
                "provider `{}` has no image: give its `module-name` or a `base-image` in its \
                 `[provider.build]`",
                provider.name
            ))
        }
        None => {
            if engine.image(&link)?.is_none() {
                nua::cli::commands::pull::pull_layout(&link, layout.path()).map_err(|e| {
                    let have: Vec<String> = OWN_PROVIDER_IMAGES
                        .iter()
                        .map(|(repo, version, _)| format!("{repo} {version}"))
                        .collect();
                    e.context(format!(
                        "provider `{}` needs `{link}`, which cannot be pulled, and Nua has no \
                         image of its own for it (it has: {})",
                        provider.name,
                        have.join(", ")
                    ))
                })?;
            }
            (link.clone(), "pulled")
        }
    };
    load_unless_there(engine, layout.path(), &tag)
        .with_context(|| format!("cannot load the image of provider `{}`", provider.name))?;
    if !quiet {
        eprintln!("provider `{}` runs {tag} ({how})", provider.name);
    }
    Ok(tag)
}

/// Nua's image of base `base` (`base-images/`), built from Debian (cached) and loaded into
/// Docker unless it is there; its tag.
pub fn own_image(engine: &Docker, base: &str) -> anyhow::Result<String> {
    let runs = settings::cache_dir()?.join("run");
    fs_err::create_dir_all(&runs)?;
    let layout = tempfile::Builder::new().prefix("base-").tempdir_in(&runs)?;
    let tag = nua::cli::commands::base::write_base_layout(base, None, layout.path())?;
    load_unless_there(engine, layout.path(), &tag)
        .with_context(|| format!("cannot load Nua's `{base}` image"))?;
    Ok(tag)
}

/// Load the image `layout` holds (written here, from hashed blobs) unless Docker has `tag`.
fn load_unless_there(engine: &Docker, layout: &Path, tag: &str) -> anyhow::Result<()> {
    if engine.image(tag)?.is_none() {
        let trusted = LoadOptions {
            thin: true,
            verify: false,
        };
        engine.load_image(layout, trusted)?;
    }
    Ok(())
}

/// The image of `site` in Docker (built or loaded as needed) and its nua-config.
fn site_image(
    engine: &Docker,
    site: &Site,
    file: &Path,
    knobs: &Knobs,
) -> anyhow::Result<(String, NuaConfig)> {
    // Paths are relative to the deploy file's folder.
    let base = file.parent().unwrap_or(Path::new("."));
    let text = if site.image.starts_with('/') || !base.join(&site.image).exists() {
        site.image.clone()
    } else {
        base.join(&site.image).display().to_string()
    };
    let target = Target::classify(&text, settings::home().as_deref())?;
    let prepared = prepare(engine, target, knobs)?;
    let config = match prepared.config {
        Some(config) => Some(config),
        None => image::config_in_engine(engine, &prepared.image)?,
    };
    let config = config.ok_or_else(|| {
        anyhow::anyhow!("`{}` has no nua-config: nua deploys Nua images", site.image)
    })?;
    Ok((prepared.image, config))
}

pub fn deploy(args: &DeployArgs) -> anyhow::Result<ExitCode> {
    if !args.file.exists() {
        return Err(
            anyhow::anyhow!("there is no deploy file `{}`", args.file.display()).context(Hint(
                "give the path of a deploy file: `[[site]]` entries in TOML, JSON or YAML".into(),
            )),
        );
    }
    let loaded = nua_config::load_deploy(&args.file)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let kind = engine_kind()?;
    // One proxy serves one engine's instances: nginx on this host cannot reach a swarm's
    // overlay networks, nor nginx on a swarm this host's ports.
    let proxied = std::env::var("NUA_PROXY").unwrap_or_default() != "none";
    if let Some(other) = recorded_engines()?.into_iter().find(|e| *e != kind) {
        if proxied {
            return Err(anyhow::anyhow!(
                "this server's instances run on {}, and `{NUA_ENGINE}` asks for {}: one proxy \
                 serves the instances of one engine; nothing was deployed",
                other.name(),
                kind.name()
            )
            .context(Hint(
                format!(
                    "deploy with `{NUA_ENGINE}={}`, or remove those instances first (or run \
                     with `NUA_PROXY=none` and put your own proxy in front)",
                    other.name()
                )
                .into(),
            )));
        }
    }
    let engine = docker()?;
    if kind == EngineKind::Swarm && nua_runtime::Swarm::manager(&engine)?.is_none() {
        return Err(anyhow::anyhow!(
            "`{NUA_ENGINE}=swarm`, and this Docker Engine is not a manager of a swarm"
        )
        .context(Hint(
            "run `docker swarm init` (or join a swarm as a manager), or unset `NUA_ENGINE`".into(),
        )));
    }
    let mut state = open_state()?;
    let knobs = Knobs {
        debian: args.debian.clone(),
        no_cache: false,
        ca_bundle: None,
        quiet: args.quiet,
    };
    let ctx = apply_context(&engine);
    let range = port_range()?;
    let mut failed = 0;
    for site in &loaded.deploy.site {
        let (image, config) = site_image(&engine, site, &args.file, &knobs)?;
        let label = instance::label_of(site, config.id());
        if !args.label.is_empty() && !args.label.contains(&label) {
            continue;
        }
        let mut images = BTreeMap::new();
        for provider in &config.provider {
            images.insert(
                provider.name.clone(),
                provider_image(&engine, provider, args.quiet)?,
            );
        }
        // A domain answers for one instance.
        if let Some(domain) = &site.domain {
            for other in state.instances()? {
                if other.label != label && other.desired["domain"].as_str() == Some(domain) {
                    return Err(anyhow::anyhow!(
                        "`{label}` of `{}` asks for the domain `{domain}`, which `{}` serves",
                        args.file.display(),
                        other.label
                    )
                    .context(Hint(
                        format!(
                            "give `{label}` another domain, or `nua remove {}` first",
                            other.label
                        )
                        .into(),
                    )));
                }
            }
        }
        // A port found taken as the app starts (another program, or a deploy running beside
        // this one) is avoided and the site planned again, a few times.
        let mut busy: Vec<u16> = Vec::new();
        loop {
            match deploy_site(
                &SiteToDeploy {
                    site,
                    label: &label,
                    image: &image,
                    config: &config,
                    images: &images,
                    file: &args.file,
                    replace: args.replace,
                    no_backup: args.no_backup,
                    quiet: args.quiet,
                    kind,
                    busy: &busy,
                    range: range.clone(),
                },
                &engine,
                &ctx,
                &mut state,
            )? {
                Deployed::Done => break,
                Deployed::Failed => {
                    failed += 1;
                    break;
                }
                Deployed::PortTaken(port) if busy.len() < 3 => busy.push(port),
                Deployed::PortTaken(_) => {
                    failed += 1;
                    break;
                }
            }
        }
    }
    // The proxy serves what is recorded now: new domains, and the previous generation of a
    // site whose deploy failed.
    crate::proxy::sync(&state, args.quiet, true)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What deploying one site needs beyond the engine and the state.
struct SiteToDeploy<'a> {
    site: &'a Site,
    label: &'a str,
    image: &'a str,
    config: &'a NuaConfig,
    images: &'a BTreeMap<String, String>,
    file: &'a Path,
    replace: bool,
    no_backup: bool,
    quiet: bool,
    /// What runs it.
    kind: EngineKind,
    /// Host ports found taken by an earlier attempt.
    busy: &'a [u16],
    range: std::ops::RangeInclusive<u16>,
}

/// How deploying one site ended.
enum Deployed {
    Done,
    /// Recorded as failed and said.
    Failed,
    /// The app's host port was taken as it started: plan again without it.
    PortTaken(u16),
}

/// Plan `s.site`, record the generation, apply it, and record how it ended.
fn deploy_site(
    s: &SiteToDeploy<'_>,
    engine: &Docker,
    ctx: &Context<'_>,
    state: &mut State,
) -> anyhow::Result<Deployed> {
    let label = s.label;
    let previous = state.instance(label)?;
    let before: Option<Desired> = previous
        .as_ref()
        .and_then(|p| serde_json::from_value(p.desired.clone()).ok());
    // The ports this instance's containers publish now (as Docker says): free for it. A
    // port it had before and no longer holds (removed, then taken by another program) is
    // probed like any other.
    let mut own = Vec::new();
    let mut app_ports = Vec::new();
    for container in before.iter().flat_map(|d| &d.containers) {
        if let Some(info) = engine.container(&container.name)? {
            own.extend(info.ports.iter().map(|p| p.host));
            if container.role == Role::App {
                app_ports.extend(info.ports.iter().map(|p| p.host));
            }
        }
    }
    own.retain(|p| !s.busy.contains(p));
    let mut recorded = recorded_ports(state, label)?;
    for port in s.busy {
        recorded.insert(*port, "another program".to_owned());
    }
    let plan = |own: Vec<u16>, previous: Option<&Desired>| {
        let held = HeldPorts {
            recorded: recorded.clone(),
            label,
            own,
        };
        let placement = Placement {
            taken: &held,
            range: s.range.clone(),
            previous,
        };
        instance::plan(
            s.site,
            s.image,
            s.config,
            &|p| s.images.get(&p.name).cloned(),
            &placement,
        )
        .map(|d| d.on(s.kind))
    };
    let mut desired = plan(own.clone(), before.as_ref())
        .with_context(|| format!("cannot deploy `{label}` of `{}`", s.file.display()))?;
    if let Some(before) = &before {
        if before.engine != s.kind {
            return Err(anyhow::anyhow!(
                "`{label}` runs on {}, and `{NUA_ENGINE}` asks for {}: Nua does not move a \
                 running instance from one to the other",
                before.engine.name(),
                s.kind.name()
            )
            .context(Hint(
                format!(
                    "deploy it with `{NUA_ENGINE}={}`, or `nua remove {label}` first (its \
                     volumes stay on this node)",
                    before.engine.name()
                )
                .into(),
            )));
        }
    }
    if let Some(previous) = &previous {
        let previous_app = previous.desired["app_id"].as_str().unwrap_or_default();
        if previous_app != desired.app_id && !s.replace {
            anyhow::bail!(
                "`{label}` runs `{previous_app}`, not `{}`: deploying it would replace that \
                 app and its data; give `--replace` to do so",
                desired.app_id
            );
        }
        if previous.desired == serde_json::to_value(&desired)? {
            // Same desired state: make Docker match it, and say whether anything moved.
            let applied = apply::apply(&desired, previous.generation, ctx, state)
                .with_context(|| format!("cannot apply `{label}`"))?;
            report(label, &desired, &applied, previous.generation, s.quiet)?;
            return Ok(Deployed::Done);
        }
    }
    // An upgrade of an app whose domain the proxy serves: the new app gets ports of its own,
    // so that it starts beside the old one and the proxy switches over once it is ready.
    // A port the app pins cannot be had twice: it is replaced in place.
    // On Swarm, the proxy finds the new task by name: nothing is switched, but a
    // `single-writer` app's domain is answered 503 while its one task is replaced.
    let single_writer = desired.containers.iter().any(|c| c.single_writer);
    let switcher = match &previous {
        Some(_) => crate::proxy::Switcher::for_replacing(state, label, &desired)?,
        None => None,
    };
    if switcher.is_some() && !single_writer {
        let others: Vec<u16> = own
            .iter()
            .copied()
            .filter(|p| !app_ports.contains(p))
            .collect();
        if let Ok(apart) = plan(others, None) {
            desired = apart;
        }
    }
    let ctx = Context {
        engine: ctx.engine,
        swarm: ctx.swarm,
        external_ip: ctx.external_ip.clone(),
        ready_timeout: ctx.ready_timeout,
        stopped: ctx.stopped,
        proxy: switcher
            .as_ref()
            .map(|s| s as &dyn nua_deploy::apply::Routes),
        drain: crate::proxy::drain()?,
    };
    let ctx = &ctx;
    let kind = if previous.is_some() {
        Kind::Upgrade
    } else {
        Kind::Deploy
    };
    // The data as the running generation has it, kept first: what `nua rollback
    // --with-data` puts back.
    if let (Some(previous), Some(before)) = (&previous, &before) {
        if !s.no_backup && !previous.stopped {
            crate::backup::before_upgrade(engine, state, before, previous.generation, s.quiet)?;
        }
    }
    let json = serde_json::to_value(&desired)?;
    let generation = state.begin(label, kind, &actor(), &json)?;
    match apply::apply(&desired, generation, ctx, state) {
        Ok(applied) => {
            state.finish(label, generation, Ok(()))?;
            report(label, &desired, &applied, generation, s.quiet)?;
            Ok(Deployed::Done)
        }
        Err(apply::Error::Engine(nua_runtime::Error::PortTaken { port })) => {
            let message = format!("the host port {port} was taken as the app started");
            state.finish(label, generation, Err(&message))?;
            if !s.quiet {
                eprintln!("{label}: {message}; placing it on another port");
            }
            Ok(Deployed::PortTaken(port))
        }
        Err(err) => {
            let message = format!("{:#}", anyhow::Error::new(err));
            state.finish(label, generation, Err(&message))?;
            eprintln!("error: cannot deploy `{label}` (generation {generation}): {message}");
            // What ran before runs again: the instance stays on its last good generation.
            if let (Some(previous), Some(before)) = (&previous, &before) {
                let ctx = Context {
                    engine: ctx.engine,
                    swarm: ctx.swarm,
                    external_ip: ctx.external_ip.clone(),
                    ready_timeout: ctx.ready_timeout,
                    stopped: previous.stopped,
                    proxy: None,
                    drain: Duration::ZERO,
                };
                match apply::apply(before, previous.generation, &ctx, state) {
                    Ok(_) => eprintln!(
                        "{label}: generation {} runs again, as before this deploy",
                        previous.generation
                    ),
                    Err(e) => eprintln!(
                        "error: `{label}` could not be put back on generation {}: {:#} \
                         (`nua reconcile {label}` tries again)",
                        previous.generation,
                        anyhow::Error::new(e)
                    ),
                }
                // Its domain is routed to what runs again now, not left answering 503 should
                // a later site of the file stop the deploy before its last sync.
                if before.domain.is_some() {
                    let _ = crate::proxy::sync(state, true, false);
                }
            }
            Ok(Deployed::Failed)
        }
    }
}

/// Give the app of `desired` free host ports other than those its running app holds, so
/// both can run during a switch.
fn place_apart(
    desired: &mut Desired,
    engine: &Docker,
    state: &State,
    label: &str,
) -> anyhow::Result<()> {
    let held = HeldPorts {
        recorded: recorded_ports(state, label)?,
        label,
        own: Vec::new(),
    };
    let range = port_range()?;
    let Some(app) = desired.containers.iter_mut().find(|c| c.role == Role::App) else {
        return Ok(());
    };
    let running: Vec<u16> = engine
        .container(&app.name)?
        .map(|c| c.ports.iter().map(|p| p.host).collect())
        .unwrap_or_default();
    let mut chosen: Vec<u16> = Vec::new();
    for port in &mut app.ports {
        let free = range
            .clone()
            .find(|p| !running.contains(p) && !chosen.contains(p) && held.holder(*p).is_none());
        if let Some(free) = free {
            port.host = Some(free);
            chosen.push(free);
        }
    }
    Ok(())
}

/// The host ports app ports are placed in: `NUA_PORT_RANGE` (`8100-9000`) or the default.
fn port_range() -> anyhow::Result<std::ops::RangeInclusive<u16>> {
    let Ok(text) = std::env::var("NUA_PORT_RANGE") else {
        return Ok(PORT_RANGE);
    };
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)))
        .filter(|(a, b)| a <= b && *a > 0);
    match parsed {
        Some((a, b)) => Ok(a..=b),
        None => Err(anyhow::anyhow!(
            "`NUA_PORT_RANGE={text}` is not a range of ports like `8100-9000`"
        )),
    }
}

fn report(
    label: &str,
    desired: &Desired,
    applied: &Applied,
    generation: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    if quiet {
        return Ok(());
    }
    if applied.unchanged() {
        outln!("{label}: unchanged (generation {generation})")?;
    } else {
        outln!("{label}: generation {generation} applied")?;
        for name in &applied.created {
            outln!("  created {name}")?;
        }
    }
    for container in desired.containers.iter().filter(|c| c.role == Role::App) {
        for port in &container.ports {
            if let Some(host) = port.host {
                outln!("  {} answers on 127.0.0.1:{host}", port.name)?;
            }
        }
    }
    Ok(())
}

/// One instance as `nua status --json` shows it.
#[derive(serde::Serialize)]
struct Shown {
    label: String,
    domain: Option<String>,
    image: String,
    generation: u64,
    state: String,
    health: Option<String>,
    ports: Vec<serde_json::Value>,
    providers: Vec<serde_json::Value>,
}

fn health_of(info: &nua_runtime::ContainerInfo) -> Option<String> {
    info.health.as_ref().map(|h| {
        serde_json::to_value(h.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    })
}

fn state_of(info: Option<&nua_runtime::ContainerInfo>) -> String {
    info.map_or_else(
        || "missing".to_owned(),
        |i| {
            serde_json::to_value(i.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        },
    )
}

pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    // No state yet: nothing is deployed (and none is made just to say so).
    let instances = match existing_state()? {
        Some(state) => state.instances()?,
        None => Vec::new(),
    };
    let mut shown = Vec::new();
    let ctx = apply_context(&engine);
    for instance in instances {
        if args.label.as_ref().is_some_and(|l| *l != instance.label) {
            continue;
        }
        let desired: Desired = serde_json::from_value(instance.desired.clone())?;
        // An instance whose engine cannot be asked (a swarm this engine left) is shown so.
        let platform = apply::platform(&desired, &ctx);
        let mut entry = Shown {
            label: instance.label.clone(),
            domain: desired.domain.clone(),
            image: String::new(),
            generation: instance.generation,
            state: String::new(),
            health: None,
            ports: Vec::new(),
            providers: Vec::new(),
        };
        let Ok(platform) = platform else {
            entry.state = "unreachable".to_owned();
            entry.image = desired
                .containers
                .last()
                .map(|c| c.image.clone())
                .unwrap_or_default();
            shown.push(entry);
            continue;
        };
        for container in &desired.containers {
            let info = platform.running(container)?;
            match container.role {
                Role::App => {
                    entry.image = container.image.clone();
                    entry.state = state_of(info.as_ref());
                    entry.health = info.as_ref().and_then(health_of);
                    entry.ports = container
                        .ports
                        .iter()
                        .map(|p| {
                            serde_json::json!({"name": p.name, "container": p.container,
                                "host_ip": "127.0.0.1", "host": p.host})
                        })
                        .collect();
                }
                Role::Provider => entry.providers.push(serde_json::json!({
                    "name": container.component,
                    "image": container.image,
                    "state": state_of(info.as_ref()),
                    "health": info.as_ref().and_then(health_of),
                })),
            }
        }
        shown.push(entry);
    }
    if args.output.json {
        outln!("{}", serde_json::to_string(&shown)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<24} {:<5} {:<10} {:<10} IMAGE",
        "LABEL",
        "GEN",
        "STATE",
        "HEALTH"
    )?;
    for s in &shown {
        outln!(
            "{:<24} {:<5} {:<10} {:<10} {}",
            s.label,
            s.generation,
            s.state,
            s.health.as_deref().unwrap_or("-"),
            s.image
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn remove(args: &RemoveArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut state = open_state()?;
    let Some(instance) = state.instance(&args.label)? else {
        return Err(anyhow::anyhow!("there is no instance `{}`", args.label)
            .context(Hint("`nua status` lists them".into())));
    };
    let desired: Desired = serde_json::from_value(instance.desired.clone())?;
    let generation = state.begin(&args.label, Kind::Remove, &actor(), &instance.desired)?;
    let ctx = apply_context(&engine);
    let removed = (|| -> anyhow::Result<Vec<String>> {
        let platform = apply::platform(&desired, &ctx)?;
        let mut removed = platform.remove(&args.label, &desired.network)?;
        if args.volumes {
            for volume in engine.volumes(INSTANCE_LABEL, &args.label)? {
                engine.remove_volume(&volume)?;
                removed.push(volume);
            }
        }
        Ok(removed)
    })();
    match removed {
        Ok(removed) => {
            if args.volumes {
                state.forget_secrets(&args.label)?;
            }
            state.finish(&args.label, generation, Ok(()))?;
            crate::proxy::sync(&state, false, false)?;
            outln!("removed {}: {}", args.label, removed.join(", "))?;
            if let Some(kept) = crate::proxy::kept_certificate(&desired)? {
                outln!("  {kept}")?;
            }
            if !args.volumes {
                outln!(
                    "  its volumes and secrets are kept: `nua deploy` finds them again \
                     (`nua remove {} --volumes` deletes them)",
                    args.label
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            state.finish(&args.label, generation, Err(&format!("{err:#}")))?;
            Err(err.context(format!("cannot remove `{}`", args.label)))
        }
    }
}

pub fn history(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let state = open_state()?;
    let history = state.history(args.label.as_deref())?;
    if args.output.json {
        outln!("{}", serde_json::to_string(&history)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for g in &history {
        let outcome = match &g.outcome {
            state::Outcome::Pending => "pending".to_owned(),
            state::Outcome::Succeeded => "succeeded".to_owned(),
            state::Outcome::Failed(e) => format!("failed: {e}"),
        };
        let kind = serde_json::to_value(g.kind)?;
        outln!(
            "{} #{} {} by {} at {}: {outcome}",
            g.label,
            g.number,
            kind.as_str().unwrap_or_default(),
            g.actor,
            nua_oci::image::rfc3339(g.started)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn apply_context(engine: &Docker) -> Context<'_> {
    Context {
        engine,
        swarm: Some(engine),
        external_ip: std::env::var("NUA_EXTERNAL_IP")
            .ok()
            .filter(|v| !v.is_empty()),
        ready_timeout: apply::READY_TIMEOUT,
        stopped: false,
        proxy: None,
        drain: Duration::ZERO,
    }
}

/// The state, when this machine has one (commands that only read it create none).
pub fn existing_state() -> anyhow::Result<Option<State>> {
    if state::default_dir().join(state::DATABASE).exists() {
        Ok(Some(open_state()?))
    } else {
        Ok(None)
    }
}

/// Stop instance `label` on purpose (reconciling keeps it stopped): app first.
pub fn stop_instance(label: &str) -> anyhow::Result<ExitCode> {
    set_running(label, false)?;
    outln!("stopped {label} (its containers and data are kept; `nua start {label}` runs it)")?;
    Ok(ExitCode::SUCCESS)
}

/// Mark `label` running or stopped and apply it.
fn set_running(label: &str, running: bool) -> anyhow::Result<Applied> {
    let engine = docker()?;
    let mut state = open_state()?;
    let Some(instance) = state.instance(label)? else {
        return Err(anyhow::anyhow!("there is no instance `{label}`")
            .context(Hint("`nua status` lists them".into())));
    };
    state.set_stopped(label, !running)?;
    let desired: Desired = serde_json::from_value(instance.desired)?;
    let ctx = Context {
        stopped: !running,
        ..apply_context(&engine)
    };
    apply::apply(&desired, instance.generation, &ctx, &mut state)
        .with_context(|| format!("cannot apply `{label}`"))
}

pub fn start(args: &LabelArgs) -> anyhow::Result<ExitCode> {
    set_running(&args.label, true)?;
    outln!("{} runs", args.label)?;
    Ok(ExitCode::SUCCESS)
}

pub fn restart(args: &LabelArgs) -> anyhow::Result<ExitCode> {
    set_running(&args.label, false)?;
    set_running(&args.label, true)?;
    outln!("{} restarted", args.label)?;
    Ok(ExitCode::SUCCESS)
}

/// Freeze (`paused`) or thaw the containers of an instance: the app first when freezing,
/// its providers first when thawing. Docker keeps them so; reconciling leaves them so.
pub fn pause(args: &LabelArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let label = &args.label;
    let engine = docker()?;
    let state = existing_state()?;
    let instance = match &state {
        Some(state) => state.instance(label)?,
        None => None,
    };
    let Some(instance) = instance else {
        return Err(anyhow::anyhow!("there is no instance `{label}`")
            .context(Hint("`nua status` lists them".into())));
    };
    if instance.stopped {
        return Err(anyhow::anyhow!(
            "`{label}` is stopped: there is nothing to {}",
            if paused { "pause" } else { "unpause" }
        )
        .context(Hint(format!("`nua start {label}` runs it").into())));
    }
    let desired: Desired = serde_json::from_value(instance.desired)?;
    if desired.engine == EngineKind::Swarm {
        return Err(anyhow::anyhow!(
            "`{label}` runs on Docker Swarm, which cannot freeze a service"
        )
        .context(Hint(
            format!("`nua stop {label}` stops its tasks, `nua start {label}` runs them again")
                .into(),
        )));
    }
    let mut order: Vec<_> = desired.containers.iter().collect();
    if paused {
        order.reverse();
    }
    let (from, to) = if paused {
        (nua_runtime::State::Running, nua_runtime::State::Paused)
    } else {
        (nua_runtime::State::Paused, nua_runtime::State::Running)
    };
    let mut changed = 0;
    for container in order {
        let info = engine.container(&container.name)?;
        match info.map(|i| i.state) {
            Some(state) if state == from => {
                engine.set_paused(&container.name, paused)?;
                changed += 1;
            }
            Some(state) if state == to => {}
            other => {
                let state = other.map_or("missing".to_owned(), |s| format!("{s:?}").to_lowercase());
                return Err(anyhow::anyhow!(
                    "`{}` of `{label}` is {state}, not {}",
                    container.name,
                    if paused { "running" } else { "paused" }
                )
                .context(Hint(
                    format!("`nua reconcile {label}` runs it as recorded").into(),
                )));
            }
        }
    }
    let what = if paused { "paused" } else { "unpaused" };
    if changed == 0 {
        outln!("{label} was already {what}")?;
    } else {
        outln!("{label} {what}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Apply every recorded instance (or `only`); how many failed, each said on stderr.
fn reconcile_all(
    engine: &Docker,
    state: &mut State,
    only: Option<&str>,
    quiet: bool,
) -> anyhow::Result<usize> {
    let mut failed = 0;
    let instances = state.instances()?;
    if let Some(label) = only {
        if !instances.iter().any(|i| i.label == label) {
            return Err(anyhow::anyhow!("there is no instance `{label}`")
                .context(Hint("`nua status` lists them".into())));
        }
    }
    for instance in instances {
        if only.is_some_and(|l| l != instance.label) {
            continue;
        }
        let desired: Desired = serde_json::from_value(instance.desired.clone())?;
        let ctx = Context {
            stopped: instance.stopped,
            ..apply_context(engine)
        };
        match apply::apply(&desired, instance.generation, &ctx, state) {
            Ok(applied) => report(
                &instance.label,
                &desired,
                &applied,
                instance.generation,
                quiet,
            )?,
            Err(err) => {
                failed += 1;
                eprintln!(
                    "error: cannot reconcile `{}`: {:#}",
                    instance.label,
                    anyhow::Error::new(err)
                );
            }
        }
    }
    // nginx too: started again when it died, in line with the instances.
    if let Err(err) = crate::proxy::sync(state, quiet, false) {
        failed += 1;
        eprintln!("error: {err:#}");
    }
    Ok(failed)
}

pub fn reconcile(args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut state = open_state()?;
    let failed = reconcile_all(&engine, &mut state, args.label.as_deref(), args.quiet)?;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn rollback(args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut state = open_state()?;
    let label = &args.label;
    let Some(current) = state.instance(label)? else {
        return Err(anyhow::anyhow!("there is no instance `{label}`")
            .context(Hint("`nua status` lists them".into())));
    };
    let history = state.history(Some(label))?;
    let usable =
        |g: &&state::Generation| g.outcome == state::Outcome::Succeeded && g.kind != Kind::Remove;
    let target = match args.to {
        Some(number) => history
            .iter()
            .find(|g| g.number == number)
            .filter(usable)
            .ok_or_else(|| {
                anyhow::anyhow!("`{label}` has no generation {number} that succeeded")
                    .context(Hint(format!("`nua history {label}` lists them").into()))
            })?,
        None => history
            .iter()
            .rev()
            .filter(usable)
            .find(|g| g.number < current.generation && g.desired != current.desired)
            .ok_or_else(|| anyhow::anyhow!("`{label}` has no earlier generation to go back to"))?,
    };
    let mut desired: Desired = serde_json::from_value(target.desired.clone())?;
    if args.with_data {
        let from =
            crate::backup::data_for_rollback(&engine, &mut state, label, target.number, false)?;
        eprintln!(
            "{label}: the data of generation {} is back (backup {from})",
            target.number
        );
    }
    // Behind the proxy, going back is the same switch as going forward: the app of the
    // earlier generation starts on ports of its own beside the running one.
    let single_writer = desired.containers.iter().any(|c| c.single_writer);
    let switcher = crate::proxy::Switcher::for_replacing(&state, label, &desired)?;
    if switcher.is_some() && !single_writer {
        place_apart(&mut desired, &engine, &state, label)?;
    }
    let generation = state.begin(
        label,
        Kind::Rollback,
        &actor(),
        &serde_json::to_value(&desired)?,
    )?;
    let ctx = Context {
        proxy: switcher
            .as_ref()
            .map(|s| s as &dyn nua_deploy::apply::Routes),
        drain: crate::proxy::drain()?,
        ..apply_context(&engine)
    };
    match apply::apply(&desired, generation, &ctx, &mut state) {
        Ok(_) => {
            state.finish(label, generation, Ok(()))?;
            crate::proxy::sync(&state, false, false)?;
            outln!(
                "{label}: back to generation {} (as generation {generation})",
                target.number
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            let err = anyhow::Error::new(err);
            state.finish(label, generation, Err(&format!("{err:#}")))?;
            // The proxy serves what is recorded, not a route left answering 503 while the
            // app was replaced; should that fail too, the rollback's error is the one told.
            let _ = crate::proxy::sync(&state, true, false);
            Err(err.context(format!("cannot roll `{label}` back")))
        }
    }
}

pub fn server(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    if let Some(ServerAction::Install { output }) = &args.action {
        return install(output.as_deref());
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let engine = docker()?;
    let mut state = open_state()?;
    eprintln!(
        "nua server: reconciling every {}s (state in `{}`)",
        args.interval,
        state.path().display()
    );
    while !stop.load(Ordering::SeqCst) {
        // One failing instance never stops the others, nor the server.
        if let Err(err) = reconcile_all(&engine, &mut state, None, true) {
            eprintln!("error: {err:#}");
        }
        if let Err(err) = crate::backup::scheduled(&engine, &mut state) {
            eprintln!("error: {err:#}");
        }
        let until = std::time::Instant::now() + Duration::from_secs(args.interval);
        while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `nua server install`: a systemd unit that starts `nua server` once Docker runs.
fn install(output: Option<&Path>) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find the path of this `nua`")?;
    let state_dir = state::default_dir();
    let unit = format!(
        "[Unit]\n\
         Description=Nua: keeps the deployed instances running\n\
         After=docker.service\n\
         Requires=docker.service\n\n\
         [Service]\n\
         Environment=NUA_STATE_DIR={}\n\
         ExecStart={} server\n\
         Restart=always\n\
         RestartSec=5\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        state_dir.display(),
        exe.display()
    );
    let path = output.unwrap_or(Path::new("/etc/systemd/system/nua.service"));
    nua_oci::fs::write_atomic(path, unit.as_bytes())
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    outln!("wrote {}", path.display())?;
    if output.is_none() {
        outln!("  start it with: systemctl daemon-reload && systemctl enable --now nua")?;
        // The system's nginx, when there is one, serves Nua's sites from now on.
        let mode = std::env::var("NUA_PROXY").unwrap_or_default();
        let conf_d = Path::new(crate::proxy::SYSTEM_INCLUDE)
            .parent()
            .unwrap_or(Path::new("/"));
        if conf_d.is_dir() && matches!(mode.as_str(), "" | "system") {
            let nginx = crate::proxy::own_nginx()?;
            if let Some(nginx) = nginx {
                let include = Path::new(crate::proxy::SYSTEM_INCLUDE);
                let line = format!(
                    "# Nua's sites (written by `nua server install`)\n{}",
                    nginx.include_line()
                );
                nua_oci::fs::write_atomic(include, line.as_bytes())
                    .with_context(|| format!("cannot write `{}`", include.display()))?;
                outln!(
                    "wrote {}: the system's nginx includes Nua's sites, and Nua uses it \
                     from now on (`NUA_PROXY=own` keeps Nua's own)",
                    include.display()
                )?;
                outln!("  then: nua reconcile (it checks nginx's configuration and reloads it)")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
