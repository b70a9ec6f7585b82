//! Pull: resolve the manifest for a platform, then download the config and layers
//! concurrently into the blob store.
//!
//! A blob already in the store, and intact (it is hashed again: a disk fault or tampering is
//! found, the copy moved aside and fetched anew), is not downloaded. Others stream into a store
//! writer (a temporary file). When the connection breaks, the body ends early, or it gets
//! slower than the client's low-speed limit, the download goes on from the bytes already
//! received with `Range: bytes=N-` (a registry that answers `200` instead of `206` is read
//! again from the start). An attempt that brought bytes is resumed at once and never counted;
//! only attempts that brought nothing (or a stalled trickle) count against the retries. A
//! download that gives up keeps its bytes in the store for the next pull to resume. The writer
//! checks the digest before the blob becomes visible (a mismatch is fetched once more), and the
//! size is checked against the descriptor, so a killed or corrupt download never leaves
//! anything under `blobs/`.

use std::io::{Read, Write};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode, Url};

use super::client::{Client, Repo};
use super::error::{Error, Result};
use super::manifest::{self, Resolved};
use super::reference::Reference;
use super::{distinct, parallel, sources, BlobReport, Outcome, Progress};
use nua_oci::http::Stalled;
use nua_oci::image::Platform;
use nua_oci::{
    self as oci, BlobInfo, BlobState, BlobStore, BlobWriter, Descriptor, ImageConfig, ImageRef,
};

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform picked from a multi-platform index.
    pub platform: Platform,
    /// Blobs downloaded at once.
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
            },
            concurrency: 4,
        }
    }
}

/// A pulled image: in the store, ready for [`oci::write_tarball`] or [`oci::write_layout_dir`].
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: ImageRef,
    pub config: ImageConfig,
    /// The config first, then the layers, each digest once.
    pub blobs: Vec<BlobReport>,
}

/// A manifest and config read from a registry without downloading layers.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub resolved: Resolved,
    pub config: ImageConfig,
}

/// Read the manifest and config of `reference` (for `inspect`), downloading no layer.
pub fn inspect(client: &Client, reference: &Reference, platform: &Platform) -> Result<Inspected> {
    let repo = client.repo(reference, false)?;
    let resolved = manifest::resolve(&repo, reference, platform)?;
    let config = manifest::fetch_json_blob(&repo, &resolved.manifest.config)?;
    Ok(Inspected { resolved, config })
}

/// Pull `reference` into `store`.
pub fn pull(
    client: &Client,
    reference: &Reference,
    store: &BlobStore,
    options: &PullOptions,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let repo = client.repo(reference, false)?;
    let resolved = manifest::resolve(&repo, reference, &options.platform)?;
    let manifest = &resolved.manifest;
    let wanted = distinct(&manifest.config, &manifest.layers, reference)?;
    let blobs = parallel(&wanted, options.concurrency, |d| {
        download(&repo, d, store, progress)
    })?;
    let config_bytes = store.read(&manifest.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
        repo.protocol(format!(
            "the config `{}` of `{reference}` is not an image config ({e})",
            manifest.config.digest
        ))
    })?;
    // One DiffID per layer (image spec): anything else is a broken or hostile image, and
    // writing it out again would drop or misname layers.
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(repo.protocol(format!(
            "`{reference}` has {} layers but its config lists {} DiffIDs",
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    // Stored last: a manifest in the store means its blobs are there too.
    store.put_bytes(&resolved.bytes)?;
    sources::record(
        store,
        &reference.registry,
        &reference.repository,
        wanted.iter().map(|d| &d.digest),
    );
    let image = ImageRef {
        manifest: resolved.descriptor.clone(),
        config: manifest.config.clone(),
        layers: manifest.layers.clone(),
        platform: Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: None,
        },
    };
    Ok(Pulled {
        image,
        config,
        blobs,
    })
}

/// Download one blob into the store.
///
/// Bytes a failed pull received are kept in the store, and the next download of the blob
/// resumes from them. A blob that arrives whole but does not match its digest is fetched once
/// more from the start (a flaky proxy is the usual cause); a second mismatch is an error.
pub(crate) fn download(
    repo: &Repo<'_>,
    blob: &Descriptor,
    store: &BlobStore,
    progress: &dyn Progress,
) -> Result<BlobReport> {
    let origin = format!("{}/{}", repo.registry, repo.repository);
    if let Some(report) = already_stored(blob, store, progress)? {
        progress.finish(&report);
        return Ok(report);
    }
    progress.start(&blob.digest, blob.size);
    let mut attempts = Attempts::default();
    let mut writer = store.writer_resuming(&blob.digest)?;
    if writer.len() > blob.size {
        // Kept bytes that cannot be the start of this blob.
        writer = store.writer()?;
    }
    if !writer.is_empty() {
        progress.advance(&blob.digest, writer.len());
        progress.retry(
            &blob.digest,
            &format!("resuming at byte {} kept by an earlier pull", writer.len()),
        );
    }
    let mut mismatch = None;
    let info = loop {
        let received = receive(repo, blob, store, &mut writer, progress, &mut attempts);
        if let Err(mut e) = received {
            // Whatever ended it, the bytes received so far wait for the next pull.
            let partial = !writer.is_empty() && writer.len() < blob.size;
            let saved = partial && writer.keep_partial(&blob.digest).is_ok();
            if let Error::Transfer { kept, .. } = &mut e {
                *kept = saved;
            }
            return Err(e);
        }
        match commit_verified(writer, store, blob, origin.clone()) {
            Ok(info) => break info,
            Err(Error::Digest { actual, .. }) if mismatch.is_none() => {
                progress.retry(
                    &blob.digest,
                    &format!("the bytes received hash to `{actual}`; fetching it again"),
                );
                mismatch = Some(actual);
                writer = store.writer()?;
            }
            Err(Error::Digest {
                expected, actual, ..
            }) => {
                return Err(Error::DigestTwice {
                    origin,
                    expected,
                    first: mismatch.expect("set by the first mismatch"),
                    second: actual,
                })
            }
            Err(e) => return Err(e),
        }
    };
    let report = BlobReport {
        digest: info.digest,
        size: info.size,
        outcome: Outcome::Downloaded,
        transferred: attempts.transferred,
    };
    progress.finish(&report);
    Ok(report)
}

/// How a blob's download went so far: for the progress display and for the error.
#[derive(Debug, Default)]
struct Attempts {
    /// Attempts that brought nothing (or only a stalled trickle): these count against the
    /// client's retries, with backoff.
    retries: u32,
    /// Attempts that broke after bringing bytes: resumed at once, never counted (a flaky link
    /// that keeps moving finishes, since every resume brings the end closer).
    resumes: u32,
    /// Bytes received over the network, restarts included.
    transferred: u64,
}

/// Fill `writer` with the blob, resuming with `Range` when an attempt ends early. Returns once
/// `writer` holds `blob.size` bytes (the digest is checked by the caller); an attempt past
/// the retries is an [`Error::Transfer`] (the caller says whether the bytes are kept).
fn receive(
    repo: &Repo<'_>,
    blob: &Descriptor,
    store: &BlobStore,
    writer: &mut BlobWriter,
    progress: &dyn Progress,
    attempts: &mut Attempts,
) -> Result<()> {
    let url = repo.url(&format!("blobs/{}", blob.digest));
    let retry = repo.retry_policy();
    let low_speed = repo.low_speed();
    loop {
        let offset = writer.len();
        let resp = get_blob_from(repo, &url, blob, offset)?;
        if offset > 0 && resp.status() == StatusCode::OK {
            // A full body where a range was asked for: start over.
            *writer = store.writer()?;
        }
        let start = writer.len();
        let remaining = blob.size.saturating_sub(start);
        let body = low_speed.watch(resp).take(remaining + 1);
        let copied = copy_counted(body, writer, |n| {
            attempts.transferred += n;
            progress.advance(&blob.digest, n);
        })
        .map_err(|e| store_error(store, e))?;
        if writer.len() > blob.size {
            return Err(Error::Size {
                origin: format!("{}/{}", repo.registry, repo.repository),
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: writer.len(),
            });
        }
        // Every byte is here, even if the connection broke after the last one: the digest
        // check decides.
        if writer.len() == blob.size {
            return Ok(());
        }
        let received = writer.len();
        let (reason, progressed) = match copied {
            Err(e) => match Stalled::of(&e) {
                // A trickle is no progress, whatever came before the slow window is.
                Some(stall) => (stall.to_string(), stall.before_window() > 0),
                None => (
                    format!("the connection broke at byte {received}"),
                    received > start,
                ),
            },
            Ok(()) => (
                format!("the body ended at byte {received}"),
                received > start,
            ),
        };
        if progressed {
            attempts.resumes += 1;
            progress.retry(&blob.digest, &format!("{reason}; resuming"));
            continue;
        }
        if attempts.retries == retry.retries {
            return Err(Error::Transfer {
                origin: format!("{}/{}", repo.registry, repo.repository),
                digest: blob.digest.clone(),
                reason,
                retries: attempts.retries,
                resumes: attempts.resumes,
                received,
                size: blob.size,
                kept: false,
            });
        }
        let wait = retry.wait(attempts.retries, None);
        progress.retry(
            &blob.digest,
            &format!("{reason}; retrying in {} ms", wait.as_millis()),
        );
        std::thread::sleep(wait);
        attempts.retries += 1;
    }
}

/// The report of a blob the store already has whole and intact, if it has. A stored copy
/// that does not match its digest (a disk fault, tampering) is moved aside, said, and fetched
/// again.
fn already_stored(
    blob: &Descriptor,
    store: &BlobStore,
    progress: &dyn Progress,
) -> Result<Option<BlobReport>> {
    match store.verify(&blob.digest)? {
        BlobState::Intact { size } if size == blob.size => Ok(Some(BlobReport {
            digest: blob.digest.clone(),
            size: blob.size,
            outcome: Outcome::Present,
            transferred: 0,
        })),
        BlobState::Corrupt { moved_to } => {
            progress.retry(
                &blob.digest,
                &format!(
                    "the stored copy does not match its digest (moved to `{}`); fetching it again",
                    moved_to.display()
                ),
            );
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// `GET` the blob from byte `offset` on (a `Range` request past 0). The answer is a `206`
/// starting at `offset`, or a `200` with the whole blob; anything else is an error.
fn get_blob_from(repo: &Repo<'_>, url: &Url, blob: &Descriptor, offset: u64) -> Result<Response> {
    let range = |r: RequestBuilder| {
        if offset > 0 {
            r.header(RANGE, format!("bytes={offset}-"))
        } else {
            r
        }
    };
    let resp = repo.send(Method::GET, url, &range, true)?;
    match resp.status() {
        StatusCode::PARTIAL_CONTENT if offset > 0 && starts_at(&resp, offset) => Ok(resp),
        StatusCode::OK => Ok(resp),
        StatusCode::NOT_FOUND => Err(Error::NotFound {
            registry: repo.registry.clone(),
            reference: format!("{}@{}", repo.repository, blob.digest),
        }),
        _ => Err(repo.unexpected(&Method::GET, url, resp)),
    }
}

/// Move a complete blob into the store once it matches its digest; a mismatch names `origin`.
fn commit_verified(
    mut writer: BlobWriter,
    store: &BlobStore,
    blob: &Descriptor,
    origin: String,
) -> Result<BlobInfo> {
    writer.flush().map_err(|e| store_error(store, e))?;
    writer.commit(Some(&blob.digest)).map_err(|e| match e {
        oci::Error::DigestMismatch {
            expected, actual, ..
        } => Error::Digest {
            origin,
            expected,
            actual,
        },
        other => other.into(),
    })
}

/// Whether a `206` answer's `Content-Range: bytes START-END/TOTAL` starts at `offset`.
fn starts_at(resp: &Response, offset: u64) -> bool {
    resp.headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|start| start.parse::<u64>().ok())
        == Some(offset)
}

fn store_error(store: &BlobStore, source: std::io::Error) -> Error {
    Error::Io {
        path: store.root().join("tmp"),
        source,
    }
}

/// Copy `from` into `to`, calling `counted` with each chunk's size. A read error ends the copy
/// and is returned (what was written stays written, to resume from); a write error is the
/// outer `Err`: the store failed (a full disk), not the network, and retrying cannot help.
fn copy_counted(
    mut from: impl Read,
    to: &mut impl Write,
    mut counted: impl FnMut(u64),
) -> std::io::Result<std::io::Result<()>> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        to.write_all(&buf[..n])?;
        counted(n as u64);
    }
}
