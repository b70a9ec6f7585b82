//! Push: send the blobs a registry lacks, then the manifest.
//!
//! For each blob (distribution spec, "Pushing blobs"): `HEAD` first, nothing sent when the
//! registry has it; else a cross-repository mount (`POST …/blobs/uploads/?mount=D&from=R`)
//! from a repository of the same registry known to hold it (see `sources`); else an upload:
//! one `PUT …?digest=D` for a blob up to `monolithic_max`, or `PATCH` chunks with
//! `Content-Range` and a closing `PUT`. When a chunk breaks, the upload's status (`GET` of its
//! URL, `Range: 0-N`) says where to continue. The manifest is `PUT` last, by tag and, when the
//! reference has one, by digest: "the manifest MUST be uploaded after its blobs".
//!
//! A manifest may list one blob many times (the same layer repeated, or a layer equal to the
//! config): each distinct digest is checked, mounted or uploaded once per push (issue 13),
//! and reported once, where it first appears; the manifest itself is sent as it is.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::client::{Client, Repo};
use super::error::{Error, Result};
use super::reference::Reference;
use super::{distinct, parallel, sources, BlobReport, Outcome, Progress};
use nua_oci::{self as oci, BlobStore, Descriptor, Digest, ImageArchive, ImageRef};

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Blobs sent at once.
    pub concurrency: usize,
    /// Blobs up to this size go in one `PUT`; larger ones in `PATCH` chunks.
    pub monolithic_max: u64,
    /// Size of a `PATCH` chunk.
    pub chunk_size: u64,
    /// Repositories of the target registry to try mounting blobs from, besides those the
    /// store remembers.
    pub mount_from: Vec<String>,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            concurrency: 4,
            monolithic_max: 32 << 20,
            chunk_size: 32 << 20,
            mount_from: Vec::new(),
        }
    }
}

/// A pushed image.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest digest the registry stored.
    pub digest: Digest,
    /// The config first, then the layers, each distinct digest once, where it first appears.
    pub blobs: Vec<BlobReport>,
}

impl Pushed {
    /// Bytes of blobs sent over the network.
    pub fn uploaded(&self) -> u64 {
        self.blobs.iter().map(|b| b.transferred).sum()
    }
}

/// Copy the blobs of an image tarball or layout into `store`, each verified as it is copied
/// (one read of the file; a blob the store has already is not read at all).
pub fn import_archive(store: &BlobStore, path: &Path) -> Result<ImageRef> {
    let archive = ImageArchive::open(path)?;
    let info = archive.describe()?;
    let manifest_bytes = archive.blob(&info.manifest_descriptor)?;
    store.put_bytes(&manifest_bytes)?;
    for blob in std::iter::once(&info.config_descriptor).chain(&info.layers) {
        if store.contains(&blob.digest) {
            continue;
        }
        let mut writer = store.writer()?;
        let mut reader = archive.open_descriptor(blob)?;
        std::io::copy(&mut reader, &mut writer).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        if writer.len() != blob.size {
            return Err(Error::Size {
                origin: path.display().to_string(),
                digest: blob.digest.clone(),
                expected: blob.size,
                actual: writer.len(),
            });
        }
        writer.commit(Some(&blob.digest))?;
    }
    let platform = oci::image::Platform {
        architecture: info.config.architecture.clone(),
        os: info.config.os.clone(),
        variant: None,
    };
    Ok(ImageRef {
        manifest: info.manifest_descriptor,
        config: info.config_descriptor,
        layers: info.layers,
        platform,
    })
}

/// Push `image` (its blobs in `store`) to `reference`.
pub fn push(
    client: &Client,
    store: &BlobStore,
    image: &ImageRef,
    reference: &Reference,
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<Pushed> {
    let blobs = distinct(&image.config, &image.layers, reference)?;
    let mounts: Vec<Vec<String>> = blobs
        .iter()
        .map(|b| {
            let mut repos =
                sources::repositories(store, &reference.registry, &b.digest, &reference.repository);
            repos.extend(
                options
                    .mount_from
                    .iter()
                    .filter(|r| **r != reference.repository)
                    .cloned(),
            );
            repos.dedup();
            repos
        })
        .collect();
    let mut repo = client.repo(reference, true)?;
    for from in mounts.iter().flatten().collect::<BTreeSet<_>>() {
        repo = repo.with_pull_scope(from);
    }
    let indexed: Vec<(&Descriptor, &Vec<String>)> = blobs.iter().copied().zip(&mounts).collect();
    let reports = parallel(&indexed, options.concurrency, |(blob, from)| {
        push_blob(&repo, store, blob, from, options, progress)
    })?;
    let manifest = store.read(&image.manifest.digest)?;
    let mut targets = Vec::new();
    if reference.tag.is_some() || reference.digest.is_none() {
        targets.push(reference.tag.clone().unwrap_or_else(|| "latest".into()));
    }
    if let Some(digest) = &reference.digest {
        if digest != &image.manifest.digest {
            return Err(Error::Manifest {
                reference: reference.to_string(),
                reason: format!("the image's manifest is `{}`", image.manifest.digest),
            });
        }
        targets.push(digest.to_string());
    }
    for target in targets {
        put_manifest(&repo, &image.manifest, &manifest, &target)?;
    }
    sources::record(
        store,
        &reference.registry,
        &reference.repository,
        blobs.iter().map(|b| &b.digest),
    );
    Ok(Pushed {
        digest: image.manifest.digest.clone(),
        blobs: reports,
    })
}

fn put_manifest(repo: &Repo<'_>, d: &Descriptor, bytes: &[u8], target: &str) -> Result<()> {
    let url = repo.url(&format!("manifests/{target}"));
    let resp = repo.send(
        Method::PUT,
        &url,
        &|r| r.header(CONTENT_TYPE, &d.media_type).body(bytes.to_vec()),
        true,
    )?;
    if resp.status() != StatusCode::CREATED {
        return Err(repo.unexpected(&Method::PUT, &url, resp));
    }
    let stored = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok());
    match stored {
        Some(stored) if stored != d.digest => Err(repo.protocol(format!(
            "it stored the manifest as `{stored}`, not `{}`",
            d.digest
        ))),
        _ => Ok(()),
    }
}

fn push_blob(
    repo: &Repo<'_>,
    store: &BlobStore,
    blob: &Descriptor,
    mount_from: &[String],
    options: &PushOptions,
    progress: &dyn Progress,
) -> Result<BlobReport> {
    let report = |outcome, transferred| {
        let r = BlobReport {
            digest: blob.digest.clone(),
            size: blob.size,
            outcome,
            transferred,
        };
        progress.finish(&r);
        r
    };
    let url = repo.url(&format!("blobs/{}", blob.digest));
    let resp = repo.send(Method::HEAD, &url, &|r| r, true)?;
    if resp.status().is_success() {
        return Ok(report(Outcome::Present, 0));
    }
    if resp.status() != StatusCode::NOT_FOUND {
        return Err(repo.unexpected(&Method::HEAD, &url, resp));
    }
    let mut session = None;
    // One attempt: a refused mount opens an upload session, which the upload then uses.
    if let Some(from) = mount_from.first() {
        let mut url = repo.url("blobs/uploads/");
        url.query_pairs_mut()
            .append_pair("mount", &blob.digest.to_string())
            .append_pair("from", from);
        let resp = repo.send(Method::POST, &url, &|r| r.header(CONTENT_LENGTH, 0), true)?;
        match resp.status() {
            StatusCode::CREATED => return Ok(report(Outcome::Mounted, 0)),
            // Not mountable: the registry opened an upload session instead.
            StatusCode::ACCEPTED => session = Some(location(repo, &resp)?),
            _ => return Err(repo.unexpected(&Method::POST, &url, resp)),
        }
    }
    progress.start(&blob.digest, blob.size);
    let file = Arc::new(store.open_blob(&blob.digest)?);
    let sent = Arc::new(AtomicU64::new(0));
    let upload = Upload {
        repo,
        blob,
        file,
        sent: sent.clone(),
        options,
        progress,
    };
    upload.run(session)?;
    Ok(report(Outcome::Uploaded, sent.load(Ordering::Relaxed)))
}

/// The URL of an upload session from an answer's `Location`.
fn location(repo: &Repo<'_>, resp: &reqwest::blocking::Response) -> Result<Url> {
    let value = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| repo.protocol("an upload answer without `Location`".into()))?;
    repo.resolve(value)
}

/// One blob's upload, from its session URL to the closing `PUT`.
struct Upload<'a> {
    repo: &'a Repo<'a>,
    blob: &'a Descriptor,
    file: Arc<File>,
    sent: Arc<AtomicU64>,
    options: &'a PushOptions,
    progress: &'a dyn Progress,
}

mod upload;

/// A byte range of a blob file as a request body, counting what is read.
struct FileRange {
    file: Arc<File>,
    pos: u64,
    end: u64,
    sent: Arc<AtomicU64>,
}

impl Read for FileRange {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(content: &[u8], size: u64) -> Descriptor {
        Descriptor::new("application/octet-stream", Digest::of(content), size)
    }

    fn image(config: Descriptor, layers: Vec<Descriptor>) -> ImageRef {
        ImageRef {
            manifest: blob(b"manifest", 8),
            config,
            layers,
            platform: oci::image::Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                variant: None,
            },
        }
    }

    #[test]
    fn a_repeated_blob_is_pushed_once_where_it_first_appears() {
        let (a, b) = (blob(b"a", 1), blob(b"b", 1));
        let mut layers = vec![a.clone(); 50];
        layers.insert(10, b.clone());
        // A layer equal to the config counts as the config.
        layers.push(blob(b"config", 6));
        let image = image(blob(b"config", 6), layers);
        let reference = Reference::parse("r.example/app:1").unwrap();
        let digests: Vec<&Digest> = distinct(&image.config, &image.layers, &reference)
            .unwrap()
            .into_iter()
            .map(|d| &d.digest)
            .collect();
        assert_eq!(digests, [&image.config.digest, &a.digest, &b.digest]);
    }

    #[test]
    fn one_digest_with_two_sizes_is_refused_naming_it() {
        let image = image(blob(b"config", 6), vec![blob(b"a", 1), blob(b"a", 2)]);
        let reference = Reference::parse("r.example/app:1").unwrap();
        let err = distinct(&image.config, &image.layers, &reference)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&Digest::of(b"a").to_string()), "{err}");
        assert!(err.contains("sizes 1 and 2"), "{err}");
    }
}
