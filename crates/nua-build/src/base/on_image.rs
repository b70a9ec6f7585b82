//! Bases of the catalog that start from a registry image (`image = "REFERENCE"` in their
//! definition) and add the layers of their chain on top.
//!
//! The lock pins the image by digest (`image = "…:tag@sha256:…"`) beside the packages of
//! every layer, resolved against what the image holds (its dpkg database) from the Debian
//! release its os-release names. Built from a fresh lock, the base is the same whatever the
//! tag points at later; without one, the tag is pulled and the packages resolved live,
//! with a warning.

use super::image::{image_base, Written};
use super::lock::{IndexDate, Lock, LockedStep};
use super::plan::{layer_step, Plan};
use super::{BaseError, BaseImage, Catalog, HealthcheckDef, ImageSettings};
use crate::layers::{key_of, BaseOptions, Chain, Installer, LayerCache, PlannedStep};
use crate::Reporter;
use nua_debian as debian;
use nua_oci::{self as oci, BlobStore};

/// Bump when the bytes a step above an image writes change for the same inputs.
const ON_IMAGE_FORMAT: &str = "nua-on-image-v1";

/// Where the chain of `name` says which image it starts from.
fn written(catalog: &Catalog, name: &str) -> Result<(Written, String), BaseError> {
    let (root, image) = catalog
        .root_image(name)?
        .expect("called for bases that start from an image");
    let at = Written {
        file: catalog.definition_path(root),
        key: "image",
    };
    Ok((at, image.to_owned()))
}

/// Build base `name`, which starts from a registry image: from its lock when fresh.
pub fn build(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<(Plan, BaseImage), BaseError> {
    let (at, image) = written(catalog, name)?;
    let lock_file = format!("base-images/{name}.lock");
    let fingerprint = catalog.fingerprint(name)?;
    let lock = Lock::of(catalog, name)?;
    let mut warnings = Vec::new();
    let lock = match lock {
        Some(lock) if lock.fingerprint == fingerprint && lock.image.is_some() => Some(lock),
        Some(_) => {
            warnings.push(format!(
                "`{lock_file}` was made for other definitions: pulling `{image}` as it is \
                 now and resolving `{name}` from the live archive (run `nua-pack base lock \
                 {name}` to pin it again)"
            ));
            None
        }
        None => {
            warnings.push(format!(
                "`{name}` has no lock file: pulling `{image}` as it is now and resolving it \
                 from the live archive (run `nua-pack base lock {name}` to pin it)"
            ));
            None
        }
    };
    for message in &warnings {
        reporter.event(crate::Event::Warning { message });
    }
    let reference = lock.as_ref().and_then(|l| l.image.clone()).unwrap_or(image);
    let mut start = image_base(&reference, &at, mirror, store, options, reporter)?;
    let lock = match lock {
        Some(lock) => lock,
        None => lock_on(catalog, name, &at, &start, store)?,
    };
    let steps = lock
        .steps
        .iter()
        .map(|step| layer_step(catalog, &step.name, step.packages.clone()))
        .collect::<Vec<_>>();
    let mut chain = Chain {
        layers: start.layers.clone(),
        key: key_of(
            &start.key,
            &[ON_IMAGE_FORMAT, &options.layer.compression.cache_name()],
        ),
        sandbox: start.sandbox.take(),
    };
    install(name, &steps, &start, &mut chain, store, options, reporter)?;

    let mut env = start.env.clone();
    let mut config = settings_of(&start.image.as_ref().expect("an image base").config);
    for (_, def) in catalog.chain(name)? {
        for layer in &def.layers {
            let layer_def = catalog.layer(layer).expect("checked by the catalog");
            env.extend(layer_def.env.clone());
            config.overlay(&layer_def.config);
        }
    }
    let plan = Plan {
        base: name.to_owned(),
        source: start.source.clone(),
        steps,
        env: env.clone(),
        config: config.clone(),
        locked: warnings.is_empty(),
        source_date_epoch: start.epoch,
        warnings,
    };
    let base = BaseImage {
        name: name.to_owned(),
        layers: chain.layers,
        env,
        config,
        key: chain.key,
        packages: plan.steps.iter().flat_map(|s| s.packages.clone()).collect(),
        sandbox: chain.sandbox,
        ..start
    };
    Ok((plan, base))
}

/// Install the layer steps of an image base onto `chain`.
fn install(
    name: &str,
    steps: &[PlannedStep],
    start: &BaseImage,
    chain: &mut Chain,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<(), BaseError> {
    let cache = LayerCache::new(&options.cache_dir).with_remote(&options.remote);
    let installer = Installer {
        what: name,
        // Without packages no Debian source is needed: any image takes commands and files.
        source: start.source.as_ref(),
        store,
        options,
        cache: &cache,
    };
    for step in steps {
        installer.install(step, &format!("{name}: "), chain, reporter)?;
    }
    Ok(())
}

/// The lock of base `name` (which starts from a registry image): the image pulled as its
/// tag says now, pinned by digest, and the packages of every layer resolved against it.
pub fn lock(
    catalog: &Catalog,
    name: &str,
    mirror: Option<&str>,
    store: &BlobStore,
    options: &BaseOptions,
    reporter: &mut dyn Reporter,
) -> Result<Lock, BaseError> {
    let (at, image) = written(catalog, name)?;
    let start = image_base(&image, &at, mirror, store, options, reporter)?;
    lock_on(catalog, name, &at, &start, store)
}

/// Resolve the packages of every layer of `name` against `start`, the image it starts from.
fn lock_on(
    catalog: &Catalog,
    name: &str,
    at: &Written,
    start: &BaseImage,
    store: &BlobStore,
) -> Result<Lock, BaseError> {
    let origin = start.image.as_ref().expect("an image base");
    let pinned = match origin.reference.split_once('@') {
        Some(_) => origin.reference.clone(),
        None => format!("{}@{}", origin.reference, origin.digest),
    };
    let mut index: Option<debian::Index> = None;
    let mut present = start.installed.clone();
    let mut steps = Vec::new();
    for (_, def) in catalog.chain(name)? {
        for layer in &def.layers {
            let layer_def = catalog.layer(layer).expect("checked by the catalog");
            let mut packages = Vec::new();
            if !layer_def.packages.is_empty() {
                let debian_error = |source| BaseError::Debian {
                    base: name.to_owned(),
                    step: layer.clone(),
                    source: Box::new(source),
                };
                let Some(source) = &start.source else {
                    return Err(BaseError::NotDebian {
                        at: at.clone(),
                        reference: origin.reference.clone(),
                        distro: start.distro.clone(),
                        layer: layer.clone(),
                    });
                };
                if index.is_none() {
                    index = Some(debian::fetch_index(source, store).map_err(debian_error)?);
                }
                let index = index.as_ref().expect("just fetched");
                let request = debian::Request {
                    include: layer_def.packages.clone(),
                    essential: false,
                    required: false,
                };
                packages = index.resolve(&request, &present).map_err(debian_error)?;
                present.extend(packages.iter().map(|p| index.installed(p)));
            }
            steps.push(LockedStep {
                name: layer.clone(),
                packages,
            });
        }
    }
    let dates = index.as_ref().map(|i| i.dates.clone()).unwrap_or_default();
    Ok(Lock {
        base: name.to_owned(),
        fingerprint: catalog.fingerprint(name)?,
        suite: start
            .source
            .as_ref()
            .map(|s| s.suite.clone())
            .unwrap_or_default(),
        archive_date: index.and_then(|i| i.date).unwrap_or_default(),
        image: Some(pinned),
        indexes: dates
            .into_iter()
            .map(|(suite, date)| IndexDate { suite, date })
            .collect(),
        steps,
    })
}

/// An image's run settings as a layer recipe's `[config]` would say them, so that the
/// layers above override them the same way.
fn settings_of(config: &oci::ContainerConfig) -> ImageSettings {
    let millis = |ns: Option<u64>| ns.map(|ns| format!("{}ms", ns / 1_000_000));
    ImageSettings {
        entrypoint: config.entrypoint.clone(),
        cmd: config.cmd.clone(),
        user: config.user.clone().filter(|u| !u.is_empty()),
        workdir: config.working_dir.clone().filter(|w| !w.is_empty()),
        expose: config.exposed_ports.keys().cloned().collect(),
        volumes: config.volumes.keys().cloned().collect(),
        stop_signal: config.stop_signal.clone(),
        healthcheck: config.healthcheck.as_ref().map(|h| HealthcheckDef {
            test: h.test.clone(),
            interval: millis(h.interval),
            timeout: millis(h.timeout),
            start_period: millis(h.start_period),
            retries: h.retries,
        }),
    }
}
