//! The steps of a build: what each one puts in its layer and what its cache key is made of.

use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::metadata::{self, NUA_GID, NUA_UID};
use super::source::SourceFilter;
use super::{BuildOptions, Error};
use crate::config::Loaded;
use crate::oci;

/// Bump when the bytes a step writes change for the same inputs, so old cache entries are
/// not reused.
const STEP_FORMAT: &str = "nua-step-v1";

pub struct Context<'a> {
    pub app: &'a Loaded,
    pub store: &'a oci::BlobStore,
    pub options: &'a BuildOptions,
}

/// One layer of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Base,
    Source,
    Metadata,
}

pub fn plan(_app: &Loaded) -> Vec<Step> {
    vec![Step::Base, Step::Source, Step::Metadata]
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Base => "base",
            Step::Source => "source",
            Step::Metadata => "metadata",
        }
    }

    /// The key under which this step's layer is cached: its parent's key, the layer options
    /// and everything the step reads.
    pub fn cache_key(self, ctx: &Context<'_>, parent: &str) -> Result<String, Error> {
        let mut hasher = Sha256::new();
        for part in [
            STEP_FORMAT,
            self.name(),
            parent,
            &format!("{:?}", ctx.options.compression),
            &ctx.options.source_date_epoch.to_string(),
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        match self {
            Step::Base => {
                let path = &ctx.options.base_rootfs;
                let mut file = fs_err::File::open(path).map_err(|e| Error::BaseRootfs {
                    path: path.clone(),
                    source: e,
                })?;
                std::io::copy(&mut file, &mut hasher).map_err(|e| Error::BaseRootfs {
                    path: path.clone(),
                    source: e,
                })?;
            }
            Step::Source => hash_tree(
                &ctx.app.root,
                &SourceFilter::new(&ctx.app.root)?,
                &mut hasher,
            )?,
            Step::Metadata => {
                hasher.update(metadata::config_json(&ctx.app.config));
                hasher.update([0]);
                if let Some(script) = metadata::start_script(&ctx.app.config) {
                    hasher.update(script.as_bytes());
                }
            }
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Write this step's layer into the store.
    pub fn run(self, ctx: &Context<'_>) -> Result<oci::Layer, Error> {
        let options = oci::LayerOptions {
            compression: ctx.options.compression,
            source_date_epoch: ctx.options.source_date_epoch,
        };
        let mut writer = oci::LayerWriter::new(ctx.store, options).map_err(Error::Oci)?;
        match self {
            Step::Base => {
                let path = &ctx.options.base_rootfs;
                let file = fs_err::File::open(path).map_err(|e| Error::BaseRootfs {
                    path: path.clone(),
                    source: e,
                })?;
                writer
                    .append_tar_stream(file)
                    .map_err(|e| Error::BaseLayer {
                        path: path.clone(),
                        source: e,
                    })?;
            }
            Step::Source => {
                let owner = oci::Meta::new(0o755).owned_by(NUA_UID, NUA_GID);
                writer.add_dir("nua", &owner).map_err(Error::Oci)?;
                let root = &ctx.app.root;
                let filter = SourceFilter::new(root)?;
                writer
                    .append_dir_tree(root, "nua/app", Some((NUA_UID, NUA_GID)), |rel, meta| {
                        filter.includes(rel, meta.is_dir())
                    })
                    .map_err(|source| Error::SourceLayer {
                        path: root.clone(),
                        source,
                    })?;
                for dir in ["nua/etc", "nua/bin"] {
                    writer.add_dir(dir, &owner).map_err(Error::Oci)?;
                }
            }
            Step::Metadata => {
                let config = &ctx.app.config;
                let root_dir = oci::Meta::new(0o755);
                writer
                    .add_dir("nua", &root_dir.clone().owned_by(NUA_UID, NUA_GID))
                    .map_err(Error::Oci)?;
                writer
                    .add_dir("nua/metadata", &root_dir)
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
                writer
                    .add_dir("nua/scripts", &root_dir)
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

/// Hash what a layer of `root` would contain: for each included entry in walk order, its
/// relative path, kind, permission bits, and content or link target. Never mtimes or owners
/// (the layer forces both).
fn hash_tree(root: &Path, filter: &SourceFilter, hasher: &mut Sha256) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Source { path, source }
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs_err::read_dir(&dir)
            .map_err(io(&dir))?
            .collect::<Result<_, _>>()
            .map_err(io(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        // Entries in name order, folders visited after their parent's files: a fixed order,
        // which is all a key needs.
        for entry in &entries {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("walk stays under its root");
            let meta = fs_err::symlink_metadata(&path).map_err(io(&path))?;
            if !filter.includes(rel, meta.is_dir()) {
                continue;
            }
            hasher.update(rel.as_os_str().as_encoded_bytes());
            hasher.update([0]);
            hasher.update((meta.permissions().mode() & 0o7777).to_le_bytes());
            if meta.is_dir() {
                hasher.update(b"d");
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                hasher.update(b"l");
                let target = fs_err::read_link(&path).map_err(io(&path))?;
                hasher.update(target.as_os_str().as_encoded_bytes());
            } else {
                hasher.update(b"f");
                hasher.update(meta.len().to_le_bytes());
                let mut file = fs_err::File::open(&path).map_err(io(&path))?;
                std::io::copy(&mut file, hasher).map_err(io(&path))?;
            }
            hasher.update([0]);
        }
    }
    Ok(())
}

/// Write the image config and manifest for `layers` into the store.
pub fn write_image(
    ctx: &Context<'_>,
    layers: &[(String, oci::Layer, bool)],
) -> Result<oci::ImageRef, Error> {
    let epoch = ctx.options.source_date_epoch;
    let created = oci::image::rfc3339(epoch);
    let config = &ctx.app.config;
    let mut spec = oci::ImageSpec::new(
        layers.iter().map(|(_, layer, _)| layer.clone()).collect(),
        metadata::container_config(config, &created),
        epoch,
    );
    spec.history = layers
        .iter()
        .map(|(step, _, _)| oci::History {
            created: Some(created.clone()),
            created_by: Some(format!("nua-pack build: {step}")),
            ..oci::History::default()
        })
        .collect();
    spec.annotations = metadata::labels(config, &created)
        .into_iter()
        .filter(|(key, _)| key.starts_with("org.opencontainers.image."))
        .collect();
    oci::write_image(ctx.store, &spec).map_err(Error::Oci)
}
