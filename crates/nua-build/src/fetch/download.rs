//! Downloading a source archive into the blob store: streamed to a temporary file of the
//! store while hashed, moved into place only once its digest is known (and matches
//! `src-checksum` when there is one).

use super::error::FetchError;
use super::{copy_bounded, CopyError, MAX_ARCHIVE_SIZE};
use nua_oci::http::{BodyError, Http};
use nua_oci::{self as oci, BlobStore, Digest};

/// Download `url` into `store`; its digest. A broken connection starts over (the retries of
/// [`nua_oci::http`]); a digest other than `expected` keeps nothing.
pub(super) fn download(
    url: &str,
    expected: Option<&Digest>,
    store: &BlobStore,
) -> Result<Digest, FetchError> {
    let http = Http::new()?;
    let writer = http.get(url, |body| {
        let fatal = BodyError::Fatal;
        let mut writer = store.writer().map_err(|e| fatal(FetchError::Store(e)))?;
        match copy_bounded(body, &mut writer, MAX_ARCHIVE_SIZE) {
            Ok(_) => Ok(writer),
            Err(CopyError::Read(_)) => Err(BodyError::Io),
            Err(CopyError::Limit) => Err(fatal(FetchError::TooLarge {
                url: url.to_owned(),
                limit: MAX_ARCHIVE_SIZE,
            })),
            // The disk's fault, not the connection's: not worth a retry.
            Err(CopyError::Write(source)) => Err(fatal(FetchError::Io {
                path: store.root().join("tmp"),
                source,
            })),
        }
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
