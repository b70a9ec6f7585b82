//! Adding a directory tree from the file system to a layer.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::{normalize, LayerOptions, LayerWriter, Meta};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::tar_writer::Kind;

/// Extended attributes that describe the build host rather than the file: an SELinux label
/// differs from machine to machine and POSIX ACLs (`system.*`) are not carried by OCI layers.
pub fn host_specific_xattr(name: &str) -> bool {
    name == "security.selinux" || name.starts_with("system.")
}

/// The DiffID (sha256 of the uncompressed tar) of the layer that
/// [`LayerWriter::append_dir_tree`] would write from these arguments, computed without
/// compressing or writing anything: a cache key for "this folder as it would appear in a layer".
///
/// It is the `diff_id` of a fresh [`LayerWriter`] given only this tree then finished: the same
/// walker writes the same tar bytes (names, modes, owners, clamped mtimes, xattrs, hard links,
/// symlinks, devices and FIFOs, and with a non-empty `dest_prefix` the root folder's own
/// metadata and the prefix's parents), they are only hashed instead of compressed.
/// `opts.compression` has no effect on it; `opts.source_date_epoch` does.
pub fn tree_diff_id<F>(
    src: &Path,
    dest_prefix: &str,
    tree: impl Into<TreeOptions>,
    opts: &LayerOptions,
    filter: F,
) -> Result<Digest>
where
    F: FnMut(&Path, &Metadata) -> bool,
{
    let mut writer = LayerWriter::hash_only(*opts);
    writer.append_dir_tree(src, dest_prefix, tree, filter)?;
    Ok(writer.finish_tar()?.0)
}

/// How files of a tree become entries, beyond what the file system says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// One `(uid, gid)` for every entry instead of the file system's owners.
    pub ownership: Option<(u32, u32)>,
    /// Permissions and times as git records them, so a checkout under any umask, at any
    /// time, gives the same bytes: folders `0755`, files `0755` when their owner may execute
    /// them and `0644` otherwise, symlinks `0777`, other entries `0644`; setuid, setgid and
    /// sticky bits dropped; every mtime is `source_date_epoch` (git keeps none, and a copy
    /// made before the commit would otherwise keep older ones).
    pub git_modes: bool,
}

/// `Some((uid, gid))` forces owners and keeps modes, as before [`TreeOptions`] existed.
impl From<Option<(u32, u32)>> for TreeOptions {
    fn from(ownership: Option<(u32, u32)>) -> Self {
        TreeOptions {
            ownership,
            git_modes: false,
        }
    }
}

struct Walk {
    options: TreeOptions,
    /// First path written for each (dev, ino) with more than one link.
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
}

impl LayerWriter {
    /// Add the tree under `src` as `dest_prefix` (e.g. `nua/app`; `""` for the layer root).
    ///
    /// Entries are walked in byte order of their names, parents first. Symlinks are kept as
    /// symlinks and never followed; files with several links become hard-link entries to the
    /// first one written; xattrs are recorded (except host-specific ones); mtimes are clamped
    /// to `source_date_epoch`. Owners and modes come from the file system unless `tree`
    /// ([`TreeOptions`], or just `Some((uid, gid))`) says otherwise. Missing ancestors of `dest_prefix` are written as
    /// root-owned `0755` directories. `filter(relative_path, metadata)` returning `false`
    /// skips an entry (and, for a directory, everything below it). Sockets are skipped.
    pub fn append_dir_tree<F>(
        &mut self,
        src: &Path,
        dest_prefix: &str,
        tree: impl Into<TreeOptions>,
        mut filter: F,
    ) -> Result<()>
    where
        F: FnMut(&Path, &Metadata) -> bool,
    {
        let root = fs::symlink_metadata(src).at(src)?;
        if !root.is_dir() {
            return Err(Error::Io {
                path: src.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            });
        }
        let mut walk = Walk {
            options: tree.into(),
            hardlinks: HashMap::new(),
        };
        let prefix = normalize(dest_prefix.as_bytes(), true)?.unwrap_or_default();
        if !prefix.is_empty() {
            let without_slash = &prefix[..prefix.len() - 1];
            if let Some(i) = without_slash.iter().rposition(|&b| b == b'/') {
                self.write_missing_dirs(&prefix[..=i], &Meta::new(0o755))?;
            }
            let meta = walk.meta(src, &root)?;
            self.write_dir(prefix.clone(), &meta)?;
        }
        self.walk_dir(src, Path::new(""), &prefix, &mut walk, &mut filter)
    }

    fn walk_dir(
        &mut self,
        dir: &Path,
        rel: &Path,
        dest: &[u8],
        walk: &mut Walk,
        filter: &mut dyn FnMut(&Path, &Metadata) -> bool,
    ) -> Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).at(dir)? {
            names.push(entry.at(dir)?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let rel = rel.join(&name);
            let md = fs::symlink_metadata(&path).at(&path)?;
            if !filter(&rel, &md) {
                continue;
            }
            let mut target = [dest, name.as_bytes()].concat();
            super::refuse_whiteout_name(name.as_bytes(), &target)?;
            let ft = md.file_type();
            let meta = walk.meta(&path, &md)?;
            if ft.is_dir() {
                target.push(b'/');
                self.write_dir(target.clone(), &meta)?;
                self.walk_dir(&path, &rel, &target, walk, filter)?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    let key = (md.dev(), md.ino());
                    if let Some(first) = walk.hardlinks.get(&key) {
                        let first = first.clone();
                        self.write_entry(&target, Kind::Hardlink, &meta, &first, (0, 0))?;
                        continue;
                    }
                    walk.hardlinks.insert(key, target.clone());
                }
                let file = File::open(&path).at(&path)?;
                self.write_file(&target, &meta, md.len(), io::BufReader::new(file))?;
            } else if ft.is_symlink() {
                let link = fs::read_link(&path).at(&path)?;
                self.write_entry(
                    &target,
                    Kind::Symlink,
                    &meta,
                    link.as_os_str().as_bytes(),
                    (0, 0),
                )?;
            } else if ft.is_char_device() || ft.is_block_device() {
                let kind = if ft.is_char_device() {
                    Kind::Char
                } else {
                    Kind::Block
                };
                let (major, minor) = split_dev(md.rdev());
                self.write_entry(&target, kind, &meta, b"", (major, minor))?;
            } else if ft.is_fifo() {
                self.write_entry(&target, Kind::Fifo, &meta, b"", (0, 0))?;
            }
            // Sockets cannot be stored in a tar archive; they are runtime artifacts anyway.
        }
        Ok(())
    }
}

impl Walk {
    fn meta(&self, path: &Path, md: &Metadata) -> Result<Meta> {
        let (uid, gid) = self.options.ownership.unwrap_or((md.uid(), md.gid()));
        let ft = md.file_type();
        let mode = if !self.options.git_modes {
            md.mode() & 0o7777
        } else if ft.is_dir() {
            0o755
        } else if ft.is_symlink() {
            0o777
        } else if ft.is_file() && md.mode() & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime: (!self.options.git_modes).then(|| md.mtime().max(0) as u64),
            xattrs: read_xattrs(path)?,
        })
    }
}

fn read_xattrs(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(out),
        Err(e) => return Err(e).at(path),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if host_specific_xattr(name) {
            continue;
        }
        match xattr::get(path, name) {
            Ok(Some(value)) => {
                out.insert(name.to_owned(), value);
            }
            Ok(None) => {}
            Err(e) if unsupported(&e) => {}
            Err(e) => return Err(e).at(path),
        }
    }
    Ok(out)
}

fn unsupported(e: &io::Error) -> bool {
    // ENOTSUP/EOPNOTSUPP (95) on file systems without xattrs; ENODATA (61) when it vanished.
    e.kind() == io::ErrorKind::Unsupported || matches!(e.raw_os_error(), Some(95 | 61))
}

/// Linux `dev_t` encoding (glibc `gnu_dev_major`/`gnu_dev_minor`).
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_numbers_split_like_glibc() {
        // /dev/null is 1:3, /dev/sda1 8:1; a large one: 259:65536.
        assert_eq!(split_dev(0x103), (1, 3));
        assert_eq!(split_dev(0x801), (8, 1));
        let big: u64 = (259 << 8) | ((65536 & !0xff) << 12);
        assert_eq!(split_dev(big), (259, 65536));
    }
}
