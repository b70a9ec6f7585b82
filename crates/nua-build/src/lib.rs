//! The build: a loaded nua-config → image layers → an OCI image tarball (or layout folder).
//!
//! The plan ([`AppPlan`]) is a list of steps, each producing layers and each with a cache
//! key made of its inputs (the parent's key, the step's definition and environment, the
//! bytes it reads; never mtimes): the base (see [`base`]), the app's Debian packages, its
//! build-only packages (left out of the image), its dependencies from their manifests, its
//! source ([`fetch`] for `src-url` and `git-url`), its build commands, its `nua/` files, the
//! metadata (with the [`sbom`]), then its tests. A `wrap` build pulls its `base-image` and
//! adds only the metadata. `app.rs` runs the steps, `run.rs` the commands in the sandbox,
//! `why.rs` explains what was made again, [`prune`] cleans the cache.
//!
//! The build does no printing: it reports progress through a [`Reporter`].

mod app;
pub mod base;
mod error;
pub mod fetch;
mod finish;
mod layers;
pub mod metadata;
pub mod plan;
pub mod prune;
mod run;
pub mod sbom;
mod source;
mod source_layer;
mod steps;
pub mod uv;
mod why;
mod wrap;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::Error;
pub use layers::{LayerSummary, Remote, RemoteCache};
pub use plan::AppPlan;
pub use run::host_ca_bundle;
pub use source::{is_build_input, SourceFilter};

use nua_config::{BuildMethod, Loaded};
use nua_oci as oci;

/// How and where to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The cache folder: blob store and layer cache index.
    pub cache_dir: PathBuf,
    /// The base image definitions.
    pub catalog: base::Catalog,
    /// The Debian mirror to take packages from instead of the machine's.
    pub mirror: Option<String>,
    /// How to reach registries (the `base-image` of a wrap build).
    pub registry: nua_registry::ClientOptions,
    /// Where the result goes.
    pub output: Output,
    /// Layer compression.
    pub compression: oci::Compression,
    /// Upper bound of every timestamp in the image (`SOURCE_DATE_EPOCH`, default 0).
    pub source_date_epoch: u64,
    /// Names of the image; empty means the config's `nua-<id>:<version>-<release>`.
    pub tags: Vec<String>,
    /// Make every step again instead of taking it from the cache (`--no-cache`).
    pub no_cache: bool,
    /// The CA bundle build commands get (`--ca-bundle`); `None`: the machine's, if any.
    pub ca_bundle: Option<PathBuf>,
    /// Caches in registries (`--cache-from`, `--cache-to`).
    pub remote: layers::Remote,
    /// What installs a `requirements.txt` (`NUA_PIP_INSTALLER`).
    pub installer: uv::Installer,
}

/// Where the image is written.
#[derive(Debug, Clone)]
pub enum Output {
    /// A hybrid OCI layout + `docker save` tarball.
    Tarball(PathBuf),
    /// An OCI image layout folder.
    LayoutDir(PathBuf),
}

impl Output {
    pub fn path(&self) -> &Path {
        match self {
            Output::Tarball(p) | Output::LayoutDir(p) => p,
        }
    }
}

/// What a build produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildResult {
    /// The image's first name (`nua-<id>:<version>-<release>` unless tagged otherwise).
    pub image: String,
    /// Every name the image carries.
    pub tags: Vec<String>,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<LayerSummary>,
    /// Sum of the compressed layer sizes.
    pub size: u64,
    pub output: PathBuf,
    /// The image in the store (to push it).
    #[serde(skip)]
    pub image_ref: oci::ImageRef,
}

/// Progress of a build, as it happens.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Something the user should know (a missing lock, a builder name without exact match).
    Warning {
        message: &'a str,
    },
    /// A line printed by the command a step runs.
    Output {
        line: &'a str,
    },
    StepStarted {
        step: &'a str,
    },
    /// The step is made again (its key is not in the cache), and why.
    Rebuilt {
        step: &'a str,
        reasons: &'a [String],
    },
    /// The step's layer came from a remote cache (`--cache-from`), not from this machine.
    Fetched {
        step: &'a str,
        from: &'a str,
    },
    StepFinished {
        step: &'a str,
        cached: bool,
        elapsed: Duration,
    },
    Writing {
        path: &'a Path,
    },
}

/// Receives the build's [`Event`]s; the CLI draws them, tests ignore them.
pub trait Reporter {
    fn event(&mut self, event: Event<'_>);

    /// Where blob transfers (the pull of a wrapped image) are reported; nowhere by default.
    fn transfers(&self) -> &dyn nua_registry::Progress {
        &()
    }
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&mut self, _: Event<'_>) {}
}

/// The base `app` builds on (its `builder`, else [`base::DEFAULT_BASE`]), built or taken
/// from the cache.
fn build_base_of(
    app: &Loaded,
    options: &BuildOptions,
    store: &oci::BlobStore,
    reporter: &mut dyn Reporter,
) -> Result<base::BaseImage, Error> {
    let choice = options.catalog.base_for(&app.config.build)?;
    for message in &choice.warnings {
        reporter.event(Event::Warning { message });
    }
    let base_options = base::BaseOptions {
        cache_dir: options.cache_dir.clone(),
        // The base keeps its own time (its archive's date, set by the plan), not the app's:
        // one base for all apps.
        layer: oci::LayerOptions {
            compression: options.compression,
            source_date_epoch: 0,
        },
        registry: options.registry.clone(),
        remote: options.remote.clone(),
    };
    if choice.image {
        let at = base::Written {
            file: app.file.clone(),
            key: "build.builder",
        };
        let mirror = options.mirror.as_deref();
        let base = base::image_base(&choice.base, &at, mirror, store, &base_options, reporter)?;
        return Ok(base);
    }
    let (_, base) = base::build(
        &options.catalog,
        &choice.base,
        options.mirror.as_deref(),
        store,
        &base_options,
        reporter,
    )?;
    Ok(base)
}

/// Build the image of `app` as `options` say.
pub fn build(
    app: &Loaded,
    options: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<BuildResult, Error> {
    // Names and the plan are checked first: a typo should not cost a build.
    let (tags, names) = image_names(app, options)?;
    let plan = match app.config.build_method() {
        BuildMethod::Build => {
            let plan = AppPlan::new(app)?;
            if plan.start.is_none() {
                return Err(Error::NoStart {
                    file: app.file.clone(),
                });
            }
            Some(plan)
        }
        BuildMethod::Wrap => None,
    };
    let store = oci::BlobStore::open(&options.cache_dir).map_err(Error::Oci)?;
    let cache = if options.no_cache {
        // Made again, and still told to `--cache-to`; never read from `--cache-from`.
        layers::LayerCache::new(&options.cache_dir)
            .write_only()
            .with_remote(&options.remote)
    } else {
        layers::LayerCache::new(&options.cache_dir).with_remote(&options.remote)
    };
    let (layers, below) = match plan {
        Some(plan) => app_layers(app, &plan, options, &store, &cache, reporter)?,
        None => wrap::layers(app, options, &store, &cache, reporter)?,
    };
    let image = steps::write_image(app, options, &store, &layers, &below)?;
    write_output(options, &store, &image, &names, reporter)?;
    Ok(BuildResult {
        image: tags[0].clone(),
        tags,
        manifest_digest: image.manifest.digest.to_string(),
        config_digest: image.config.digest.to_string(),
        size: layers.iter().map(|l| l.layer.descriptor.size).sum(),
        layers,
        output: options.output.path().to_path_buf(),
        image_ref: image,
    })
}

/// The names the image gets (the config's `nua-<id>:<version>-<release>` unless tagged),
/// as given and parsed.
fn image_names(
    app: &Loaded,
    options: &BuildOptions,
) -> Result<(Vec<String>, Vec<oci::ImageName>), Error> {
    let tags = if options.tags.is_empty() {
        vec![app.config.image_tag()]
    } else {
        options.tags.clone()
    };
    let names = tags
        .iter()
        .map(|tag| {
            oci::ImageName::parse(tag).map_err(|source| Error::Tag {
                tag: tag.clone(),
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((tags, names))
}

/// The layers of a `build`-method app: its base, then the steps of `plan`.
fn app_layers(
    app: &Loaded,
    plan: &AppPlan,
    options: &BuildOptions,
    store: &oci::BlobStore,
    cache: &layers::LayerCache,
    reporter: &mut dyn Reporter,
) -> Result<(Vec<LayerSummary>, steps::Below), Error> {
    let base = build_base_of(app, options, store, reporter)?;
    let env = base.env.clone();
    let ca = options.ca_bundle.clone().or_else(host_ca_bundle);
    let stage = |epoch: u64| app::Stage {
        options: layers::BaseOptions {
            cache_dir: options.cache_dir.clone(),
            layer: oci::LayerOptions {
                compression: options.compression,
                source_date_epoch: epoch,
            },
            registry: options.registry.clone(),
            remote: options.remote.clone(),
        },
        world: run::World::new(
            &metadata::image_env(&env),
            epoch,
            ca.as_deref(),
            Some(&options.cache_dir.join("packages")),
        ),
    };
    let build = app::Build {
        app,
        options,
        store,
        cache,
        history: why::History::new(&options.cache_dir, app.config.id()),
        below: stage(base.epoch),
        above: stage(options.source_date_epoch),
        distro: base.distro.clone(),
        image_env: metadata::image_env(&env),
    };
    let image = base.image.clone().map(Box::new);
    let layers = app::build_layers(&build, plan, base, reporter)?;
    let cmd = plan.start.clone().unwrap_or_default();
    Ok((layers, steps::Below::Base { env, cmd, image }))
}

/// Write `image` where `options` say, under `names`.
fn write_output(
    options: &BuildOptions,
    store: &oci::BlobStore,
    image: &oci::ImageRef,
    names: &[oci::ImageName],
    reporter: &mut dyn Reporter,
) -> Result<(), Error> {
    match &options.output {
        // Unchanged image, unchanged file: nothing is rewritten.
        Output::Tarball(path) if oci::tarball_is_current(image, names, path) => Ok(()),
        Output::Tarball(path) => {
            reporter.event(Event::Writing { path });
            oci::write_tarball(store, image, names, path)
        }
        Output::LayoutDir(path) => {
            reporter.event(Event::Writing { path });
            oci::write_layout_dir(store, image, names, path)
        }
    }
    .map_err(|source| Error::Output {
        path: options.output.path().to_path_buf(),
        source,
    })
}
