//! Content-addressed blob store: `<root>/blobs/sha256/<hex>`, temporaries in `<root>/tmp/`.
//!
//! The layout under `blobs/` is the one of an OCI image layout, so a store directory is also
//! the blob half of a layout. Every blob is written to a temporary file on the same file
//! system, hashed while written, and renamed into place only once its digest is known (and
//! checked when one was expected): nothing corrupt or half-written is ever visible under
//! `blobs/`. Two writers of the same blob race harmlessly, the rename replaces a file with
//! identical bytes. A writer killed midway leaves its temporary file, which the next open of
//! the store removes (`temporaries.rs`).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, Sha256Writer};
use super::error::{Error, IoContext, Result};
use super::fs::{AtomicFile, READABLE_BY_ALL};

mod partial;
mod temporaries;
mod verify;

pub use verify::{BlobState, Quarantined};

/// A digest and a size: what is known about a blob once it is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// A directory of content-addressed blobs.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Open (creating if needed) a store rooted at `dir`.
    pub fn open(dir: impl AsRef<Path>) -> Result<BlobStore> {
        let root = dir.as_ref().to_path_buf();
        let store = BlobStore { root };
        for dir in [store.blobs_dir(), store.tmp_dir()] {
            fs::create_dir_all(&dir).at(&dir)?;
        }
        store.remove_abandoned_temporaries();
        Ok(store)
    }

    /// The root directory given to [`BlobStore::open`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join(Digest::ALGORITHM)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where the blob with this digest lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Open a present blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => Error::BlobNotFound {
                digest: digest.clone(),
                location: format!("blob store `{}`", self.root.display()),
            },
            _ => Error::Io { path, source },
        })
    }

    /// Size in bytes of a present blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        Ok(self
            .open_blob(digest)?
            .metadata()
            .at(self.path(digest))?
            .len())
    }

    /// Read a whole (small) blob into memory: configs, manifests.
    ///
    /// A blob whose bytes do not hash to its name is moved aside ([`Error::CorruptBlob`]), so
    /// the next pull or build fetches it again.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let bytes = fs::read(&path).at(&path)?;
        let actual = Digest::of(&bytes);
        if &actual != digest {
            return Err(self.corrupt(digest, actual));
        }
        Ok(bytes)
    }

    /// Start writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter> {
        let dir = self.tmp_dir();
        let temp = self.locked_temporary()?;
        let file = temp.file().try_clone().at(&dir)?;
        Ok(BlobWriter {
            store: self.clone(),
            temp,
            out: Sha256Writer::new(BufWriter::with_capacity(256 * 1024, file)),
        })
    }

    /// Store a small blob from memory.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo> {
        let mut writer = self.writer()?;
        let dir = writer.store.tmp_dir();
        writer.write_all(bytes).at(dir)?;
        writer.commit(None)
    }
}

/// A blob being written: hashes as it goes, invisible until [`BlobWriter::commit`].
///
/// Dropping it without committing deletes the temporary file.
pub struct BlobWriter {
    store: BlobStore,
    temp: AtomicFile,
    out: Sha256Writer<BufWriter<File>>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Finish the blob: check it against `expected` when given, then move it into place.
    ///
    /// On a mismatch the temporary file is deleted and nothing appears under `blobs/`.
    pub fn commit(self, expected: Option<&Digest>) -> Result<BlobInfo> {
        let BlobWriter { store, temp, out } = self;
        let temp_dir = store.tmp_dir();
        let (digest, size, buffered) = out.finish();
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .at(&temp_dir)?;
        if let Some(expected) = expected {
            if expected != &digest {
                // `temp` is dropped here, which deletes the file.
                return Err(Error::DigestMismatch {
                    blob: format!("blob written to `{}`", store.root.display()),
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let dest = store.path(&digest);
        // Blobs are immutable and may be shared (an OCI layout served by a registry): readable
        // by all whatever the umask.
        file.set_permissions(fs::Permissions::from_mode(READABLE_BY_ALL))
            .at(&dest)?;
        drop(file);
        temp.commit_as(&dest)?;
        Ok(BlobInfo { digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn blob_files(store: &BlobStore) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(store.blobs_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn put_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let info = store.put_bytes(b"hello").unwrap();
        assert_eq!(info.digest, Digest::of(b"hello"));
        assert_eq!(info.size, 5);
        assert!(store.contains(&info.digest));
        assert_eq!(store.size(&info.digest).unwrap(), 5);
        let mut s = String::new();
        store
            .open_blob(&info.digest)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        assert_eq!(
            store.path(&info.digest),
            dir.path().join("blobs/sha256").join(info.digest.hex())
        );
        // Same blob twice is fine.
        store.put_bytes(b"hello").unwrap();
        assert_eq!(blob_files(&store).len(), 1);
    }

    #[test]
    fn mismatch_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut w = store.writer().unwrap();
        w.write_all(b"actual content").unwrap();
        let expected = Digest::of(b"other content");
        let err = w.commit(Some(&expected)).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&expected.to_string()));
        assert!(blob_files(&store).is_empty());
        assert_eq!(fs::read_dir(store.tmp_dir()).unwrap().count(), 0);
    }

    #[test]
    fn missing_blob_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = Digest::of(b"nope");
        let err = store.open_blob(&d).unwrap_err().to_string();
        assert!(err.contains(&d.to_string()), "{err}");
    }

    #[test]
    fn concurrent_writers_of_the_same_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = vec![7u8; 1 << 20];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| store.put_bytes(&data).unwrap());
            }
        });
        assert_eq!(blob_files(&store).len(), 1);
        assert_eq!(store.read(&Digest::of(&data)).unwrap(), data);
    }
}
