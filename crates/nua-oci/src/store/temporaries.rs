//! Temporary files of blobs being written, and collecting those whose writer died.
//!
//! A [`BlobWriter`](super::BlobWriter) holds an exclusive `flock` on its temporary file for
//! as long as it lives (the lock goes with the open file, so the kernel drops it when the
//! process dies, however it dies). Collection, when a store is opened, removes every
//! temporary whose lock it can take without waiting: its writer is gone, whatever the file's
//! age, so a killed run's partial blob is not left to fill the disk. A live writer's lock
//! cannot be taken, so its file is never touched, by this process or another.
//!
//! The one race, a collector locking a file its writer created but has not locked yet, is
//! closed on the writer's side: the writer waits for the lock and then checks its file is
//! still linked, and starts a new one when it was collected in between.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use super::BlobStore;
use crate::error::{IoContext, Result};
use crate::fs::{AtomicFile, READABLE_BY_ALL};

/// The prefix of every temporary file of a blob writer: only those are collected.
const PREFIX: &str = "blob-";

impl BlobStore {
    /// A new temporary file in `tmp/`, locked for the writer that owns it.
    pub(super) fn locked_temporary(&self) -> Result<AtomicFile> {
        let dir = self.tmp_dir();
        loop {
            let temp = AtomicFile::create_in(&dir, PREFIX, READABLE_BY_ALL)?;
            flock(temp.file(), libc::LOCK_EX).at(&dir)?;
            // Collected between its creation and the lock: start again with a new file.
            if temp.file().metadata().at(&dir)?.nlink() > 0 {
                return Ok(temp);
            }
        }
    }

    /// Remove the temporary files no live writer holds. Best effort: a file that cannot be
    /// opened, locked or removed stays.
    pub(super) fn remove_abandoned_temporaries(&self) {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let ours = entry.file_name().to_string_lossy().starts_with(PREFIX);
            if !ours || !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            // Removed while the lock is held, so a writer waiting for it finds its file gone.
            if flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_ok() {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

/// `flock(2)` on `file`.
fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes a file descriptor, which `file` keeps open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn temporaries(store: &BlobStore) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(store.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_unlocked_temporary_is_collected_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        // What a killed writer leaves: a fresh file nobody holds a lock on.
        fs::write(store.tmp_dir().join("blob-killed.tmp"), b"partial").unwrap();
        // Not a writer's file: not ours to remove.
        fs::write(store.tmp_dir().join("other"), b"x").unwrap();
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(temporaries(&store), ["other"]);
    }

    #[test]
    fn a_live_writers_temporary_stays_and_its_blob_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer().unwrap();
        writer.write_all(b"being written").unwrap();
        writer.flush().unwrap();
        assert_eq!(temporaries(&store).len(), 1);
        // Another build opening the same store, as a new open file (flock locks belong to
        // open files, so this is what another process would see).
        BlobStore::open(dir.path()).unwrap();
        assert_eq!(temporaries(&store).len(), 1);
        let info = writer.commit(None).unwrap();
        assert_eq!(store.read(&info.digest).unwrap(), b"being written");
        assert!(temporaries(&store).is_empty());
    }
}
