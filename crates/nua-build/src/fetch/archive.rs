//! Source archives: which format a download is, told by its first bytes rather than its name
//! (`/archive/v1.2` URLs have no extension, and a server may answer an HTML page with 200),
//! and walking its entries into a [`Tree`] that enforces the safety rules.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::error::FetchError;
use super::tree::Tree;
use nua_oci as oci;
use nua_oci::layer::stream::check_first_block;

/// The formats [`extract`] reads, for the message of an unsupported one.
pub(super) const SUPPORTED: &str = "tar, tar.gz, tar.bz2, tar.xz, tar.zst, zip";

/// Longest symlink target taken from a zip entry (its target is the entry's content).
const MAX_LINK_TARGET: u64 = 4096;

/// An archive format, as its magic bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
    Zip,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::Gzip => "gzip",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
            Format::Zstd => "zstd",
            Format::Zip => "zip",
        }
    }
}

/// The format of a file starting with `head` (its first 512 bytes, or all of it when
/// shorter); else a description of what it looks like, for the error message.
pub(super) fn sniff(head: &[u8]) -> Result<Format, String> {
    // A tar first: its first bytes are a file name, which may well start with `BZh`.
    if check_first_block(head).is_ok() {
        return Ok(Format::Tar);
    }
    const MAGICS: [(&[u8], Format); 6] = [
        (&[0x1f, 0x8b], Format::Gzip),
        (b"BZh", Format::Bzip2),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], Format::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
        (b"PK\x03\x04", Format::Zip),
        // An empty zip archive: only the end-of-central-directory record.
        (b"PK\x05\x06", Format::Zip),
    ];
    if let Some((_, format)) = MAGICS.iter().find(|(magic, _)| head.starts_with(magic)) {
        return Ok(*format);
    }
    let text = String::from_utf8_lossy(&head[..head.len().min(64)]).to_ascii_lowercase();
    let trimmed = text.trim_start();
    Err(if head.is_empty() {
        "empty".to_owned()
    } else if head.starts_with(b"7z\xbc\xaf\x27\x1c") {
        "a 7-Zip archive".to_owned()
    } else if head.starts_with(b"Rar!") {
        "a RAR archive".to_owned()
    } else if trimmed.starts_with("<!doctype html") || trimmed.starts_with("<html") {
        "an HTML page, not an archive".to_owned()
    } else {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!(
            "of an unknown format (it starts with bytes {})",
            shown.join(" ")
        )
    })
}

/// Extract the archive in `file` (downloaded from `url`) into `root`, an empty folder; the
/// warnings about entries left out (see [`Tree::warnings`]).
pub(super) fn extract(mut file: File, url: &str, root: &Path) -> Result<Vec<String>, FetchError> {
    let corrupt = |e| corrupt(url, e);
    let mut head = Vec::with_capacity(512);
    (&mut file)
        .take(512)
        .read_to_end(&mut head)
        .map_err(corrupt)?;
    file.seek(SeekFrom::Start(0)).map_err(corrupt)?;
    let format = sniff(&head).map_err(|found| FetchError::UnsupportedFormat {
        url: url.to_owned(),
        found,
    })?;
    let mut tree = Tree::new(root, url);
    let input = BufReader::with_capacity(256 * 1024, file);
    let decoded: Box<dyn Read> = match format {
        Format::Zip => {
            zip(input.into_inner(), &mut tree)?;
            return Ok(tree.warnings());
        }
        Format::Tar => Box::new(input),
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Format::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        Format::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(corrupt)?),
    };
    tar(decoded, format, &mut tree)?;
    Ok(tree.warnings())
}

fn tar(mut input: Box<dyn Read + '_>, format: Format, tree: &mut Tree) -> Result<(), FetchError> {
    let url = tree.url();
    let corrupt = |e| corrupt(url, oci::error::printable_io(e));
    // Compressed data that is not a tar (a lone `.gz` file) is "unsupported", not "corrupt".
    let mut first = Vec::with_capacity(512);
    (&mut input)
        .take(512)
        .read_to_end(&mut first)
        .map_err(corrupt)?;
    if let Err(e) = check_first_block(&first) {
        let reason = match e {
            oci::Error::NotATar { reason } => reason,
            other => other.to_string(),
        };
        return Err(FetchError::UnsupportedFormat {
            url: url.to_owned(),
            found: format!("{} data but not a tar archive ({reason})", format.name()),
        });
    }
    let mut archive = tar::Archive::new(first.as_slice().chain(input));
    for entry in archive.entries().map_err(corrupt)? {
        use tar::EntryType as T;
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind == T::XGlobalHeader {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        // Device nodes and fifos have no place in a source tree; nothing is written for them.
        // (A tar has no socket entries: tar leaves sockets out when it writes one.)
        let special = match kind {
            T::Char => Some("a character device"),
            T::Block => Some("a block device"),
            T::Fifo => Some("a fifo"),
            _ => None,
        };
        if let Some(what) = special {
            tree.skip(&raw, what);
            continue;
        }
        let Some(rel) = tree.destination(&raw, kind.is_dir())? else {
            continue;
        };
        let link = || {
            entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .ok_or_else(|| tree.hostile(&raw, "a link without a target"))
        };
        match kind {
            T::Directory => tree.dir(&raw, &rel)?,
            T::Symlink => {
                let target = link()?;
                tree.symlink(&raw, &rel, &target)?
            }
            T::Link => {
                let target = link()?;
                tree.hard_link(&raw, &rel, &target)?
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                let mode = entry.header().mode().unwrap_or(0o644);
                tree.file(&raw, &rel, mode, &mut entry)?
            }
            other => return Err(tree.hostile(&raw, format!("unsupported entry type {other:?}"))),
        }
    }
    Ok(())
}

fn zip(file: File, tree: &mut Tree) -> Result<(), FetchError> {
    let url = tree.url();
    let zip_error = |e: zip::result::ZipError| corrupt(url, io::Error::from(e));
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(zip_error)?;
        let raw = entry.name().as_bytes().to_vec();
        // The file type lives in the upper bits of the Unix mode, when the zip has one.
        let mode = entry.unix_mode().unwrap_or(0o644);
        let is_dir = entry.is_dir() || mode & 0o170000 == 0o040000;
        let Some(rel) = tree.destination(&raw, is_dir)? else {
            continue;
        };
        match mode & 0o170000 {
            _ if is_dir => tree.dir(&raw, &rel)?,
            0o120000 => {
                let mut target = Vec::new();
                (&mut entry)
                    .take(MAX_LINK_TARGET + 1)
                    .read_to_end(&mut target)
                    .map_err(|e| corrupt(url, e))?;
                if target.len() as u64 > MAX_LINK_TARGET {
                    return Err(tree.hostile(&raw, "a symlink target longer than 4096 bytes"));
                }
                tree.symlink(&raw, &rel, &target)?
            }
            0 | 0o100000 => tree.file(&raw, &rel, mode, &mut entry)?,
            // Devices, fifos and sockets: skipped, as in a tar.
            0o020000 => tree.skip(&raw, "a character device"),
            0o060000 => tree.skip(&raw, "a block device"),
            0o010000 => tree.skip(&raw, "a fifo"),
            0o140000 => tree.skip(&raw, "a socket"),
            _ => tree.skip(&raw, "an entry of unknown type"),
        }
    }
    Ok(())
}

fn corrupt(url: &str, source: io::Error) -> FetchError {
    FetchError::Archive {
        url: url.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::super::testing::{extract_bytes, file, hello, hostile_entry, link, tar_of};
    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn every_compression_is_sniffed() {
        let tar = hello();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&tar).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&tar).unwrap();
        let zst = zstd::encode_all(tar.as_slice(), 1).unwrap();
        let cases = [
            (tar.clone(), Format::Tar),
            (gzip(&tar), Format::Gzip),
            (bz.finish().unwrap(), Format::Bzip2),
            (xz.finish().unwrap(), Format::Xz),
            (zst, Format::Zstd),
        ];
        // A tar whose first name starts like a bzip2 stream is still a tar.
        let named_like_bzip2 = tar_of(&[file("BZhelper/x", "x")]);
        assert_eq!(sniff(&named_like_bzip2), Ok(Format::Tar));
        for (bytes, format) in cases {
            assert_eq!(sniff(&bytes[..512.min(bytes.len())]), Ok(format));
            let (tmp, result) = extract_bytes(&bytes);
            result.unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert!(tmp.path().join("root/index.html").is_file(), "{format:?}");
        }
    }

    #[test]
    fn zip_archives_are_extracted_with_the_same_rules() {
        let options = zip::write::SimpleFileOptions::default();
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.add_directory("app-2.0/", options).unwrap();
        zip.start_file("app-2.0/run.sh", options.unix_permissions(0o755))
            .unwrap();
        zip.write_all(b"#!/bin/sh").unwrap();
        zip.add_symlink("app-2.0/sh", "run.sh", options).unwrap();
        let good = zip.finish().unwrap().into_inner();
        let (tmp, result) = extract_bytes(&good);
        result.unwrap();
        let root = tmp.path().join("root");
        let mode = fs::metadata(root.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(fs::read_link(root.join("sh")).unwrap(), Path::new("run.sh"));

        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.add_symlink("app-2.0/etc", "/etc", options).unwrap();
        let evil = zip.finish().unwrap().into_inner();
        assert!(hostile_entry(&evil).contains("app-2.0/etc"));
    }

    #[test]
    fn what_is_not_an_archive_is_named() {
        let unsupported = |bytes: &[u8]| match extract_bytes(bytes).1 {
            Err(e @ FetchError::UnsupportedFormat { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let html = unsupported(b"<!DOCTYPE html><html>Not found</html>");
        assert!(html.contains("an HTML page"), "{html}");
        assert!(html.contains("supported: tar, tar.gz"), "{html}");
        let lone = unsupported(&gzip(&[b'x'; 2000]));
        assert!(lone.contains("gzip data but not a tar archive"), "{lone}");
        assert!(unsupported(b"Rar!\x1a\x07\x00").contains("RAR"));
        // A truncated gzip is corrupt, not unsupported.
        let whole = gzip(&hello());
        let result = extract_bytes(&whole[..whole.len() / 2]).1;
        assert!(
            matches!(result, Err(FetchError::Archive { .. })),
            "{result:?}"
        );
    }

    /// Issue 13: device nodes and fifos are left out with a warning naming each, and the
    /// rest of the archive is extracted.
    #[test]
    fn devices_and_fifos_are_skipped_with_a_warning() {
        use tar::EntryType as T;
        let entries = [
            file("app-1.0/index.html", "hi"),
            link("app-1.0/queue", T::Fifo, ""),
            link("app-1.0/dev/tty9", T::Char, ""),
            file("app-1.0/after.txt", "after"),
        ];
        let (tmp, result) = extract_bytes(&tar_of(&entries));
        let warnings = result.unwrap();
        let root = tmp.path().join("root");
        assert_eq!(fs::read_to_string(root.join("after.txt")).unwrap(), "after");
        assert!(root.join("index.html").is_file());
        assert!(fs::symlink_metadata(root.join("queue")).is_err());
        assert!(!root.join("dev").exists());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let warning = &warnings[0];
        assert!(warning.contains("http://test/a"), "{warning}");
        assert!(warning.contains("has 2 "), "{warning}");
        assert!(warning.contains("`app-1.0/queue` (a fifo)"), "{warning}");
        assert!(
            warning.contains("`app-1.0/dev/tty9` (a character device)"),
            "{warning}"
        );
        // A clean archive warns of nothing.
        let clean = tar_of(&[file("hello-1.0/index.html", "<h1>hi</h1>")]);
        assert!(extract_bytes(&clean).1.unwrap().is_empty());
    }
}
