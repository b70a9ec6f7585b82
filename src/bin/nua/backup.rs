//! `nua backup`, `nua backups`, `nua restore`: verified backups of instances in a restic
//! repository.
//!
//! Settings: `NUA_BACKUP_REPOSITORY` (a folder, or any restic repository URL; default the
//! `backups` folder of the state), `NUA_BACKUP_PASSWORD_FILE` (the password of an existing
//! repository; by default one is generated and kept in the encrypted secrets),
//! `NUA_BACKUP_OPTIONS` (restic's `-o` backend options, `;` between them: `sftp.command=ssh
//! -p 2222 backup@host -s sftp`), `NUA_RESTIC` (the restic binary). A backend's credentials
//! (`AWS_ACCESS_KEY_ID`, …) reach restic through the environment. `nua server` reads
//! `NUA_BACKUP_FREQUENCY` (for instances that declare none), `NUA_BACKUP_KEEP` and
//! `NUA_BACKUP_CHECK`.

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
use nua_deploy::apply;
use nua_deploy::backup::{self, restic::Repository, schedule, Backups, Component, Part};
use nua_deploy::instance::{Desired, Role};
use nua_deploy::state::{self, State};
use nua_runtime::Docker;

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
        options: var("NUA_BACKUP_OPTIONS")
            .map(|text| {
                text.split(';')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// A backup error with what to do about it, when there is something.
fn hinted(err: backup::Error) -> anyhow::Error {
    let hint = err.hint();
    let err = anyhow::Error::new(err);
    match hint {
        Some(h) => err.context(Hint(h.into())),
        None => err,
    }
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
        let mut components = located(&engine, &desired, backup::plan(&desired, args.all)?)?;
        if let Some(name) = &args.component {
            components = backup::only(label, components, name)?;
        }
        let (id, parts, ok) = backups
            .back_up(&mut state, &desired, generation, &components, "manual")
            .map_err(hinted)
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

/// `components` of `desired`, each where its commands run now (on Swarm, in the container
/// of its task on this node).
fn located(
    engine: &Docker,
    desired: &Desired,
    components: Vec<Component>,
) -> anyhow::Result<Vec<Component>> {
    let ctx = apply_context(engine);
    let platform = apply::platform(desired, &ctx)?;
    Ok(backup::locate(components, desired, platform.as_ref())?)
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
    let outcome = put_back(
        &engine, &backups, &mut state, &desired, generation, &targets, chosen.id, args.quiet,
    )?;
    // The app runs again, health-gated, on the data now there.
    let ctx = nua_deploy::apply::Context {
        stopped,
        ..apply_context(&engine)
    };
    apply_after(&desired, generation, &ctx, &mut state, label)?;
    crate::proxy::sync(&state, args.quiet, false)?;
    match outcome {
        Ok(safety) => {
            outln!(
                "{label}: restored from backup {} (what was there before is backup {safety})",
                chosen.id
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => Err(anyhow::anyhow!(
            "the restore of `{label}` failed: {failure}; its data is as it was before"
        )),
    }
}

/// Put `targets` of `desired` back from backup `from`: a safety backup of what is there
/// first, the app stopped, each component restored; when one fails, what was there is put
/// back from the safety backup. The app is left stopped, for the caller to run the
/// generation it wants on the data. The safety backup's id, or why the restore failed.
#[allow(clippy::too_many_arguments)]
fn put_back(
    engine: &Docker,
    backups: &Backups<'_>,
    state: &mut State,
    desired: &Desired,
    generation: u64,
    targets: &[(Component, String, u64)],
    from: u64,
    quiet: bool,
) -> anyhow::Result<Result<u64, String>> {
    let label = &desired.label;
    let ctx = apply_context(engine);
    let platform = apply::platform(desired, &ctx)?;
    // Each where its commands run now.
    let locate = |targets: &[(Component, String, u64)]| -> anyhow::Result<_> {
        let components = targets.iter().map(|(c, _, _)| c.clone()).collect();
        let located = backup::locate(components, desired, platform.as_ref())?;
        Ok(targets
            .iter()
            .zip(located)
            .map(|((_, snapshot, bytes), c)| (c, snapshot.clone(), *bytes))
            .collect::<Vec<_>>())
    };
    let targets = locate(targets)?;
    let components: Vec<Component> = targets.iter().map(|(c, _, _)| c.clone()).collect();
    let (safety, safety_parts, ok) = backups
        .back_up(state, desired, generation, &components, "safety")
        .map_err(hinted)
        .with_context(|| format!("cannot take the safety backup of `{label}`"))?;
    if !ok {
        return Err(anyhow::anyhow!(
            "the safety backup {safety} of `{label}` failed, so nothing was restored (the \
             instance is as it was)"
        ));
    }
    // Behind the proxy, its requests are answered 503 with `Retry-After` meanwhile, never
    // a connection error.
    if desired.domain.is_some() {
        if let Some(switcher) = crate::proxy::Switcher::new(state, label)? {
            use nua_deploy::apply::Routes as _;
            if let Err(e) = switcher.route(desired, true) {
                eprintln!("warning: the proxy does not answer 503 for {label} meanwhile: {e}");
            }
        }
    }
    let ctx = apply_context(engine);
    let platform = apply::platform(desired, &ctx)?;
    if let Some(app) = desired.containers.iter().find(|c| c.role == Role::App) {
        if !quiet {
            eprintln!("stopping the app of {label} while its data is restored");
        }
        platform.halt(app)?;
    }
    for (component, snapshot, bytes) in &targets {
        if let Err(error) = backups.restore_component(label, component, snapshot, *bytes) {
            let failure = format!("{}: {error}", component.name);
            eprintln!(
                "error: the restore of `{label}` failed ({failure}); putting back what was \
                 there before it started, from the safety backup {safety}"
            );
            let back = locate(&restorable(label, desired, &safety_parts, None)?)?;
            for (component, snapshot, bytes) in &back {
                if let Err(error) = backups.restore_component(label, component, snapshot, *bytes) {
                    eprintln!(
                        "error: {} could not be put back either: {error}; backup {safety} \
                         holds it",
                        component.name
                    );
                }
            }
            return Ok(Err(failure));
        }
        if !quiet {
            eprintln!("restored {} of {label} from backup {from}", component.name);
        }
    }
    Ok(Ok(safety))
}

/// `nua rollback --with-data`, before the earlier generation runs: the data as it was when
/// generation `to` was replaced (the backup taken before that upgrade) is put back, after a
/// safety backup of today's. When it cannot be, the instance runs again as it was and the
/// rollback stops.
pub fn data_for_rollback(
    engine: &Docker,
    state: &mut State,
    label: &str,
    to: u64,
    quiet: bool,
) -> anyhow::Result<u64> {
    let (desired, generation, stopped) = instance(state, label)?;
    let chosen = state
        .backups(Some(label))?
        .into_iter()
        .rev()
        .find(|b| b.status == "verified" && b.reason == "upgrade" && b.generation == to)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{label}` has no verified backup of the data of generation {to} (one is taken \
                 before each upgrade, unless `nua deploy --no-backup`)"
            )
            .context(Hint(
                format!(
                "`nua rollback {label}` without `--with-data` goes back and keeps today's data; \
                 `nua backups {label}` lists the backups there are"
            )
                .into(),
            ))
        })?;
    let parts: Vec<Part> = serde_json::from_value(chosen.components.clone())?;
    let targets = restorable(label, &desired, &parts, None)?;
    let repository = repository(state)?;
    let backups = Backups {
        engine,
        repository: &repository,
        quiet,
    };
    match put_back(
        engine, &backups, state, &desired, generation, &targets, chosen.id, quiet,
    )? {
        Ok(_) => Ok(chosen.id),
        Err(failure) => {
            let ctx = nua_deploy::apply::Context {
                stopped,
                ..apply_context(engine)
            };
            apply_after(&desired, generation, &ctx, state, label)?;
            crate::proxy::sync(state, quiet, false)?;
            Err(anyhow::anyhow!(
                "`{label}` was not rolled back: the data of generation {to} could not be put \
                 back ({failure}); it runs as before, on its data as it was"
            ))
        }
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

/// Before an upgrade of `desired` (generation `generation`): a verified backup of its data,
/// linked to that generation. An instance with no data has none; one whose backup fails is
/// not upgraded.
pub fn before_upgrade(
    engine: &Docker,
    state: &mut State,
    desired: &Desired,
    generation: u64,
    quiet: bool,
) -> anyhow::Result<()> {
    let label = &desired.label;
    let components = match backup::plan(desired, false) {
        Ok(components) => located(engine, desired, components)?,
        Err(backup::Error::Nothing { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let repository = repository(state)?;
    let backups = Backups {
        engine,
        repository: &repository,
        quiet: true,
    };
    let (id, _, ok) = backups
        .back_up(state, desired, generation, &components, "upgrade")
        .map_err(hinted)
        .with_context(|| format!("cannot back `{label}` up before its upgrade"))?;
    if !ok {
        let error = state.backup(id)?.and_then(|b| b.error).unwrap_or_default();
        return Err(anyhow::anyhow!(
            "`{label}` was not upgraded: the backup of its data before the upgrade failed \
             ({error})"
        )
        .context(Hint(
            "`nua backups` shows why; `nua deploy --no-backup` upgrades without one".into(),
        )));
    }
    if !quiet {
        eprintln!("{label}: backup {id} holds the data of generation {generation}, verified");
    }
    Ok(())
}

/// `nua server`'s part: back up each instance whose schedule is due (its `[backup]`
/// frequencies, or `NUA_BACKUP_FREQUENCY` for one that declares none), then apply the
/// retention (`NUA_BACKUP_KEEP`, `daily=7,weekly=4,monthly=6` by default), and check the
/// repository weekly. One instance failing never stops the others.
pub fn scheduled(engine: &Docker, state: &mut State) -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let default = var("NUA_BACKUP_FREQUENCY")
        .map(|text| schedule::Frequency::parse(&text))
        .transpose()
        .map_err(|e| anyhow::anyhow!("`NUA_BACKUP_FREQUENCY`: {e}"))?;
    let keep = var("NUA_BACKUP_KEEP")
        .map(|text| schedule::Keep::parse(&text))
        .transpose()
        .map_err(|e| anyhow::anyhow!("`NUA_BACKUP_KEEP`: {e}"))?
        .unwrap_or_default();
    let now = nua_deploy::proxy::acme::now() as i64;
    let mut repository = None;
    for instance in state.instances()? {
        let label = instance.label.clone();
        if instance.stopped {
            continue;
        }
        let desired: Desired = serde_json::from_value(instance.desired.clone())?;
        let mut frequencies = match backup::frequencies(&desired) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        if frequencies.is_empty() {
            frequencies.extend(default.clone());
        }
        let last = state
            .backups(Some(&label))?
            .iter()
            .filter(|b| b.reason == "schedule" || b.reason == "manual")
            .map(|b| b.started as i64)
            .max();
        if !schedule::due(&frequencies, last, now) {
            continue;
        }
        let components = match backup::plan(&desired, false) {
            Ok(c) => located(engine, &desired, c)?,
            Err(backup::Error::Nothing { .. }) => continue,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        if repository.is_none() {
            repository = Some(self::repository(state)?);
        }
        let repository = repository.as_ref().expect("just made");
        let backups = Backups {
            engine,
            repository,
            quiet: true,
        };
        match backups.back_up(
            state,
            &desired,
            instance.generation,
            &components,
            "schedule",
        ) {
            Ok((id, parts, true)) => {
                let bytes: u64 = parts.iter().map(|p| p.bytes).sum();
                eprintln!(
                    "nua server: backup {id} of {label}: verified, {}",
                    human_bytes(bytes)
                );
            }
            Ok((id, _, false)) => {
                let error = state.backup(id)?.and_then(|b| b.error).unwrap_or_default();
                eprintln!("error: nua server: backup {id} of {label} failed: {error}");
            }
            Err(e) => eprintln!("error: nua server: cannot back `{label}` up: {e}"),
        }
        match backups.retain(state, &label, keep) {
            Ok(forgotten) if !forgotten.is_empty() => eprintln!(
                "nua server: {label}: backups {} forgotten by the retention policy",
                forgotten
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(_) => {}
            Err(e) => eprintln!("error: nua server: the retention of {label} failed: {e}"),
        }
    }
    // The whole repository, checked weekly once it holds backups.
    const CHECK: &str = "restic-check";
    let checked = state.stamp(CHECK)?;
    let every = var("NUA_BACKUP_CHECK")
        .map(|text| schedule::Frequency::parse(&text))
        .transpose()
        .map_err(|e| anyhow::anyhow!("`NUA_BACKUP_CHECK`: {e}"))?
        .unwrap_or(schedule::Frequency::Every(7 * 86_400));
    let used = !state.backups(None)?.is_empty();
    let due = checked.is_none_or(|at| every.next_after(at as i64) <= now);
    if used && due {
        let repository = match repository {
            Some(r) => r,
            None => self::repository(state)?,
        };
        match repository.check(false) {
            Ok(()) => eprintln!("nua server: the backup repository checks out"),
            Err(e) => eprintln!("error: nua server: the backup repository is damaged: {e}"),
        }
        state.set_stamp(CHECK, now as u64)?;
    }
    Ok(())
}
