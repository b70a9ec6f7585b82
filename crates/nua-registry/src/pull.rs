//! Pull: resolve the manifest for a platform, then download the config and layers
//! concurrently into the blob store.
//!
//! A blob already in the store is not downloaded. Others stream into a store writer (a
//! temporary file); when the connection breaks, or the body ends early, the download goes on
//! from the bytes already received with `Range: bytes=N-` (a registry that answers `200`
//! instead of `206` is read again from the start). The writer checks the digest before the
//! blob becomes visible, and the size is checked against the descriptor, so a killed or
//! corrupt download never leaves anything under `blobs/`.

use std::io::{Read, Write};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode, Url};

use super::client::{Client, Repo};
use super::error::{Error, Result};
use super::manifest::{self, Resolved};
use super::reference::Reference;
use super::{parallel, sources, BlobReport, Outcome, Progress};
use nua_oci::http::HttpKind;
use nua_oci::image::Platform;
use nua_oci::{self as oci, BlobInfo, BlobStore, BlobWriter, Descriptor, ImageConfig, ImageRef};

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
    /// The config first, then the layers.
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
    let wanted: Vec<&Descriptor> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .collect();
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

/// Resumes of one blob, progress or not, before giving up.
const MAX_RESUMES: u32 = 64;

/// Download one blob into the store, resuming with `Range` when the transfer breaks.
fn download(
    repo: &Repo<'_>,
    blob: &Descriptor,
    store: &BlobStore,
    progress: &dyn Progress,
) -> Result<BlobReport> {
    let origin = format!("{}/{}", repo.registry, repo.repository);
    if let Some(report) = already_stored(blob, store)? {
        progress.finish(&report);
        return Ok(report);
    }
    progress.start(&blob.digest, blob.size);
    let url = repo.url(&format!("blobs/{}", blob.digest));
    let retry = repo.retry_policy();
    let mut writer = store.writer()?;
    let mut transferred = 0;
    let mut breaks = 0;
    let mut resumes = 0;
    loop {
        let offset = writer.len();
        let resp = get_blob_from(repo, &url, blob, offset)?;
        if offset > 0 && resp.status() == StatusCode::OK {
            // A full body where a range was asked for: start over.
            writer = store.writer()?;
        }
        let remaining = blob.size.saturating_sub(writer.len());
        let copied = copy_counted(resp.take(remaining + 1), &mut writer, |n| {
            transferred += n;
            progress.advance(&blob.digest, n);
        });
        if writer.len() > blob.size {
            return Err(Error::Size {
                origin,
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: writer.len(),
            });
        }
        // Every byte is here, even if the connection broke after the last one: the digest
        // check below decides.
        if writer.len() == blob.size {
            break;
        }
        // The connection broke, or the body ended before `size` bytes: resume. A break that
        // still brought bytes resumes at once and does not count against the retries (a slow,
        // flaky link finishes); only breaks without progress do, with backoff.
        resumes += 1;
        if writer.len() > offset && resumes < MAX_RESUMES {
            breaks = 0;
            progress.retry(&blob.digest, &format!("resuming at byte {}", writer.len()));
            continue;
        }
        if breaks == retry.retries || resumes >= MAX_RESUMES {
            let broken = copied.is_err();
            return Err(gave_up(origin, blob, &url, broken, breaks, writer.len()));
        }
        progress.retry(&blob.digest, &format!("resuming at byte {}", writer.len()));
        std::thread::sleep(retry.wait(breaks, None));
        breaks += 1;
    }
    let info = commit_verified(writer, store, blob, origin)?;
    let report = BlobReport {
        digest: info.digest,
        size: info.size,
        outcome: Outcome::Downloaded,
        transferred,
    };
    progress.finish(&report);
    Ok(report)
}

/// The report of a blob the store already has whole, if it has.
fn already_stored(blob: &Descriptor, store: &BlobStore) -> Result<Option<BlobReport>> {
    if store.contains(&blob.digest) && store.size(&blob.digest)? == blob.size {
        return Ok(Some(BlobReport {
            digest: blob.digest.clone(),
            size: blob.size,
            outcome: Outcome::Present,
            transferred: 0,
        }));
    }
    Ok(None)
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

/// The error of a transfer given up after `breaks` retries, with `received` bytes stored.
fn gave_up(
    origin: String,
    blob: &Descriptor,
    url: &Url,
    broken: bool,
    breaks: u32,
    received: u64,
) -> Error {
    if !broken {
        // Short every time: name the sizes, not a digest of half a blob.
        return Error::Size {
            origin,
            digest: blob.digest.clone(),
            expected: blob.size,
            actual: received,
        };
    }
    Error::Http {
        method: "GET".into(),
        url: url.to_string(),
        kind: HttpKind::Connect,
        retries: breaks,
        detail: Some(format!("the body broke at byte {received}")),
        source: None,
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

/// Copy `from` into `to`, calling `counted` with each chunk's size; an error of either side
/// ends the copy (what was written stays written).
fn copy_counted(
    mut from: impl Read,
    to: &mut impl Write,
    mut counted: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
        counted(n as u64);
    }
}
