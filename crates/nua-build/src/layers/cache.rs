//! The layer cache: a step's cache key → the layer it produced, whose blob lives in the store.
//!
//! One small JSON file per key under `<cache>/layers/`, written to a temporary file and renamed
//! into place, so two builds sharing a cache never see a half-written entry. An entry whose
//! blob is gone from the store is a miss.

use std::path::{Path, PathBuf};

use std::time::Instant;

use super::LayerSummary;
use crate::why::{History, Inputs};
use crate::{Event, Reporter};
use nua_oci as oci;

/// Write `bytes` to `path` atomically ([`oci::fs::write_atomic`]), making its folder first:
/// how every file of the cache folder (entries, records, markers) is written.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    // Private, as the cache's files always were: the why records hold digests of the
    // build's environment values.
    oci::fs::write_atomic_mode(path, bytes, 0o600).map_err(std::io::Error::other)
}

/// One entry: the layer, and the step that made it (for `nua-pack cache ls`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(flatten)]
    pub layer: oci::Layer,
    #[serde(default)]
    pub step: String,
}

/// A cache beyond this machine's (a registry, with `--cache-from`/`--cache-to`): asked for a
/// step's layer when the local cache lacks it, and told of every layer a build uses.
pub trait RemoteCache: Send + Sync {
    /// The layer of `key`, fetched into `store` (its digest checked), and where it came
    /// from; `Ok(None)` when no cache holds it; an error (a warning, then the step runs)
    /// when one holds it but it cannot be had.
    fn fetch(
        &self,
        key: &str,
        store: &oci::BlobStore,
    ) -> Result<Option<(oci::Layer, String)>, String>;
    /// A step of this build has `layer` (cached, fetched or made).
    fn record(&self, key: &str, step: &str, layer: &oci::Layer);
}

/// The remote cache of a build, when it has one.
#[derive(Clone, Default)]
pub struct Remote(pub Option<std::sync::Arc<dyn RemoteCache>>);

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Remote(..)"
        } else {
            "Remote(None)"
        })
    }
}

pub struct LayerCache {
    dir: PathBuf,
    /// `false` with `--no-cache`: every step is made again (and its entry replaced).
    reading: bool,
    remote: Remote,
}

/// What a step is made from, to say why it is made again (see [`crate::why`]).
pub struct Explain<'a> {
    pub history: &'a History,
    pub parent: &'a str,
    pub inputs: &'a Inputs,
}

impl LayerCache {
    pub fn new(cache_dir: &Path) -> Self {
        Self {
            dir: cache_dir.join("layers"),
            reading: true,
            remote: Remote::default(),
        }
    }

    /// The same, asking `remote` for what it lacks and telling it what a build uses.
    pub fn with_remote(mut self, remote: &Remote) -> Self {
        self.remote = remote.clone();
        self
    }

    /// A cache whose entries are written but never read (`--no-cache`).
    pub fn write_only(mut self) -> Self {
        self.reading = false;
        self
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The layer cached under `key`, if its entry parses and its blob is in the store.
    pub fn get(&self, key: &str, store: &oci::BlobStore) -> Option<oci::Layer> {
        if !self.reading {
            return None;
        }
        let entry = self.entry(key);
        let bytes = fs_err::read(&entry).ok()?;
        let layer = serde_json::from_slice::<Entry>(&bytes).ok()?.layer;
        if !store.contains(&layer.descriptor.digest) {
            return None;
        }
        // The entry's time says when it was last used, for `nua-pack cache prune`.
        if let Ok(file) = std::fs::File::options().append(true).open(&entry) {
            let _ = file.set_modified(std::time::SystemTime::now());
        }
        Some(layer)
    }

    pub fn put(&self, key: &str, step: &str, layer: &oci::Layer) -> std::io::Result<()> {
        let entry = Entry {
            layer: layer.clone(),
            step: step.to_owned(),
        };
        write_file(&self.entry(key), &serde_json::to_vec(&entry)?)
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
    ) -> Result<LayerSummary, E> {
        self.step_explained(store, key, label, None, reporter, make, cache_error)
    }

    /// [`LayerCache::step`] that, when the step is made again, says why (an
    /// [`Event::Rebuilt`]) and records what it was made from.
    #[allow(clippy::too_many_arguments)]
    pub fn step_explained<E>(
        &self,
        store: &oci::BlobStore,
        key: &str,
        label: &str,
        explain: Option<Explain<'_>>,
        reporter: &mut dyn Reporter,
        make: impl FnOnce(&mut dyn Reporter) -> Result<oci::Layer, E>,
        cache_error: impl FnOnce(PathBuf, std::io::Error) -> E,
    ) -> Result<LayerSummary, E> {
        reporter.event(Event::StepStarted { step: label });
        let started = Instant::now();
        let local = self.get(key, store);
        let fetched = match (&local, &self.remote.0) {
            (None, Some(remote)) if self.reading => match remote.fetch(key, store) {
                Ok(Some((layer, from))) => match self.put(key, label, &layer) {
                    Ok(()) => {
                        reporter.event(Event::Fetched {
                            step: label,
                            from: &from,
                        });
                        Some(layer)
                    }
                    Err(source) => return Err(cache_error(self.dir.clone(), source)),
                },
                Ok(None) => None,
                Err(message) => {
                    reporter.event(Event::Warning {
                        message: &format!("{message}; step `{label}` runs instead"),
                    });
                    None
                }
            },
            _ => None,
        };
        let (layer, cached) = match local.or(fetched) {
            Some(layer) => {
                // `--why` compares with the last build, cached or not.
                if let Some(e) = &explain {
                    e.history.record(label, e.parent, e.inputs);
                }
                (layer, true)
            }
            None => {
                let reasons = match &explain {
                    Some(e) => e.history.reasons(label, e.parent, e.inputs),
                    None => Vec::new(),
                };
                reporter.event(Event::Rebuilt {
                    step: label,
                    reasons: &reasons,
                });
                let layer = make(reporter)?;
                if let Some(e) = &explain {
                    e.history.record(label, e.parent, e.inputs);
                }
                if let Err(source) = self.put(key, label, &layer) {
                    return Err(cache_error(self.dir.clone(), source));
                }
                (layer, false)
            }
        };
        if let Some(remote) = &self.remote.0 {
            remote.record(key, label, &layer);
        }
        reporter.event(Event::StepFinished {
            step: label,
            cached,
            elapsed: started.elapsed(),
        });
        Ok(LayerSummary {
            step: label.to_owned(),
            layer,
            cached,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_file_is_written_whole_in_a_folder_made_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layers").join("k.json");
        write_file(&path, b"old").unwrap();
        write_file(&path, b"new").unwrap();
        assert_eq!(fs_err::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs_err::read_dir(dir.path().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["k.json"]);
    }
}
