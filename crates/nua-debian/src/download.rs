//! Download `.deb` files into the blob store, concurrently, each checked against the size
//! and SHA256 of the index (the SHA256 is the blob digest). A package already in the store
//! is not fetched again; a mismatch leaves nothing in the store and names the package.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nua_oci::{self as oci, BlobStore, Digest};

use super::error::{Error, HttpKind, Result};
use super::resolve::Locked;
use super::source::Source;
use nua_oci::http::{BodyError, Http};

/// Concurrent downloads by default.
pub const DEFAULT_WORKERS: usize = 4;

/// Progress of [`download`], for the caller's reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Already in the store: nothing to fetch.
    Cached { name: String, size: u64 },
    /// Fetched and verified.
    Downloaded { name: String, size: u64 },
}

/// The digest a locked package is stored under.
pub fn package_digest(pkg: &Locked) -> Result<Digest> {
    Digest::from_hex(&pkg.sha256.to_ascii_lowercase()).map_err(|_| Error::PackageDigest {
        package: pkg.name.clone(),
        filename: pkg.filename.clone(),
        expected: pkg.sha256.clone(),
        actual: "(the index value is not a sha256)".to_owned(),
    })
}

/// Download `pkgs` with [`DEFAULT_WORKERS`] workers.
pub fn download(
    src: &Source,
    pkgs: &[Locked],
    store: &BlobStore,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    download_with(src, pkgs, store, DEFAULT_WORKERS, progress)
}

/// Download `pkgs` with `workers` threads; the first error stops the others' next picks.
pub fn download_with(
    src: &Source,
    pkgs: &[Locked],
    store: &BlobStore,
    workers: usize,
    progress: &(dyn Fn(Event) + Sync),
) -> Result<()> {
    let http = Http::new()?;
    let next = AtomicUsize::new(0);
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(pkg) = pkgs.get(i) else { break };
                if first_error.lock().is_ok_and(|e| e.is_some()) {
                    break;
                }
                match fetch_one(src, &http, pkg, store) {
                    Ok(event) => progress(event),
                    Err(e) => {
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        // Keep the error of the first package in input order: deterministic.
                        if slot.as_ref().is_none_or(|(j, _)| i < *j) {
                            *slot = Some((i, e));
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

fn fetch_one(src: &Source, http: &Http, pkg: &Locked, store: &BlobStore) -> Result<Event> {
    let digest = package_digest(pkg)?;
    if store.contains(&digest) {
        return Ok(Event::Cached {
            name: pkg.name.clone(),
            size: pkg.size,
        });
    }
    let suite = match pkg.suite.as_str() {
        "" => &src.suite,
        suite => suite,
    };
    let url = src.pool_url(suite, &pkg.filename);
    http.get(&url, |body| {
        let fatal = |e: Error| BodyError::Fatal(e);
        let mut blob = store.writer().map_err(|e| fatal(e.into()))?;
        std::io::copy(&mut body.take(pkg.size + 1), &mut blob)?;
        blob.flush()?;
        if blob.len() != pkg.size {
            if blob.len() > pkg.size {
                return Err(fatal(Error::Http {
                    url: url.clone(),
                    kind: HttpKind::TooLong,
                    retries: 0,
                    source: None,
                }));
            }
            return Err(fatal(Error::PackageSize {
                package: pkg.name.clone(),
                filename: pkg.filename.clone(),
                expected: pkg.size,
                actual: blob.len(),
            }));
        }
        blob.commit(Some(&digest)).map_err(|e| {
            fatal(match e {
                oci::Error::DigestMismatch { actual, .. } => Error::PackageDigest {
                    package: pkg.name.clone(),
                    filename: pkg.filename.clone(),
                    expected: digest.hex().to_owned(),
                    actual: actual.hex().to_owned(),
                },
                other => other.into(),
            })
        })
    })?;
    Ok(Event::Downloaded {
        name: pkg.name.clone(),
        size: pkg.size,
    })
}
