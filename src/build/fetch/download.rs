//! Downloading a source archive into the blob store: streamed to a temporary file of the
//! store while hashed, moved into place only once its digest is known (and matches
//! `src-checksum` when there is one).

use std::io::{self, Write};

use super::error::FetchError;
use super::MAX_ARCHIVE_SIZE;
use crate::http::{BodyError, Http};
use crate::oci::{self, BlobStore, Digest};

/// Download `url` into `store`; its digest. A broken connection starts over (the retries of
/// [`crate::http`]); a digest other than `expected` keeps nothing.
pub(super) fn download(
    url: &str,
    expected: Option<&Digest>,
    store: &BlobStore,
) -> Result<Digest, FetchError> {
    let http = Http::new()?;
    let writer = http.get(url, |body| {
        let fatal = BodyError::Fatal;
        let mut writer = store.writer().map_err(|e| fatal(FetchError::Store(e)))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(BodyError::Io),
            };
            if writer.len() + n as u64 > MAX_ARCHIVE_SIZE {
                return Err(fatal(FetchError::TooLarge {
                    url: url.to_owned(),
                    limit: MAX_ARCHIVE_SIZE,
                }));
            }
            // A write error is the disk's, not the connection's: not worth a retry.
            writer.write_all(&buf[..n]).map_err(|source| {
                fatal(FetchError::Io {
                    path: store.root().join("tmp"),
                    source,
                })
            })?;
        }
        Ok(writer)
    })?;
    let info = writer.commit(expected).map_err(|e| match e {
        oci::Error::DigestMismatch {
            expected, actual, ..
        } => FetchError::Checksum {
            url: url.to_owned(),
            expected,
            actual,
        },
        other => FetchError::Store(other),
    })?;
    Ok(info.digest)
}
