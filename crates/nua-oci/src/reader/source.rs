//! Where an image's files come from: a directory or an indexed tarball.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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

pub(super) enum Entry {
    /// Data offset and size in the tarball.
    File { offset: u64, size: u64 },
    /// A symlink (docker save links duplicate layers), target relative to the archive root.
    Link(String),
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
        let mut file = File::open(path).at(path)?;
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
        let mut entries = HashMap::new();
        let mut archive = tar::Archive::new(&file);
        for entry in archive.entries().at(path)? {
            let entry = entry.at(path)?;
            let raw = entry.path_bytes().into_owned();
            let kind = entry.header().entry_type();
            let Some(name) = normalize(&raw, false)? else {
                continue;
            };
            let name = String::from_utf8_lossy(&name).into_owned();
            if kind.is_file() {
                entries.insert(
                    name,
                    Entry::File {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    },
                );
            } else if kind.is_symlink() {
                let target = entry.link_name_bytes().unwrap_or_default();
                let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                let joined = format!("{dir}/{}", String::from_utf8_lossy(&target));
                let resolved = resolve(&joined).ok_or_else(|| Error::PathEscape {
                    entry: name.clone(),
                })?;
                entries.insert(name, Entry::Link(resolved));
            }
        }
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

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => safe(name).is_some_and(|n| dir.join(n).is_file()),
            Source::Tar { entries, .. } => self.find(entries, name).is_some(),
        }
    }

    fn find(&self, entries: &HashMap<String, Entry>, name: &str) -> Option<(u64, u64)> {
        let mut name = safe(name)?;
        for _ in 0..8 {
            match entries.get(&name)? {
                Entry::File { offset, size } => return Some((*offset, *size)),
                Entry::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// Open a file of the image by its path in the layout.
    pub fn open(&self, name: &str) -> Result<Box<dyn Read + '_>> {
        let missing = || Error::InvalidImage {
            location: self.path().to_path_buf(),
            reason: format!("`{name}` is missing"),
        };
        match self {
            Source::Dir(dir) => {
                let rel = safe(name).ok_or_else(|| Error::PathEscape {
                    entry: name.to_owned(),
                })?;
                let path = dir.join(rel);
                match File::open(&path) {
                    Ok(f) => Ok(Box::new(io::BufReader::with_capacity(256 * 1024, f))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing()),
                    Err(e) => Err(e).at(path),
                }
            }
            Source::Tar { file, entries, .. } => {
                let (offset, size) = self.find(entries, name).ok_or_else(missing)?;
                Ok(Box::new(io::BufReader::with_capacity(
                    256 * 1024,
                    At {
                        file,
                        pos: offset,
                        end: offset + size,
                    },
                )))
            }
        }
    }
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
