//! What to send an engine to load an image: a `docker save`-style archive (`manifest.json`,
//! the config, the layers), written as a stream, that may leave out the layers the engine
//! already has.
//!
//! Docker's loader looks up each layer by its ChainID before it opens the layer's file, and
//! only reads the files of layers it lacks: an archive whose `manifest.json` lists every
//! layer but which carries only the missing ones loads the same image. An engine that works
//! otherwise (containerd's image store) refuses such an archive, and the caller then sends
//! the whole image.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;

use super::Error;
use nua_oci::{Descriptor, Digest, ImageArchive, ImageInfo};

/// ChainIDs of a stack of layers, bottom first (image spec, "Layer ChainID"):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(L0…Ln) = sha256(ChainID(L0…Ln-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(below) => Digest::of(format!("{below} {diff_id}").as_bytes()).to_string(),
        };
        chain.push(next);
    }
    chain
}

/// Open an image tarball or layout folder and check it whole (manifest, config, and every
/// layer's digest and size), before an engine sees any of it: an archive that lies about one
/// layer is not to be trusted with the others, even those the engine will not be sent.
pub fn open_image(path: &Path) -> Result<(ImageArchive, ImageInfo), Error> {
    let (archive, info) = describe_image(path)?;
    verify_image(&archive, path)?;
    Ok((archive, info))
}

/// Open an image and read its manifest and config, not its layers: check those with
/// [`verify_image`] before sending anything.
pub fn describe_image(path: &Path) -> Result<(ImageArchive, ImageInfo), Error> {
    let not_an_image = |source| Error::NotAnImage {
        path: path.to_path_buf(),
        source,
    };
    let archive = ImageArchive::open(path).map_err(not_an_image)?;
    let info = archive.describe().map_err(not_an_image)?;
    Ok((archive, info))
}

/// Check the digest and size of every layer of an opened image.
pub fn verify_image(archive: &ImageArchive, path: &Path) -> Result<(), Error> {
    archive
        .image(nua_oci::ReadOptions::default())
        .map(|_| ())
        .map_err(|source| Error::NotAnImage {
            path: path.to_path_buf(),
            source,
        })
}

/// A file of an image, read from its archive without an engine: the topmost layer that
/// holds the file, or hides it with a whiteout, decides. `None` when the image has no such
/// regular file; an error when it is larger than `limit`.
pub fn read_image_file(
    archive: &ImageArchive,
    info: &ImageInfo,
    path: &str,
    limit: u64,
) -> nua_oci::Result<Option<Vec<u8>>> {
    let wanted = path.trim_start_matches('/');
    let (dir, name) = wanted.rsplit_once('/').unwrap_or(("", wanted));
    let whiteout = format!("{dir}/.wh.{name}");
    let at = |e: io::Error| nua_oci::Error::Io {
        path: archive_path(info, path),
        source: e,
    };
    for layer in info.layers.iter().rev() {
        let blob = archive.open_descriptor(layer)?;
        let reader: Box<dyn Read> = match layer.media_type.as_str() {
            m if m.ends_with("gzip") => Box::new(flate2::read::MultiGzDecoder::new(blob)),
            m if m.ends_with("zstd") => {
                Box::new(zstd::stream::read::Decoder::new(blob).map_err(at)?)
            }
            _ => blob,
        };
        let mut hidden = false;
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().map_err(at)? {
            let mut entry = entry.map_err(at)?;
            let raw = entry.path_bytes();
            let entry_path = String::from_utf8_lossy(&raw);
            let entry_path = entry_path.trim_start_matches("./").trim_start_matches('/');
            if entry_path == wanted && entry.header().entry_type().is_file() {
                if entry.size() > limit {
                    return Err(at(io::Error::other(format!(
                        "`{path}` is larger than {limit} bytes"
                    ))));
                }
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(at)?;
                return Ok(Some(content));
            }
            let opaque = entry_path
                .strip_suffix(".wh..wh..opq")
                .is_some_and(|d| wanted.starts_with(d));
            hidden |= entry_path == whiteout.trim_start_matches('/') || opaque;
        }
        if hidden {
            return Ok(None);
        }
    }
    Ok(None)
}

fn archive_path(info: &ImageInfo, path: &str) -> std::path::PathBuf {
    format!("{}:{path}", info.config_descriptor.digest).into()
}

/// The DiffIDs of an image's layers, bottom first, as engines write them.
pub fn diff_ids(info: &ImageInfo) -> Vec<String> {
    info.config
        .rootfs
        .diff_ids
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// Which layers of an image go into the archive.
#[derive(Debug, Clone)]
pub struct ArchivePlan {
    pub info: ImageInfo,
    /// The names the image gets (`RepoTags`).
    pub tags: Vec<String>,
    /// Per layer, bottom first: whether its blob is sent.
    pub send: Vec<bool>,
}

impl ArchivePlan {
    /// Send the layers whose ChainID is not in `present`.
    pub fn new(info: ImageInfo, tags: Vec<String>, present: &HashSet<String>) -> ArchivePlan {
        let send = chain_ids(&diff_ids(&info))
            .iter()
            .map(|chain| !present.contains(chain))
            .collect();
        ArchivePlan { info, tags, send }
    }

    /// The layers whose blobs are sent.
    pub fn layers_sent(&self) -> impl Iterator<Item = &Descriptor> {
        self.info
            .layers
            .iter()
            .zip(&self.send)
            .filter_map(|(layer, send)| send.then_some(layer))
    }

    /// Docker's `manifest.json`: one image, every layer listed whether sent or not.
    fn manifest_json(&self) -> Vec<u8> {
        let manifest = serde_json::json!([{
            "Config": self.info.config_descriptor.digest.blob_path(),
            "RepoTags": self.tags,
            "Layers": self
                .info
                .layers
                .iter()
                .map(|l| l.digest.blob_path())
                .collect::<Vec<_>>(),
        }]);
        serde_json::to_vec(&manifest).expect("JSON always serializes")
    }
}

/// Write the archive of `plan` to `out`, reading blobs from `archive` (verified beforehand by
/// the caller). Returns the bytes written.
pub fn thin_archive(
    archive: &ImageArchive,
    plan: &ArchivePlan,
    out: impl Write,
) -> nua_oci::Result<u64> {
    let mut counted = Counted { inner: out, n: 0 };
    let io = |e: io::Error| nua_oci::Error::Io {
        path: "image archive stream".into(),
        source: e,
    };
    {
        let mut tar = tar::Builder::new(&mut counted);
        let mut append = |path: &str, size: u64, data: &mut dyn Read| -> io::Result<()> {
            let mut header = tar::Header::new_ustar();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, data)
        };
        let manifest = plan.manifest_json();
        append("manifest.json", manifest.len() as u64, &mut &manifest[..]).map_err(io)?;
        let config = &plan.info.config_descriptor;
        let bytes = archive.blob(config)?;
        append(
            &config.digest.blob_path(),
            bytes.len() as u64,
            &mut &bytes[..],
        )
        .map_err(io)?;
        // An image may hold one layer twice (the same blob at two places of the stack);
        // `manifest.json` names it twice, the archive holds it once.
        let mut written = HashSet::new();
        for layer in plan.layers_sent() {
            if !written.insert(&layer.digest) {
                continue;
            }
            let mut reader = archive.open_descriptor(layer)?.take(layer.size);
            append(&layer.digest.blob_path(), layer.size, &mut reader).map_err(io)?;
        }
        tar.finish().map_err(io)?;
    }
    // What is still buffered (the end of the archive) must reach the engine, and an error
    // in sending it must not be lost in a drop.
    counted.flush().map_err(io)?;
    Ok(counted.n)
}

struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaaa".to_owned();
        let b = "sha256:bbbb".to_owned();
        let chain = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], Digest::of(b"sha256:aaaa sha256:bbbb").to_string());
        // A layer's ChainID depends on what lies below it.
        assert_ne!(chain_ids(std::slice::from_ref(&b))[0], chain[1]);
    }
}
