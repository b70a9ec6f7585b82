//! Backups that are proven restorable.
//!
//! An instance's components are its databases (a dump streamed out of the provider's
//! container: [`methods`]) and its managed volumes (a tar stream read by a helper container
//! of the instance's own image). Each goes into a restic repository ([`restic`]) as one
//! snapshot read from standard input: nothing is staged on local disk. What the stream holds
//! is measured on its way ([`verify`]): a database's tables and row counts in the dump's own
//! snapshot, a volume's file tree with sizes and hashes. Then the snapshot is read back from
//! the repository into a scratch container of the same image (no network, thrown away after)
//! and measured again. Only a backup whose every component matched counts as verified.
//!
//! Scratch and helper containers carry [`SCRATCH_LABEL`], never the instance's label, so the
//! reconciler never mistakes them for the instance's; one left by a killed backup is removed
//! by the next.

mod containers;
pub mod methods;
pub mod restic;
pub mod schedule;
mod streams;
pub mod verify;

pub use containers::new_password;
pub use streams::filename;

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use nua_runtime::Engine;

use crate::instance::{Desired, Role};
pub use methods::Kind;
use restic::Repository;

/// The label of scratch and helper containers: the instance they work for.
pub const SCRATCH_LABEL: &str = "nua.scratch";

/// How long a scratch database may take to start.
const SCRATCH_READY: Duration = Duration::from_secs(120);

/// One thing of an instance that is backed up on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// The provider's name, or the volume's.
    pub name: String,
    pub kind: Kind,
    /// The container the dump is taken in (a provider), or whose image reads the volume.
    pub container: String,
    /// The image of scratch containers (the provider's, or the app's for a volume).
    pub image: String,
    /// The Docker volume (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{what} of `{label}` asks for the backup method `{method}`, which Nua does not know \
         (it knows: {})",
        methods::METHODS.join(", ")
    )]
    UnknownMethod {
        label: String,
        what: String,
        method: String,
    },
    #[error("`{label}` has nothing to back up: no database provider and no managed volume")]
    Nothing { label: String },
    #[error("the backup frequency of `{label}`: {message}")]
    Frequency { label: String, message: String },
    #[error("`{label}` has no component `{name}` (it has: {known})")]
    NoComponent {
        label: String,
        name: String,
        known: String,
    },
    #[error(transparent)]
    Restic(#[from] restic::Error),
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
}

impl Error {
    /// What the user can do about it, when there is something.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Restic(e) => e.hint(),
            _ => None,
        }
    }
}

/// What a component's backup is, and was found to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub component: String,
    pub kind: Kind,
    /// The restic snapshot holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The dump's size, and what the repository grew by.
    pub bytes: u64,
    pub added: u64,
    /// What was compared: "3 tables, 1 204 rows", "12 files, 3 folders, 1 symlink".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Milliseconds for the dump, and for the verification.
    pub dump_ms: u64,
    pub verify_ms: u64,
}

/// The components of `desired` to back up: those its nua-configs declare (`[backup]` of
/// the app, a provider or a volume), or all of them with `all` or when none is declared.
pub fn plan(desired: &Desired, all: bool) -> Result<Vec<Component>, Error> {
    let label = &desired.label;
    let app = desired.containers.iter().find(|c| c.role == Role::App);
    let app_declares = app.and_then(|a| a.backup.as_ref());
    let mut declared = app_declares.is_some();
    let mut found = Vec::new();
    for container in &desired.containers {
        let method = |what: String, b: &nua_config::Backup| {
            Kind::of_method(&b.method).ok_or_else(|| Error::UnknownMethod {
                label: label.clone(),
                what,
                method: b.method.clone(),
            })
        };
        let by_module = container.module.as_deref().and_then(Kind::of_module);
        let asked = match &container.backup {
            Some(b) if container.role == Role::Provider => {
                declared = true;
                Some(method(format!("provider `{}`", container.component), b)?)
            }
            _ => None,
        };
        if let Some(kind) = asked.or(by_module).filter(|k| *k != Kind::Volume) {
            found.push((
                container.backup.is_some(),
                Component {
                    name: container.component.clone(),
                    kind,
                    container: container.name.clone(),
                    image: container.image.clone(),
                    volume: None,
                },
            ));
            // A database's volumes are its dump.
            continue;
        }
        // `tgz_volumes` of the app names all its volumes.
        let all_volumes = container.role == Role::App
            && app_declares
                .map(|b| method("the app".into(), b))
                .transpose()?
                == Some(Kind::Volume);
        for volume in &container.volumes {
            let managed = matches!(volume.kind, None | Some(nua_config::VolumeType::Managed));
            let Some(name) = volume.name.clone().filter(|_| managed) else {
                continue;
            };
            let wanted = match &volume.backup {
                Some(b) => {
                    declared = true;
                    method(format!("volume `{name}`"), b)?;
                    true
                }
                None => all_volumes || asked == Some(Kind::Volume),
            };
            found.push((
                wanted,
                Component {
                    name: name.clone(),
                    kind: Kind::Volume,
                    container: container.name.clone(),
                    image: container.image.clone(),
                    volume: Some(name),
                },
            ));
        }
    }
    let chosen: Vec<Component> = found
        .into_iter()
        .filter(|(wanted, _)| all || !declared || *wanted)
        .map(|(_, c)| c)
        .collect();
    if chosen.is_empty() {
        return Err(Error::Nothing {
            label: label.clone(),
        });
    }
    Ok(chosen)
}

/// `components` of `desired`, each with the container its commands run in now: the one its
/// platform runs it in on this machine (a Swarm task's container is named by Swarm).
pub fn locate(
    mut components: Vec<Component>,
    desired: &Desired,
    platform: &dyn crate::apply::Platform,
) -> Result<Vec<Component>, crate::apply::Error> {
    for component in &mut components {
        let Some(container) = desired
            .containers
            .iter()
            .find(|c| c.name == component.container)
        else {
            continue;
        };
        if let Some(running) = platform.running(container)? {
            component.container = running.name;
        }
    }
    Ok(components)
}

/// The frequencies the `[backup]` sections of `desired` ask for (none: not scheduled).
pub fn frequencies(desired: &Desired) -> Result<Vec<schedule::Frequency>, Error> {
    let backups = desired.containers.iter().flat_map(|c| {
        c.backup
            .iter()
            .chain(c.volumes.iter().filter_map(|v| v.backup.as_ref()))
    });
    backups
        .filter_map(|b| b.frequency.as_deref())
        .map(|text| {
            schedule::Frequency::parse(text).map_err(|message| Error::Frequency {
                label: desired.label.clone(),
                message,
            })
        })
        .collect()
}

/// Keep only the component named `name`.
pub fn only(label: &str, components: Vec<Component>, name: &str) -> Result<Vec<Component>, Error> {
    let known = components
        .iter()
        .map(|c| format!("`{}`", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let kept: Vec<Component> = components.into_iter().filter(|c| c.name == name).collect();
    if kept.is_empty() {
        return Err(Error::NoComponent {
            label: label.to_owned(),
            name: name.to_owned(),
            known,
        });
    }
    Ok(kept)
}

/// Where and how backups run.
pub struct Backups<'a> {
    pub engine: &'a dyn Engine,
    pub repository: &'a Repository,
    /// Progress lines on standard error.
    pub quiet: bool,
}

impl Backups<'_> {
    fn say(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// Back up `components` of `desired`, verify each, and record the outcome in `state`
    /// (the backup's id is returned with it).
    pub fn back_up(
        &self,
        state: &mut crate::state::State,
        desired: &Desired,
        generation: u64,
        components: &[Component],
        reason: &str,
    ) -> Result<(u64, Vec<Part>, bool), Error> {
        let label = &desired.label;
        self.repository.ensure()?;
        self.clean_scratch(label);
        let id = state.begin_backup(label, generation, reason)?;
        let mut parts = Vec::new();
        for component in components {
            let part = self.component(label, id, generation, component);
            match &part.error {
                None => self.say(&format!(
                    "backup {id} of {label}: {} verified ({}, {} bytes)",
                    component.name,
                    part.verified.as_deref().unwrap_or_default(),
                    part.bytes
                )),
                Some(error) => self.say(&format!(
                    "error: backup {id} of {label}: {} failed: {error}",
                    component.name
                )),
            }
            parts.push(part);
        }
        let ok = parts.iter().all(|p| p.error.is_none());
        let error = parts
            .iter()
            .filter_map(|p| p.error.as_ref().map(|e| format!("{}: {e}", p.component)))
            .collect::<Vec<_>>()
            .join("; ");
        state.finish_backup(
            id,
            ok,
            (!ok).then_some(error.as_str()),
            &serde_json::to_value(&parts).unwrap_or_default(),
        )?;
        Ok((id, parts, ok))
    }

    /// Apply `keep` to the verified backups of `label`: the snapshots of those it does not
    /// keep, and of failed backups older than the newest kept, are forgotten and the
    /// repository pruned. The newest backup taken before an upgrade is always kept (a
    /// rollback with data needs it). The ids forgotten.
    pub fn retain(
        &self,
        state: &mut crate::state::State,
        label: &str,
        keep: schedule::Keep,
    ) -> Result<Vec<u64>, Error> {
        let all = state.backups(Some(label))?;
        let verified: Vec<(u64, i64)> = all
            .iter()
            .filter(|b| b.status == "verified")
            .map(|b| (b.id, b.started as i64))
            .collect();
        let mut kept = keep.kept(&verified);
        if let Some(upgrade) = all
            .iter()
            .rev()
            .find(|b| b.status == "verified" && b.reason == "upgrade")
        {
            kept.insert(upgrade.id);
        }
        let oldest_kept = all
            .iter()
            .filter(|b| kept.contains(&b.id))
            .map(|b| b.id)
            .min()
            .unwrap_or(u64::MAX);
        let dropped: Vec<&crate::state::Backup> = all
            .iter()
            .filter(|b| match b.status.as_str() {
                "verified" => !kept.contains(&b.id),
                "failed" => b.id < oldest_kept,
                _ => false,
            })
            .collect();
        let snapshots: Vec<String> = dropped
            .iter()
            .flat_map(|b| {
                serde_json::from_value::<Vec<Part>>(b.components.clone()).unwrap_or_default()
            })
            .filter_map(|p| p.snapshot)
            .collect();
        self.repository.forget(&snapshots)?;
        let ids: Vec<u64> = dropped.iter().map(|b| b.id).collect();
        for id in &ids {
            state.forget_backup(*id)?;
        }
        Ok(ids)
    }

    /// One component: dump into the repository, then verify.
    fn component(&self, label: &str, id: u64, generation: u64, component: &Component) -> Part {
        let mut part = Part {
            component: component.name.clone(),
            kind: component.kind,
            snapshot: None,
            bytes: 0,
            added: 0,
            verified: None,
            error: None,
            dump_ms: 0,
            verify_ms: 0,
        };
        let tags = [
            "nua".to_owned(),
            format!("instance={label}"),
            format!("backup={id}"),
            format!("generation={generation}"),
            format!("component={}", component.name),
            format!("kind={}", component.kind.as_str()),
        ];
        let started = Instant::now();
        let mut upload = match self.repository.upload(&filename(component), &tags) {
            Ok(upload) => upload,
            Err(e) => {
                part.error = Some(e.to_string());
                return part;
            }
        };
        let dumped = self.dump(label, component, &mut upload);
        let measured = match dumped {
            Ok((bytes, measured)) => {
                part.bytes = bytes;
                measured
            }
            Err(error) => {
                // restic never saw the end of the stream: it makes no snapshot. When restic
                // broke the stream itself, its reason is the one that counts.
                part.error = Some(match upload.abort() {
                    Some(reason) => reason.to_string(),
                    None => error,
                });
                return part;
            }
        };
        match upload.commit() {
            Ok(summary) => {
                part.snapshot = Some(summary.snapshot_id);
                part.added = summary.data_added;
            }
            Err(e) => {
                part.error = Some(e.to_string());
                return part;
            }
        }
        part.dump_ms = started.elapsed().as_millis() as u64;
        let started = Instant::now();
        let snapshot = part.snapshot.clone().unwrap_or_default();
        match self.verify(label, component, &snapshot, &measured, part.bytes) {
            Ok(summary) => part.verified = Some(summary),
            Err(error) => {
                part.error = Some(format!("verification failed: {error}"));
                // A snapshot that does not restore is not kept as if it might.
                if self.repository.forget_only(&[snapshot]).is_ok() {
                    part.snapshot = None;
                }
            }
        }
        part.verify_ms = started.elapsed().as_millis() as u64;
        part
    }
}

#[cfg(test)]
mod tests;
