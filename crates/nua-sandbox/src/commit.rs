//! Turning an overlay upper directory into an OCI layer.
//!
//! Only the upper directory is walked (sorted, parents first), so the cost follows what the
//! steps changed, never the size of the lower layers. Runs inside the user namespace, so
//! ownership is recorded as the steps saw it and files of subordinate ids can be read.
//! Overlay's own markers are translated: a 0:0 character device is a whiteout
//! (`.wh.<name>`), an opaque directory gets `.wh..wh..opq`, and `*.overlay.*` xattrs are
//! never recorded. Hard links between upper files stay hard links.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::error::{Error, IoContext, Result};
use super::unpack::OPAQUE_XATTRS;
use nua_oci::{BlobStore, DeviceKind, Layer, LayerOptions, LayerWriter, Meta};

/// Write the changes recorded in `upper` as a layer of `store`, but those at or below the
/// paths of `leave_out` (relative, e.g. `var/cache/apt`). Call inside the namespace.
pub(crate) fn commit(
    upper: &Path,
    store: &BlobStore,
    opts: &LayerOptions,
    leave_out: &[String],
) -> Result<Layer> {
    let mut walker = Walker {
        writer: LayerWriter::new(store, *opts)?,
        links: HashMap::new(),
        leave_out,
    };
    walker.dir(upper, "")?;
    Ok(walker.writer.finish()?)
}

struct Walker<'a> {
    writer: LayerWriter,
    /// (device, inode) of files with several links → the first path written.
    links: HashMap<(u64, u64), String>,
    leave_out: &'a [String],
}

impl Walker<'_> {
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .at(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .at(dir)?;
        entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in entries {
            let path = dir.join(&name);
            let name = name.to_str().ok_or_else(|| {
                Error::Command(format!(
                    "`{}`: file names must be UTF-8 in a layer",
                    path.display()
                ))
            })?;
            let rel = format!("{prefix}{name}");
            let left_out = self.leave_out.iter().any(|p| {
                rel.strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            });
            if !left_out {
                self.entry(&path, &rel)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &str) -> Result<()> {
        let md = fs::symlink_metadata(path).at(path)?;
        let ty = md.file_type();
        let meta = Meta {
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: Some(md.mtime().max(0) as u64),
            xattrs: if ty.is_symlink() {
                BTreeMap::new()
            } else {
                xattrs(path)?
            },
        };
        let w = &mut self.writer;
        if ty.is_dir() {
            w.add_dir(rel, &meta)?;
            if is_opaque(path) {
                w.add_opaque(rel)?;
            }
            return self.dir(path, &format!("{rel}/"));
        }
        if ty.is_char_device() && md.rdev() == 0 {
            return Ok(w.add_whiteout(rel)?);
        }
        if ty.is_symlink() {
            let target = fs::read_link(path).at(path)?;
            let target = target.to_str().ok_or_else(|| {
                Error::Command(format!("`{}`: link targets must be UTF-8", path.display()))
            })?;
            return Ok(w.add_symlink(rel, target, &meta)?);
        }
        if ty.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    return Ok(w.add_hardlink(rel, first, &meta)?);
                }
                self.links.insert((md.dev(), md.ino()), rel.to_owned());
            }
            let file = fs::File::open(path).at(path)?;
            return Ok(w.add_file(rel, &meta, md.len(), file)?);
        }
        let (major, minor) = (libc::major(md.rdev()), libc::minor(md.rdev()));
        let kind = if ty.is_fifo() {
            DeviceKind::Fifo
        } else if ty.is_char_device() {
            DeviceKind::Char
        } else if ty.is_block_device() {
            DeviceKind::Block
        } else {
            return Ok(()); // sockets have no place in a layer
        };
        Ok(w.add_device(rel, kind, &meta, major, minor)?)
    }
}

fn is_opaque(path: &Path) -> bool {
    OPAQUE_XATTRS
        .iter()
        .any(|name| matches!(xattr::get(path, name), Ok(Some(v)) if v == b"y"))
}

/// The xattrs to record: everything but overlay's bookkeeping and host-specific ones.
fn xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(out),
        Err(e) => return Err(e).at(path),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        // Overlay's bookkeeping, and what belongs to the host (SELinux labels, ACLs), as the
        // source walker does: a layer must not depend on the machine that made it.
        if name.starts_with("user.overlay.")
            || name.starts_with("trusted.overlay.")
            || nua_oci::layer::host_specific_xattr(name)
        {
            continue;
        }
        if let Some(value) = xattr::get(path, name).at(path)? {
            out.insert(name.to_owned(), value);
        }
    }
    Ok(out)
}
