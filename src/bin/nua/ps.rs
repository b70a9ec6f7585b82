//! `nua ps`, `nua logs` and `nua stop`: the apps `nua run` started.

use std::ops::ControlFlow;
use std::process::ExitCode;
use std::time::Duration;

use crate::args::{LogsArgs, PsArgs, StopArgs};
use crate::load::docker;
use nua::cli::Hint;
use nua::outln;
use nua_deploy::apps;
use nua_deploy::instance::{Container, Desired};
use nua_runtime::{ContainerInfo, Engine, HealthStatus, LogOptions, State, Stream};

/// The image an app was run from, as it was named (`nua run --watch` starts some of its
/// containers from an image ID).
fn image(container: &ContainerInfo) -> &str {
    container
        .labels
        .get(nua_deploy::local::IMAGE_LABEL)
        .map_or(container.image.as_str(), String::as_str)
}

pub fn ps(args: &PsArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut apps = apps::list(&engine)?;
    // The deployed instances' apps, under their labels.
    if let Some(state) = crate::deploy::existing_state()? {
        for instance in state.instances()? {
            let desired: nua_deploy::instance::Desired = serde_json::from_value(instance.desired)?;
            let app = desired
                .containers
                .iter()
                .find(|c| c.component == nua_deploy::values::APP);
            if let Some(info) = app
                .map(|a| engine.container(&a.name))
                .transpose()?
                .flatten()
            {
                apps.push(ContainerInfo {
                    name: instance.label.clone(),
                    ..info
                });
            }
        }
    }
    if args.output.json {
        let list: Vec<_> = apps
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "image": image(c),
                    "state": c.state,
                    "health": c.health.as_ref().map(|h| h.status),
                    "exit_code": c.exit_code,
                    "ports": shown_ports(c),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 4]> = apps
        .iter()
        .map(|c| [c.name.clone(), image(c).to_owned(), status(c), ports(c)])
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
        outln!("{}", line.trim_end())?;
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

/// The ports the app answers on: those its container publishes, or, for `nua run --watch`,
/// the ones Nua holds in front of it.
fn shown_ports(c: &ContainerInfo) -> Vec<nua_runtime::PortBinding> {
    c.labels
        .get(nua_deploy::reload::PORTS_LABEL)
        .and_then(|held| serde_json::from_str(held).ok())
        .unwrap_or_else(|| c.ports.clone())
}

fn ports(c: &ContainerInfo) -> String {
    shown_ports(c)
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

/// What `nua logs` and `nua stop` say when the app is not theirs to touch.
fn hint_apps(err: apps::Error) -> anyhow::Error {
    let hint = match &err {
        apps::Error::NotFound { .. } => "`nua ps` lists the apps `nua run` started",
        _ => return err.into(),
    };
    anyhow::Error::new(err).context(Hint(hint.into()))
}

/// The container of instance `label` (its app, or `provider`), when `label` is one.
fn instance_container(
    label: &str,
    provider: Option<&str>,
) -> anyhow::Result<Option<(Desired, Container)>> {
    let Some(state) = crate::deploy::existing_state()? else {
        return Ok(None);
    };
    let Some(instance) = state.instance(label)? else {
        return Ok(None);
    };
    let desired: Desired = serde_json::from_value(instance.desired)?;
    let wanted = provider.unwrap_or(nua_deploy::values::APP);
    let found = desired.containers.iter().find(|c| c.component == wanted);
    match found {
        Some(container) => {
            let container = container.clone();
            Ok(Some((desired, container)))
        }
        None => {
            let known: Vec<&str> = desired
                .containers
                .iter()
                .filter(|c| c.component != nua_deploy::values::APP)
                .map(|c| c.component.as_str())
                .collect();
            Err(anyhow::anyhow!(
                "`{label}` has no provider `{wanted}` (it has: {})",
                known.join(", ")
            ))
        }
    }
}

pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    let engine = docker()?;
    let name = match instance_container(&args.name, args.provider.as_deref())? {
        // Where it runs now (on Swarm, its task's container on this node).
        Some((desired, container)) => {
            let ctx = crate::deploy::apply_context(&engine);
            let platform = nua_deploy::apply::platform(&desired, &ctx)?;
            platform
                .running(&container)?
                .map_or(container.name, |running| running.name)
        }
        None if args.provider.is_some() => {
            return Err(anyhow::anyhow!("there is no instance `{}`", args.name)
                .context(Hint("`nua status` lists the deployed instances".into())));
        }
        None => {
            apps::find(&engine, &args.name).map_err(hint_apps)?;
            args.name.clone()
        }
    };
    let options = LogOptions {
        follow: args.follow,
        tail: args.tail,
    };
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    engine.logs(&name, options, &mut |line| {
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
    if instance_container(&args.name, None)?.is_some() {
        if args.volumes {
            return Err(anyhow::anyhow!(
                "`{}` is a deployed instance: `nua stop` keeps its data",
                args.name
            )
            .context(Hint(
                format!(
                    "`nua remove {} --volumes` removes it with its data",
                    args.name
                )
                .into(),
            )));
        }
        return crate::deploy::stop_instance(&args.name);
    }
    let engine = docker()?;
    let timeout = Duration::from_secs(args.time);
    // The kept values go with the volumes, and only then is their folder needed.
    let kept = if args.volumes {
        Some(crate::run::kept_values()?)
    } else {
        None
    };
    let stopped = apps::stop(&engine, &args.name, timeout, kept.as_ref()).map_err(hint_apps)?;
    if stopped.volumes_removed {
        eprintln!("stopped and removed {}, and its volumes", args.name);
    } else {
        eprintln!("stopped and removed {}", args.name);
        if !stopped.volumes.is_empty() {
            eprintln!("  kept its volumes {}", stopped.volumes.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
