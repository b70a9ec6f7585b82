//! `nua run`: build or load an app, then run one instance of it on Docker, in the foreground
//! (its output shown until Ctrl-C, which stops and removes it) or detached.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::load::{docker, sent};
use crate::build::Output;
use crate::cli::args::{BuildArgs, RegistryArgs, RunArgs};
use crate::cli::{settings, Hint};
use crate::config::NuaConfig;
use crate::deploy::local::{LocalPorts, Published, Request, CONFIG_PATH};
use crate::deploy::supervise::{self, Outcome};
use crate::runtime::{Docker, Engine, LoadOptions, Loaded, LogLine, Stream};

/// What `nua run` was given, once looked at.
enum Target {
    /// An app folder or nua-config file: build it.
    App(PathBuf),
    /// An image tarball or OCI layout folder: load it.
    Image(PathBuf),
    /// An image Docker should already have.
    Reference(String),
}

fn target(text: &str) -> Target {
    let path = Path::new(text);
    if path.is_dir() {
        if path.join("index.json").is_file() || path.join("manifest.json").is_file() {
            return Target::Image(path.to_path_buf());
        }
        return Target::App(path.to_path_buf());
    }
    if path.is_file() {
        return if is_tar(path) {
            Target::Image(path.to_path_buf())
        } else {
            Target::App(path.to_path_buf())
        };
    }
    Target::Reference(text.to_owned())
}

/// Whether a file is a tar archive (the `ustar` magic of POSIX tar headers), or anything
/// else that is not text: a nua-config is text, an image is not.
fn is_tar(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head));
    match read {
        Ok(n) if n >= 262 => &head[257..262] == b"ustar" || head[..n].contains(&0),
        Ok(n) => head[..n].contains(&0),
        Err(_) => false,
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let env = overrides(&args.env)?;
    let text = args.target.as_deref().unwrap_or(".");
    let target = target(text);
    // Fail before a long build when Docker is not there.
    let engine = docker()?;
    let (image, loaded, config) = match target {
        Target::App(path) => build_and_load(&engine, &path, args)?,
        Target::Image(path) => {
            let loaded = load(&engine, &path, LoadOptions::default(), args.quiet)?;
            let image = first_tag(&loaded, &path)?;
            let config = image_config(&engine, &image)?;
            (image, Some(loaded), config)
        }
        Target::Reference(reference) => {
            let config = image_config(&engine, &reference)?;
            (reference, None, config)
        }
    };
    let details = engine
        .image(&image)?
        .ok_or_else(|| crate::runtime::Error::NoSuchImage {
            reference: image.clone(),
        })?;
    let name = match (&args.name, &config) {
        (Some(name), _) => name.clone(),
        (None, Some(config)) => config.id().to_owned(),
        (None, None) => name_of_reference(&image),
    };
    let request = Request {
        name: name.clone(),
        image: image.clone(),
        details: details.clone(),
        config,
        env,
    };

    // From here on, Ctrl-C stops the app rather than this process; a second one ends this
    // process at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupted))?;
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let (plan, id) = supervise::start(&engine, &request, &LocalPorts)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot start `{name}`"))
        .map_err(|e| hint_running(e, &name))?;
    if !args.quiet {
        for note in &plan.notes {
            eprintln!("{note}");
        }
        eprintln!("started {name}");
        for port in &plan.published {
            eprintln!("{}", port_line(port));
        }
    }
    let stop_timeout = Duration::from_secs(args.stop_timeout);
    let is_interrupted = || interrupted.load(Ordering::Relaxed);
    if args.detach {
        return detached(
            &engine,
            args,
            &request,
            &plan.published,
            &id,
            loaded,
            &is_interrupted,
        );
    }
    let outcome = supervise::foreground(
        &engine,
        &name,
        &is_interrupted,
        &print_line,
        &mut |outcome| report(&name, outcome, args.quiet),
        stop_timeout,
    )?;
    Ok(match outcome {
        Outcome::Interrupted => {
            if !args.quiet {
                eprintln!("stopped and removed {name}");
            }
            ExitCode::from(130)
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
) -> anyhow::Result<ExitCode> {
    let name = &request.name;
    let outcome = supervise::wait_ready(engine, name, interrupted)?;
    match &outcome {
        Outcome::Exited { code, last_lines } => {
            engine.remove_container(name)?;
            let mut message = format!("{name} exited with code {code} as it started");
            if last_lines.is_empty() {
                message.push_str(", saying nothing");
            } else {
                message.push_str("; its last lines:");
                for line in last_lines {
                    message.push_str("\n  | ");
                    message.push_str(&line.text);
                }
            }
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
        Outcome::Interrupted => return Ok(ExitCode::from(130)),
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
        println!("{json}");
    }
    Ok(ExitCode::SUCCESS)
}

fn report(name: &str, outcome: &Outcome, quiet: bool) {
    match outcome {
        Outcome::Healthy if !quiet => eprintln!("{name} is healthy"),
        Outcome::Running if !quiet => eprintln!("{name} is running"),
        Outcome::Unhealthy { checks } => {
            eprintln!("error: {}", unhealthy_message(name, checks));
        }
        _ => {}
    }
}

fn unhealthy_message(name: &str, checks: &[crate::runtime::CheckResult]) -> String {
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

fn print_line(line: LogLine) {
    use std::io::Write;
    // A closed pipe on our side is no reason to stop the app.
    let _ = match line.stream {
        Stream::Stdout => writeln!(std::io::stdout().lock(), "{}", line.text),
        Stream::Stderr => writeln!(std::io::stderr().lock(), "{}", line.text),
    };
}

fn port_line(port: &Published) -> String {
    let scheme = if port.protocol == crate::runtime::Protocol::Tcp {
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

fn hint_running(err: anyhow::Error, name: &str) -> anyhow::Error {
    let running = err
        .downcast_ref::<supervise::Error>()
        .is_some_and(|e| matches!(e, supervise::Error::Running { .. }));
    if running {
        err.context(Hint(
            format!("stop it first with `nua stop {name}`, or run another one with `--name`")
                .into(),
        ))
    } else {
        err
    }
}

/// Build the app with the build cache into a layout folder in the cache (its blobs are
/// hard links to the store's), load it, and drop the folder.
fn build_and_load(
    engine: &Docker,
    path: &Path,
    args: &RunArgs,
) -> anyhow::Result<(String, Option<Loaded>, Option<NuaConfig>)> {
    let build_args = BuildArgs {
        path: Some(path.to_path_buf()),
        output: None,
        tags: Vec::new(),
        oci_dir: true,
        mirror: args.mirror.clone(),
        zstd: false,
        push: None,
        no_cache: args.no_cache,
        why: false,
        dry_run: false,
        ca_bundle: args.ca_bundle.clone(),
        registry: RegistryArgs::default(),
        strict: false,
        quiet: args.quiet,
        json: false,
    };
    let runs = settings::cache_dir()?.join("run");
    fs_err::create_dir_all(&runs)?;
    let layout = tempfile::Builder::new()
        .prefix("image-")
        .tempdir_in(&runs)
        .with_context(|| format!("cannot make a folder in `{}`", runs.display()))?;
    let built = super::build::build_app(
        &build_args,
        Some(Output::LayoutDir(layout.path().to_path_buf())),
        None,
    )?;
    // The layout's blobs are hard links to the store's, hashed as they went in: no need to
    // read them all again.
    let trusted = LoadOptions {
        thin: true,
        verify: false,
    };
    let loaded = load(engine, layout.path(), trusted, args.quiet)?;
    let image = first_tag(&loaded, layout.path())?;
    Ok((image, Some(loaded), Some(built.app.config)))
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

/// The nua-config the build put in the image, if it has one.
fn image_config(engine: &Docker, image: &str) -> anyhow::Result<Option<NuaConfig>> {
    if engine.image(image)?.is_none() {
        return Err(anyhow::Error::new(crate::runtime::Error::NoSuchImage {
            reference: image.to_owned(),
        })
        .context(Hint(
            "give an app folder (built first), an image tarball, or load the image first".into(),
        )));
    }
    let Some(bytes) = engine.read_image_file(image, CONFIG_PATH)? else {
        return Ok(None);
    };
    let config = serde_json::from_slice(&bytes)
        .with_context(|| format!("`{CONFIG_PATH}` of the image `{image}` is not a nua-config"))?;
    Ok(Some(config))
}

/// A container name from an image reference: `registry/team/app:1.0` → `app`.
fn name_of_reference(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let repo = last.split([':', '@']).next().unwrap_or(last);
    repo.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `--env KEY=VALUE`, or `--env KEY` for this shell's value (left out when unset, as
/// `docker run` does).
fn overrides(given: &[String]) -> anyhow::Result<Vec<(String, String)>> {
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
    fn names_come_from_the_repository() {
        assert_eq!(
            name_of_reference("nua-flask-hello:1.0-1"),
            "nua-flask-hello"
        );
        assert_eq!(
            name_of_reference("127.0.0.1:5000/team/app@sha256:ab"),
            "app"
        );
    }

    #[test]
    fn env_overrides_take_values_or_the_shell() {
        let env =
            overrides(&["A=1".into(), "B=x=y".into(), "NUA_SURELY_UNSET_VAR".into()]).unwrap();
        assert_eq!(env, [("A".into(), "1".into()), ("B".into(), "x=y".into())]);
        assert!(overrides(&["=1".into()]).is_err());
    }
}
