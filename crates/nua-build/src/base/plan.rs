//! The steps of a base and their exact packages: read from the base's lock when it is
//! fresh, else resolved from the live archive (and then `nua-pack base lock` writes them).

use std::collections::BTreeMap;

use super::catalog::Catalog;
use super::config::ImageSettings;
use super::lock::{IndexDate, Lock, LockedStep};
use super::BaseError;
use crate::layers::{PlannedStep, BOOTSTRAP};
use nua_debian as debian;
use nua_oci::BlobStore;

/// How to build a base.
#[derive(Debug, Clone)]
pub struct Plan {
    pub base: String,
    /// Where packages come from (the bootstrap's suite on the chosen mirror, or the
    /// release of the image a base starts from); `None` on an image that is not Debian.
    pub source: Option<debian::Source>,
    pub steps: Vec<PlannedStep>,
    /// Image config variables, from the layers' `env` (later layers win).
    pub env: BTreeMap<String, String>,
    /// Entry point, command, ports… from the layers' `[config]` (later layers win).
    pub config: ImageSettings,
    /// Whether the packages come from a fresh lock (else from the live archive).
    pub locked: bool,
    /// Upper bound of the base's timestamps: the date of the archive it was resolved from,
    /// so a base is the same whatever app builds on it.
    pub source_date_epoch: u64,
    /// What the user should know (a missing or stale lock).
    pub warnings: Vec<String>,
}

impl Plan {
    /// The plan of `name`: from its lock when the lock is fresh, else resolved live.
    pub fn new(
        catalog: &Catalog,
        name: &str,
        mirror: Option<&str>,
        store: &BlobStore,
    ) -> Result<Plan, BaseError> {
        let fingerprint = catalog.fingerprint(name)?;
        let lock_file = format!("base-images/{name}.lock");
        let lock = Lock::of(catalog, name)?;
        let mut warnings = Vec::new();
        let lock = match lock {
            Some(lock) if lock.fingerprint == fingerprint => lock,
            Some(_) => {
                warnings.push(format!(
                    "`{lock_file}` was made for other definitions: resolving `{name}` from \
                     the live archive (run `nua-pack base lock {name}` to pin it again)"
                ));
                lock_base(catalog, name, mirror, store)?
            }
            None => {
                warnings.push(format!(
                    "`{name}` has no lock file: resolving it from the live archive (run \
                     `nua-pack base lock {name}` to pin it)"
                ));
                lock_base(catalog, name, mirror, store)?
            }
        };
        let locked = warnings.is_empty();
        let mut plan = Plan::from_lock(catalog, &lock, mirror)?;
        plan.locked = locked;
        plan.warnings = warnings;
        Ok(plan)
    }

    /// The plan of `name` resolved from the live archive, whatever its lock says; `why`
    /// is the warning that says so.
    pub fn live(
        catalog: &Catalog,
        name: &str,
        mirror: Option<&str>,
        store: &BlobStore,
        why: String,
    ) -> Result<Plan, BaseError> {
        let lock = lock_base(catalog, name, mirror, store)?;
        let mut plan = Plan::from_lock(catalog, &lock, mirror)?;
        plan.locked = false;
        plan.warnings = vec![why];
        Ok(plan)
    }

    /// The plan a lock describes, its steps checked against the definitions.
    fn from_lock(catalog: &Catalog, lock: &Lock, mirror: Option<&str>) -> Result<Plan, BaseError> {
        let name = &lock.base;
        let lock_file = format!("base-images/{name}.lock");
        let bad = |message: String| BaseError::Definition {
            path: lock_file.clone().into(),
            message: format!("{message} (run `nua-pack base lock {name}` to make it again)"),
        };
        let chain = catalog.chain(name)?;
        let bootstrap = chain[0]
            .1
            .bootstrap
            .as_ref()
            .expect("a chain starts with a bootstrap");
        let source = source(bootstrap, mirror).map_err(|source| BaseError::Debian {
            base: name.clone(),
            step: BOOTSTRAP.into(),
            source: Box::new(source),
        })?;
        if lock.suite != bootstrap.suite {
            return Err(bad(format!(
                "it is for suite `{}`, the definition bootstraps `{}`",
                lock.suite, bootstrap.suite
            )));
        }
        let source_date_epoch = debian::parse_date(&lock.archive_date).ok_or_else(|| {
            bad(format!(
                "its archive date `{}` does not parse",
                lock.archive_date
            ))
        })?;
        let mut env = BTreeMap::new();
        let mut config = ImageSettings::default();
        let mut steps = Vec::new();
        let locked = |step: &str| -> Result<Vec<debian::Locked>, BaseError> {
            lock.step(step)
                .map(|s| s.packages.clone())
                .ok_or_else(|| bad(format!("it has no step `{step}`")))
        };
        steps.push(PlannedStep {
            name: BOOTSTRAP.into(),
            packages: locked(BOOTSTRAP)?,
            before: Vec::new(),
            run: Vec::new(),
        });
        for (_, def) in &chain {
            for layer in &def.layers {
                let layer_def = catalog.layer(layer).expect("checked by the catalog");
                env.extend(layer_def.env.clone());
                config.overlay(&layer_def.config);
                steps.push(layer_step(catalog, layer, locked(layer)?));
            }
        }
        Ok(Plan {
            base: name.clone(),
            source: Some(source),
            steps,
            env,
            config,
            locked: true,
            source_date_epoch,
            warnings: Vec::new(),
        })
    }
}

/// The step of layer `layer` installing `packages`: its files written and its `before`
/// commands run before their maintainer scripts, then its `run` commands.
pub(super) fn layer_step(
    catalog: &Catalog,
    layer: &str,
    packages: Vec<debian::Locked>,
) -> PlannedStep {
    let layer_def = catalog.layer(layer).expect("checked by the catalog");
    let mut before = catalog.file_commands(layer);
    before.extend(layer_def.before.iter().cloned());
    PlannedStep {
        name: layer.to_owned(),
        packages,
        before,
        run: layer_def.run.clone(),
    }
}

/// The Debian source of a bootstrap: the machine's mirror, or `mirror`, and the snapshot.
fn source(
    bootstrap: &super::Bootstrap,
    mirror: Option<&str>,
) -> Result<debian::Source, debian::Error> {
    let mut source = debian::Source::from_host(&bootstrap.suite)?;
    if let Some(mirror) = mirror {
        source = source.with_mirror(mirror);
    }
    if let Some(suites) = &bootstrap.suites {
        source.suites = suites.clone();
    }
    source.components = bootstrap.components.clone();
    if let Some(snapshot) = &bootstrap.snapshot {
        source = source.at_snapshot(snapshot);
    }
    Ok(source)
}

/// The source of the bootstrap of `name` and the live index of its suites.
pub(super) fn index_of(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
) -> Result<(debian::Source, debian::Index), BaseError> {
    let chain = catalog.chain(name)?;
    let bootstrap = chain[0]
        .1
        .bootstrap
        .as_ref()
        .expect("a chain starts with a bootstrap");
    let debian_error = |source| BaseError::Debian {
        base: name.to_owned(),
        step: BOOTSTRAP.to_owned(),
        source: Box::new(source),
    };
    let src = source(bootstrap, mirror).map_err(debian_error)?;
    let index = debian::fetch_index(&src, store).map_err(|err| match err {
        // A suite the mirror lacks is a mistake in the definition (or the mirror's): say which.
        debian::Error::NoSuite { suite, url } => BaseError::NoSuite {
            path: catalog.definition_path(chain[0].0),
            suite,
            url,
        },
        other => debian_error(other),
    })?;
    Ok((src, index))
}

/// Resolve every step of `name` against the live archive: the lock it should have.
pub fn lock_base(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
) -> Result<Lock, BaseError> {
    let chain = catalog.chain(name)?;
    let bootstrap = chain[0]
        .1
        .bootstrap
        .as_ref()
        .expect("a chain starts with a bootstrap");
    let debian_error = |step: &str| {
        let step = step.to_owned();
        move |source| BaseError::Debian {
            base: name.to_owned(),
            step,
            source: Box::new(source),
        }
    };
    let (_, index) = index_of(catalog, name, mirror, store)?;
    let request = debian::Request {
        include: bootstrap.include.clone(),
        essential: true,
        required: bootstrap.required,
    };
    let first = index
        .resolve(&request, &[])
        .map_err(debian_error(BOOTSTRAP))?;
    let mut installed: Vec<debian::Locked> = first.clone();
    let mut steps = vec![LockedStep {
        name: BOOTSTRAP.into(),
        packages: first,
    }];
    for (_, def) in &chain {
        for layer in &def.layers {
            let layer_def = catalog.layer(layer).expect("checked by the catalog");
            let packages = if layer_def.packages.is_empty() {
                Vec::new()
            } else {
                let request = debian::Request {
                    include: layer_def.packages.clone(),
                    essential: false,
                    required: false,
                };
                let present: Vec<debian::Installed> =
                    installed.iter().map(|p| index.installed(p)).collect();
                index
                    .resolve(&request, &present)
                    .map_err(debian_error(layer))?
            };
            installed.extend(packages.iter().cloned());
            steps.push(LockedStep {
                name: layer.clone(),
                packages,
            });
        }
    }
    Ok(Lock {
        base: name.to_owned(),
        fingerprint: catalog.fingerprint(name)?,
        suite: bootstrap.suite.clone(),
        archive_date: index.date.clone().unwrap_or_default(),
        image: None,
        indexes: index
            .dates
            .iter()
            .map(|(suite, date)| IndexDate {
                suite: suite.clone(),
                date: date.clone(),
            })
            .collect(),
        steps,
    })
}
