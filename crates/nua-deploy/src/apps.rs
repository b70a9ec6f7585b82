//! The apps `nua run` started, found by their label: list them, find one, stop one and
//! (when asked) remove its data. Containers without the label are never touched.

use std::time::Duration;

use nua_runtime::{ContainerInfo, Engine};

use crate::kept::{self, KeptValues};
use crate::local::APP_LABEL;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] nua_runtime::Error),
    #[error("no app named `{name}` is running")]
    NotFound { name: String },
    #[error("the container `{name}` was not started by `nua run`; use `docker` for it")]
    Foreign { name: String },
    #[error("cannot stop `{name}`")]
    Stop {
        name: String,
        #[source]
        source: Box<nua_runtime::Error>,
    },
    #[error(transparent)]
    Kept(#[from] kept::Error),
}

/// The containers of the apps `nua run` started, running or not.
pub fn list(engine: &dyn Engine) -> Result<Vec<ContainerInfo>, Error> {
    let all = engine.containers(APP_LABEL)?;
    // The spares of a `nua run --watch` (its standby, a replacement, a replaced one) are
    // part of the app listed: shown only when it is not (what a killed watch left).
    let names: std::collections::HashSet<String> = all.iter().map(|c| c.name.clone()).collect();
    Ok(all
        .into_iter()
        .filter(|c| crate::reload::spare_of(c).is_none_or(|app| !names.contains(app)))
        .collect())
}

/// The container of the app `name`, or an error saying there is none.
pub fn find(engine: &dyn Engine, name: &str) -> Result<ContainerInfo, Error> {
    match engine.container(name)? {
        Some(c) if c.labels.contains_key(APP_LABEL) => Ok(c),
        Some(_) => Err(Error::Foreign {
            name: name.to_owned(),
        }),
        None => Err(Error::NotFound {
            name: name.to_owned(),
        }),
    }
}

/// What [`stop`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The app the container belonged to (its volumes are named after it).
    pub app: String,
    /// Its named volumes: removed, or kept.
    pub volumes: Vec<String>,
    pub volumes_removed: bool,
}

/// Stop the container `name` (killed after `timeout`) and remove it, with what a `nua run
/// --watch` killed midway left of the app (`NAME.next`, `NAME.standby`, `NAME.old.N`; those
/// alone are enough for `name` to be found). With `remove_volumes` (the kept values of the
/// apps), its app's named volumes go too, with the `random` values its data was made with.
pub fn stop(
    engine: &dyn Engine,
    name: &str,
    timeout: Duration,
    remove_volumes: Option<&KeptValues>,
) -> Result<Stopped, Error> {
    let spares = crate::reload::spare_containers(engine, name)?;
    let container = match find(engine, name) {
        Err(Error::NotFound { .. }) if !spares.is_empty() => None,
        found => Some(found?),
    };
    if container.is_some() {
        engine
            .stop_container(name, timeout)
            .map_err(|source| Error::Stop {
                name: name.to_owned(),
                source: Box::new(source),
            })?;
        engine.remove_container(name)?;
    }
    for spare in &spares {
        match engine.remove_container(spare) {
            Ok(()) | Err(nua_runtime::Error::NoSuchContainer { .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let app = container
        .and_then(|c| c.labels.get(APP_LABEL).cloned())
        .unwrap_or_else(|| name.to_owned());
    let volumes = engine.volumes(APP_LABEL, &app)?;
    if let Some(kept) = remove_volumes {
        for volume in &volumes {
            engine.remove_volume(volume)?;
        }
        kept.forget(&app)?;
    }
    Ok(Stopped {
        app,
        volumes,
        volumes_removed: remove_volumes.is_some(),
    })
}
