//! The build: a loaded nua-config → image layers → an OCI image tarball (or layout folder).
//!
//! The plan is a short list of steps, each producing one layer and each with a cache key made
//! of its inputs (the parent's key, the step's definition, the bytes it reads; never mtimes):
//!
//! 1. **base**: a root filesystem tarball turned into a layer (`--base-rootfs`; bootstrapped
//!    base images replace this later);
//! 2. **source**: the app folder, filtered by `.nuaignore`/`.dockerignore`, under `/nua/app`,
//!    owned by the `nua` user;
//! 3. **metadata**: `/nua/metadata/nua-config.json` and `/nua/scripts/start`.
//!
//! The build does no printing: it reports progress through a [`Reporter`].

mod cache;
mod error;
pub mod metadata;
mod source;
mod steps;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::Error;
pub use source::SourceFilter;

use crate::config::Loaded;
use crate::oci;

/// How and where to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The cache folder: blob store and layer cache index.
    pub cache_dir: PathBuf,
    /// The base root filesystem tarball.
    pub base_rootfs: PathBuf,
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
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerSummary {
    pub step: String,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
    pub cached: bool,
}

/// Progress of a build, as it happens.
#[derive(Debug, Clone)]
pub enum Event<'a> {
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
}

/// A reporter that drops everything.
pub struct Silent;

impl Reporter for Silent {
    fn event(&mut self, _: Event<'_>) {}
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
    let ctx = steps::Context {
        app,
        store: &store,
        options,
        filter: SourceFilter::new(&app.root)?.excluding(&app.root, options.output.path()),
    };

    let mut layers: Vec<(String, oci::Layer, bool)> = Vec::new();
    let mut parent_key = String::new();
    for step in steps::plan(app) {
        let name = step.name();
        reporter.event(Event::StepStarted { step: name });
        let started = Instant::now();
        let key = step.cache_key(&ctx, &parent_key)?;
        let (layer, cached) = match cache.get(&key, &store) {
            Some(layer) => (layer, true),
            None => {
                let layer = step.run(&ctx)?;
                cache.put(&key, &layer)?;
                (layer, false)
            }
        };
        reporter.event(Event::StepFinished {
            step: name,
            cached,
            elapsed: started.elapsed(),
        });
        layers.push((name.to_owned(), layer, cached));
        parent_key = key;
    }

    let image = steps::write_image(&ctx, &layers)?;

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
            .map(|(step, layer, cached)| LayerSummary {
                step,
                digest: layer.descriptor.digest.to_string(),
                diff_id: layer.diff_id.to_string(),
                size: layer.descriptor.size,
                cached,
            })
            .collect(),
        output: options.output.path().to_path_buf(),
    })
}
