//! Checking stored blobs against their names, and moving corrupt ones aside.
//!
//! A blob is trusted by name once committed (it was hashed while written), but its bytes can
//! still change on disk afterwards (a disk fault, tampering). A blob found corrupt is renamed
//! into `<root>/corrupt/` rather than deleted: it is gone from `blobs/`, so the next pull or
//! build fetches it again, and its bytes stay for forensics until `cache prune` empties the
//! folder. Nothing here prints; callers report what was moved.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::BlobStore;
use crate::digest::{hash_reader, Digest};
use crate::error::{Error, IoContext, Result};

/// What [`BlobStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    /// No blob of that digest in the store.
    Missing,
    /// The blob's bytes hash to its name.
    Intact { size: u64 },
    /// The blob's bytes did not hash to its name; it was moved to `moved_to`.
    Corrupt { moved_to: PathBuf },
}

/// One file of `<root>/corrupt/`: a blob moved aside earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub path: PathBuf,
    pub size: u64,
}

impl BlobStore {
    /// Hash a present blob; a blob whose bytes do not match its name is moved aside
    /// (to `<root>/corrupt/`) so the next fetch writes it again.
    ///
    /// Streams the blob (blobs can be gigabytes). A blob replaced while it was hashed (a
    /// concurrent writer committing the same digest) is hashed again rather than moved.
    pub fn verify(&self, digest: &Digest) -> Result<BlobState> {
        let path = self.path(digest);
        // A concurrent writer can only replace the file with good bytes: a few tries suffice.
        for _ in 0..3 {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
                Err(e) => return Err(e).at(&path),
            };
            let opened = file.metadata().at(&path)?;
            let reader = BufReader::with_capacity(256 * 1024, file);
            let (actual, size) = hash_reader(reader).at(&path)?;
            if &actual == digest {
                return Ok(BlobState::Intact { size });
            }
            match fs::symlink_metadata(&path) {
                Ok(now) if now.ino() == opened.ino() && now.dev() == opened.dev() => {}
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
                Err(e) => return Err(e).at(&path),
            }
            return match self.quarantine(digest)? {
                Some(moved_to) => Ok(BlobState::Corrupt { moved_to }),
                None => Ok(BlobState::Missing),
            };
        }
        Ok(BlobState::Intact {
            size: self.size(digest)?,
        })
    }

    /// The digests of every blob present, sorted: files of `blobs/sha256/` named by a valid
    /// digest (anything else there is no blob of the store).
    pub fn digests(&self) -> Result<Vec<Digest>> {
        let dir = self.blobs_dir();
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).at(&dir)? {
            let entry = entry.at(&dir)?;
            if let Ok(digest) = Digest::from_hex(&entry.file_name().to_string_lossy()) {
                found.push(digest);
            }
        }
        found.sort();
        Ok(found)
    }

    /// The folder corrupt blobs are moved to.
    pub fn corrupt_dir(&self) -> PathBuf {
        self.root.join("corrupt")
    }

    /// Move the stored blob `digest` to `<root>/corrupt/<hex>.<unique suffix>`: `None` when
    /// it was already gone (another process moved it first).
    pub(crate) fn quarantine(&self, digest: &Digest) -> Result<Option<PathBuf>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.corrupt_dir();
        fs::create_dir_all(&dir).at(&dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let suffix = format!("{nanos}-{}-{n}", std::process::id());
        let moved_to = dir.join(format!("{}.{suffix}", digest.hex()));
        let from = self.path(digest);
        match fs::rename(&from, &moved_to) {
            Ok(()) => Ok(Some(moved_to)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(from),
        }
    }

    /// The error for a stored blob found corrupt while read: moves it aside first (a failure
    /// to move it is the error then, naming the blob's path).
    pub(crate) fn corrupt(&self, digest: &Digest, actual: Digest) -> Error {
        let path = self.path(digest);
        match self.quarantine(digest) {
            Ok(moved_to) => Error::CorruptBlob {
                digest: digest.clone(),
                actual,
                path,
                moved_to,
            },
            Err(e) => e,
        }
    }

    /// `err`, a failed check of the stored blob `digest` while it was copied, made into
    /// [`Error::CorruptBlob`] (the blob moved aside) when the blob's bytes do not hash to its
    /// name; `err` itself otherwise (the descriptor was wrong, not the store).
    pub(crate) fn corrupt_or(&self, digest: &Digest, err: Error) -> Error {
        self.found_corrupt(digest).unwrap_or(err)
    }

    /// For a reader of the stored blob `digest` that failed (a bad archive, a wrong DiffID):
    /// hash the blob, and when its bytes do not match its name, move it aside and return the
    /// [`Error::CorruptBlob`] that says so, for the caller to report instead of its own error
    /// (the next run fetches the blob again). `None` when the blob is intact or unreadable.
    pub fn found_corrupt(&self, digest: &Digest) -> Option<Error> {
        let path = self.path(digest);
        let hashed = File::open(&path)
            .and_then(|file| hash_reader(BufReader::with_capacity(256 * 1024, file)));
        match hashed {
            Ok((actual, _)) if &actual != digest => Some(self.corrupt(digest, actual)),
            _ => None,
        }
    }

    /// The blobs moved aside so far, sorted by path.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>> {
        let dir = self.corrupt_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).at(&dir),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.at(&dir)?;
            let md = entry.metadata().at(entry.path())?;
            found.push(Quarantined {
                path: entry.path(),
                size: md.len(),
            });
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// Delete every blob moved aside: what `cache prune` does. Returns what was deleted.
    pub fn empty_quarantine(&self) -> Result<Vec<Quarantined>> {
        let found = self.quarantined()?;
        for q in &found {
            match fs::remove_file(&q.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at(&q.path),
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn flip_a_byte(path: &std::path::Path) {
        let mut bytes = fs::read(path).unwrap();
        bytes[0] ^= 0x01;
        // Blobs are read-only for the group and others, writable by the owner.
        File::create(path).unwrap().write_all(&bytes).unwrap();
    }

    #[test]
    fn intact_missing_and_corrupt_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let good = store.put_bytes(b"intact bytes").unwrap();
        let bad = store.put_bytes(b"bytes to flip").unwrap();
        assert_eq!(
            store.verify(&good.digest).unwrap(),
            BlobState::Intact { size: 12 }
        );
        assert_eq!(
            store.verify(&Digest::of(b"never stored")).unwrap(),
            BlobState::Missing
        );

        flip_a_byte(&store.path(&bad.digest));
        let BlobState::Corrupt { moved_to } = store.verify(&bad.digest).unwrap() else {
            panic!("a flipped byte went unnoticed");
        };
        assert!(!store.path(&bad.digest).exists());
        assert!(!store.contains(&bad.digest));
        assert_eq!(moved_to.parent().unwrap(), dir.path().join("corrupt"));
        assert!(moved_to
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(bad.digest.hex()));
        assert_eq!(fs::read(&moved_to).unwrap()[1..], b"bytes to flip"[1..]);
        // Gone now: fetched again on the next pull.
        assert_eq!(store.verify(&bad.digest).unwrap(), BlobState::Missing);
        assert!(store.contains(&good.digest));
        fs::write(dir.path().join("blobs/sha256/not-a-digest"), b"x").unwrap();
        assert_eq!(store.digests().unwrap(), [good.digest]);
    }

    #[test]
    fn repeated_quarantines_do_not_collide_and_prune_empties_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut moved = Vec::new();
        for _ in 0..2 {
            let blob = store.put_bytes(b"same blob, corrupt twice").unwrap();
            flip_a_byte(&store.path(&blob.digest));
            match store.verify(&blob.digest).unwrap() {
                BlobState::Corrupt { moved_to } => moved.push(moved_to),
                other => panic!("{other:?}"),
            }
        }
        assert_ne!(moved[0], moved[1]);
        let listed: Vec<_> = store.quarantined().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|q| q.size == 24));
        assert_eq!(store.empty_quarantine().unwrap(), listed);
        assert!(store.quarantined().unwrap().is_empty());
    }

    #[test]
    fn a_small_read_of_a_corrupt_blob_moves_it_aside_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store.put_bytes(br#"{"config":1}"#).unwrap();
        flip_a_byte(&store.path(&blob.digest));
        let err = store.read(&blob.digest).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::CorruptBlob { .. }), "{message}");
        assert!(message.contains(&blob.digest.to_string()), "{message}");
        assert!(message.contains("moved aside"), "{message}");
        assert!(message.contains("fetched again"), "{message}");
        assert!(!store.contains(&blob.digest));
        assert_eq!(store.quarantined().unwrap().len(), 1);
    }
}
