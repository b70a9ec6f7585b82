//! Downloads cut short: their bytes kept under `<root>/partial/<hex>` for the next attempt.
//!
//! A pull that gives up keeps what it received ([`BlobWriter::keep_partial`]), and the next
//! download of the same blob starts from those bytes ([`BlobStore::writer_resuming`]) with a
//! `Range` request. Nothing under `partial/` is trusted: the bytes are hashed again as they
//! are copied into the new blob, whose digest is checked before it becomes visible, as always.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobStore, BlobWriter};
use crate::digest::Digest;
use crate::error::{IoContext, Result};

impl BlobStore {
    fn partial_dir(&self) -> PathBuf {
        self.root.join("partial")
    }

    /// A writer for the blob `digest` that already holds the bytes an earlier, failed
    /// download kept, or an empty one. The kept file is claimed by a rename first, so two
    /// pulls never resume from the same bytes; kept bytes that cannot be read are dropped
    /// and the download starts from the beginning.
    pub fn writer_resuming(&self, digest: &Digest) -> Result<BlobWriter> {
        static CLAIMS: AtomicU64 = AtomicU64::new(0);
        let mut writer = self.writer()?;
        let kept = self.partial_dir().join(digest.hex());
        let claim = CLAIMS.fetch_add(1, Ordering::Relaxed);
        let claimed = kept.with_extension(format!("claimed-{}-{claim}", std::process::id()));
        match fs::rename(&kept, &claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(writer),
            Err(e) => return Err(e).at(&kept),
        }
        let copied = File::open(&claimed)
            .and_then(|mut file| io::copy(&mut file, &mut writer))
            .and_then(|_| writer.flush());
        let _ = fs::remove_file(&claimed);
        match copied {
            Ok(()) => Ok(writer),
            Err(_) => self.writer(),
        }
    }
}

impl BlobWriter {
    /// Keep the bytes written so far as the start of the blob `digest`, for
    /// [`BlobStore::writer_resuming`] (replacing what was kept before).
    pub fn keep_partial(self, digest: &Digest) -> Result<()> {
        let BlobWriter { store, temp, out } = self;
        let dir = store.partial_dir();
        let (_, _, buffered) = out.finish();
        buffered.into_inner().map_err(|e| e.into_error()).at(&dir)?;
        fs::create_dir_all(&dir).at(&dir)?;
        temp.commit_as(&dir.join(digest.hex()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn kept_bytes_start_the_next_writer_and_are_claimed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let whole = b"0123456789".to_vec();
        let digest = Digest::of(&whole);
        let mut first = store.writer().unwrap();
        first.write_all(&whole[..4]).unwrap();
        first.keep_partial(&digest).unwrap();
        assert_eq!(
            fs::read(store.partial_dir().join(digest.hex())).unwrap(),
            b"0123"
        );

        let mut resumed = store.writer_resuming(&digest).unwrap();
        assert_eq!(resumed.len(), 4);
        // Claimed: a second download starts from nothing.
        assert!(store.writer_resuming(&digest).unwrap().is_empty());
        assert_eq!(fs::read_dir(store.partial_dir()).unwrap().count(), 0);
        resumed.write_all(&whole[4..]).unwrap();
        let info = resumed.commit(Some(&digest)).unwrap();
        assert_eq!(store.read(&info.digest).unwrap(), whole);
    }

    #[test]
    fn kept_bytes_of_another_blob_fail_the_digest_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let digest = Digest::of(b"0123456789");
        let mut first = store.writer().unwrap();
        first.write_all(b"XXXX").unwrap();
        first.keep_partial(&digest).unwrap();
        let mut resumed = store.writer_resuming(&digest).unwrap();
        resumed.write_all(b"456789").unwrap();
        assert!(resumed.commit(Some(&digest)).is_err());
        assert!(!store.contains(&digest));
    }
}
