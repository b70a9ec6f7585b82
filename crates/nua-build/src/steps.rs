//! The steps of a build: what each one puts in its layer and what its cache key is made of.

use super::layers::{only_layers, KeyHasher, LayerSummary};
use super::metadata::{self, NUA_GID, NUA_UID};
use super::source::SourceFilter;
use super::{BuildOptions, Error};
use nua_config::layout::in_layer;
use nua_config::Loaded;
use nua_oci as oci;

/// Bump when the bytes a step writes change for the same inputs, so old cache entries are
/// not reused.
pub const STEP_FORMAT: &str = "nua-step-v3";

/// Bump when the SBOM written for the same layers changes.
const SBOM_FORMAT: &str = "spdx-2.3-v2";

/// Where the app's source lands in the image.
const APP_PREFIX: &str = in_layer::APP_DIR;

/// The app's files belong to the `nua` user, with the modes git would record for them.
const APP_TREE: oci::TreeOptions = oci::TreeOptions {
    ownership: Some((NUA_UID, NUA_GID)),
    git_modes: true,
};

pub struct Context<'a> {
    pub app: &'a Loaded,
    pub store: &'a oci::BlobStore,
    pub options: &'a BuildOptions,
    /// The folder whose files become `/nua/app`: the app folder (or its `project`), or a
    /// fetched source.
    pub src_dir: std::path::PathBuf,
    /// What of `src_dir` is the source.
    pub filter: SourceFilter,
}

/// A layer of the image above its base that the build writes itself (no command runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Source,
    /// The files of the app's `nua/` folder (but its nua-config and `build.py`), merged
    /// into `/nua/`.
    NuaFiles,
    Metadata,
}

/// Whether a file of the app's `nua/` folder goes to the image's `/nua/`: not the
/// nua-config (which goes, normalized, to `/nua/metadata`) nor `build.py`.
pub fn nua_file_included(rel: &std::path::Path, is_dir: bool) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let config = name.starts_with("nua-config.");
    let top_level = rel.components().count() == 1;
    is_dir || !(config || top_level && name == "build.py")
}

/// What the app's layers go on top of.
pub enum Below {
    /// A base of `base-images/` or a registry image (`image`), its image variables, and
    /// the image's command.
    Base {
        env: std::collections::BTreeMap<String, String>,
        cmd: Vec<String>,
        image: Option<Box<crate::base::ImageOrigin>>,
    },
    /// A pulled image, whose run settings and history are kept (`wrap`).
    Image(Box<oci::ImageConfig>),
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Source => "source",
            Step::NuaFiles => "nua-files",
            Step::Metadata => "metadata",
        }
    }

    /// The key under which this step's layer is cached: its parent's key, the layer options
    /// and everything the step reads.
    pub fn cache_key(self, ctx: &Context<'_>, parent: &str) -> Result<String, Error> {
        let key = KeyHasher::new()
            .field(STEP_FORMAT)
            .field(self.name())
            .field(parent)
            .field(ctx.options.compression.cache_name())
            .field(ctx.options.source_date_epoch.to_string());
        let key = match self {
            // The DiffID the app tree would have: everything that reaches the layer (content,
            // modes, links, xattrs, clamped times), read by the walker that writes it.
            Step::Source => {
                let root = &ctx.src_dir;
                let diff_id = oci::tree_diff_id(
                    root,
                    APP_PREFIX,
                    APP_TREE,
                    &layer_options(ctx),
                    |rel, meta| ctx.filter.includes(rel, meta.is_dir()),
                )
                .map_err(|source| Error::SourceLayer {
                    path: root.clone(),
                    source,
                })?;
                key.raw(diff_id.to_string())
            }
            Step::NuaFiles => {
                let dir = ctx.app.root.join("nua");
                let diff_id = oci::tree_diff_id(
                    &dir,
                    in_layer::NUA_DIR,
                    APP_TREE,
                    &layer_options(ctx),
                    |rel, meta| nua_file_included(rel, meta.is_dir()),
                )
                .map_err(|source| Error::SourceLayer { path: dir, source })?;
                key.raw(diff_id.to_string())
            }
            // The SBOM follows from the layers below (the parent key) and its format.
            Step::Metadata => key
                .field(metadata::config_json(&ctx.app.config))
                .field(metadata::start_script(&ctx.app.config).unwrap_or_default())
                .raw(SBOM_FORMAT),
        };
        Ok(key.finish())
    }

    /// Write this step's layer into the store.
    pub fn run(self, ctx: &Context<'_>, sbom: Option<&[u8]>) -> Result<oci::Layer, Error> {
        let mut writer =
            oci::LayerWriter::new(ctx.store, layer_options(ctx)).map_err(Error::Oci)?;
        match self {
            Step::Source => {
                // Entries in name order: `nua/`, `nua/app/…`, `nua/bin/`, `nua/etc/`.
                let owner = oci::Meta::new(0o755).owned_by(NUA_UID, NUA_GID);
                writer
                    .add_dir(in_layer::NUA_DIR, &owner)
                    .map_err(Error::Oci)?;
                let root = &ctx.src_dir;
                writer
                    .append_dir_tree(root, APP_PREFIX, APP_TREE, |rel, meta| {
                        ctx.filter.includes(rel, meta.is_dir())
                    })
                    .map_err(|source| Error::SourceLayer {
                        path: root.clone(),
                        source,
                    })?;
                for dir in [in_layer::BIN_DIR, in_layer::ETC_DIR] {
                    writer.add_dir(dir, &owner).map_err(Error::Oci)?;
                }
            }
            Step::NuaFiles => {
                let dir = ctx.app.root.join("nua");
                writer
                    .append_dir_tree(&dir, in_layer::NUA_DIR, APP_TREE, |rel, meta| {
                        nua_file_included(rel, meta.is_dir())
                    })
                    .map_err(|source| Error::SourceLayer { path: dir, source })?;
            }
            Step::Metadata => {
                let config = &ctx.app.config;
                let root_dir = oci::Meta::new(0o755);
                writer
                    .add_dir(
                        in_layer::NUA_DIR,
                        &root_dir.clone().owned_by(NUA_UID, NUA_GID),
                    )
                    .map_err(Error::Oci)?;
                writer
                    .add_dir(in_layer::METADATA_DIR, &root_dir)
                    .map_err(Error::Oci)?;
                let json = metadata::config_json(config);
                writer
                    .add_file(
                        metadata::METADATA_FILE,
                        &oci::Meta::new(0o644),
                        json.len() as u64,
                        &json[..],
                    )
                    .map_err(Error::Oci)?;
                if let Some(sbom) = sbom {
                    writer
                        .add_bytes(metadata::SBOM_FILE, &oci::Meta::new(0o644), sbom)
                        .map_err(Error::Oci)?;
                }
                writer
                    .add_dir(in_layer::SCRIPTS_DIR, &root_dir)
                    .map_err(Error::Oci)?;
                if let Some(script) = metadata::start_script(config) {
                    writer
                        .add_file(
                            metadata::START_SCRIPT,
                            &oci::Meta::new(0o755),
                            script.len() as u64,
                            script.as_bytes(),
                        )
                        .map_err(Error::Oci)?;
                }
            }
        }
        writer.finish().map_err(Error::Oci)
    }
}

fn layer_options(ctx: &Context<'_>) -> oci::LayerOptions {
    oci::LayerOptions {
        compression: ctx.options.compression,
        source_date_epoch: ctx.options.source_date_epoch,
    }
}

/// Write the image config and manifest for `layers` into the store.
pub fn write_image(
    app: &Loaded,
    options: &BuildOptions,
    store: &oci::BlobStore,
    layers: &[LayerSummary],
    below: &Below,
) -> Result<oci::ImageRef, Error> {
    let epoch = options.source_date_epoch;
    let created = oci::image::rfc3339(epoch);
    let config = &app.config;
    let all_layers = only_layers(layers);
    let mut spec = match below {
        Below::Base { env, cmd, image } => {
            let mut container = metadata::container_config(config, &created, env);
            container.cmd = Some(cmd.clone());
            if let Some(image) = image {
                container = on_image(&image.config, container);
            }
            let mut spec = oci::ImageSpec::new(all_layers, container, epoch);
            spec.history = layers
                .iter()
                .map(|l| oci::History {
                    created: Some(created.clone()),
                    created_by: Some(format!("nua-pack build: {}", l.step)),
                    ..oci::History::default()
                })
                .collect();
            spec
        }
        Below::Image(base) => {
            let added: Vec<String> = layers[base.rootfs.diff_ids.len()..]
                .iter()
                .map(|l| l.step.clone())
                .collect();
            let mut spec = oci::ImageSpec::new(
                all_layers,
                super::wrap::container_config(app, base, &created),
                epoch,
            );
            spec.history = super::wrap::history(base, &added, &created);
            spec.architecture = base.architecture.clone();
            spec.os = base.os.clone();
            spec
        }
    };
    spec.annotations = metadata::labels(config, &created)
        .into_iter()
        .filter(|(key, _)| key.starts_with("org.opencontainers.image."))
        .collect();
    // The image spec's annotations for the image this one is built on.
    if let Below::Base {
        image: Some(image), ..
    } = below
    {
        let base = [
            ("base.name", image.reference.clone()),
            ("base.digest", image.digest.to_string()),
        ];
        for (key, value) in base {
            spec.annotations
                .insert(format!("org.opencontainers.image.{key}"), value);
        }
    }
    oci::write_image(store, &spec).map_err(Error::Oci)
}

/// The run settings of an app built on a registry image: the image's (entry point, volumes,
/// stop signal, ports, labels, health check) with the app's on top. The app's user, working
/// folder and command always win: its files belong to the `nua` user under `/nua/app`.
/// Variables are the image's already (they are the base's), with the spec's defaults.
fn on_image(image: &oci::ContainerConfig, app: oci::ContainerConfig) -> oci::ContainerConfig {
    let mut config = image.clone();
    config.env = app.env;
    config.user = app.user;
    config.working_dir = app.working_dir;
    config.cmd = app.cmd;
    config.labels.extend(app.labels);
    config.exposed_ports.extend(app.exposed_ports);
    if app.healthcheck.is_some() {
        config.healthcheck = app.healthcheck;
    }
    config
}
