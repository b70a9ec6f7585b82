//! `nua backup`, `nua backups`, `nua restore`: verified backups of instances in a restic
//! repository.
//!
//! Settings: `NUA_BACKUP_REPOSITORY` (a folder, or any restic repository URL; default the
//! `backups` folder of the state), `NUA_BACKUP_PASSWORD_FILE` (the password of an existing
//! repository; by default one is generated and kept in the encrypted secrets), `NUA_RESTIC`
//! (the restic binary).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::args::{BackupArgs, BackupsArgs, RestoreArgs};
use crate::deploy::{apply_context, open_state};
use crate::load::docker;
use nua::cli::progress::{human_bytes, human_duration};
use nua::cli::Hint;
use nua::outln;
use nua_deploy::backup::{self, restic::Repository, Backups, Component, Part};
use nua_deploy::instance::{Desired, Role};
use nua_deploy::state::{self, State};
use nua_runtime::Engine as _;

/// The secret holding the repository's password: of no instance (labels are never empty).
const PASSWORD_SECRET: (&str, &str) = ("", "restic-password");

/// The repository backups go to, made when there is none.
pub fn repository(state: &mut State) -> anyhow::Result<Repository> {
    let dir = state::default_dir();
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let url =
        var("NUA_BACKUP_REPOSITORY").unwrap_or_else(|| dir.join("backups").display().to_string());
    let password = match var("NUA_BACKUP_PASSWORD_FILE") {
        Some(file) => std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read `NUA_BACKUP_PASSWORD_FILE` (`{file}`)"))?
            .trim_end_matches(['\n', '\r'])
            .to_owned(),
        None => {
            state.secret_or_insert(PASSWORD_SECRET.0, PASSWORD_SECRET.1, backup::new_password)?
        }
    };
    Ok(Repository {
        url,
        password,
        cache: dir.join("restic-cache"),
        binary: var("NUA_RESTIC").map_or_else(|| PathBuf::from("restic"), PathBuf::from),
    })
}

/// The desired state of instance `label`, its generation, and whether it is stopped.
fn instance(state: &State, label: &str) -> anyhow::Result<(Desired, u64, bool)> {
    let Some(instance) = state.instance(label)? else {
        return Err(anyhow::anyhow!("there is no instance `{label}`")
            .context(Hint("`nua status` lists them".into())));
    };
    Ok((
        serde_json::from_value(instance.desired)?,
        instance.generation,
        instance.stopped,
    ))
}

/// `nua backup [LABEL…]`: every instance when none is named.
pub fn backup(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut state = open_state()?;
    let repository = repository(&mut state)?;
    let labels: Vec<String> = if args.labels.is_empty() {
        state.instances()?.into_iter().map(|i| i.label).collect()
    } else {
        args.labels.clone()
    };
    if labels.is_empty() {
        return Err(anyhow::anyhow!("there is no instance to back up")
            .context(Hint("`nua deploy` one first".into())));
    }
    let backups = Backups {
        engine: &engine,
        repository: &repository,
        quiet: args.quiet || args.output.json,
    };
    let mut failed = 0;
    let mut shown = Vec::new();
    for label in &labels {
        let (desired, generation, _) = instance(&state, label)?;
        let mut components = backup::plan(&desired, args.all)?;
        if let Some(name) = &args.component {
            components = backup::only(label, components, name)?;
        }
        let (id, parts, ok) = backups
            .back_up(&mut state, &desired, generation, &components, "manual")
            .with_context(|| format!("cannot back `{label}` up"))?;
        if !ok {
            failed += 1;
        }
        if args.output.json {
            shown.push(state.backup(id)?);
        } else {
            let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
            if ok {
                outln!(
                    "backup {id} of {label}: verified, {} component(s), {}",
                    parts.len(),
                    human_bytes(bytes)
                )?;
            } else {
                eprintln!("error: backup {id} of {label} failed; it does not count as a backup");
            }
        }
    }
    if args.output.json {
        outln!("{}", serde_json::to_string_pretty(&shown)?)?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `nua backups [LABEL]`.
pub fn backups(args: &BackupsArgs) -> anyhow::Result<ExitCode> {
    let Some(state) = crate::deploy::existing_state()? else {
        if args.output.json {
            outln!("[]")?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    let list = state.backups(args.label.as_deref())?;
    if args.output.json {
        outln!("{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<5} {:<24} {:>4} {:<8} {:<20} {:>8} {:>10} {:<9} VERIFIED",
        "ID",
        "INSTANCE",
        "GEN",
        "REASON",
        "STARTED",
        "TOOK",
        "SIZE",
        "STATUS"
    )?;
    for b in &list {
        let parts: Vec<Part> = serde_json::from_value(b.components.clone()).unwrap_or_default();
        let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
        let took = b
            .finished
            .map(|f| human_duration(Duration::from_secs(f.saturating_sub(b.started))))
            .unwrap_or_default();
        let what = match &b.error {
            Some(error) => error.clone(),
            None => parts
                .iter()
                .map(|p| {
                    format!(
                        "{}: {}",
                        p.component,
                        p.verified.as_deref().unwrap_or("not verified")
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        };
        outln!(
            "{:<5} {:<24} {:>4} {:<8} {:<20} {:>8} {:>10} {:<9} {what}",
            b.id,
            b.label,
            b.generation,
            b.reason,
            nua_oci::image::rfc3339(b.started),
            took,
            human_bytes(bytes),
            b.status
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The components of `desired` that the parts of a backup hold, with their snapshots.
fn restorable(
    label: &str,
    desired: &Desired,
    parts: &[Part],
    only: Option<&str>,
) -> anyhow::Result<Vec<(Component, String, u64)>> {
    let components = backup::plan(desired, true)?;
    let mut out = Vec::new();
    for part in parts
        .iter()
        .filter(|p| only.is_none_or(|o| o == p.component))
    {
        let component = components
            .iter()
            .find(|c| c.name == part.component && c.kind == part.kind)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "`{label}` no longer has the {} component `{}` this backup holds",
                    part.kind.as_str(),
                    part.component
                )
            })?;
        let snapshot = part.snapshot.clone().ok_or_else(|| {
            anyhow::anyhow!("the backup holds no snapshot of `{}`", part.component)
        })?;
        out.push((component.clone(), snapshot, part.bytes));
    }
    if out.is_empty() {
        let names: Vec<&str> = parts.iter().map(|p| p.component.as_str()).collect();
        return Err(anyhow::anyhow!(
            "the backup has no component `{}` (it has: {})",
            only.unwrap_or_default(),
            names.join(", ")
        ));
    }
    Ok(out)
}

/// `nua restore LABEL [--backup ID] [--component NAME]`.
pub fn restore(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let engine = docker()?;
    let mut state = open_state()?;
    let repository = repository(&mut state)?;
    let label = &args.label;
    let (desired, generation, stopped) = instance(&state, label)?;
    let chosen = match args.backup {
        Some(id) => state
            .backup(id)?
            .filter(|b| &b.label == label)
            .ok_or_else(|| {
                anyhow::anyhow!("`{label}` has no backup {id}")
                    .context(Hint(format!("`nua backups {label}` lists them").into()))
            })?,
        None => state
            .backups(Some(label))?
            .into_iter()
            .rev()
            .find(|b| b.status == "verified")
            .ok_or_else(|| {
                anyhow::anyhow!("`{label}` has no verified backup to restore")
                    .context(Hint(format!("`nua backup {label}` takes one").into()))
            })?,
    };
    if chosen.status != "verified" {
        return Err(anyhow::anyhow!(
            "backup {} of `{label}` is {}, not verified: it is never restored",
            chosen.id,
            chosen.status
        )
        .context(Hint(
            format!("`nua backups {label}` lists the verified ones").into(),
        )));
    }
    let parts: Vec<Part> = serde_json::from_value(chosen.components.clone())?;
    let targets = restorable(label, &desired, &parts, args.component.as_deref())?;
    let backups = Backups {
        engine: &engine,
        repository: &repository,
        quiet: args.quiet,
    };
    // What is there now, kept first: a restore that fails halfway puts it back.
    let components: Vec<Component> = targets.iter().map(|(c, _, _)| c.clone()).collect();
    let (safety, safety_parts, ok) = backups
        .back_up(&mut state, &desired, generation, &components, "safety")
        .with_context(|| format!("cannot take the safety backup of `{label}`"))?;
    if !ok {
        return Err(anyhow::anyhow!(
            "the safety backup {safety} of `{label}` failed, so nothing was restored (the \
             instance is as it was)"
        ));
    }
    let app = desired
        .containers
        .iter()
        .find(|c| c.role == Role::App)
        .map(|c| c.name.clone());
    if let Some(app) = &app {
        if !args.quiet {
            eprintln!("stopping the app of {label} while its data is restored");
        }
        engine.stop_container(app, Duration::from_secs(30))?;
    }
    let mut failure = None;
    for (component, snapshot, bytes) in &targets {
        if let Err(error) = backups.restore_component(label, component, snapshot, *bytes) {
            failure = Some(format!("{}: {error}", component.name));
            break;
        }
        if !args.quiet {
            eprintln!(
                "restored {} of {label} from backup {}",
                component.name, chosen.id
            );
        }
    }
    if let Some(failure) = &failure {
        eprintln!(
            "error: the restore of `{label}` failed ({failure}); putting back what was there \
             before it started, from the safety backup {safety}"
        );
        let back = restorable(label, &desired, &safety_parts, None)?;
        for (component, snapshot, bytes) in &back {
            if let Err(error) = backups.restore_component(label, component, snapshot, *bytes) {
                eprintln!(
                    "error: {} could not be put back either: {error}; backup {safety} holds it",
                    component.name
                );
            }
        }
    }
    // The app runs again, health-gated, on the data now there.
    let ctx = nua_deploy::apply::Context {
        stopped,
        ..apply_context(&engine)
    };
    apply_after(&desired, generation, &ctx, &mut state, label)?;
    match failure {
        None => {
            outln!(
                "{label}: restored from backup {} (what was there before is backup {safety})",
                chosen.id
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Some(failure) => Err(anyhow::anyhow!(
            "the restore of `{label}` failed: {failure}; its data is as it was before"
        )),
    }
}

fn apply_after(
    desired: &Desired,
    generation: u64,
    ctx: &nua_deploy::apply::Context<'_>,
    state: &mut State,
    label: &str,
) -> anyhow::Result<()> {
    nua_deploy::apply::apply(desired, generation, ctx, state)
        .map(|_| ())
        .with_context(|| format!("`{label}` does not run again after the restore"))
}
