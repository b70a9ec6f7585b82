//! A build cache kept in a registry, for builders that start with an empty disk.
//!
//! The format is an OCI image manifest used as an artifact (image spec 1.1, "artifacts
//! guidance"): `artifactType` [`ARTIFACT_TYPE`], a small JSON config ([`CONFIG_TYPE`]) that
//! maps each build step's cache key to its layer (descriptor and DiffID), and the layers
//! themselves as the manifest's `layers`, so the registry keeps them, standard tools
//! (`skopeo inspect --raw`, `oras`, `crane`) list and copy them, and a push sends only the
//! blobs the registry lacks. One tag holds one cache; pushing again replaces it.

use serde::{Deserialize, Serialize};

use nua_oci::image::{media_type, ImageRef, Platform};
use nua_oci::{BlobStore, Descriptor, Digest, Layer};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::manifest;
use crate::push::{push, PushOptions};
use crate::reference::Reference;
use crate::{BlobReport, Progress};

/// The `artifactType` of a Nua build cache.
pub const ARTIFACT_TYPE: &str = "application/vnd.nua.build-cache.v1";
/// The media type of its config: the key → layer map.
pub const CONFIG_TYPE: &str = "application/vnd.nua.build-cache.config.v1+json";
/// The largest cache config read (a key and a layer take about 400 bytes).
const CONFIG_LIMIT: u64 = 4 << 20;

/// One step's layer, by the cache key of the step that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    /// What the step is, for people (`python: bootstrap: unpack 84 packages`).
    pub step: String,
    pub layer: Layer,
}

#[derive(Debug, Serialize, Deserialize)]
struct Config {
    entries: Vec<Entry>,
}

/// Push `entries` (their layers in `store`) as the cache `reference`; the manifest's digest.
/// Only the blobs the registry lacks are sent.
pub fn push_cache(
    client: &Client,
    store: &BlobStore,
    reference: &Reference,
    entries: &[Entry],
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Digest> {
    let mut entries = entries.to_vec();
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries.dedup_by(|a, b| a.key == b.key);
    let config_bytes = serde_json::to_vec(&Config {
        entries: entries.clone(),
    })
    .expect("a cache config serializes");
    let config_info = store.put_bytes(&config_bytes)?;
    let config = Descriptor::new(CONFIG_TYPE, config_info.digest, config_info.size);
    let mut layers: Vec<Descriptor> = Vec::new();
    for entry in &entries {
        if !layers
            .iter()
            .any(|l| l.digest == entry.layer.descriptor.digest)
        {
            layers.push(entry.layer.descriptor.clone());
        }
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": layers,
    });
    let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serializes");
    let manifest_info = store.put_bytes(&manifest_bytes)?;
    let image = ImageRef {
        manifest: Descriptor::new(
            media_type::MANIFEST,
            manifest_info.digest,
            manifest_info.size,
        ),
        config,
        layers,
        platform: Platform {
            architecture: String::new(),
            os: String::new(),
            variant: None,
        },
    };
    Ok(push(client, store, &image, reference, options, progress)?.digest)
}

/// The entries of the cache `reference`: only those whose layer its manifest lists (the
/// registry keeps nothing else).
pub fn fetch_cache(client: &Client, reference: &Reference) -> Result<Vec<Entry>> {
    let repo = client.repo(reference, false)?;
    let platform = Platform {
        architecture: String::new(),
        os: String::new(),
        variant: None,
    };
    let resolved = manifest::resolve(&repo, reference, &platform)?;
    let config = &resolved.manifest.config;
    if config.media_type != CONFIG_TYPE {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            reason: format!(
                "it is not a Nua build cache (its config is `{}`, not `{CONFIG_TYPE}`)",
                config.media_type
            ),
        });
    }
    if config.size > CONFIG_LIMIT {
        return Err(Error::Manifest {
            reference: reference.to_string(),
            reason: format!("its config is {} bytes, more than a cache has", config.size),
        });
    }
    let bytes = manifest::fetch_blob_bytes(&repo, config, CONFIG_LIMIT)?;
    let parsed: Config = serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        reference: reference.to_string(),
        reason: format!("its config is not a cache's key map ({e})"),
    })?;
    let listed = &resolved.manifest.layers;
    Ok(parsed
        .entries
        .into_iter()
        .filter(|e| listed.iter().any(|l| l == &e.layer.descriptor))
        .collect())
}

/// Download the layer of `entry` from the cache `reference` into `store` (its digest
/// checked; one already stored and intact is not downloaded again).
pub fn fetch_layer(
    client: &Client,
    reference: &Reference,
    entry: &Entry,
    store: &BlobStore,
    progress: &dyn Progress,
) -> Result<BlobReport> {
    let repo = client.repo(reference, false)?;
    crate::pull::download(&repo, &entry.layer.descriptor, store, progress)
}
