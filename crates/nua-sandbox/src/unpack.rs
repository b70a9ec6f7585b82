//! Unpacking a layer blob into a lower directory, safely: layers come from registries.
//!
//! Runs inside the user namespace (so ownership is kept as subordinate ids). Every entry is
//! created relative to a directory descriptor reached by `openat(O_NOFOLLOW)` one component
//! at a time, so no symlink is ever followed: a symlink pointing outside followed by a file
//! written "through" it is refused. Absolute paths and `..` are refused, hard links must
//! name an entry already inside the root, device nodes are refused (the sandbox mounts its
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
///
/// When the layer does not read back (a broken stream, a wrong DiffID) because the stored
/// blob itself is damaged, the blob is moved aside and the error says so: the next build
/// makes or fetches it again.
pub(crate) fn unpack(store: &BlobStore, layer: &Layer, dest: &Path) -> Result<()> {
    let digest = &layer.descriptor.digest;
    unpack_checked(store, layer, dest).map_err(|e| match e {
        Error::DiffId { .. } | Error::Oci(oci::Error::Stream { .. }) => {
            store.found_corrupt(digest).map_or(e, Error::Oci)
        }
        e => e,
    })
}

fn unpack_checked(store: &BlobStore, layer: &Layer, dest: &Path) -> Result<()> {
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

/// `path` for a system call.
pub(crate) fn path_c(path: &Path) -> Result<CString> {
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
        let normalized = oci::layer::normalize(&raw, false)
            .map_err(|_| self.hostile(&raw, "absolute paths and `..` leave the root"))?;
        let Some(path) = normalized else {
            return Ok(()); // the root itself
        };
        let (dir, name) = self.parent(&raw, &path, true)?;
        let at = Place {
            raw: &raw,
            dir,
            name,
        };
        let base = at.name.to_bytes();
        if base == b".wh..wh..opq" {
            return self.opaque(&at);
        }
        if let Some(hidden) = base.strip_prefix(b".wh.") {
            return self.whiteout(&at, hidden);
        }
        let meta = Meta::of(entry.header());
        match entry.header().entry_type() {
            T::Directory => self.directory(&at, &meta),
            T::Regular | T::Continuous | T::GNUSparse => self.regular(&at, &meta, entry),
            T::Symlink => self.symlink(&at, &meta, entry),
            T::Link => self.hard_link(&at, entry),
            T::Fifo => {
                remove(&at.dir, &at.name);
                let (d, name) = (at.dir.as_raw_fd(), at.name.as_ptr());
                // SAFETY: valid descriptor and name.
                cvt(unsafe { libc::mknodat(d, name, libc::S_IFIFO | meta.mode, 0) })
                    .map_err(self.io_error(&at))?;
                Ok(())
            }
            // An image has no business shipping devices (the runtime makes `/dev`): one that
            // does is refused, whether or not the sandbox could create it.
            T::Char | T::Block => Err(self.hostile(&raw, "device nodes are refused")),
            T::XGlobalHeader | T::XHeader => Ok(()),
            other => Err(self.hostile(&raw, format!("unsupported entry type {other:?}"))),
        }
    }

    /// An I/O failure on the entry at `at`, which names it.
    fn io_error<'a>(&'a self, at: &'a Place<'_>) -> impl Fn(io::Error) -> Error + 'a {
        |e| self.hostile(at.raw, e.to_string())
    }

    /// `.wh..wh..opq`: the folder hides what the layers below have in it.
    fn opaque(&self, at: &Place<'_>) -> Result<()> {
        let opaque = cstring(OPAQUE_XATTRS[0]).expect("constant");
        // SAFETY: valid descriptor and NUL-terminated name; value is a 1-byte slice.
        cvt(unsafe {
            libc::fsetxattr(
                at.dir.as_raw_fd(),
                opaque.as_ptr(),
                c"y".as_ptr().cast(),
                1,
                0,
            )
        })
        .map_err(self.io_error(at))?;
        Ok(())
    }

    /// `.wh.<name>`: `<name>` is deleted from the layers below.
    fn whiteout(&self, at: &Place<'_>, hidden: &[u8]) -> Result<()> {
        let hidden = cstring(hidden).ok_or_else(|| self.hostile(at.raw, "NUL in name"))?;
        remove(&at.dir, &hidden);
        // SAFETY: valid descriptor and name; a 0:0 character device is a whiteout.
        cvt(unsafe { libc::mknodat(at.dir.as_raw_fd(), hidden.as_ptr(), libc::S_IFCHR, 0) })
            .map_err(self.io_error(at))?;
        Ok(())
    }

    fn directory(&self, at: &Place<'_>, meta: &Meta) -> Result<()> {
        let (d, name) = (at.dir.as_raw_fd(), &at.name);
        // SAFETY: valid descriptor and name.
        let made = unsafe { libc::mkdirat(d, name.as_ptr(), 0o700) };
        if made != 0 && open_dir(d, name).is_err() {
            remove(&at.dir, name);
            // SAFETY: as above.
            cvt(unsafe { libc::mkdirat(d, name.as_ptr(), 0o700) }).map_err(self.io_error(at))?;
        }
        let fd = open_dir(d, name).map_err(self.io_error(at))?;
        set_meta(&fd, meta.owner, meta.mode, meta.mtime);
        Ok(())
    }

    fn regular<R: Read>(
        &self,
        at: &Place<'_>,
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<()> {
        remove(&at.dir, &at.name);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let (d, name) = (at.dir.as_raw_fd(), at.name.as_ptr());
        // SAFETY: valid descriptor and name; the result is a fresh descriptor.
        let fd = cvt(unsafe { libc::openat(d, name, flags | libc::O_CLOEXEC, 0o600) })
            .map_err(self.io_error(at))?;
        // SAFETY: just opened.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        io::copy(entry, &mut file).map_err(self.io_error(at))?;
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
        set_meta(&fd, meta.owner, meta.mode, meta.mtime);
        Ok(())
    }

    fn symlink<R: Read>(
        &self,
        at: &Place<'_>,
        meta: &Meta,
        entry: &tar::Entry<'_, R>,
    ) -> Result<()> {
        remove(&at.dir, &at.name);
        let target = entry.link_name_bytes().unwrap_or_default();
        let target =
            cstring(target.into_owned()).ok_or_else(|| self.hostile(at.raw, "NUL in link"))?;
        let (d, name) = (at.dir.as_raw_fd(), at.name.as_ptr());
        // SAFETY: valid descriptor and NUL-terminated strings.
        cvt(unsafe { libc::symlinkat(target.as_ptr(), d, name) }).map_err(self.io_error(at))?;
        let (uid, gid) = meta.owner;
        // SAFETY: as above; never follows the link.
        unsafe { libc::fchownat(d, name, uid, gid, libc::AT_SYMLINK_NOFOLLOW) };
        Ok(())
    }

    /// A hard link, to an entry already extracted inside the root.
    fn hard_link<R: Read>(&self, at: &Place<'_>, entry: &tar::Entry<'_, R>) -> Result<()> {
        let target = entry.link_name_bytes().unwrap_or_default().into_owned();
        let target = oci::layer::normalize(&target, false)
            .ok()
            .flatten()
            .ok_or_else(|| self.hostile(at.raw, "hard link target outside the root"))?;
        let (tdir, tname) = self.parent(at.raw, &target, false)?;
        remove(&at.dir, &at.name);
        let (d, name) = (at.dir.as_raw_fd(), at.name.as_ptr());
        // SAFETY: valid descriptors and names; flags 0 never follows a symlink.
        cvt(unsafe { libc::linkat(tdir.as_raw_fd(), tname.as_ptr(), d, name, 0) })
            .map_err(|e| self.hostile(at.raw, format!("hard link target missing: {e}")))?;
        Ok(())
    }
}

/// Where an entry goes: its parent folder (opened without following links) and its name.
struct Place<'a> {
    /// The entry's path as the layer spells it, for errors.
    raw: &'a [u8],
    dir: OwnedFd,
    name: CString,
}

/// What a tar header says of an entry's owner, mode and time.
struct Meta {
    owner: (libc::uid_t, libc::gid_t),
    mode: u32,
    mtime: i64,
}

impl Meta {
    fn of(header: &tar::Header) -> Meta {
        Meta {
            owner: (
                header.uid().unwrap_or(0) as libc::uid_t,
                header.gid().unwrap_or(0) as libc::gid_t,
            ),
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            mtime: header.mtime().unwrap_or(0) as i64,
        }
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
