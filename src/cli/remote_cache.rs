//! `--cache-from REF` and `--cache-to REF`: build caches kept in registries
//! ([`nua_registry::cache`]), for builders that start with an empty disk.
//!
//! A cache that is missing, unreachable or damaged is a warning and a normal build, never a
//! failed one. A layer is taken from a cache only once its blob matches its digest and its
//! content its DiffID: a tampered entry is ignored, with a warning, and its step runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nua_build::RemoteCache;
use nua_oci::{self as oci, BlobStore, Digest};
use nua_registry::cache::{self, Entry};
use nua_registry::{Client, ClientOptions, PushOptions, Reference};

/// The caches of one build: those read, the one written, and what the build used.
pub struct RegistryCache {
    client: Client,
    from: Vec<(Reference, HashMap<String, Entry>)>,
    to: Option<Reference>,
    used: Mutex<Vec<Entry>>,
}

/// What `--cache-to` sent.
pub struct Pushed {
    pub reference: String,
    pub digest: Digest,
    pub entries: usize,
    pub bytes_sent: u64,
}

impl RegistryCache {
    /// Read the caches `from` (each one unreadable is a warning, said through `warn`) and
    /// get ready to write `to`. `None` when neither is asked.
    pub fn open(
        options: &ClientOptions,
        from: &[String],
        to: Option<&str>,
        warn: &mut dyn FnMut(String),
    ) -> anyhow::Result<Option<Arc<RegistryCache>>> {
        if from.is_empty() && to.is_none() {
            return Ok(None);
        }
        let client = Client::new(options.clone())?;
        let to = to
            .map(|text| {
                Reference::parse(text).map_err(|e| anyhow::anyhow!("`--cache-to {text}`: {e}"))
            })
            .transpose()?;
        let mut caches = Vec::new();
        for text in from {
            let reference = match Reference::parse(text) {
                Ok(reference) => reference,
                Err(e) => {
                    warn(format!(
                        "`--cache-from {text}` is not a reference ({e}); building without it"
                    ));
                    continue;
                }
            };
            match cache::fetch_cache(&client, &reference) {
                Ok(entries) => caches.push((
                    reference,
                    entries.into_iter().map(|e| (e.key.clone(), e)).collect(),
                )),
                Err(e) => warn(format!(
                    "the cache `{text}` cannot be read ({e}); building without it"
                )),
            }
        }
        Ok(Some(Arc::new(RegistryCache {
            client,
            from: caches,
            to,
            used: Mutex::new(Vec::new()),
        })))
    }

    /// Push what the build used to `--cache-to`, when asked: only the blobs the registry
    /// lacks are sent.
    pub fn push(&self, store: &BlobStore) -> anyhow::Result<Option<Pushed>> {
        let Some(to) = &self.to else {
            return Ok(None);
        };
        let entries = self.used.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let progress = Sent::default();
        let digest = cache::push_cache(
            &self.client,
            store,
            to,
            &entries,
            &PushOptions::default(),
            &progress,
        )
        .map_err(|e| anyhow::anyhow!("the cache `{to}` cannot be written: {e}"))?;
        Ok(Some(Pushed {
            reference: to.to_string(),
            digest,
            entries: entries.len(),
            bytes_sent: progress.bytes.load(std::sync::atomic::Ordering::Relaxed),
        }))
    }
}

/// Counts the bytes a push sends.
#[derive(Default)]
struct Sent {
    bytes: std::sync::atomic::AtomicU64,
}

impl nua_registry::Progress for Sent {
    fn finish(&self, report: &nua_registry::BlobReport) {
        self.bytes
            .fetch_add(report.transferred, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The DiffID of a stored layer blob: the SHA-256 of its content, decompressed.
fn diff_id_of(store: &BlobStore, digest: &Digest) -> std::io::Result<Digest> {
    let blob = store.open_blob(digest).map_err(std::io::Error::other)?;
    let reader = oci::layer::stream::decompressed(blob).map_err(std::io::Error::other)?;
    Ok(oci::digest::hash_reader(reader)?.0)
}

impl RemoteCache for RegistryCache {
    fn fetch(&self, key: &str, store: &BlobStore) -> Result<Option<(oci::Layer, String)>, String> {
        let mut refused = None;
        for (reference, entries) in &self.from {
            let Some(entry) = entries.get(key) else {
                continue;
            };
            let digest = &entry.layer.descriptor.digest;
            let fetched = cache::fetch_layer(&self.client, reference, entry, store, &())
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    let actual = diff_id_of(store, digest).map_err(|e| e.to_string())?;
                    if actual == entry.layer.diff_id {
                        Ok(())
                    } else {
                        Err(format!(
                            "its content is `{actual}`, not the DiffID `{}` the cache claims",
                            entry.layer.diff_id
                        ))
                    }
                });
            match fetched {
                Ok(()) => return Ok(Some((entry.layer.clone(), reference.to_string()))),
                Err(why) => {
                    refused.get_or_insert(format!(
                        "the layer `{digest}` of the cache `{reference}` is not used: {why}"
                    ));
                }
            }
        }
        match refused {
            Some(why) => Err(why),
            None => Ok(None),
        }
    }

    fn record(&self, key: &str, step: &str, layer: &oci::Layer) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if !used.iter().any(|e| e.key == key) {
            used.push(Entry {
                key: key.to_owned(),
                step: step.to_owned(),
                layer: layer.clone(),
            });
        }
    }
}
