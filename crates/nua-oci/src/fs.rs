//! Atomic file writes: a file appears at its path complete, or not at all.
//!
//! The bytes go to a temporary file in the destination's folder (so on the same file system),
//! which is flushed to disk (`fsync`) and then renamed over the destination. A reader never
//! sees half a file, and a write killed midway leaves the old file, or none, plus at worst a
//! hidden `.<name>.<random>.tmp` beside it. Errors name the destination, never the temporary
//! file, whose name means nothing to the caller.
//!
//! This module does not create folders, and does not `fsync` the folder after the rename: a
//! crash right after a write may lose the new file, never corrupt it.
//!
//! ```
//! # fn main() -> Result<(), nua_oci::Error> {
//! # let tmp = tempfile::tempdir().unwrap();
//! let lock = tmp.path().join("base.lock");
//! nua_oci::fs::write_atomic(&lock, b"version = 1\n")?;
//! nua_oci::fs::write_atomic_with(&tmp.path().join("secrets.json"), 0o600, |file| {
//!     std::io::Write::write_all(file, b"{}").map_err(|e| nua_oci::Error::Stream {
//!         context: "writing secrets".into(),
//!         source: e,
//!     })
//! })?;
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::{Error, IoContext, Result};

/// The mode of files meant to be read by others (before the umask): images, locks, indexes.
pub const READABLE_BY_ALL: u32 = 0o644;

/// Replace `path` with `bytes`, atomically, mode `0644` (before the umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_mode(path, bytes, READABLE_BY_ALL)
}

/// Replace `path` with `bytes`, atomically, with permissions `mode` (before the umask; e.g.
/// `0o600` for a file of secrets, which is never readable by others, not even for a moment).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = AtomicFile::create(path, mode)?;
    file.write_all(bytes).at(path)?;
    file.commit()
}

/// Replace `path` with what `write` writes into the file it is given, atomically, with
/// permissions `mode` (before the umask). When `write` fails, `path` is left untouched and the
/// temporary file is deleted; its error comes back as is.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    mode: u32,
    write: impl FnOnce(&mut File) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut file = AtomicFile::create(path, mode)?;
    write(file.temp.as_file_mut())?;
    file.commit()?;
    Ok(())
}

/// A file being written that appears at its destination only on [`AtomicFile::commit`].
///
/// Dropping it uncommitted deletes the temporary file. For writers that need the file itself
/// (a [`std::io::BufWriter`] they own, a tar writer), [`AtomicFile::file`] gives it.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    /// Where the file goes; for [`AtomicFile::create_in`], the folder until `commit_as`.
    dest: PathBuf,
}

impl AtomicFile {
    /// Start writing the file that will replace `dest`, with permissions `mode` (before the
    /// umask).
    pub fn create(dest: impl Into<PathBuf>, mode: u32) -> Result<AtomicFile> {
        let dest = dest.into();
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let temp = temp_in(parent, &format!(".{name}."), mode).at(&dest)?;
        Ok(AtomicFile { temp, dest })
    }

    /// Start writing a file in `dir` whose name is only known at the end (a blob named by its
    /// digest): commit it with [`AtomicFile::commit_as`], to a path in the same file system.
    pub fn create_in(dir: &Path, prefix: &str, mode: u32) -> Result<AtomicFile> {
        let temp = temp_in(dir, prefix, mode).at(dir)?;
        Ok(AtomicFile {
            temp,
            dest: dir.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// The path the file will have once committed (the folder, for [`AtomicFile::create_in`]).
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flush the file to disk and rename it over its destination.
    pub fn commit(self) -> Result<()> {
        let dest = self.dest.clone();
        self.commit_as(&dest)
    }

    /// Flush the file to disk and rename it to `dest` (which must be on the same file system).
    pub fn commit_as(self, dest: &Path) -> Result<()> {
        self.temp.as_file().sync_all().at(dest)?;
        self.temp.persist(dest).map_err(|e| e.error).at(dest)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf).map_err(without_temp_name)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush().map_err(without_temp_name)
    }
}

fn temp_in(dir: &Path, prefix: &str, mode: u32) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(without_temp_name)
}

/// tempfile adds ` at path "<temporary name>"` to its I/O errors; keep the cause only.
fn without_temp_name(e: io::Error) -> io::Error {
    let message = e.to_string();
    match message.split_once(" at path ") {
        Some((cause, _)) if e.get_ref().is_some() => io::Error::new(e.kind(), cause.to_owned()),
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_whole_with_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic_mode(&path, b"old", 0o640).unwrap();
        assert_eq!(mode(&path), 0o640);
        write_atomic_mode(&path, b"new bytes", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new bytes");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(entries(dir.path()), ["a.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        write_atomic(&path, b"complete").unwrap();
        let result = write_atomic_with(&path, READABLE_BY_ALL, |file| {
            file.write_all(b"half a fi").unwrap();
            Err(Error::InvalidName {
                name: "x".into(),
                reason: "stop here".into(),
            })
        });
        assert!(matches!(result, Err(Error::InvalidName { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"complete");
        assert_eq!(entries(dir.path()), ["index.json"]);
    }

    #[test]
    fn an_uncommitted_file_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("layer.tar");
        let mut file = AtomicFile::create(&path, READABLE_BY_ALL).unwrap();
        file.write_all(b"partial").unwrap();
        assert!(!path.exists());
        drop(file);
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn a_file_named_at_the_end_goes_where_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = AtomicFile::create_in(dir.path(), "blob-", READABLE_BY_ALL).unwrap();
        file.write_all(b"blob").unwrap();
        let dest = dir.path().join("sha256-x");
        file.commit_as(&dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"blob");
    }

    #[test]
    fn errors_name_the_destination() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("file");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if p == &path),
            "{err:?}"
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(
            !cause.contains("file.") && !cause.contains(" at path "),
            "{cause}"
        );
    }
}
