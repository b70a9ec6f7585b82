//! The layer cache: a step's cache key → the layer it produced, whose blob lives in the store.
//!
//! One small JSON file per key under `<cache>/layers/`, written to a temporary file and renamed
//! into place, so two builds sharing a cache never see a half-written entry. An entry whose
//! blob is gone from the store is a miss.

use std::path::{Path, PathBuf};

use super::Error;
use crate::oci;

pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("layers"),
        }
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The layer cached under `key`, if its entry parses and its blob is in the store.
    pub fn get(&self, key: &str, store: &oci::BlobStore) -> Option<oci::Layer> {
        let bytes = fs_err::read(self.entry(key)).ok()?;
        let layer: oci::Layer = serde_json::from_slice(&bytes).ok()?;
        store.contains(&layer.descriptor.digest).then_some(layer)
    }

    pub fn put(&self, key: &str, layer: &oci::Layer) -> Result<(), Error> {
        let io = |source| Error::Cache {
            path: self.dir.clone(),
            source,
        };
        fs_err::create_dir_all(&self.dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io)?;
        serde_json::to_writer(&mut tmp, layer).map_err(|e| io(e.into()))?;
        tmp.persist(self.entry(key)).map_err(|e| io(e.error))?;
        Ok(())
    }
}
