//! Copying an existing tar stream (a root file system from mmdebstrap, a pulled layer) into a
//! layer with normalized headers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use super::{normalize, LayerWriter, Meta};
use crate::oci::error::{Error, IoContext, Result};
use crate::oci::tar_writer::Kind;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XATTR_PREFIX: &str = "SCHILY.xattr.";

impl LayerWriter {
    /// Copy every entry of a tar stream (plain, gzip or zstd: detected by magic) in order.
    ///
    /// Headers are normalized like everything else in a layer (mtime clamped, no
    /// atime/ctime, empty uname/gname, `./` prefixes dropped); xattrs in PAX records are
    /// kept. An entry whose path or hard-link target is absolute or contains `..` is refused
    /// with an error naming it. Symlink targets are kept as they are. The root entry `./`
    /// is dropped.
    pub fn append_tar_stream(&mut self, reader: impl Read) -> Result<()> {
        let mut buffered = BufReader::with_capacity(64 * 1024, reader);
        let head = buffered
            .fill_buf()
            .during(|| "reading the start of a tar stream".to_owned())?;
        let input: Box<dyn Read + '_> = if head.starts_with(GZIP_MAGIC) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else if head.starts_with(ZSTD_MAGIC) {
            Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .during(|| "starting a zstd decoder".to_owned())?,
            )
        } else {
            Box::new(buffered)
        };
        let mut archive = tar::Archive::new(input);
        let entries = archive
            .entries()
            .during(|| "reading a tar stream".to_owned())?;
        for entry in entries {
            let mut entry = entry.during(|| "reading the next tar entry".to_owned())?;
            self.copy_entry(&mut entry)?;
        }
        Ok(())
    }

    fn copy_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        let bad_header = |source| Error::Stream {
            context: format!("reading the header of tar entry `{shown}`"),
            source,
        };
        let kind = match kind {
            T::Regular | T::Continuous | T::GNUSparse => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::Hardlink,
            T::Char => Kind::Char,
            T::Block => Kind::Block,
            T::Fifo => Kind::Fifo,
            // Global PAX headers carry nothing a layer needs (and would break determinism).
            T::XGlobalHeader => return Ok(()),
            other => {
                return Err(Error::UnsupportedEntry {
                    entry: shown,
                    kind: format!("{other:?}"),
                })
            }
        };
        let Some(path) = normalize(&raw, kind == Kind::Dir)? else {
            return match kind {
                Kind::Dir => Ok(()),
                _ => Err(Error::InvalidPath {
                    path: shown,
                    reason: "a non-directory entry needs a name",
                }),
            };
        };
        let header = entry.header();
        let id = |value: u64, what: &str| {
            u32::try_from(value).map_err(|_| Error::UnsupportedEntry {
                entry: shown.clone(),
                kind: format!("{what} {value} out of range"),
            })
        };
        let mut meta = Meta {
            mode: header.mode().map_err(bad_header)?,
            uid: id(header.uid().map_err(bad_header)?, "uid")?,
            gid: id(header.gid().map_err(bad_header)?, "gid")?,
            mtime: Some(header.mtime().map_err(bad_header)?),
            xattrs: BTreeMap::new(),
        };
        let device = match kind {
            Kind::Char | Kind::Block => (
                header.device_major().map_err(bad_header)?.unwrap_or(0),
                header.device_minor().map_err(bad_header)?.unwrap_or(0),
            ),
            _ => (0, 0),
        };
        if let Some(pax) = entry.pax_extensions().map_err(bad_header)? {
            for record in pax {
                let record = record.map_err(bad_header)?;
                if let Some(name) = record.key().ok().and_then(|k| k.strip_prefix(XATTR_PREFIX)) {
                    meta.xattrs
                        .insert(name.to_owned(), record.value_bytes().to_vec());
                }
            }
        }
        match kind {
            Kind::File => {
                let size = entry.size();
                self.write_file(&path, &meta, size, entry)
            }
            Kind::Dir => self.write_dir(path, &meta),
            Kind::Symlink | Kind::Hardlink => {
                let link = entry.link_name_bytes().unwrap_or_default().into_owned();
                let link = if kind == Kind::Hardlink {
                    normalize(&link, false)
                        .map_err(|_| Error::PathEscape {
                            entry: format!(
                                "{shown} (hard link to {})",
                                String::from_utf8_lossy(&link)
                            ),
                        })?
                        .ok_or_else(|| Error::InvalidPath {
                            path: shown.clone(),
                            reason: "hard link without a target",
                        })?
                } else {
                    link
                };
                self.write_entry(&path, kind, &meta, &link, (0, 0))
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                self.write_entry(&path, kind, &meta, b"", device)
            }
        }
    }
}
