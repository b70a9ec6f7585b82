//! The build: a loaded nua-config → image layers → an OCI image tarball (or layout folder).
//!
//! The plan is a short list of steps, each producing one layer and each with a cache key made
//! of its inputs (the parent's key, the step's definition, the bytes it reads; never mtimes):
//!
//! 1. **base**: the layers of the base image the config's `builder` resolves to (see
//!    [`base`]), bootstrapped from Debian packages and cached step by step;
//! 2. **source**: the app folder, filtered by `.nuaignore`/`.dockerignore`, under `/nua/app`,
//!    owned by the `nua` user;
//! 3. **metadata**: `/nua/metadata/nua-config.json` and `/nua/scripts/start`.
//!
//! The build does no printing: it reports progress through a [`Reporter`].

pub mod base;
mod cache;
mod error;
pub mod fetch;
pub mod metadata;
mod source;
mod steps;
mod wrap;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::Error;
pub use source::SourceFilter;

use crate::config::{BuildMethod, Loaded};
use crate::oci;

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
    pub registry: crate::registry::ClientOptions,
    /// Where the result goes.
    pub output: Output,
    /// Layer compression.
    pub compression: oci::Compression,
    /// Upper bound of every timestamp in the image (`SOURCE_DATE_EPOCH`, default 0).
    pub source_date_epoch: u64,
    /// Names of the image; empty means the config's `nua-<id>:<version>-<release>`.
    pub tags: Vec<String>,
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

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerSummary {
    pub step: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub cached: bool,
}

impl LayerSummary {
    pub fn new(step: &str, layer: &oci::Layer, cached: bool) -> LayerSummary {
        LayerSummary {
            step: step.to_owned(),
            digest: layer.descriptor.digest.to_string(),
            diff_id: layer.diff_id.to_string(),
            size: layer.descriptor.size,
            cached,
        }
    }
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
    fn transfers(&self) -> &dyn crate::registry::Progress {
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
    let build = &app.config.build;
    let builders: Vec<String> = match (&build.builder, &build.builders) {
        (Some(one), _) => vec![one.image_name()],
        (None, Some(many)) => many.iter().map(|b| b.image_name()).collect(),
        (None, None) => Vec::new(),
    };
    let name = match builders.first() {
        None => base::DEFAULT_BASE.to_owned(),
        Some(first) => {
            let resolved = options.catalog.resolve_builder(first)?;
            if let Some(message) = &resolved.warning {
                reporter.event(Event::Warning { message });
            }
            resolved.base
        }
    };
    if builders.len() > 1 {
        let message = format!(
            "only the first of `builders` is used for now (`{}`): the others are ignored",
            builders[0]
        );
        reporter.event(Event::Warning { message: &message });
    }
    let base_options = base::BaseOptions {
        cache_dir: options.cache_dir.clone(),
        // The base keeps its own time (its archive's date, set by the plan), not the app's:
        // one base for all apps.
        layer: oci::LayerOptions {
            compression: options.compression,
            source_date_epoch: 0,
        },
    };
    let (_, base) = base::build(
        &options.catalog,
        &name,
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
    // Names are checked first: a typo in `--tag` should not cost a build.
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
    let store = oci::BlobStore::open(&options.cache_dir).map_err(Error::Oci)?;
    let cache = cache::LayerCache::new(&options.cache_dir);
    let filter = SourceFilter::new(&app.root)?.excluding(&app.root, options.output.path());
    let ctx = steps::Context {
        app,
        store: &store,
        options,
        filter,
    };

    // A wrap build starts from the pulled image and adds only the metadata layer.
    let (mut layers, mut parent_key, below) = match app.config.build_method() {
        BuildMethod::Build => {
            let base = build_base_of(app, options, &store, reporter)?;
            (base.layers, base.key, steps::Below::Base(base.env))
        }
        BuildMethod::Wrap => {
            let wrapped = wrap::pull(app, &store, &options.registry, reporter)?;
            (
                wrapped.layers,
                wrapped.key,
                steps::Below::Image(Box::new(wrapped.config)),
            )
        }
    };
    for step in steps::plan(app) {
        let key = step.cache_key(&ctx, &parent_key)?;
        layers.push(cache.step(
            &store,
            &key,
            step.name(),
            reporter,
            |_| step.run(&ctx),
            |path, source| Error::Cache { path, source },
        )?);
        parent_key = key;
    }

    let image = steps::write_image(&ctx, &layers, &below)?;

    reporter.event(Event::Writing {
        path: options.output.path(),
    });
    match &options.output {
        Output::Tarball(path) => oci::write_tarball(&store, &image, &names, path),
        Output::LayoutDir(path) => oci::write_layout_dir(&store, &image, &names, path),
    }
    .map_err(|source| Error::Output {
        path: options.output.path().to_path_buf(),
        source,
    })?;

    Ok(BuildResult {
        image: tags[0].clone(),
        tags,
        manifest_digest: image.manifest.digest.to_string(),
        config_digest: image.config.digest.to_string(),
        size: layers.iter().map(|(_, l, _)| l.descriptor.size).sum(),
        layers: layers
            .into_iter()
            .map(|(step, layer, cached)| LayerSummary::new(&step, &layer, cached))
            .collect(),
        output: options.output.path().to_path_buf(),
        image_ref: image,
    })
}
