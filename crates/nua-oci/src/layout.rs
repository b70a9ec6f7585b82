//! Writing an image as an OCI image layout: a directory, or a hybrid tarball that is both an
//! OCI layout and Docker's `docker save` format.
//!
//! The tarball carries `oci-layout`, `index.json` (read by skopeo, podman, containerd) and
//! `manifest.json` (read by `docker load`, which since 20.10 accepts gzip layers referenced
//! from it), with one copy of each blob under `blobs/sha256/`. Entries and headers are
//! deterministic; the file is written next to its destination and renamed at the end.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use serde::Serialize;

use super::digest::{Digest, Sha256Writer};
use super::error::{Error, IoContext, Result};
use super::fs::{write_atomic, write_atomic_with, READABLE_BY_ALL};
use super::image::{json, media_type, Descriptor, ImageRef, Index};
use super::name::ImageName;
use super::store::BlobStore;
use super::tar_writer::{Header, Kind, TarWriter};

/// `oci-layout`: "This JSON object serves as a marker for the base of an Open Container
/// Image Layout" (image-layout.md).
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Annotation containerd uses for the full image name on import.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Annotation the OCI spec defines for the reference (tag) of a manifest in an index.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One entry of Docker's `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// `index.json` for `image`, with one manifest descriptor per name (or one unnamed).
pub fn index_for(image: &ImageRef, names: &[ImageName]) -> Index {
    let described = |name: Option<&ImageName>| {
        let mut d = image.manifest.clone();
        d.platform = Some(image.platform.clone());
        if let Some(name) = name {
            d.annotations
                .insert(ANNOTATION_CONTAINERD_NAME.into(), name.full());
            d.annotations
                .insert(ANNOTATION_REF_NAME.into(), name.tag().into());
        }
        d
    };
    let manifests = if names.is_empty() {
        vec![described(None)]
    } else {
        names.iter().map(|n| described(Some(n))).collect()
    };
    Index {
        schema_version: 2,
        media_type: Some(media_type::INDEX.into()),
        manifests,
        annotations: Default::default(),
    }
}

/// The three small metadata files of a hybrid layout: `oci-layout`, `index.json`,
/// `manifest.json`.
fn metadata_files(image: &ImageRef, names: &[ImageName]) -> Result<[(&'static str, Vec<u8>); 3]> {
    let docker = [DockerManifest {
        config: image.config.digest.blob_path(),
        repo_tags: names.iter().map(ImageName::familiar).collect(),
        layers: image.layers.iter().map(|l| l.digest.blob_path()).collect(),
    }];
    Ok([
        ("oci-layout", OCI_LAYOUT.to_vec()),
        ("index.json", json("index.json", &index_for(image, names))?),
        ("manifest.json", json("manifest.json", &docker)?),
    ])
}

/// Every blob of the image once, sorted by digest.
fn blobs(image: &ImageRef) -> Vec<&Descriptor> {
    let mut all: Vec<&Descriptor> = [&image.manifest, &image.config]
        .into_iter()
        .chain(&image.layers)
        .collect();
    all.sort_by(|a, b| a.digest.cmp(&b.digest));
    all.dedup_by(|a, b| a.digest == b.digest);
    all
}

/// Write `image` as an OCI layout directory at `dir` (also carrying `manifest.json`).
///
/// Blobs are hard-linked from the store when possible, copied (and verified) otherwise. A
/// hard-linked blob is only checked for its size: blobs in the store were hashed when they
/// were committed and are never rewritten, so the size catches a truncated or replaced store
/// file without reading every layer back. A stored blob found corrupt is moved aside
/// ([`Error::CorruptBlob`]) so the next pull or build fetches it again. A blob already in `dir` with the right size is kept;
/// one with a wrong size is replaced. `index.json`, `oci-layout` and `manifest.json` are each
/// written to a temporary file in `dir` and renamed into place, so a reader never sees half a
/// file, and a file hard-linked elsewhere is replaced rather than written through.
pub fn write_layout_dir(
    store: &BlobStore,
    image: &ImageRef,
    names: &[ImageName],
    dir: &Path,
) -> Result<()> {
    let blob_dir = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blob_dir).at(&blob_dir)?;
    for blob in blobs(image) {
        let from = store.path(&blob.digest);
        let to = blob_dir.join(blob.digest.hex());
        match fs::symlink_metadata(&to) {
            Ok(md) if md.is_file() && md.len() == blob.size => continue,
            Ok(_) => fs::remove_file(&to).at(&to)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&to),
        }
        if fs::hard_link(&from, &to).is_ok() {
            let size = fs::metadata(&to).at(&to)?.len();
            if size != blob.size {
                // Do not leave a blob in the layout that does not match its descriptor.
                let _ = fs::remove_file(&to);
                let err = Error::SizeMismatch {
                    blob: format!("blob `{}`", from.display()),
                    expected: blob.size,
                    actual: size,
                };
                return Err(store.corrupt_or(&blob.digest, err));
            }
        } else {
            let mut reader = store.open_blob(&blob.digest)?;
            write_atomic_with(&to, READABLE_BY_ALL, |file| {
                let mut out = BufWriter::new(file);
                copy_verified(&mut reader, &mut out, blob)
                    .map_err(|err| store.corrupt_or(&blob.digest, err))?;
                out.flush().at(&to)
            })?;
        }
    }
    for (name, bytes) in metadata_files(image, names)? {
        write_atomic(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// Write `image` as a hybrid OCI layout / `docker save` tarball at `out`.
///
/// The archive appears at `out` only once complete (temporary file + rename); through a
/// symlink, at the file it names. A character device or a pipe (`/dev/null`, `/dev/stdout`
/// on a terminal or a pipe, a shell's `>(…)`) is written into, never replaced; a block device
/// or a socket is refused.
pub fn write_tarball(
    store: &BlobStore,
    image: &ImageRef,
    names: &[ImageName],
    out: &Path,
) -> Result<()> {
    let write = |file: &mut File| write_tarball_to(store, image, names, out, file);
    match Destination::of(out)? {
        Destination::Stream => {
            let mut file = fs::OpenOptions::new().write(true).open(out).at(out)?;
            // What was checked is what was opened.
            if !is_stream(&file.metadata().at(out)?) {
                return Err(not_a_destination(out));
            }
            write(&mut file)
        }
        Destination::File(path) => write_atomic_with(&path, READABLE_BY_ALL, write),
    }
}

/// Where a tarball goes.
enum Destination {
    /// A character device or a pipe, written into.
    Stream,
    /// A file replaced once complete (or made): `out` itself, or the file its links name.
    File(std::path::PathBuf),
}

impl Destination {
    fn of(out: &Path) -> Result<Destination> {
        let Ok(meta) = fs::metadata(out) else {
            return Ok(Destination::File(out.to_owned()));
        };
        if is_stream(&meta) {
            Ok(Destination::Stream)
        } else if meta.is_file() && fs::symlink_metadata(out).at(out)?.is_symlink() {
            Ok(Destination::File(fs::canonicalize(out).at(out)?))
        } else if meta.is_file() || meta.is_dir() {
            // A folder gets the error renaming over it gives.
            Ok(Destination::File(out.to_owned()))
        } else {
            Err(not_a_destination(out))
        }
    }
}

/// A character device or a pipe.
fn is_stream(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_char_device() || meta.file_type().is_fifo()
}

fn not_a_destination(out: &Path) -> Error {
    Error::Io {
        path: out.to_owned(),
        source: io::Error::other(
            "a block device or a socket cannot take an image: give a file, a pipe or /dev/null",
        ),
    }
}

/// The tarball of [`write_tarball`] into `file`; errors name `out`.
fn write_tarball_to(
    store: &BlobStore,
    image: &ImageRef,
    names: &[ImageName],
    out: &Path,
    file: &mut File,
) -> Result<()> {
    let mut tar = TarWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let no_xattrs = Default::default();
    let header = |path: &'static str, kind, size| tarball_header(path, kind, size, &no_xattrs);
    let at = |r: io::Result<()>| r.at(out);
    for (name, bytes) in metadata_files(image, names)? {
        at(tar.header(&header(name, Kind::File, bytes.len() as u64)))?;
        at(tar.data(&mut &bytes[..], bytes.len() as u64))?;
    }
    at(tar.header(&header("blobs/", Kind::Dir, 0)))?;
    at(tar.header(&header("blobs/sha256/", Kind::Dir, 0)))?;
    for blob in blobs(image) {
        let path = blob.digest.blob_path();
        let mut h = header("", Kind::File, blob.size);
        h.path = path.as_bytes();
        at(tar.header(&h))?;
        let mut reader = store.open_blob(&blob.digest)?;
        let mut hashed = HashingReader::new(&mut reader);
        let copied = tar.data(&mut hashed, blob.size);
        let actual = hashed.finish();
        copied
            .map_err(|source| copy_error(blob, store, source))
            .and_then(|()| check(blob, actual, &mut reader, store))
            .map_err(|err| store.corrupt_or(&blob.digest, err))?;
    }
    let writer = tar.finish().at(out)?;
    writer.into_inner().map_err(|e| e.into_error()).at(out)?;
    Ok(())
}

/// The header of an entry of the tarball: fixed owner, mode and time.
fn tarball_header<'a>(
    path: &'a str,
    kind: Kind,
    size: u64,
    xattrs: &'a std::collections::BTreeMap<String, Vec<u8>>,
) -> Header<'a> {
    Header {
        path: path.as_bytes(),
        kind,
        mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
        uid: 0,
        gid: 0,
        mtime: 0,
        size,
        link: b"",
        device: (0, 0),
        xattrs,
    }
}

/// Whether `out` already holds the tarball [`write_tarball`] would write for `image` and
/// `names`: same length and same leading metadata (`index.json` names the manifest digest;
/// blobs are content-addressed and were checked when written). A rebuild that changes
/// nothing then rewrites nothing.
pub fn tarball_is_current(image: &ImageRef, names: &[ImageName], out: &Path) -> bool {
    let no_xattrs = Default::default();
    let head = || -> io::Result<(Vec<u8>, u64)> {
        let mut tar = TarWriter::new(Vec::new());
        for (name, bytes) in metadata_files(image, names).map_err(io::Error::other)? {
            tar.header(&tarball_header(
                name,
                Kind::File,
                bytes.len() as u64,
                &no_xattrs,
            ))?;
            tar.data(&mut &bytes[..], bytes.len() as u64)?;
        }
        tar.header(&tarball_header("blobs/", Kind::Dir, 0, &no_xattrs))?;
        tar.header(&tarball_header("blobs/sha256/", Kind::Dir, 0, &no_xattrs))?;
        let head = tar.finish()?;
        let head_len = head.len() - 1024;
        let mut rest = TarWriter::new(Vec::new());
        let mut data = 0;
        for blob in blobs(image) {
            let path = blob.digest.blob_path();
            rest.header(&tarball_header(&path, Kind::File, blob.size, &no_xattrs))?;
            data += blob.size.div_ceil(512) * 512;
        }
        let length = rest.finish()?.len() as u64 + data + head_len as u64;
        Ok((head[..head_len].to_vec(), length))
    };
    let Ok((head, length)) = head() else {
        return false;
    };
    let same = || -> io::Result<bool> {
        // Never opened for reading unless a file: a pipe would block, or lose what it holds.
        if !fs::metadata(out)?.is_file() {
            return Ok(false);
        }
        let mut file = fs::File::open(out)?;
        if !file.metadata()?.is_file() || file.metadata()?.len() != length {
            return Ok(false);
        }
        let mut found = vec![0; head.len()];
        file.read_exact(&mut found)?;
        Ok(found == head)
    };
    same().unwrap_or(false)
}

fn copy_error(blob: &Descriptor, store: &BlobStore, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::UnexpectedEof {
        Error::ShortRead {
            entry: store.path(&blob.digest).display().to_string(),
            expected: blob.size,
        }
    } else {
        Error::Io {
            path: store.path(&blob.digest),
            source,
        }
    }
}

/// After copying `blob.size` bytes: the blob must have ended there and hash to its digest.
fn check(blob: &Descriptor, actual: Digest, rest: &mut dyn Read, store: &BlobStore) -> Result<()> {
    let path = store.path(&blob.digest);
    let extra = io::copy(&mut rest.take(1), &mut io::sink()).at(&path)?;
    if extra != 0 {
        let size = store.size(&blob.digest)?;
        return Err(Error::SizeMismatch {
            blob: format!("blob `{}`", path.display()),
            expected: blob.size,
            actual: size,
        });
    }
    if actual != blob.digest {
        return Err(Error::DigestMismatch {
            blob: format!("blob `{}`", path.display()),
            expected: blob.digest.clone(),
            actual,
        });
    }
    Ok(())
}

fn copy_verified(reader: &mut File, out: &mut dyn Write, blob: &Descriptor) -> Result<()> {
    let path = format!("blob {}", blob.digest);
    let mut hashed = Sha256Writer::new(out);
    io::copy(reader, &mut hashed).during(|| format!("copying {path}"))?;
    let (actual, size, _) = hashed.finish();
    if size != blob.size {
        return Err(Error::SizeMismatch {
            blob: path,
            expected: blob.size,
            actual: size,
        });
    }
    if actual != blob.digest {
        return Err(Error::DigestMismatch {
            blob: path,
            expected: blob.digest.clone(),
            actual,
        });
    }
    Ok(())
}

/// A reader that hashes what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256Writer<io::Sink>,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256Writer::new(io::sink()),
        }
    }

    pub fn finish(self) -> Digest {
        self.hasher.finish().0
    }

    pub fn finish_with_size(self) -> (Digest, u64) {
        let (digest, size, _) = self.hasher.finish();
        (digest, size)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.write_all(&buf[..n])?;
        Ok(n)
    }
}
