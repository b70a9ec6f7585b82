//! The deterministic streaming layer writer.
//!
//! One pass: tar bytes → sha256 (the DiffID) → compressor → sha256 (the blob digest) → a
//! temporary file of the blob store → rename into place. Nothing buffers a whole file or
//! layer, so memory does not grow with layer size.
//!
//! Same inputs give the same bytes on any machine: entries in the order they are added (the
//! directory walker sorts), mtimes clamped to `source_date_epoch`, no atime/ctime, empty
//! uname/gname, a gzip header with no name, time 0 and OS byte 255, and a compressor whose
//! implementation and level are pinned (flate2 on zlib-rs, zstd from `zstd-sys`).
//!
//! Paths inside a layer are relative (`nua/app/index.html`), directories end with `/`.
//!
//! The same writer also runs with its compressor and blob replaced by a null sink, to get the
//! DiffID a layer would have without writing it ([`tree_diff_id`]): one code path produces the
//! tar bytes, so the two cannot disagree.

mod compress;
mod pgzip;
pub mod stream;
mod tree;

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

pub use self::compress::Compression;
use self::compress::Compressor;
pub use self::tree::host_specific_xattr;
pub use self::tree::{tree_diff_id, TreeOptions};
use super::digest::{Digest, Sha256Writer};
use super::error::{printable, Error, IoContext, Result};
use super::image::Descriptor;
use super::store::{BlobStore, BlobWriter};
use super::tar_writer::{Header, Kind, TarWriter};

/// How a layer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    pub compression: Compression,
    /// Upper bound of every mtime in the layer, and the mtime of entries that have none.
    pub source_date_epoch: u64,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip(6),
            source_date_epoch: 0,
        }
    }
}

/// Ownership, permissions, time and extended attributes of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits (including setuid/setgid/sticky); the file type comes from the call.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Clamped to `source_date_epoch`; `None` means `source_date_epoch`.
    pub mtime: Option<u64>,
    /// Written as PAX `SCHILY.xattr.<name>` records.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// Root-owned entry with these permission bits.
    pub fn new(mode: u32) -> Meta {
        Meta {
            mode,
            ..Meta::default()
        }
    }

    /// The same entry owned by `uid:gid`.
    pub fn owned_by(mut self, uid: u32, gid: u32) -> Meta {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// A written layer: its blob descriptor and the digest of its uncompressed tar (DiffID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
}

/// Where the tar stream of a layer goes once hashed for its DiffID.
enum Sink {
    /// Compressed into a blob of the store: a real layer (boxed: one allocation per layer
    /// keeps the hash-only writer small).
    Blob(Box<Compressor<BlobWriter>>),
    /// Nowhere: only the DiffID is wanted.
    Null,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Blob(c) => c.write(buf),
            Sink::Null => Ok(buf.len()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sink::Blob(c) => c.write_all(buf),
            Sink::Null => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Blob(c) => c.flush(),
            Sink::Null => Ok(()),
        }
    }
}

/// Writes one layer into a [`BlobStore`]; call [`LayerWriter::finish`] to commit it.
pub struct LayerWriter {
    tar: TarWriter<Sha256Writer<Sink>>,
    opts: LayerOptions,
    /// Directories already written, so parents of a tree's prefix are written once.
    dirs: HashSet<Vec<u8>>,
}

impl LayerWriter {
    /// Start a layer whose blob will be committed into `store`.
    pub fn new(store: &BlobStore, opts: LayerOptions) -> Result<LayerWriter> {
        let blob = store.writer()?;
        let compressor = Compressor::new(blob, opts.compression)
            .during(|| format!("starting the {} compressor", opts.compression.name()))?;
        Ok(LayerWriter::with_sink(
            Sink::Blob(Box::new(compressor)),
            opts,
        ))
    }

    /// A writer that only hashes its tar stream: no compressor, no blob.
    fn hash_only(opts: LayerOptions) -> LayerWriter {
        LayerWriter::with_sink(Sink::Null, opts)
    }

    fn with_sink(sink: Sink, opts: LayerOptions) -> LayerWriter {
        LayerWriter {
            tar: TarWriter::new(Sha256Writer::new(sink)),
            opts,
            dirs: HashSet::new(),
        }
    }

    /// The options this layer is written with.
    pub fn options(&self) -> &LayerOptions {
        &self.opts
    }

    /// Add a directory.
    pub fn add_dir(&mut self, path: &str, meta: &Meta) -> Result<()> {
        let path = entry_path(path.as_bytes(), true)?;
        self.write_dir(path, meta)
    }

    /// Add a regular file of `size` bytes read from `data`.
    pub fn add_file(&mut self, path: &str, meta: &Meta, size: u64, data: impl Read) -> Result<()> {
        let path = entry_path(path.as_bytes(), false)?;
        self.write_file(&path, meta, size, data)
    }

    /// Add a regular file whose content is in memory (metadata files, scripts).
    pub fn add_bytes(&mut self, path: &str, meta: &Meta, content: &[u8]) -> Result<()> {
        self.add_file(path, meta, content.len() as u64, content)
    }

    /// Add a symbolic link to `target` (kept as is: absolute targets are normal in a rootfs).
    pub fn add_symlink(&mut self, path: &str, target: &str, meta: &Meta) -> Result<()> {
        let path = entry_path(path.as_bytes(), false)?;
        self.write_entry(&path, Kind::Symlink, meta, target.as_bytes(), (0, 0))
    }

    /// Add a hard link to `target`, an entry earlier in this layer.
    ///
    /// `meta` must be the target's: extractors such as Docker's apply a link entry's mode and
    /// owner to the path, which is the target's inode, so anything else would change it.
    pub fn add_hardlink(&mut self, path: &str, target: &str, meta: &Meta) -> Result<()> {
        let path = entry_path(path.as_bytes(), false)?;
        let target = entry_path(target.as_bytes(), false)?;
        self.write_entry(&path, Kind::Hardlink, meta, &target, (0, 0))
    }

    /// Mark `path` as deleted from lower layers: an empty `.wh.<name>` file.
    pub fn add_whiteout(&mut self, path: &str) -> Result<()> {
        let path = entry_path(path.as_bytes(), false)?;
        let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (&[][..], &path[..]),
        };
        let whiteout = [parent, b".wh.", name].concat();
        self.write_file(&whiteout, &Meta::new(0o644), 0, std::io::empty())
    }

    /// Hide everything lower layers have in `dir`: a `dir/.wh..wh..opq` entry.
    pub fn add_opaque(&mut self, dir: &str) -> Result<()> {
        let dir = entry_path(dir.as_bytes(), true)?;
        let marker = [&dir[..], b".wh..wh..opq"].concat();
        self.write_file(&marker, &Meta::new(0o644), 0, std::io::empty())
    }

    /// Add a character or block device or a FIFO.
    pub fn add_device(
        &mut self,
        path: &str,
        kind: DeviceKind,
        meta: &Meta,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        let path = entry_path(path.as_bytes(), false)?;
        self.write_entry(&path, kind.into(), meta, b"", (major, minor))
    }

    /// Finish the tar stream, the compressor and the blob; commit it to the store.
    pub fn finish(self) -> Result<Layer> {
        let media_type = self.opts.compression.media_type();
        let (diff_id, sink) = self.finish_tar()?;
        let Sink::Blob(compressor) = sink else {
            unreachable!("hash-only writers are private to `tree_diff_id`, which never commits")
        };
        let blob = compressor
            .finish()
            .during(|| "finishing a layer".to_owned())?;
        let info = blob.commit(None)?;
        Ok(Layer {
            descriptor: Descriptor::new(media_type, info.digest, info.size),
            diff_id,
        })
    }

    /// End the tar stream: its DiffID, and the sink it went to.
    fn finish_tar(self) -> Result<(Digest, Sink)> {
        let hashed = self
            .tar
            .finish()
            .during(|| "finishing a layer".to_owned())?;
        let (diff_id, _, sink) = hashed.finish();
        Ok((diff_id, sink))
    }

    fn clamp(&self, mtime: Option<u64>) -> u64 {
        mtime.map_or(self.opts.source_date_epoch, |t| {
            t.min(self.opts.source_date_epoch)
        })
    }

    fn write_dir(&mut self, path: Vec<u8>, meta: &Meta) -> Result<()> {
        self.write_entry(&path, Kind::Dir, meta, b"", (0, 0))?;
        self.dirs.insert(path);
        Ok(())
    }

    /// Write `dir/` and its missing ancestors (mode 0755, owned by `meta`'s owner).
    fn write_missing_dirs(&mut self, dir: &[u8], meta: &Meta) -> Result<()> {
        for (i, &b) in dir.iter().enumerate() {
            if b == b'/' && !self.dirs.contains(&dir[..=i]) {
                self.write_dir(dir[..=i].to_vec(), meta)?;
            }
        }
        Ok(())
    }

    fn write_file(
        &mut self,
        path: &[u8],
        meta: &Meta,
        size: u64,
        mut data: impl Read,
    ) -> Result<()> {
        self.write_header(path, Kind::File, meta, size, b"", (0, 0))?;
        self.tar.data(&mut data, size).map_err(|source| {
            let entry = printable(path);
            if source.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::ShortRead {
                    entry,
                    expected: size,
                }
            } else {
                Error::Stream {
                    context: format!("writing `{entry}` into a layer"),
                    source,
                }
            }
        })
    }

    fn write_entry(
        &mut self,
        path: &[u8],
        kind: Kind,
        meta: &Meta,
        link: &[u8],
        device: (u32, u32),
    ) -> Result<()> {
        self.write_header(path, kind, meta, 0, link, device)
    }

    fn write_header(
        &mut self,
        path: &[u8],
        kind: Kind,
        meta: &Meta,
        size: u64,
        link: &[u8],
        device: (u32, u32),
    ) -> Result<()> {
        let header = Header {
            path,
            kind,
            mode: meta.mode,
            uid: meta.uid.into(),
            gid: meta.gid.into(),
            mtime: self.clamp(meta.mtime),
            size,
            link,
            device,
            xattrs: &meta.xattrs,
        };
        self.tar
            .header(&header)
            .during(|| format!("writing `{}` into a layer", printable(path)))
    }
}

/// Device node kinds for [`LayerWriter::add_device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

impl From<DeviceKind> for Kind {
    fn from(kind: DeviceKind) -> Kind {
        match kind {
            DeviceKind::Char => Kind::Char,
            DeviceKind::Block => Kind::Block,
            DeviceKind::Fifo => Kind::Fifo,
        }
    }
}

/// Normalize a path for a layer: drop `.` and empty components, refuse `..` and absolute
/// paths; directories get a trailing `/`. `None` for the root itself (`.`, `./`).
pub fn normalize(path: &[u8], dir: bool) -> Result<Option<Vec<u8>>> {
    let shown = || printable(path);
    let trimmed = {
        let mut p = path;
        while let Some(rest) = p.strip_prefix(b"./") {
            p = rest;
        }
        p
    };
    if trimmed.starts_with(b"/") {
        return Err(Error::PathEscape { entry: shown() });
    }
    let mut out = Vec::with_capacity(path.len() + 1);
    for component in trimmed.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err(Error::PathEscape { entry: shown() }),
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    if dir {
        out.push(b'/');
    }
    Ok(Some(out))
}

/// [`normalize`] for the entries API, where the root itself is not a valid entry, nor a
/// name only whiteouts may have.
fn entry_path(path: &[u8], dir: bool) -> Result<Vec<u8>> {
    let normalized = normalize(path, dir)?.ok_or_else(|| Error::InvalidPath {
        path: printable(path),
        reason: "an entry needs a name (the layer root cannot be added)",
    })?;
    for name in normalized.split(|&b| b == b'/') {
        refuse_whiteout_name(name, &normalized)?;
    }
    Ok(normalized)
}

/// The image spec (layer, "Whiteouts") reads an entry named `.wh.<name>` as the deletion of
/// `<name>`, so no file of an image can have such a name: written as it is, it would delete
/// `<name>` from the layers below.
pub(crate) fn refuse_whiteout_name(name: &[u8], path: &[u8]) -> Result<()> {
    if name.starts_with(b".wh.") {
        return Err(Error::InvalidPath {
            path: printable(path),
            reason: "a name beginning with `.wh.` means a deleted file in a layer (OCI image \
                     spec, whiteouts), so no file of an image can have it: rename it, or \
                     leave it out",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_paths() {
        let n = |p: &str, dir| {
            normalize(p.as_bytes(), dir).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
        };
        assert_eq!(n("./nua//app/./x", false).unwrap().unwrap(), "nua/app/x");
        assert_eq!(n("nua/app/", true).unwrap().unwrap(), "nua/app/");
        assert_eq!(n("nua/app", true).unwrap().unwrap(), "nua/app/");
        assert_eq!(n("./", true).unwrap(), None);
        assert_eq!(n(".", true).unwrap(), None);
        for bad in ["../x", "a/../../x", "/etc/passwd", ".//etc", "a/.."] {
            assert!(
                matches!(n(bad, false), Err(Error::PathEscape { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_whiteouts_have_whiteout_names() {
        for (path, dir) in [
            ("opt/.wh.x", false),
            ("./.wh.etc", false),
            ("a/.wh.b/", true),
        ] {
            let err = entry_path(path.as_bytes(), dir).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidPath { reason, .. } if reason.contains("`.wh.`")),
                "{path}: {err}"
            );
        }
        // Nor a folder of theirs, which writing `c` would make.
        assert!(entry_path(b"a/.wh.b/c", false).is_err());
        assert!(entry_path(b"opt/x.wh.y", false).is_ok_and(|p| p == b"opt/x.wh.y"));
        assert!(entry_path(b"opt/.whx", false).is_ok());
    }
}
