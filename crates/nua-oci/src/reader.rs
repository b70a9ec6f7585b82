//! Reading an image back: an OCI layout directory, or a tarball (hybrid, plain `oci-archive`,
//! or `docker save` with only `manifest.json`).
//!
//! Every blob is checked against its digest and size while read; layer DiffIDs are checked by
//! decompressing when asked. A tarball is indexed once (entry offsets) and blobs are read in
//! place, so nothing is extracted and memory stays small; entries whose path escapes the
//! archive root are refused. JSON blobs larger than [`MAX_JSON`] are refused.

mod bounded;
mod source;

use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::de::DeserializeOwned;

use self::source::Source;
use super::digest::{hash_reader, Digest, Sha256Writer};
use super::error::{Error, IoContext, Result};
use super::image::{json, media_type, Descriptor, ImageConfig, Index, Manifest};
use super::layout::{HashingReader, ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME};

/// Largest manifest, index or config accepted (hostile input is normal input).
pub const MAX_JSON: u64 = 4 * 1024 * 1024;

/// What to check beyond digests and sizes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Decompress every layer and compare its digest with the config's DiffID.
    pub verify_diff_ids: bool,
}

/// An image read back and verified.
#[derive(Debug, Clone)]
pub struct ImageInfo {
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub config_descriptor: Descriptor,
    pub config: ImageConfig,
    pub layers: Vec<Descriptor>,
    /// Names found in `index.json` annotations or `RepoTags`.
    pub names: Vec<String>,
}

/// An opened layout directory or image tarball.
pub struct ImageArchive {
    source: Source,
}

impl ImageArchive {
    /// Open a layout directory or an (uncompressed) image tarball.
    pub fn open(path: &Path) -> Result<ImageArchive> {
        Ok(ImageArchive {
            source: Source::from_path(path)?,
        })
    }

    /// Read a blob of the layout by digest, checking digest and size as it is read.
    pub fn blob(&self, descriptor: &Descriptor) -> Result<Vec<u8>> {
        self.json_bytes(&descriptor.digest.blob_path(), Some(descriptor))
    }

    /// Open a layer (or any blob) for streaming, unverified: check with [`Self::image`].
    /// Reads stop at the blob's size in the archive or on disk; prefer
    /// [`Self::open_descriptor`], which also checks that size against the descriptor.
    pub fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        self.source.open(&digest.blob_path(), None)
    }

    /// Open a blob the way its descriptor says (Docker-save layers have paths of their own),
    /// for streaming, unverified but bounded: a blob that is not a regular file, or whose
    /// size differs from the descriptor's, is refused before it is read, and a read past
    /// that size fails ([`Error::Oversized`]).
    pub fn open_descriptor(&self, blob: &Descriptor) -> Result<Box<dyn Read + '_>> {
        self.source.open(&self.layer_path(blob), Some(blob.size))
    }

    /// Find the image, read its manifest and config, verify every blob.
    ///
    /// Layers are hashed on as many threads as there are cores (at most 4): hashing is what
    /// a load or push of a local image waits for. Of several bad layers, the lowest is named.
    pub fn image(&self, opts: ReadOptions) -> Result<ImageInfo> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let info = self.describe()?;
        let jobs: Vec<_> = info
            .layers
            .iter()
            .zip(&info.config.rootfs.diff_ids)
            .collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(jobs.len().max(1));
        let next = AtomicUsize::new(0);
        let verify = || {
            let mut failed = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((layer, diff_id)) = jobs.get(i) else {
                    return failed;
                };
                let path = self.layer_path(layer);
                let diff_id = opts.verify_diff_ids.then_some(*diff_id);
                if let Err(err) = self.verify_layer(&path, layer, diff_id) {
                    // No need to hash the layers above a bad one.
                    next.fetch_add(jobs.len(), Ordering::Relaxed);
                    failed = failed.or(Some((i, err)));
                }
            }
        };
        let failures: Vec<(usize, Error)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (1..threads).map(|_| scope.spawn(verify)).collect();
            let mut failures: Vec<_> = verify().into_iter().collect();
            for worker in workers {
                failures.extend(worker.join().expect("hashing a layer does not panic"));
            }
            failures
        });
        match failures.into_iter().min_by_key(|(i, _)| *i) {
            Some((_, err)) => Err(err),
            None => Ok(info),
        }
    }

    /// Find the image and read its manifest and config, without reading the layers: for a
    /// caller that verifies each layer as it copies it.
    pub fn describe(&self) -> Result<ImageInfo> {
        let info = if self.source.exists("index.json") {
            self.read_index()?
        } else if self.source.exists("manifest.json") {
            self.read_docker_manifest()?
        } else {
            return Err(self.invalid("neither `index.json` nor `manifest.json` found".into()));
        };
        if info.config.rootfs.diff_ids.len() != info.layers.len() {
            return Err(self.invalid(format!(
                "the config lists {} DiffIDs for {} layers",
                info.config.rootfs.diff_ids.len(),
                info.layers.len()
            )));
        }
        Ok(info)
    }

    fn layer_path(&self, layer: &Descriptor) -> String {
        let path = layer.digest.blob_path();
        if self.source.exists(&path) {
            return path;
        }
        // Docker-save layers have their own paths; `read_docker_manifest` keeps them in an
        // annotation of the descriptor.
        layer.annotations.get(DOCKER_PATH).cloned().unwrap_or(path)
    }

    fn read_index(&self) -> Result<ImageInfo> {
        let index: Index = self.parse("index.json", None)?;
        let chosen = index.manifests.first().cloned();
        let mut manifest_descriptor =
            chosen.ok_or_else(|| self.invalid("`index.json` lists no manifest".into()))?;
        // The names of the image read (one entry per name), not those of other images the
        // index may list: they would be given to this one.
        let names = index
            .manifests
            .iter()
            .filter(|d| d.digest == manifest_descriptor.digest)
            .filter_map(|d| {
                d.annotations
                    .get(ANNOTATION_CONTAINERD_NAME)
                    .or(d.annotations.get(ANNOTATION_REF_NAME))
                    .cloned()
            })
            .collect();
        // A multi-platform index: pick linux/amd64, else the first manifest.
        if manifest_descriptor.media_type == media_type::INDEX {
            let nested: Index = self.parse(
                &manifest_descriptor.digest.blob_path(),
                Some(&manifest_descriptor),
            )?;
            let pick = nested.manifests.iter().find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
            });
            manifest_descriptor = pick.or(nested.manifests.first()).cloned().ok_or_else(|| {
                self.invalid(format!(
                    "nested index {} lists no manifest",
                    manifest_descriptor.digest
                ))
            })?;
        }
        let manifest: Manifest = self.parse(
            &manifest_descriptor.digest.blob_path(),
            Some(&manifest_descriptor),
        )?;
        let config: ImageConfig =
            self.parse(&manifest.config.digest.blob_path(), Some(&manifest.config))?;
        Ok(ImageInfo {
            config_descriptor: manifest.config.clone(),
            layers: manifest.layers.clone(),
            manifest_descriptor,
            manifest,
            config,
            names,
        })
    }

    fn read_docker_manifest(&self) -> Result<ImageInfo> {
        let entries: Vec<source::DockerManifest> = self.parse("manifest.json", None)?;
        let entry = entries
            .into_iter()
            .next()
            .ok_or_else(|| self.invalid("`manifest.json` is empty".into()))?;
        let config_bytes = self.json_bytes(&entry.config, None)?;
        let config_digest = Digest::of(&config_bytes);
        check_name(&entry.config, &config_digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
                what: format!("`{}`", entry.config),
                source,
            })?;
        let mut layers = Vec::new();
        for path in &entry.layers {
            let mut reader = self.source.open(path, None)?;
            let mut magic = [0u8; 4];
            let n = read_up_to(&mut reader, &mut magic).at(self.source.path())?;
            let (digest, size) = hash_reader((&magic[..n]).chain(reader)).at(self.source.path())?;
            check_name(path, &digest)?;
            let media = match &magic[..n] {
                [0x1f, 0x8b, ..] => media_type::LAYER_GZIP,
                [0x28, 0xb5, 0x2f, 0xfd] => media_type::LAYER_ZSTD,
                _ => media_type::LAYER_TAR,
            };
            let mut d = Descriptor::new(media, digest, size);
            d.annotations.insert(DOCKER_PATH.into(), path.clone());
            layers.push(d);
        }
        let config_descriptor =
            Descriptor::new(media_type::CONFIG, config_digest, config_bytes.len() as u64);
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::MANIFEST.into()),
            config: config_descriptor.clone(),
            layers: layers
                .iter()
                .map(|l| Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size))
                .collect(),
            annotations: Default::default(),
        };
        let bytes = json("a manifest built from `manifest.json`", &manifest)?;
        Ok(ImageInfo {
            manifest_descriptor: Descriptor::new(
                media_type::MANIFEST,
                Digest::of(&bytes),
                bytes.len() as u64,
            ),
            manifest,
            config_descriptor,
            config,
            layers,
            names: entry.repo_tags.unwrap_or_default(),
        })
    }

    /// Hash (and optionally decompress and hash) one layer in a single pass.
    fn verify_layer(&self, path: &str, layer: &Descriptor, diff_id: Option<&Digest>) -> Result<()> {
        let reader = self.source.open(path, Some(layer.size))?;
        let mut hashed = HashingReader::new(reader);
        let uncompressed = match diff_id {
            None => {
                io::copy(&mut hashed, &mut io::sink()).at(self.source.path())?;
                None
            }
            Some(_) => {
                let mut out = Sha256Writer::new(io::sink());
                let result = match layer.media_type.as_str() {
                    m if m.ends_with("+zstd") || m.ends_with(".zstd") => {
                        let mut decoder =
                            zstd::stream::read::Decoder::new(&mut hashed).at(self.source.path())?;
                        io::copy(&mut decoder, &mut out)
                    }
                    m if m.ends_with("gzip") => io::copy(
                        &mut flate2::read::MultiGzDecoder::new(BufReader::new(&mut hashed)),
                        &mut out,
                    ),
                    _ => io::copy(&mut hashed, &mut out),
                };
                result.during(|| format!("decompressing layer `{path}`"))?;
                // Whatever the decompressor left unread still belongs to the blob.
                io::copy(&mut hashed, &mut io::sink()).at(self.source.path())?;
                Some(out.finish().0)
            }
        };
        let (actual, size) = hashed.finish_with_size();
        let blob = format!("layer `{path}` in `{}`", self.source.path().display());
        if size != layer.size {
            return Err(Error::SizeMismatch {
                blob,
                expected: layer.size,
                actual: size,
            });
        }
        if actual != layer.digest {
            return Err(Error::DigestMismatch {
                blob,
                expected: layer.digest.clone(),
                actual,
            });
        }
        if let (Some(expected), Some(actual)) = (diff_id, uncompressed) {
            if &actual != expected {
                return Err(Error::DigestMismatch {
                    blob: format!("uncompressed {blob} (DiffID)"),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Read a JSON file of the archive (bounded), checking it against `descriptor` if given.
    fn json_bytes(&self, path: &str, descriptor: Option<&Descriptor>) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.source
            .open(path, descriptor.map(|d| d.size))?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .at(self.source.path())?;
        if bytes.len() as u64 > MAX_JSON {
            return Err(self.invalid(format!("`{path}` is larger than {MAX_JSON} bytes")));
        }
        if let Some(d) = descriptor {
            let blob = format!("`{path}` in `{}`", self.source.path().display());
            if bytes.len() as u64 != d.size {
                return Err(Error::SizeMismatch {
                    blob,
                    expected: d.size,
                    actual: bytes.len() as u64,
                });
            }
            let actual = Digest::of(&bytes);
            if actual != d.digest {
                return Err(Error::DigestMismatch {
                    blob,
                    expected: d.digest.clone(),
                    actual,
                });
            }
        }
        Ok(bytes)
    }

    fn parse<T: DeserializeOwned>(&self, path: &str, descriptor: Option<&Descriptor>) -> Result<T> {
        let bytes = self.json_bytes(path, descriptor)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("`{path}` in `{}`", self.source.path().display()),
            source,
        })
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidImage {
            location: self.source.path().to_path_buf(),
            reason,
        }
    }
}

/// Annotation key (ours, internal) keeping the archive path of a docker-save layer.
const DOCKER_PATH: &str = "dev.nua.docker-save.path";

/// A blob named by its digest (`blobs/sha256/<hex>`, `<hex>.json`) must hash to that name.
fn check_name(path: &str, actual: &Digest) -> Result<()> {
    let stem = path.rsplit('/').next().unwrap_or(path);
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    match Digest::from_hex(stem) {
        Ok(expected) if &expected != actual => Err(Error::DigestMismatch {
            blob: format!("`{path}`"),
            expected,
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..])? {
            0 => break,
            m => n += m,
        }
    }
    Ok(n)
}
