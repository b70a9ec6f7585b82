//! Image config, manifest and index types, and writing an image's JSON blobs.
//!
//! Our own serde types rather than oci-spec's: the Docker `Healthcheck` extension of the
//! config has no place in oci-spec's `Config`, and maps here are `BTreeMap`s. Everything is
//! written through [`canonical::to_vec`] anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::canonical;
use super::digest::Digest;
use super::error::{Error, Result};
use super::layer::Layer;
use super::store::BlobStore;

/// Media types of the OCI image spec.
pub mod media_type {
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// Docker's name for a gzip layer, as found in images Docker pushed.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor without annotations or platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

/// The platform an image runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// `{}`: the value type of `ExposedPorts` and `Volumes` sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Docker's health check extension of the config; durations in nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", "curl", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
}

/// The execution parameters of an image (`config` in the image config).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Keys like `8080/tcp`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
}

/// `rootfs` of the image config: the DiffIDs, bottom layer first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One history entry of the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The image config blob (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
}

/// The image manifest blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (`index.json` of a layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What to put in an image: layers bottom first, the run config, metadata.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub layers: Vec<Layer>,
    pub config: ContainerConfig,
    /// One entry per layer is generated when empty.
    pub history: Vec<History>,
    /// Manifest annotations (`org.opencontainers.image.*`).
    pub annotations: BTreeMap<String, String>,
    pub architecture: String,
    pub os: String,
    /// `created` of the config and of generated history entries.
    pub source_date_epoch: u64,
}

impl ImageSpec {
    /// A linux/amd64 image of these layers.
    pub fn new(layers: Vec<Layer>, config: ContainerConfig, source_date_epoch: u64) -> ImageSpec {
        ImageSpec {
            layers,
            config,
            history: Vec::new(),
            annotations: BTreeMap::new(),
            architecture: "amd64".into(),
            os: "linux".into(),
            source_date_epoch,
        }
    }

    /// The config this spec describes.
    pub fn image_config(&self) -> ImageConfig {
        let created = rfc3339(self.source_date_epoch);
        let history = if self.history.is_empty() {
            let entry = History {
                created: Some(created.clone()),
                ..History::default()
            };
            vec![entry; self.layers.len()]
        } else {
            self.history.clone()
        };
        ImageConfig {
            created: Some(created),
            author: None,
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            config: Some(self.config.clone()),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: self.layers.iter().map(|l| l.diff_id.clone()).collect(),
            },
            history,
        }
    }
}

/// A written image: its manifest, config and layer descriptors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    pub platform: Platform,
}

/// Write the config and manifest blobs of `spec` into `store` (layers must already be there).
pub fn write_image(store: &BlobStore, spec: &ImageSpec) -> Result<ImageRef> {
    let config_bytes = json("the image config", &spec.image_config())?;
    let config_info = store.put_bytes(&config_bytes)?;
    let config = Descriptor::new(media_type::CONFIG, config_info.digest, config_info.size);
    let layers: Vec<Descriptor> = spec.layers.iter().map(|l| l.descriptor.clone()).collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::MANIFEST.into()),
        config: config.clone(),
        layers: layers.clone(),
        annotations: spec.annotations.clone(),
    };
    let manifest_info = store.put_bytes(&json("the image manifest", &manifest)?)?;
    Ok(ImageRef {
        manifest: Descriptor::new(
            media_type::MANIFEST,
            manifest_info.digest,
            manifest_info.size,
        ),
        config,
        layers,
        platform: Platform {
            architecture: spec.architecture.clone(),
            os: spec.os.clone(),
            variant: None,
        },
    })
}

/// Canonical JSON of `value`, with `what` named on failure.
pub(crate) fn json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    canonical::to_vec(value).map_err(|source| Error::Json {
        what: what.to_owned(),
        source,
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (UTC).
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn config_serializes_docker_names_and_healthcheck() {
        let mut config = ContainerConfig {
            cmd: Some(vec!["/nua/scripts/start".into()]),
            healthcheck: Some(Healthcheck {
                test: vec!["CMD-SHELL".into(), "curl -f http://localhost/".into()],
                interval: Some(30_000_000_000),
                retries: Some(3),
                ..Healthcheck::default()
            }),
            working_dir: Some("/nua/app".into()),
            ..ContainerConfig::default()
        };
        config.exposed_ports.insert("8080/tcp".into(), Empty {});
        let json = String::from_utf8(canonical::to_vec(&config).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"Cmd":["/nua/scripts/start"],"ExposedPorts":{"8080/tcp":{}},"Healthcheck":{"Interval":30000000000,"Retries":3,"Test":["CMD-SHELL","curl -f http://localhost/"]},"WorkingDir":"/nua/app"}"#
        );
    }
}
