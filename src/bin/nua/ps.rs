//! `nua ps`, `nua logs` and `nua stop`: the apps `nua run` started.

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::args::{LogsArgs, PsArgs, StopArgs};
use crate::load::docker;
use nua::cli::Hint;
use nua_deploy::local::APP_LABEL;
use nua_runtime::{ContainerInfo, Engine, HealthStatus, LogOptions, State, Stream};

pub fn ps(args: &PsArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let apps = engine.containers(APP_LABEL)?;
    if args.json {
        let list: Vec<_> = apps
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "image": c.image,
                    "state": c.state,
                    "health": c.health.as_ref().map(|h| h.status),
                    "exit_code": c.exit_code,
                    "ports": c.ports,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = apps
        .iter()
        .map(|c| [c.name.clone(), c.image.clone(), status(c), ports(c)])
        .collect();
    let header = ["NAME", "IMAGE", "STATUS", "PORTS"].map(String::from);
    let mut widths = [0; 4];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        println!("{}", line.trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

fn status(c: &ContainerInfo) -> String {
    let state = match c.state {
        State::Exited => format!("exited ({})", c.exit_code.unwrap_or(-1)),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
    };
    match c.health.as_ref().map(|h| h.status) {
        Some(HealthStatus::Healthy) => format!("{state} (healthy)"),
        Some(HealthStatus::Unhealthy) => format!("{state} (unhealthy)"),
        Some(HealthStatus::Starting) => format!("{state} (starting)"),
        None => state,
    }
}

fn ports(c: &ContainerInfo) -> String {
    c.ports
        .iter()
        .map(|p| {
            format!(
                "{}:{}->{}/{}",
                p.host_ip,
                p.host,
                p.container,
                p.protocol.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The container of an app `nua run` started, or an error saying there is none.
fn app(engine: &dyn Engine, name: &str) -> anyhow::Result<ContainerInfo> {
    match engine.container(name)? {
        Some(c) if c.labels.contains_key(APP_LABEL) => Ok(c),
        Some(_) => Err(anyhow::anyhow!(
            "the container `{name}` was not started by `nua run`; use `docker` for it"
        )),
        None => Err(anyhow::anyhow!("no app named `{name}` is running")
            .context(Hint("`nua ps` lists the apps `nua run` started".into()))),
    }
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let engine = docker()?;
    app(&engine, &args.name)?;
    let options = LogOptions {
        follow: args.follow,
        tail: args.tail,
    };
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    engine.logs(&args.name, options, &mut |line| {
        let written = match line.stream {
            Stream::Stdout => writeln!(stdout.lock(), "{}", line.text),
            Stream::Stderr => writeln!(stderr.lock(), "{}", line.text),
        };
        // The reader went away (`nua logs … | head`): stop quietly.
        if written.is_err() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn stop(args: &StopArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let container = app(&engine, &args.name)?;
    engine
        .stop_container(&args.name, Duration::from_secs(args.time))
        .with_context(|| format!("cannot stop `{}`", args.name))?;
    engine.remove_container(&args.name)?;
    let app_name = container
        .labels
        .get(APP_LABEL)
        .cloned()
        .unwrap_or_else(|| args.name.clone());
    let volumes = engine.volumes(APP_LABEL, &app_name)?;
    if args.volumes {
        for volume in &volumes {
            engine.remove_volume(volume)?;
        }
        // The random values the app's data was made with go with the data.
        let kept = crate::run::kept_values_file(&app_name)?;
        match std::fs::remove_file(&kept) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove `{}`", kept.display()))
            }
            _ => {}
        }
        eprintln!("stopped and removed {}, and its volumes", args.name);
    } else {
        eprintln!("stopped and removed {}", args.name);
        if !volumes.is_empty() {
            eprintln!("  kept its volumes {}", volumes.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
