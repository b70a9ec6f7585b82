//! Where an image's files come from: a directory or an indexed tarball.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::bounded::{self, Bounded};
use crate::error::{Error, IoContext, Result};
use crate::layer::normalize;

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DockerManifest {
    pub config: String,
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

#[derive(Clone)]
pub(super) enum Entry {
    /// Data offset and size in the tarball.
    File { offset: u64, size: u64 },
    /// A symlink (docker save links duplicate layers), target relative to the archive root.
    Link(String),
    /// A device or fifo (its kind): never a blob, refused when opened.
    Special(&'static str),
    /// A hard link whose target is no earlier file of the archive (the target).
    Dangling(String),
}

pub(super) enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        file: File,
        entries: HashMap<String, Entry>,
    },
}

impl Source {
    pub fn from_path(path: &Path) -> Result<Source> {
        let md = std::fs::metadata(path).at(path)?;
        if md.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let Some((mut file, _)) = bounded::open_regular(path, "image archive")? else {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: io::ErrorKind::NotFound.into(),
            });
        };
        let mut magic = [0u8; 2];
        if file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b] {
            return Err(Error::InvalidImage {
                location: path.to_path_buf(),
                reason:
                    "compressed image archives are not supported: decompress it first (`gunzip`)"
                        .into(),
            });
        }
        // Say plainly when the file is no archive at all, rather than a parser's complaint.
        file.seek(SeekFrom::Start(0)).at(path)?;
        let mut first = Vec::with_capacity(512);
        (&mut file).take(512).read_to_end(&mut first).at(path)?;
        crate::layer::stream::check_first_block(&first)?;
        file.seek(SeekFrom::Start(0)).at(path)?;
        let entries = index(&file, path)?;
        Ok(Source::Tar {
            path: path.to_path_buf(),
            file,
            entries,
        })
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Tar { path: p, .. } => p,
        }
    }

    /// Whether the image has a file (or something that is refused when opened: a device) at
    /// `name`.
    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => {
                safe(name).is_some_and(|n| dir.join(n).metadata().is_ok_and(|md| !md.is_dir()))
            }
            Source::Tar { entries, .. } => find(entries, name).is_some(),
        }
    }

    /// Open a file of the image by its path in the layout, for at most `size` bytes when its
    /// descriptor gives one, else for its size in the archive or on disk.
    ///
    /// Only regular files (and tar entries of files, symlinks or hard links to them) are
    /// opened; a file whose size differs from `size` is refused before it is read, and a read
    /// past the size fails ([`Error::Oversized`]).
    pub fn open(&self, name: &str, size: Option<u64>) -> Result<Box<dyn Read + '_>> {
        let location = self.path();
        let missing = || Error::InvalidImage {
            location: location.to_path_buf(),
            reason: format!("`{name}` is missing"),
        };
        let label = format!("`{name}` in `{}`", location.display());
        let (reader, actual): (Box<dyn Read + '_>, u64) = match self {
            Source::Dir(dir) => {
                let rel = safe(name).ok_or_else(|| Error::PathEscape {
                    entry: name.to_owned(),
                })?;
                let (file, on_disk) =
                    bounded::open_regular(&dir.join(rel), name)?.ok_or_else(missing)?;
                (Box::new(file), on_disk)
            }
            Source::Tar { file, entries, .. } => {
                let (offset, entry_size) = match find(entries, name).ok_or_else(missing)? {
                    Entry::File { offset, size } => (*offset, *size),
                    Entry::Special(kind) => {
                        return Err(Error::NotRegular {
                            blob: name.to_owned(),
                            location: location.to_path_buf(),
                            kind: (*kind).into(),
                        })
                    }
                    Entry::Dangling(target) => {
                        return Err(Error::DanglingLink {
                            entry: name.to_owned(),
                            target: target.clone(),
                            location: location.to_path_buf(),
                        })
                    }
                    Entry::Link(_) => return Err(missing()),
                };
                let window = At {
                    file,
                    pos: offset,
                    end: offset + entry_size,
                };
                (Box::new(window), entry_size)
            }
        };
        let size = size.unwrap_or(actual);
        if actual != size {
            return Err(Error::SizeMismatch {
                blob: label,
                expected: size,
                actual,
            });
        }
        let bounded = Bounded::new(reader, size, label);
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, bounded)))
    }
}

/// Index the entries of an image tarball by normalized path. Hard links (skopeo writes
/// repeated blobs as links) resolve to the earlier entry they name, as extracting the
/// archive would; devices and fifos are kept only to be refused by name when opened.
fn index(file: &File, path: &Path) -> Result<HashMap<String, Entry>> {
    use tar::EntryType;
    let mut entries: HashMap<String, Entry> = HashMap::new();
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().at(path)? {
        let entry = entry.at(path)?;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let Some(name) = normalize(&raw, false)? else {
            continue;
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        let target = || entry.link_name_bytes().unwrap_or_default();
        let indexed = match kind {
            k if k.is_file() => Entry::File {
                offset: entry.raw_file_position(),
                size: entry.size(),
            },
            k if k.is_symlink() => {
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                let joined = format!("{dir}/{}", String::from_utf8_lossy(&target()));
                let resolved = resolve(&joined).ok_or_else(|| Error::PathEscape {
                    entry: name.clone(),
                })?;
                Entry::Link(resolved)
            }
            k if k.is_hard_link() => {
                // A hard link's target is a path from the archive root, not from the link.
                let target = normalize(&target(), false)?
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                match entries.get(&target) {
                    Some(earlier) => earlier.clone(),
                    None => Entry::Dangling(target),
                }
            }
            EntryType::Char => Entry::Special("character device"),
            EntryType::Block => Entry::Special("block device"),
            EntryType::Fifo => Entry::Special("fifo"),
            _ => continue,
        };
        entries.insert(name, indexed);
    }
    Ok(entries)
}

/// The entry at `name`, symlinks followed (a few levels: a loop is missing).
fn find<'a>(entries: &'a HashMap<String, Entry>, name: &str) -> Option<&'a Entry> {
    let mut name = safe(name)?;
    for _ in 0..8 {
        match entries.get(&name)? {
            Entry::Link(target) => name = target.clone(),
            other => return Some(other),
        }
    }
    None
}

/// A normalized relative path, or `None` if it escapes.
fn safe(name: &str) -> Option<String> {
    normalize(name.as_bytes(), false)
        .ok()
        .flatten()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
}

/// Resolve `..` inside the archive; `None` when it climbs above the root.
fn resolve(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A window `[pos, end)` of a file read with `pread`, so several can share one handle.
struct At<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = (self.end - self.pos).min(buf.len() as u64) as usize;
        if left == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..left], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}
