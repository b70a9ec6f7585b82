//! Copying an existing tar stream (a root file system from mmdebstrap, a pulled layer) into a
//! layer with normalized headers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};

use super::{normalize, LayerWriter, Meta};
use crate::error::{printable, printable_io, Error, IoContext, Result};
use crate::tar_writer::Kind;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XATTR_PREFIX: &str = "SCHILY.xattr.";
const BLOCK: usize = 512;

impl LayerWriter {
    /// Copy every entry of a tar stream (plain, gzip or zstd: detected by magic) in order.
    ///
    /// Headers are normalized like everything else in a layer (mtime clamped, no
    /// atime/ctime, empty uname/gname, `./` prefixes dropped); xattrs in PAX records are
    /// kept. An entry whose path or hard-link target is absolute or contains `..` is refused
    /// with an error naming it. Symlink targets are kept as they are. The root entry `./`
    /// is dropped.
    ///
    /// Input that is not a tar archive once decompressed (empty, only end-of-archive blocks,
    /// or a first block that is not a tar header) is refused with [`Error::NotATar`]. Entry
    /// names and messages of the tar parser are shown with control characters escaped.
    pub fn append_tar_stream(&mut self, reader: impl Read) -> Result<()> {
        let mut input = decompressed(reader)?;
        // Look at the first block ourselves: on anything else the tar parser's messages are
        // about checksums and numeric fields, and quote the garbage they found.
        let mut first = [0u8; BLOCK];
        let n = read_up_to(&mut input, &mut first)
            .during(|| "reading the first block of a tar stream".to_owned())?;
        check_first_block(&first[..n])?;
        let mut archive = tar::Archive::new((&first[..n]).chain(input));
        let entries = archive
            .entries()
            .map_err(printable_io)
            .during(|| "reading a tar stream".to_owned())?;
        for entry in entries {
            let mut entry = entry
                .map_err(printable_io)
                .during(|| "reading the next tar entry".to_owned())?;
            self.copy_entry(&mut entry)?;
        }
        Ok(())
    }

    fn copy_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        let raw = entry.path_bytes().into_owned();
        let shown = printable(&raw);
        let kind = entry.header().entry_type();
        let bad_header = |source| Error::Stream {
            context: format!("reading the header of tar entry `{shown}`"),
            source: printable_io(source),
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
                            entry: format!("{shown} (hard link to {})", printable(&link)),
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

/// The uncompressed bytes of a tar stream that is plain, gzip or zstd (detected by magic).
pub fn decompressed<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered
        .fill_buf()
        .during(|| "reading the start of a tar stream".to_owned())?;
    Ok(if head.starts_with(GZIP_MAGIC) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(ZSTD_MAGIC) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .during(|| "starting a zstd decoder".to_owned())?,
        )
    } else {
        Box::new(buffered)
    })
}

/// Refuse input that is not a tar archive, from its first (up to) 512 bytes.
///
/// A header is accepted when its checksum matches (POSIX ustar, GNU, or old v7 without
/// magic, as the tar parser accepts them); an all-zero first block is an end-of-archive
/// marker, so an archive with no entry at all.
pub fn check_first_block(block: &[u8]) -> Result<()> {
    let not_a_tar = |reason: String| Err(Error::NotATar { reason });
    if block.is_empty() {
        return not_a_tar("the archive is empty".into());
    }
    if block.len() < BLOCK {
        return not_a_tar(format!(
            "the input ends after {} bytes, before the end of the first {BLOCK}-byte header",
            block.len()
        ));
    }
    if block.iter().all(|&b| b == 0) {
        return not_a_tar("the archive is empty (it holds only end-of-archive blocks)".into());
    }
    let magic = &block[257..262] == b"ustar";
    match (magic, checksum_matches(block)) {
        (_, true) => Ok(()),
        (true, false) => {
            not_a_tar("the first block has `ustar` magic but a bad checksum (corrupt?)".into())
        }
        (false, false) => {
            not_a_tar("the first block has no `ustar` magic and a bad checksum".into())
        }
    }
}

/// Whether the stored checksum (octal, bytes 148..156) is the unsigned sum of the block with
/// the checksum field read as spaces (POSIX.1-1988 ustar).
fn checksum_matches(block: &[u8]) -> bool {
    let field = &block[148..156];
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(b))
        .collect();
    let Ok(stored) = u32::from_str_radix(std::str::from_utf8(&digits).unwrap_or(""), 8) else {
        return false;
    };
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..BLOCK])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    stored == sum
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(m) => n += m,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(path: &str) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).unwrap();
        h.set_size(0);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn first_block_checks() {
        let reason = |b: &[u8]| match check_first_block(b) {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        assert_eq!(reason(&header("a")), "ok");
        let mut v7 = header("a");
        v7[257..265].fill(0);
        // Recompute the checksum without the magic: an old v7 header.
        let mut h = tar::Header::from_byte_slice(&v7).clone();
        h.set_cksum();
        assert_eq!(reason(h.as_bytes()), "ok");
        let mut corrupt = header("a");
        corrupt[0] = b'b';
        assert!(reason(&corrupt).contains("`ustar` magic but a bad checksum"));
        assert_eq!(reason(b""), "not a tar archive: the archive is empty");
        assert!(reason(&[0; 512]).contains("only end-of-archive blocks"));
        assert!(reason(b"hello\n").contains("ends after 6 bytes"));
        assert!(reason(&[b'x'; 512]).contains("no `ustar` magic and a bad checksum"));
    }
}
