//! `nua run`: build or load an app, then run one instance of it on Docker, in the foreground
//! (its output shown until Ctrl-C, which stops and removes it) or detached.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use std::io::Write as _;

use anyhow::Context as _;

use crate::args::RunArgs;
use crate::load::{docker, sent};
use nua::cli::args::{BuildArgs, RegistryArgs, ReportArgs};
use nua::cli::{settings, Hint};
use nua_build::Output;
use nua_config::NuaConfig;
use nua_deploy::image;
use nua_deploy::kept::KeptValues;
use nua_deploy::local::{LocalPorts, Plan, Published, Request};
use nua_deploy::supervise::{self, Outcome};
use nua_deploy::target::Target;
use nua_runtime::{Docker, Engine, ImageDetails, LoadOptions, Loaded, LogLine, Stream};

/// Ctrl-C and SIGTERM, counted: the first stops the app, the second kills it, a third ends
/// `nua` at once.
pub(crate) struct Signals {
    count: Arc<AtomicUsize>,
    last: Arc<AtomicUsize>,
}

impl Signals {
    pub(crate) fn register() -> anyhow::Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let count = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(AtomicUsize::new(0));
        let hurried = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Runs first: exits on the third signal, once the second has set `hurried`.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                128 + signal,
                Arc::clone(&hurried),
            )?;
            let (count, last, hurried) = (count.clone(), last.clone(), hurried.clone());
            // SAFETY: the handler only does atomic operations, which are async-signal-safe.
            unsafe {
                signal_hook::low_level::register(signal, move || {
                    last.store(signal as usize, Ordering::SeqCst);
                    if count.fetch_add(1, Ordering::SeqCst) >= 1 {
                        hurried.store(true, Ordering::SeqCst);
                    }
                })?;
            }
        }
        Ok(Signals { count, last })
    }

    pub(crate) fn interrupted(&self) -> bool {
        self.count.load(Ordering::SeqCst) >= 1
    }

    pub(crate) fn hurried(&self) -> bool {
        self.count.load(Ordering::SeqCst) >= 2
    }

    /// 130 after Ctrl-C, 143 after SIGTERM, as shells say.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(128 + self.last.load(Ordering::SeqCst).clamp(1, 127) as u8)
    }
}

/// Remove the layout folders of `nua run`s that were killed while building (older than an
/// hour, so as not to touch a run in progress).
fn sweep_layouts(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < hour_ago);
        if old && entry.file_name().to_string_lossy().starts_with("image-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let env = overrides(&args.env)?;
    let text = args.target.as_deref().unwrap_or(".");
    let target = Target::classify(text, settings::home().as_deref()).map_err(|e| {
        anyhow::Error::new(e).context(Hint(
            "give an app folder, a nua-config, an image tarball or the reference of an image \
             Docker has"
                .into(),
        ))
    })?;
    // Fail before a long build when Docker is not there.
    let engine = docker()?;
    if args.watch {
        let Target::App(path) = target else {
            return Err(anyhow::anyhow!(
                "`--watch` follows an app folder, and `{text}` is not one"
            )
            .context(Hint(
                "give the app folder (or its nua-config) to rebuild on every change".into(),
            )));
        };
        return crate::watch::run(&engine, &path, args);
    }
    let host_mounts = args.allow_host_mounts || target.is_app();
    let Prepared {
        image,
        details,
        loaded,
        config,
    } = prepare(&engine, target, &Knobs::of(args))?;

    // From here on, Ctrl-C stops the app rather than this process; a second one kills it,
    // a third ends this process at once.
    let signals = Signals::register()?;
    let config = match config {
        Some(config) => Some(config),
        None if loaded.is_none() => image::config_in_engine(&engine, &image)?,
        None => None,
    };
    let name = image::app_name(args.name.as_deref(), config.as_ref(), &image);
    let request = Request {
        name: name.clone(),
        image,
        details,
        config,
        env,
        host_mounts,
        // None kept (or no cache folder to keep them in): new ones, as on a first run.
        kept: kept_values().map(|k| k.load(&name)).unwrap_or_default(),
    };
    if signals.interrupted() {
        return Ok(signals.exit_code());
    }
    let (plan, id) = start(&engine, &request, args.quiet)?;
    let interrupted = || signals.interrupted();
    if args.detach {
        return detached(
            &engine,
            args,
            &request,
            &plan.published,
            &id,
            loaded,
            &interrupted,
        )
        .map(|code| code.unwrap_or_else(|| signals.exit_code()));
    }
    in_foreground(&engine, &name, &signals, args)
}

/// How an app folder is built before it runs (the flags `run` and `deploy` share).
#[derive(Clone)]
pub struct Knobs {
    pub debian: nua::cli::args::DebianArgs,
    pub no_cache: bool,
    pub ca_bundle: Option<PathBuf>,
    pub quiet: bool,
}

impl Knobs {
    pub(crate) fn of(args: &RunArgs) -> Knobs {
        Knobs {
            debian: args.debian.clone(),
            no_cache: args.no_cache,
            ca_bundle: args.ca_bundle.clone(),
            quiet: args.quiet,
        }
    }
}

/// The image to run, in Docker, with what is known of it.
pub struct Prepared {
    pub image: String,
    pub details: ImageDetails,
    /// What loading it sent, when it was loaded.
    pub loaded: Option<Loaded>,
    /// Its nua-config, when it came from an app folder or an archive.
    pub config: Option<NuaConfig>,
}

/// Build or load `target` as it needs, and find its image in Docker.
pub fn prepare(engine: &Docker, target: Target, args: &Knobs) -> anyhow::Result<Prepared> {
    let (image, loaded, config) = match target {
        Target::App(path) => build_and_load(engine, &path, args)?,
        Target::Image(path) => {
            let loaded = load(engine, &path, LoadOptions::default(), args.quiet)?;
            let image = first_tag(&loaded, &path)?;
            let config = image::config_in_archive(&path)?;
            (image, Some(loaded), config)
        }
        Target::Reference(reference) => {
            if engine.image(&reference)?.is_none() {
                pull(engine, &reference, args.quiet)?;
            }
            (reference, None, None)
        }
    };
    let details = engine.image(&image)?.ok_or_else(|| {
        anyhow::Error::new(nua_runtime::Error::NoSuchImage {
            reference: image.clone(),
        })
        .context(Hint(
            "give an app folder (built first) or an image tarball, or load the image first".into(),
        ))
    })?;
    Ok(Prepared {
        image,
        details,
        loaded,
        config,
    })
}

/// Pull `reference`, which Docker lacks, with Nua's registry client (its mirror, credentials
/// and retries), and load it.
fn pull(engine: &Docker, reference: &str, quiet: bool) -> anyhow::Result<()> {
    let runs = settings::cache_dir()?.join("run");
    fs_err::create_dir_all(&runs)?;
    let layout = tempfile::Builder::new().prefix("pull-").tempdir_in(&runs)?;
    nua::cli::commands::pull::pull_layout(reference, layout.path())
        .map_err(|e| {
            e.context(format!(
                "there is no image `{reference}` in Docker, and it cannot be pulled"
            ))
        })
        .map_err(|e| {
            e.context(Hint(
                "give an app folder (built first) or an image tarball, or a reference a \
                 registry serves"
                    .into(),
            ))
        })?;
    // Pulled by digest from the registry: already verified.
    let trusted = LoadOptions {
        thin: true,
        verify: false,
    };
    let loaded = engine.load_image(layout.path(), trusted)?;
    if !quiet {
        eprintln!(
            "pulled {reference} ({} of {} layers sent to Docker)",
            loaded.layers_sent, loaded.layers
        );
    }
    Ok(())
}

/// Start the app, keep its generated values, and say where it answers.
fn start(engine: &Docker, request: &Request, quiet: bool) -> anyhow::Result<(Plan, String)> {
    let name = &request.name;
    let (plan, id) = supervise::start(engine, request, &LocalPorts)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot start `{name}`"))
        .map_err(|e| hint_start(e, name))?;
    if !plan.random.is_empty() {
        kept_values()?.save(name, &plan.random)?;
    }
    if !quiet {
        for note in &plan.notes {
            eprintln!("{note}");
        }
        eprintln!("started {name}");
        for port in &plan.published {
            eprintln!("{}", port_line(port));
        }
    }
    Ok((plan, id))
}

/// Follow the app until it ends or the user interrupts, and exit as it did.
fn in_foreground(
    engine: &Docker,
    name: &str,
    signals: &Signals,
    args: &RunArgs,
) -> anyhow::Result<ExitCode> {
    let outcome = supervise::foreground(
        engine,
        name,
        &|| signals.interrupted(),
        &|| signals.hurried(),
        &print_line,
        &mut |outcome| report(name, outcome, args.quiet),
        Duration::from_secs(args.stop_timeout),
    )?;
    Ok(match outcome {
        Outcome::Interrupted => {
            if !args.quiet {
                eprintln!("stopped and removed {name}");
            }
            signals.exit_code()
        }
        Outcome::Exited { code, .. } => {
            eprintln!("{name} exited with code {code}");
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Outcome::Unhealthy { .. } => {
            eprintln!("stopped and removed {name}");
            ExitCode::FAILURE
        }
        Outcome::Healthy | Outcome::Running => ExitCode::SUCCESS,
    })
}

fn detached(
    engine: &Docker,
    args: &RunArgs,
    request: &Request,
    published: &[Published],
    id: &str,
    loaded: Option<Loaded>,
    interrupted: &dyn Fn() -> bool,
) -> anyhow::Result<Option<ExitCode>> {
    let name = &request.name;
    let outcome = supervise::wait_detached(engine, name, interrupted)?;
    match &outcome {
        Outcome::Exited { code, last_lines } => {
            let message = with_last_lines(
                format!("{name} exited with code {code} as it started"),
                last_lines,
            );
            return Err(anyhow::anyhow!(message).context(Hint(
                "fix the start command (`[run] start`) or what it needs; the container was removed"
                    .into(),
            )));
        }
        Outcome::Unhealthy { checks } => {
            return Err(
                anyhow::anyhow!(unhealthy_message(name, checks)).context(Hint(
                    format!("see its output with `nua logs {name}`; `nua stop {name}` removes it")
                        .into(),
                )),
            );
        }
        // Ctrl-C while waiting: the app stays, as asked with `--detach`.
        Outcome::Interrupted => return Ok(None),
        Outcome::Healthy | Outcome::Running => report(name, &outcome, args.quiet),
    }
    if args.json {
        let json = serde_json::json!({
            "app": name,
            "container": id,
            "image": request.image,
            "image_id": request.details.id,
            "ports": published,
            "health": matches!(outcome, Outcome::Healthy).then_some("healthy"),
            "load": loaded,
        });
        // The app runs, detached as asked, whether or not anyone still reads this.
        let _ = writeln!(std::io::stdout(), "{json}");
    }
    Ok(Some(ExitCode::SUCCESS))
}

/// `message`, then `; its last lines:` and each line indented with `  | ` (or `, saying
/// nothing`).
pub(crate) fn with_last_lines(mut message: String, last_lines: &[LogLine]) -> String {
    if last_lines.is_empty() {
        message.push_str(", saying nothing");
    } else {
        message.push_str("; its last lines:");
        for line in last_lines {
            message.push_str("\n  | ");
            message.push_str(&line.text);
        }
    }
    message
}

fn report(name: &str, outcome: &Outcome, quiet: bool) {
    match outcome {
        Outcome::Healthy if !quiet => eprintln!("{name} is healthy"),
        Outcome::Running if !quiet => eprintln!("{name} is running"),
        Outcome::Unhealthy { checks } => {
            eprintln!("{}", unhealthy_message(name, checks));
        }
        _ => {}
    }
}

pub(crate) fn unhealthy_message(name: &str, checks: &[nua_runtime::CheckResult]) -> String {
    let mut message = format!("{name} is unhealthy: its health check failed");
    if let Some(last) = checks.iter().rev().find(|c| c.exit_code != 0) {
        message.push_str(&format!(" (exit code {}):", last.exit_code));
        for line in last.output.lines() {
            message.push_str("\n  | ");
            message.push_str(line);
        }
    }
    message
}

pub(crate) fn print_line(line: LogLine) {
    use std::io::Write;
    // A closed pipe on our side is no reason to stop the app.
    let _ = match line.stream {
        Stream::Stdout => writeln!(std::io::stdout().lock(), "{}", line.text),
        Stream::Stderr => writeln!(std::io::stderr().lock(), "{}", line.text),
    };
}

pub(crate) fn port_line(port: &Published) -> String {
    let scheme = if port.protocol == nua_runtime::Protocol::Tcp {
        "http"
    } else {
        "udp"
    };
    format!(
        "  {}  {scheme}://{}:{} → {}/{}",
        port.name,
        port.host_ip,
        port.host,
        port.container,
        port.protocol.as_str()
    )
}

pub(crate) fn hint_start(err: anyhow::Error, name: &str) -> anyhow::Error {
    let hint = match err.downcast_ref::<supervise::Error>() {
        Some(supervise::Error::Running { .. }) => {
            format!("stop it first with `nua stop {name}`, or run another one with `--name`")
        }
        Some(supervise::Error::Foreign { .. }) => {
            "give the app another container name with `--name`".to_owned()
        }
        Some(supervise::Error::Plan(nua_deploy::local::Error::HostMount { .. })) => {
            "read the image's nua-config (`nua-pack inspect`) before allowing it".to_owned()
        }
        _ => return err,
    };
    err.context(Hint(hint.into()))
}

/// Build the app with the build cache into a layout folder in the cache (its blobs are
/// hard links to the store's), load it, and drop the folder.
pub(crate) fn build_and_load(
    engine: &Docker,
    path: &Path,
    args: &Knobs,
) -> anyhow::Result<(String, Option<Loaded>, Option<NuaConfig>)> {
    let (layout, config) = build_layout(path, args)?;
    let (image, loaded) = load_layout(engine, layout.path(), args.quiet)?;
    Ok((image, Some(loaded), Some(config)))
}

/// Build the app folder `path` into an OCI layout folder of its own under the cache (gone
/// when dropped; one left by a killed `nua` is swept an hour later).
pub(crate) fn build_layout(
    path: &Path,
    args: &Knobs,
) -> anyhow::Result<(tempfile::TempDir, NuaConfig)> {
    let build_args = BuildArgs {
        path: Some(path.to_path_buf()),
        output: None,
        tags: Vec::new(),
        oci_dir: true,
        debian: args.debian.clone(),
        zstd: false,
        push: None,
        no_cache: args.no_cache,
        why: false,
        dry_run: false,
        ca_bundle: args.ca_bundle.clone(),
        cache_from: Vec::new(),
        cache_to: None,
        registry: RegistryArgs::default(),
        strict: false,
        report: ReportArgs {
            quiet: args.quiet,
            json: false,
        },
    };
    let runs = settings::cache_dir()?.join("run");
    fs_err::create_dir_all(&runs)?;
    sweep_layouts(&runs);
    let layout = tempfile::Builder::new()
        .prefix("image-")
        .tempdir_in(&runs)
        .with_context(|| format!("cannot make a folder in `{}`", runs.display()))?;
    let built = nua::cli::commands::build::build_app(
        &build_args,
        Some(Output::LayoutDir(layout.path().to_path_buf())),
        None,
    )?;
    Ok((layout, built.app.config))
}

/// Load a layout [`build_layout`] wrote (thin); the image's name.
pub(crate) fn load_layout(
    engine: &Docker,
    layout: &Path,
    quiet: bool,
) -> anyhow::Result<(String, Loaded)> {
    // The layout's blobs are hard links to the store's, hashed as they went in: no need to
    // read them all again.
    let trusted = LoadOptions {
        thin: true,
        verify: false,
    };
    let loaded = load(engine, layout, trusted, quiet)?;
    let image = first_tag(&loaded, layout)?;
    Ok((image, loaded))
}

fn load(engine: &Docker, path: &Path, options: LoadOptions, quiet: bool) -> anyhow::Result<Loaded> {
    let loaded = engine
        .load_image(path, options)
        .with_context(|| format!("cannot load `{}`", path.display()))?;
    if !quiet {
        let tag = loaded.tags.first().map_or("the image", String::as_str);
        eprintln!("loaded {tag} ({})", sent(&loaded));
    }
    Ok(loaded)
}

fn first_tag(loaded: &Loaded, path: &Path) -> anyhow::Result<String> {
    loaded.tags.first().cloned().with_context(|| {
        format!(
            "`{}` gives its image no name; Docker loaded it as {}",
            path.display(),
            loaded.image_id
        )
    })
}

/// Where the `random` env values of the apps' runs are kept: beside their volumes in
/// spirit (they go together with `nua stop --volumes`).
pub(crate) fn kept_values() -> anyhow::Result<KeptValues> {
    Ok(KeptValues::new(
        settings::cache_dir()?.join("run").join("env"),
    ))
}

/// `--env KEY=VALUE`, or `--env KEY` for this shell's value (left out when unset, as
/// `docker run` does).
pub(crate) fn overrides(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for item in given {
        let (key, value) = match item.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => match std::env::var(item) {
                Ok(value) => (item.clone(), value),
                Err(_) => continue,
            },
        };
        if key.is_empty() {
            anyhow::bail!("`--env {item}` names no variable: write `--env KEY=VALUE`");
        }
        env.push((key, value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_take_values_or_the_shell() {
        let env =
            overrides(&["A=1".into(), "B=x=y".into(), "NUA_SURELY_UNSET_VAR".into()]).unwrap();
        assert_eq!(env, [("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert!(overrides(&["=1".into()]).is_err());
    }
}
