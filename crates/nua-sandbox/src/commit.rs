//! Turning an overlay upper directory into an OCI layer.
//!
//! Only the upper directory is walked (sorted, parents first), so the cost follows what the
//! steps changed, never the size of the lower layers. Runs inside the user namespace, so
//! ownership is recorded as the steps saw it and files of subordinate ids can be read.
//! Overlay's own markers are translated: a 0:0 character device is a whiteout
//! (`.wh.<name>`), an opaque directory gets `.wh..wh..opq`, and `*.overlay.*` xattrs are
//! never recorded. Hard links between upper files stay hard links.
//!
//! Once written, the upper directory can be made what unpacking its layer gives
//! ([`into_unpacked`]) and become the layer's folder in the cache, so the next step stacks it
//! without decompressing and writing every file again.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::sys::cvt;

use super::error::{Error, IoContext, Result};
use super::unpack::{path_c, OPAQUE_XATTRS};
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
            if !left_out(self.leave_out, &rel) {
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

/// Make `upper`, just written as a layer with `opts` leaving out `leave_out`, exactly what
/// `unpack.rs` makes of that layer, as far as any later step can see:
/// - what was left out is removed, and so are sockets;
/// - files get their mtime as the layer has it (clamped; atime the same), and so do empty
///   folders; a folder with entries, and a symlink, get the time of now, as unpacking
///   leaves them;
/// - whiteouts are made again (mode 0, owned by root, no longer linked to each other as
///   overlay links them);
/// - only the xattrs unpacking restores stay: the opaque marker on folders, the recorded
///   `user.*` ones on files (host-specific ones, which neither records nor removes, are left
///   to the host).
///
/// `Ok(false)` when it holds what unpacking would make otherwise: a device other than a
/// whiteout, a FIFO, a name, link or xattr a PAX record cannot carry whole (a newline; `=` in
/// an xattr's name), an xattr outside `user.*`. The caller removes it then. Call inside the namespace, after [`commit`].
pub(crate) fn into_unpacked(
    upper: &Path,
    opts: &LayerOptions,
    leave_out: &[String],
) -> Result<bool> {
    Tidy {
        epoch: opts.source_date_epoch,
        leave_out,
    }
    .dir(upper, "")
}

struct Tidy<'a> {
    epoch: u64,
    leave_out: &'a [String],
}

impl Tidy<'_> {
    /// Tidy what is in `dir` (relative path `prefix`), children before their folder.
    fn dir(&self, dir: &Path, prefix: &str) -> Result<bool> {
        let names: Vec<_> = fs::read_dir(dir)
            .at(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .at(dir)?;
        for name in names {
            let path = dir.join(&name);
            let rel = format!("{prefix}{}", name.to_string_lossy());
            if left_out(self.leave_out, &rel) {
                // Never followed: `path` is reached through folders only.
                remove(&path)?;
                continue;
            }
            // (No name begins with `.wh.`: the layer writer refused it, and so the commit.)
            if rel.contains('\n') {
                return Ok(false);
            }
            let md = fs::symlink_metadata(&path).at(&path)?;
            let ty = md.file_type();
            let kept = if ty.is_dir() {
                // Unpacking marks an opaque folder with the first of OPAQUE_XATTRS only.
                let marker = OPAQUE_XATTRS[0];
                let marked = matches!(xattr::get(&path, marker), Ok(Some(v)) if v == b"y");
                // Unpacking restores no other xattr on a folder.
                self.dir(&path, &format!("{rel}/"))?
                    && (marked || !is_opaque(&path))
                    && only_xattrs(&path, |n, _| match marked && n == marker {
                        true => Xattr::Keep,
                        false => Xattr::Remove,
                    })?
            } else if ty.is_file() {
                only_xattrs(&path, |n, value| {
                    if n.starts_with("user.overlay.") {
                        Xattr::Remove
                    } else if n.starts_with("user.") && !n.contains('=') && !value.contains(&b'\n')
                    {
                        Xattr::Keep
                    } else {
                        Xattr::Refuse
                    }
                })?
            } else if ty.is_socket() {
                remove(&path)?;
                continue;
            } else if ty.is_symlink() {
                let target = fs::read_link(&path).at(&path)?;
                !target.as_os_str().as_bytes().contains(&b'\n')
            } else if ty.is_char_device() && md.rdev() == 0 {
                whiteout_again(&path)?;
                continue;
            } else {
                false
            };
            if !kept {
                return Ok(false);
            }
            let empty = ty.is_dir() && is_empty(&path)?;
            if ty.is_file() || empty {
                let mtime = (md.mtime().max(0) as u64).min(self.epoch);
                set_times(&path, Some(mtime as i64))?;
            } else {
                set_times(&path, None)?;
            }
        }
        Ok(true)
    }
}

/// Whether `rel` is at or below one of the paths of `leave_out`.
fn left_out(leave_out: &[String], rel: &str) -> bool {
    leave_out.iter().any(|p| {
        rel.strip_prefix(p.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

fn remove(path: &Path) -> Result<()> {
    let md = fs::symlink_metadata(path).at(path)?;
    if md.is_dir() {
        fs::remove_dir_all(path).at(path)
    } else {
        fs::remove_file(path).at(path)
    }
}

/// What becomes of an xattr of a kept upper directory.
enum Xattr {
    Keep,
    Remove,
    /// Unpacking would not make it the same: the folder is not kept.
    Refuse,
}

/// Apply `rule` (name, value) to the xattrs of `path`, but the host's own (SELinux labels,
/// ACLs: neither recorded nor restored); whether none was refused.
fn only_xattrs(path: &Path, rule: impl Fn(&str, &[u8]) -> Xattr) -> Result<bool> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(true),
        Err(e) => return Err(e).at(path),
    };
    for name in names {
        let Some(text) = name.to_str() else {
            return Ok(false);
        };
        if nua_oci::layer::host_specific_xattr(text) {
            continue;
        }
        let value = xattr::get(path, &name).at(path)?.unwrap_or_default();
        match rule(text, &value) {
            Xattr::Keep => {}
            Xattr::Refuse => return Ok(false),
            // What is not ours to remove (`trusted.*`) keeps it from being kept.
            Xattr::Remove if xattr::remove(path, &name).is_err() => return Ok(false),
            Xattr::Remove => {}
        }
    }
    Ok(true)
}

/// Make the whiteout at `path` again as unpacking makes one: its own inode, mode 0, owned by
/// the namespace's root.
fn whiteout_again(path: &Path) -> Result<()> {
    fs::remove_file(path).at(path)?;
    let name = path_c(path)?;
    // SAFETY: a NUL-terminated path; a 0:0 character device is a whiteout.
    cvt(unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR, 0) }).at(path)?;
    Ok(())
}

fn is_empty(dir: &Path) -> Result<bool> {
    Ok(fs::read_dir(dir).at(dir)?.next().is_none())
}

/// Set the atime and mtime of `path` (a symlink's own) to `mtime`, whole seconds, or to now.
fn set_times(path: &Path, mtime: Option<i64>) -> Result<()> {
    let at = match mtime {
        Some(mtime) => libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
    };
    let name = path_c(path)?;
    let times = [at, at];
    // SAFETY: NUL-terminated path; `times` has the two entries utimensat reads.
    cvt(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .at(path)?;
    Ok(())
}
