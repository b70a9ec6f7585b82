//! Unpacking a layer blob into a lower directory, safely: layers come from registries.
//!
//! Runs inside the user namespace (so ownership is kept as subordinate ids). Every entry is
//! created relative to a directory descriptor reached by `openat(O_NOFOLLOW)` one component
//! at a time, so no symlink is ever followed: a symlink pointing outside followed by a file
//! written "through" it is refused. Absolute paths and `..` are refused, hard links must
//! name an entry already inside the root, device nodes are skipped (the sandbox mounts its
//! own `/dev`). OCI whiteouts become overlay whiteouts (`.wh.x` → char 0:0, `.wh..wh..opq`
//! → `user.overlay.opaque=y`). The uncompressed stream is hashed as it is read and must
//! match the DiffID before the directory is renamed into place.

use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::error::{Error, IoContext, Result};
use super::sys::{cstring, cvt};
use nua_oci::{self as oci, BlobStore, Digest, Layer};

/// The overlay xattr names that mark a directory opaque (`userxattr` mounts read the first).
pub(crate) const OPAQUE_XATTRS: [&str; 2] = ["user.overlay.opaque", "trusted.overlay.opaque"];

/// Unpack `layer` from `store` into `dest` (which must not exist); returns nothing until the
/// DiffID has been checked. Call inside the user namespace.
pub(crate) fn unpack(store: &BlobStore, layer: &Layer, dest: &Path) -> Result<()> {
    let name = layer.descriptor.digest.to_string();
    let blob = store.open_blob(&layer.descriptor.digest)?;
    let mut hashed = HashRead {
        inner: nua_oci::layer::stream::decompressed(blob)?,
        hasher: Sha256::new(),
    };
    std::fs::create_dir(dest).at(dest)?;
    let root = open_dir(libc::AT_FDCWD, &path_c(dest)?).at(dest)?;
    let mut archive = tar::Archive::new(&mut hashed);
    let archive = &mut archive;
    let entries = archive
        .entries()
        .map_err(|e| stream_error(&name, "reading", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| stream_error(&name, "reading the next entry of", e))?;
        Extract {
            root: &root,
            layer: &name,
        }
        .entry(&mut entry)?;
    }
    // Trailing padding after the end-of-archive blocks is part of the DiffID too.
    io::copy(&mut hashed, &mut io::sink()).map_err(|e| stream_error(&name, "draining", e))?;
    let actual = Digest::from_hash(hashed.hasher.finalize().into());
    if actual != layer.diff_id {
        return Err(Error::DiffId {
            blob: name,
            expected: layer.diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

fn stream_error(layer: &str, doing: &str, source: io::Error) -> Error {
    Error::Oci(oci::Error::Stream {
        context: format!("{doing} layer {layer}"),
        source,
    })
}

fn path_c(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    cstring(path.as_os_str().as_bytes())
        .ok_or_else(|| Error::Command(format!("path `{}` contains NUL", path.display())))
}

struct HashRead<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Open a directory without following a symlink in its last component.
pub(crate) fn open_dir(dirfd: libc::c_int, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated; the result is a fresh descriptor.
    let fd = cvt(unsafe { libc::openat(dirfd, name.as_ptr(), flags) })?;
    // SAFETY: just opened, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Walk `components` from `root` one directory at a time, never following a symlink;
/// missing directories are created (mode 0755) when `create`.
pub(crate) fn walk(root: &OwnedFd, components: &[&[u8]], create: bool) -> io::Result<OwnedFd> {
    let mut cur = open_dir(root.as_raw_fd(), c".")?;
    for comp in components {
        let name = cstring(*comp).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let next = match open_dir(cur.as_raw_fd(), &name) {
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                // SAFETY: `name` is NUL-terminated.
                cvt(unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o755) })?;
                open_dir(cur.as_raw_fd(), &name)?
            }
            other => other?,
        };
        cur = next;
    }
    Ok(cur)
}

struct Extract<'a> {
    root: &'a OwnedFd,
    layer: &'a str,
}

impl Extract<'_> {
    fn hostile(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::HostileEntry {
            layer: self.layer.to_owned(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    /// The directory holding `path` (normalized, relative) and the entry's own name.
    fn parent(&self, raw: &[u8], path: &[u8], create: bool) -> Result<(OwnedFd, CString)> {
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let (name, dirs) = comps.split_last().expect("normalized paths are not empty");
        let dir = walk(self.root, dirs, create).map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => self.hostile(
                raw,
                "a parent directory is a symlink or a file (never followed)",
            ),
            _ => self.hostile(raw, format!("cannot open its parent directory: {e}")),
        })?;
        let name = cstring(*name).ok_or_else(|| self.hostile(raw, "NUL in name"))?;
        Ok((dir, name))
    }

    fn entry<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        use tar::EntryType as T;
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let normalized = oci::layer::normalize(&raw, false)
            .map_err(|_| self.hostile(&raw, "absolute paths and `..` leave the root"))?;
        let Some(path) = normalized else {
            return Ok(()); // the root itself
        };
        let io_err = |e: io::Error| self.hostile(&raw, e.to_string());
        let (dir, name) = self.parent(&raw, &path, true)?;
        let base = name.to_bytes();
        if base == b".wh..wh..opq" {
            let opaque = cstring(OPAQUE_XATTRS[0]).expect("constant");
            // SAFETY: valid descriptor and NUL-terminated name; value is a 1-byte slice.
            cvt(unsafe {
                libc::fsetxattr(dir.as_raw_fd(), opaque.as_ptr(), c"y".as_ptr().cast(), 1, 0)
            })
            .map_err(io_err)?;
            return Ok(());
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let owner = (
            header.uid().unwrap_or(0) as libc::uid_t,
            header.gid().unwrap_or(0) as libc::gid_t,
        );
        let mtime = header.mtime().unwrap_or(0) as i64;
        if let Some(hidden) = base.strip_prefix(b".wh.") {
            let hidden = cstring(hidden).ok_or_else(|| self.hostile(&raw, "NUL in name"))?;
            remove(&dir, &hidden);
            // SAFETY: valid descriptor and name; a 0:0 character device is a whiteout.
            cvt(unsafe { libc::mknodat(dir.as_raw_fd(), hidden.as_ptr(), libc::S_IFCHR, 0) })
                .map_err(io_err)?;
            return Ok(());
        }
        let d = dir.as_raw_fd();
        match kind {
            T::Directory => {
                // SAFETY: valid descriptor and name.
                let made = unsafe { libc::mkdirat(d, name.as_ptr(), 0o700) };
                if made != 0 && open_dir(d, &name).is_err() {
                    remove(&dir, &name);
                    // SAFETY: as above.
                    cvt(unsafe { libc::mkdirat(d, name.as_ptr(), 0o700) }).map_err(io_err)?;
                }
                let fd = open_dir(d, &name).map_err(io_err)?;
                set_meta(&fd, owner, mode, mtime);
            }
            T::Regular | T::Continuous | T::GNUSparse => {
                remove(&dir, &name);
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
                // SAFETY: valid descriptor and name; the result is a fresh descriptor.
                let fd =
                    cvt(unsafe { libc::openat(d, name.as_ptr(), flags | libc::O_CLOEXEC, 0o600) })
                        .map_err(io_err)?;
                // SAFETY: just opened.
                let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
                io::copy(entry, &mut file).map_err(io_err)?;
                let fd = OwnedFd::from(file);
                for (key, value) in pax_xattrs(entry) {
                    // Best effort: `trusted.*` needs real root; overlay's own are refused.
                    // SAFETY: valid descriptor, NUL-terminated key, slice value.
                    unsafe {
                        libc::fsetxattr(
                            fd.as_raw_fd(),
                            key.as_ptr(),
                            value.as_ptr().cast(),
                            value.len(),
                            0,
                        )
                    };
                }
                set_meta(&fd, owner, mode, mtime);
            }
            T::Symlink => {
                remove(&dir, &name);
                let target = entry.link_name_bytes().unwrap_or_default();
                let target = cstring(target.into_owned())
                    .ok_or_else(|| self.hostile(&raw, "NUL in link"))?;
                // SAFETY: valid descriptor and NUL-terminated strings.
                cvt(unsafe { libc::symlinkat(target.as_ptr(), d, name.as_ptr()) })
                    .map_err(io_err)?;
                // SAFETY: as above; never follows the link.
                unsafe {
                    libc::fchownat(
                        d,
                        name.as_ptr(),
                        owner.0,
                        owner.1,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
            }
            T::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = oci::layer::normalize(&target, false)
                    .ok()
                    .flatten()
                    .ok_or_else(|| self.hostile(&raw, "hard link target outside the root"))?;
                let (tdir, tname) = self.parent(&raw, &target, false)?;
                remove(&dir, &name);
                // SAFETY: valid descriptors and names; flags 0 never follows a symlink.
                cvt(unsafe { libc::linkat(tdir.as_raw_fd(), tname.as_ptr(), d, name.as_ptr(), 0) })
                    .map_err(|e| self.hostile(&raw, format!("hard link target missing: {e}")))?;
            }
            T::Fifo => {
                remove(&dir, &name);
                // SAFETY: valid descriptor and name.
                cvt(unsafe { libc::mknodat(d, name.as_ptr(), libc::S_IFIFO | mode, 0) })
                    .map_err(io_err)?;
            }
            // Device nodes are neutralised: the sandbox mounts its own /dev.
            T::Char | T::Block | T::XGlobalHeader | T::XHeader => {}
            other => return Err(self.hostile(&raw, format!("unsupported entry type {other:?}"))),
        }
        Ok(())
    }
}

/// The xattrs of a PAX header, minus overlay's own (a layer must not steer overlayfs).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Vec<(CString, Vec<u8>)> {
    let Ok(Some(records)) = entry.pax_extensions() else {
        return Vec::new();
    };
    records
        .flatten()
        .filter_map(|r| {
            let name = r.key().ok()?.strip_prefix("SCHILY.xattr.")?;
            let overlay = name.starts_with("user.overlay.") || name.starts_with("trusted.overlay.");
            (!overlay).then(|| Some((cstring(name)?, r.value_bytes().to_vec())))?
        })
        .collect()
}

/// Remove what is at `name` (a file, a link, an empty directory), ignoring absence.
fn remove(dir: &OwnedFd, name: &CString) {
    // SAFETY: valid descriptor and name.
    unsafe {
        if libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) != 0 {
            libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR);
        }
    }
}

/// Owner (ignored when the id is not mapped), then mode (chown clears setuid), then mtime.
fn set_meta(fd: &OwnedFd, owner: (libc::uid_t, libc::gid_t), mode: u32, mtime: i64) {
    let times = [
        libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    ];
    // SAFETY: valid descriptor; `times` has the two entries futimens reads.
    unsafe {
        libc::fchown(fd.as_raw_fd(), owner.0, owner.1);
        libc::fchmod(fd.as_raw_fd(), mode);
        libc::futimens(fd.as_raw_fd(), times.as_ptr());
    }
}
