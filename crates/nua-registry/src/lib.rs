//! OCI distribution client: references, authentication, pull and push.
//!
//! Pulls land in the [`nua_oci::BlobStore`]: every blob is written to a temporary file,
//! checked for size and digest, and only then renamed into place, so a pull killed at any
//! point leaves nothing corrupt behind and a blob already present is never downloaded again.
//! Pushes read from the same store and send only what the registry lacks.
//!
//! Nothing here prints: transfers are reported through a [`Progress`] passed in.
//!
//! ```no_run
//! use nua_registry::{pull, Client, ClientOptions, PullOptions, Reference};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = nua_oci::BlobStore::open("/tmp/cache")?;
//! let client = Client::new(ClientOptions::default())?;
//! let reference = Reference::parse("debian:bookworm-slim")?;
//! let pulled = pull(&client, &reference, &store, &PullOptions::default(), &())?;
//! nua_oci::write_tarball(&store, &pulled.image, &[], "debian.tar".as_ref())?;
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
mod sources;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use nua_oci::{Descriptor, Digest};

pub use auth::{AuthConfig, CredentialSource, Credentials, Secret};
pub use client::{Client, ClientOptions};
pub use error::{Error, Result};
pub use manifest::{parse_platform, platform_string, Resolved};
pub use pull::{inspect, pull, Inspected, PullOptions, Pulled};
pub use push::{import_archive, push, PushOptions, Pushed};
pub use reference::Reference;

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Already where it had to go (the local store on pull, the registry on push).
    Present,
    /// Downloaded into the store.
    Downloaded,
    /// Uploaded to the registry.
    Uploaded,
    /// Mounted from another repository of the same registry: nothing sent.
    Mounted,
}

/// One blob of a pull or push, and how many bytes went over the network for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobReport {
    pub digest: Digest,
    pub size: u64,
    pub outcome: Outcome,
    /// Bytes of this blob sent or received (more than `size` after a restart).
    pub transferred: u64,
}

/// Where transfers are reported; every method defaults to doing nothing. Called from several
/// threads at once.
pub trait Progress: Sync {
    /// A blob of `size` bytes starts transferring.
    fn start(&self, _digest: &Digest, _size: u64) {}
    /// `bytes` more bytes of the blob went over the network.
    fn advance(&self, _digest: &Digest, _bytes: u64) {}
    /// The blob is done.
    fn finish(&self, _report: &BlobReport) {}
    /// A transfer broke and is resumed or retried (`reason` for people).
    fn retry(&self, _digest: &Digest, _reason: &str) {}
}

/// No progress reporting.
impl Progress for () {}

/// Run `work` on every item with up to `workers` threads; the results in input order, or the
/// error of the first failing item in input order (others stop taking new items).
pub(crate) fn parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    // Items never started (after a failure) are `None` and come after the failing one.
    results.into_iter().map_while(|r| r).collect()
}

/// The config and the layers of an image, each digest once, in the order they first appear:
/// an image that repeats a layer has it checked and transferred once. One digest listed with
/// two sizes is a broken manifest: refused before anything is sent.
pub(crate) fn distinct<'a>(
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    reference: &Reference,
) -> Result<Vec<&'a Descriptor>> {
    let mut seen: HashMap<&Digest, &Descriptor> = HashMap::new();
    let mut blobs = Vec::new();
    for blob in std::iter::once(config).chain(layers) {
        match seen.get(&blob.digest) {
            None => {
                seen.insert(&blob.digest, blob);
                blobs.push(blob);
            }
            Some(first) if first.size != blob.size => {
                return Err(Error::Manifest {
                    reference: reference.to_string(),
                    reason: format!(
                        "the blob `{}` is listed with sizes {} and {}",
                        blob.digest, first.size, blob.size
                    ),
                });
            }
            Some(_) => {}
        }
    }
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..20).collect();
        let doubled = parallel(&items, 4, |i| Ok(i * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        let err = parallel(&items, 3, |i| {
            if *i == 5 {
                Err(Error::InvalidPlatform { value: "x".into() })
            } else {
                Ok(*i)
            }
        });
        assert!(err.is_err());
        assert!(parallel(&[] as &[u32], 4, |i| Ok(*i)).unwrap().is_empty());
    }
}
