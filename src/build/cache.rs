//! The layer cache: a step's cache key → the layer it produced, whose blob lives in the store.
//!
//! One small JSON file per key under `<cache>/layers/`, written to a temporary file and renamed
//! into place, so two builds sharing a cache never see a half-written entry. An entry whose
//! blob is gone from the store is a miss.

use std::path::{Path, PathBuf};

use std::time::Instant;

use super::{Event, Reporter};
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

    pub fn put(&self, key: &str, layer: &oci::Layer) -> std::io::Result<()> {
        fs_err::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        serde_json::to_writer(&mut tmp, layer)?;
        tmp.persist(self.entry(key)).map_err(|e| e.error)?;
        Ok(())
    }

    /// A build step: the layer cached under `key`, else the one `make` writes (then cached),
    /// reported as step `label`. `cache_error` turns a failure to write the entry into `E`.
    pub fn step<E>(
        &self,
        store: &oci::BlobStore,
        key: &str,
        label: &str,
        reporter: &mut dyn Reporter,
        make: impl FnOnce(&mut dyn Reporter) -> Result<oci::Layer, E>,
        cache_error: impl FnOnce(PathBuf, std::io::Error) -> E,
    ) -> Result<(String, oci::Layer, bool), E> {
        reporter.event(Event::StepStarted { step: label });
        let started = Instant::now();
        let (layer, cached) = match self.get(key, store) {
            Some(layer) => (layer, true),
            None => {
                let layer = make(reporter)?;
                if let Err(source) = self.put(key, &layer) {
                    return Err(cache_error(self.dir.clone(), source));
                }
                (layer, false)
            }
        };
        reporter.event(Event::StepFinished {
            step: label,
            cached,
            elapsed: started.elapsed(),
        });
        Ok((label.to_owned(), layer, cached))
    }
}
