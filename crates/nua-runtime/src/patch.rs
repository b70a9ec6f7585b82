//! The files that turn a container of one image into one of another: when two images differ
//! only by files added or changed in their top layers (the usual edit of an app's source),
//! writing those files into a container of the first gives the filesystem of the second,
//! with no image to register and no container to start.
//!
//! Anything else is refused with the reason: a different config (command, environment,
//! ports, health check…), a file or whiteout that removes something, a link between files.
//! Only the layers above the ones both images share are read.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use super::load::describe_image;
use super::Error;
use nua_oci::{Descriptor, Digest, ImageArchive, ImageInfo};

/// How the second image is had from a container of the first.
#[derive(Debug)]
pub enum Patch {
    /// Write this tar archive at `/`: the entries added or changed (`paths`, relative to
    /// the root, parents first), of which `files` are not folders.
    Files {
        archive: Vec<u8>,
        paths: Vec<String>,
        files: usize,
    },
    /// Not by writing files: why.
    Refused(String),
}

/// What the second image's filesystem needs written over the first's, reading the layers
/// above the ones they share; more than `limit` bytes of changed content is refused (a
/// new container of the second image is faster then).
pub fn patch_between(first: &Path, second: &Path, limit: u64) -> Result<Patch, Error> {
    let (old_archive, old) = describe_image(first)?;
    let (new_archive, new) = describe_image(second)?;
    if old.config.config != new.config.config
        || old.config.architecture != new.config.architecture
        || old.config.os != new.config.os
    {
        return Ok(Patch::Refused("the image's config changed".into()));
    }
    let shared = old
        .config
        .rootfs
        .diff_ids
        .iter()
        .zip(&new.config.rootfs.diff_ids)
        .take_while(|(a, b)| a == b)
        .count();
    let new_top = &new.layers[shared.min(new.layers.len())..];
    // Reading large layers costs more than the container this would spare.
    let compressed: u64 = new_top.iter().map(|l| l.size).sum();
    if compressed > limit {
        return Ok(Patch::Refused(format!(
            "its changed layers are larger than {} MiB",
            limit >> 20
        )));
    }
    // Each a merged view of the top layers: a later entry that is not a folder hides what
    // an earlier one had below it.
    let mut before: BTreeMap<String, Signature> = BTreeMap::new();
    for layer in &old.layers[shared.min(old.layers.len())..] {
        let refused = read_layer(&old_archive, &old, layer, &mut |path, entry| {
            if !entry.is_dir() {
                drop_below(&mut before, &path);
            }
            before.insert(path, entry.signature);
            Ok(None)
        })?;
        if let Some(reason) = refused {
            return Ok(Patch::Refused(reason));
        }
    }
    // Path → the entry to write; `None`: as it is in the first image.
    let mut after: BTreeMap<String, Option<Entry>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut size = 0u64;
    for layer in new_top {
        let refused = read_layer(&new_archive, &new, layer, &mut |path, entry| {
            let changed = before.get(&path) != Some(&entry.signature);
            if changed {
                size += entry.data.len() as u64;
                if size > limit {
                    return Ok(Some(format!("more than {} MiB changed", limit >> 20)));
                }
            }
            if !entry.is_dir() {
                drop_below(&mut after, &path);
            }
            if !after.contains_key(&path) {
                order.push(path.clone());
            }
            after.insert(path, changed.then_some(entry));
            Ok(None)
        })?;
        if let Some(reason) = refused {
            return Ok(Patch::Refused(reason));
        }
    }
    if let Some(gone) = before.keys().find(|path| !after.contains_key(*path)) {
        return Ok(Patch::Refused(format!("`/{gone}` was removed")));
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut paths = Vec::new();
    let mut files = 0;
    for path in &order {
        let Some(Some(entry)) = after.get(path) else {
            continue;
        };
        // A folder the top layers do not hold comes from below, where it may be a link that
        // Docker would write through: the image has a real folder there.
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            if !after.contains_key(up) {
                return Ok(Patch::Refused(format!(
                    "`/{path}` is in a folder of a lower layer"
                )));
            }
            parent = up;
        }
        let mut header = entry.header.clone();
        let written = match &entry.signature.link {
            Some(target) => builder.append_link(&mut header, path, target),
            None => builder.append_data(&mut header, path, entry.data.as_slice()),
        };
        written.map_err(|e| archive_error(&new, e))?;
        paths.push(path.clone());
        files += usize::from(!entry.is_dir());
    }
    let archive = builder.into_inner().map_err(|e| archive_error(&new, e))?;
    Ok(Patch::Files {
        archive,
        paths,
        files,
    })
}

/// Forget what `map` holds below `path`.
fn drop_below<V>(map: &mut BTreeMap<String, V>, path: &str) {
    let prefix = format!("{path}/");
    let below: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .map(|(key, _)| key.clone())
        .collect();
    for key in below {
        map.remove(&key);
    }
}

/// What tells two entries of a path apart (times aside: a layer's are the build's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signature {
    kind: u8,
    mode: u32,
    owner: (u64, u64),
    link: Option<String>,
    content: Option<Digest>,
}

struct Entry {
    header: tar::Header,
    signature: Signature,
    data: Vec<u8>,
}

impl Entry {
    fn is_dir(&self) -> bool {
        tar::EntryType::new(self.signature.kind).is_dir()
    }
}

type Visit<'a> = dyn FnMut(String, Entry) -> Result<Option<String>, Error> + 'a;

/// Give each entry of a layer to `visit`; the reason when the layer removes something or
/// links files (or `visit` refuses).
fn read_layer(
    archive: &ImageArchive,
    info: &ImageInfo,
    layer: &Descriptor,
    visit: &mut Visit<'_>,
) -> Result<Option<String>, Error> {
    let at = |e: io::Error| archive_error(info, e);
    let blob = archive
        .open_descriptor(layer)
        .map_err(|source| Error::NotAnImage {
            path: archive_path(info),
            source,
        })?;
    let reader: Box<dyn Read> = match layer.media_type.as_str() {
        m if m.ends_with("gzip") => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        m if m.ends_with("zstd") => Box::new(zstd::stream::read::Decoder::new(blob).map_err(at)?),
        _ => blob,
    };
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(at)? {
        let mut entry = entry.map_err(at)?;
        let raw = entry.path_bytes();
        let Ok(text) = std::str::from_utf8(&raw) else {
            return Ok(Some(format!(
                "`/{}` is not a UTF-8 path",
                String::from_utf8_lossy(&raw)
            )));
        };
        let path = text
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned();
        if path.is_empty() || path == "." {
            continue;
        }
        if path.split('/').any(|part| part == "..") {
            return Err(at(io::Error::other(format!(
                "the layer entry `{text}` leaves the image's root"
            ))));
        }
        let name = path.rsplit('/').next().unwrap_or(&path);
        if name.starts_with(".wh.") {
            return Ok(Some(format!("`/{path}` removes a file")));
        }
        if has_xattrs(&mut entry).map_err(at)? {
            return Ok(Some(format!("`/{path}` has extended attributes")));
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        if kind.is_hard_link() {
            return Ok(Some(format!("`/{path}` is a hard link")));
        }
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            return Ok(Some(format!(
                "`/{path}` is neither a file, a folder nor a link"
            )));
        }
        let link = match kind.is_symlink() {
            true => match entry.link_name_bytes() {
                Some(target) => match String::from_utf8(target.into_owned()) {
                    Ok(target) => Some(target),
                    Err(_) => return Ok(Some(format!("`/{path}` links to a non-UTF-8 path"))),
                },
                None => None,
            },
            false => None,
        };
        let mut data = Vec::new();
        if kind.is_file() {
            entry.read_to_end(&mut data).map_err(at)?;
        }
        let signature = Signature {
            kind: kind.as_byte(),
            mode: header.mode().map_err(at)?,
            owner: (header.uid().map_err(at)?, header.gid().map_err(at)?),
            link,
            content: kind.is_file().then(|| Digest::of(&data)),
        };
        let entry = Entry {
            header,
            signature,
            data,
        };
        if let Some(reason) = visit(path, entry)? {
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// Whether an entry carries extended attributes (PAX `SCHILY.xattr.*`), which an archive
/// written into a container would not keep.
fn has_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<bool> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(false);
    };
    for extension in extensions {
        if extension?.key_bytes().starts_with(b"SCHILY.xattr.") {
            return Ok(true);
        }
    }
    Ok(false)
}

fn archive_path(info: &ImageInfo) -> std::path::PathBuf {
    info.config_descriptor.digest.to_string().into()
}

fn archive_error(info: &ImageInfo, source: io::Error) -> Error {
    Error::NotAnImage {
        path: archive_path(info),
        source: nua_oci::Error::Io {
            path: archive_path(info),
            source,
        },
    }
}

#[cfg(test)]
mod tests;
