//! `wrap` builds (`base-image` in `[build]`): the image is pulled as it is, and only the Nua
//! metadata layer is added on top. Its entrypoint, command, user, working folder, variables,
//! volumes and history are kept; the Nua labels, ports and healthcheck are added (a
//! `[healthcheck]` replaces the image's), and a `[run] start` replaces only its command.

use std::collections::BTreeMap;

use super::layers::{pull_image, KeyHasher, LayerCache, LayerSummary};
use super::metadata;
use super::steps::{Below, Context, Step};
use super::{BuildOptions, SourceFilter};
use super::{Error, Reporter};
use nua_config::Loaded;
use nua_oci::{self as oci, BlobStore, ImageConfig};
use nua_registry::{self as registry, Reference};

/// The pulled image a wrap build starts from.
pub struct Wrapped {
    /// Its layers, bottom first, named as steps.
    pub layers: Vec<LayerSummary>,
    /// Its config, whose run settings and history the new image keeps.
    pub config: ImageConfig,
    /// A cache key standing for this exact image (its manifest digest).
    pub key: String,
}

/// Pull the config's `base-image` into the store (nothing is downloaded twice).
pub fn pull(
    app: &Loaded,
    store: &BlobStore,
    client: &registry::ClientOptions,
    reporter: &mut dyn Reporter,
) -> Result<Wrapped, Error> {
    let name = app
        .config
        .build
        .base_image
        .clone()
        .expect("a wrap build has a base image");
    let wrap_error = |source| Error::Wrap {
        image: name.clone(),
        source: Box::new(source),
    };
    let reference = Reference::parse(&name).map_err(|e| wrap_error(e.into()))?;
    let pulled = pull_image(&reference, store, client, reporter).map_err(wrap_error)?;
    let key = KeyHasher::new()
        .field("nua-wrap-v1")
        .raw(pulled.digest.to_string())
        .finish();
    Ok(Wrapped {
        layers: pulled.layers,
        config: pulled.config,
        key,
    })
}

/// The layers of a `wrap` build: the pulled image's, and only the metadata layer on top.
pub fn layers(
    app: &Loaded,
    options: &BuildOptions,
    store: &BlobStore,
    cache: &LayerCache,
    reporter: &mut dyn Reporter,
) -> Result<(Vec<LayerSummary>, Below), Error> {
    let wrapped = pull(app, store, &options.registry, reporter)?;
    let mut layers = wrapped.layers;
    let ctx = Context {
        app,
        store,
        options,
        src_dir: app.root.clone(),
        filter: SourceFilter::new(&app.root)?,
    };
    let step = Step::Metadata;
    let key = step.cache_key(&ctx, &wrapped.key)?;
    layers.push(cache.step(
        store,
        &key,
        step.name(),
        reporter,
        |_| step.run(&ctx, None),
        |path, source| Error::Cache { path, source },
    )?);
    Ok((layers, Below::Image(Box::new(wrapped.config))))
}

/// The image's run settings: the pulled image's, with Nua's labels, ports and healthcheck,
/// and its start command when the config has one.
pub fn container_config(app: &Loaded, base: &ImageConfig, created: &str) -> oci::ContainerConfig {
    let ours = metadata::container_config(&app.config, created, &BTreeMap::new());
    let mut config = base.config.clone().unwrap_or_default();
    config.labels.extend(ours.labels);
    config.exposed_ports.extend(ours.exposed_ports);
    if ours.healthcheck.is_some() {
        config.healthcheck = ours.healthcheck;
    }
    if metadata::start_script(&app.config).is_some() {
        config.cmd = ours.cmd;
    }
    config
}

/// The history of the wrapped image: the pulled one, then one entry per added layer.
pub fn history(base: &ImageConfig, added: &[String], created: &str) -> Vec<oci::History> {
    let mut history = base.history.clone();
    // A config without history gets one entry per layer, as `ImageSpec` would make.
    if history.is_empty() {
        history = vec![oci::History::default(); base.rootfs.diff_ids.len()];
    }
    history.extend(added.iter().map(|step| oci::History {
        created: Some(created.to_owned()),
        created_by: Some(format!("nua-pack build: {step}")),
        ..oci::History::default()
    }));
    history
}
