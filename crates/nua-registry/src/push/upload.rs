//! One blob's upload: a monolithic `PUT`, or `PATCH` chunks resumed from the session's status.

use std::sync::atomic::Ordering;

use reqwest::blocking::Body;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode, Url};

use super::{location, FileRange, Upload};
use crate::error::{Error, Result};
use nua_oci::http::HttpKind;

const OCTET_STREAM: &str = "application/octet-stream";

impl Upload<'_> {
    /// Upload the blob, into `session` when the registry already opened one.
    pub(super) fn run(&self, session: Option<Url>) -> Result<()> {
        let retry = self.repo.retry_policy();
        let monolithic = self.blob.size <= self.options.monolithic_max;
        let mut location = match session {
            Some(url) => url,
            None => self.start()?,
        };
        let mut offset = 0;
        let mut breaks = 0;
        let mut reported = 0;
        loop {
            let result = if monolithic {
                self.put(&location, 0, self.blob.size)
            } else {
                self.chunks(&mut location, &mut offset, &mut reported)
                    .and_then(|()| self.put(&location, self.blob.size, self.blob.size))
            };
            self.report(&mut reported);
            match result {
                Ok(()) => return Ok(()),
                Err(e) if resumable(&e) && breaks < retry.retries => {
                    self.progress.retry(&self.blob.digest, &e.to_string());
                    std::thread::sleep(retry.wait(breaks, None));
                    breaks += 1;
                    let resumed = if monolithic {
                        None
                    } else {
                        self.status(&location)?
                    };
                    (location, offset) = match resumed {
                        Some(at) => at,
                        None => (self.start()?, 0),
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Tell the progress reporter about bytes sent since the last report.
    fn report(&self, reported: &mut u64) {
        let sent = self.sent.load(Ordering::Relaxed);
        if sent > *reported {
            self.progress.advance(&self.blob.digest, sent - *reported);
            *reported = sent;
        }
    }

    /// `POST …/blobs/uploads/`: a new session.
    fn start(&self) -> Result<Url> {
        let url = self.repo.url("blobs/uploads/");
        let resp = self
            .repo
            .send(Method::POST, &url, &|r| r.header(CONTENT_LENGTH, 0), true)?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.repo.unexpected(&Method::POST, &url, resp));
        }
        location(self.repo, &resp)
    }

    fn body(&self, from: u64, to: u64) -> Body {
        let range = FileRange {
            file: self.file.clone(),
            pos: from,
            end: to,
            sent: self.sent.clone(),
        };
        Body::sized(range, to - from)
    }

    /// `PUT <session>?digest=D` with the bytes `from..to` (none when closing a chunked upload).
    fn put(&self, session: &Url, from: u64, to: u64) -> Result<()> {
        let mut url = session.clone();
        url.query_pairs_mut()
            .append_pair("digest", &self.blob.digest.to_string());
        let resp = self.repo.send(
            Method::PUT,
            &url,
            &|r| {
                r.header(CONTENT_TYPE, OCTET_STREAM)
                    .header(CONTENT_LENGTH, to - from)
                    .body(self.body(from, to))
            },
            false,
        )?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.repo.unexpected(&Method::PUT, &url, resp));
        }
        Ok(())
    }

    /// `PATCH` chunks from `offset` to the end, following each answer's `Location`.
    fn chunks(&self, session: &mut Url, offset: &mut u64, reported: &mut u64) -> Result<()> {
        while *offset < self.blob.size {
            let end = (*offset + self.options.chunk_size).min(self.blob.size);
            let start = *offset;
            let resp = self.repo.send(
                Method::PATCH,
                session,
                &|r| {
                    r.header(CONTENT_TYPE, OCTET_STREAM)
                        .header("Content-Range", format!("{start}-{}", end - 1))
                        .header(CONTENT_LENGTH, end - start)
                        .body(self.body(start, end))
                },
                false,
            )?;
            if resp.status() != StatusCode::ACCEPTED {
                return Err(self.repo.unexpected(&Method::PATCH, session, resp));
            }
            *session = location(self.repo, &resp)?;
            *offset = end;
            self.report(reported);
        }
        Ok(())
    }

    /// Where an interrupted session stands (`GET` answers `204` with `Range: 0-LAST`), or
    /// `None` when it must start over: the session is gone, or its range is ambiguous.
    fn status(&self, session: &Url) -> Result<Option<(Url, u64)>> {
        let resp = self.repo.send(Method::GET, session, &|r| r, true)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(self.repo.unexpected(&Method::GET, session, resp));
        }
        let last = resp
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim_start_matches("bytes=").split_once('-'))
            .and_then(|(_, last)| last.parse::<u64>().ok());
        // `0-0` means no byte or one byte (distribution's handler writes both so).
        let offset = match last {
            Some(0) | None => return Ok(None),
            Some(last) => last + 1,
        };
        if offset > self.blob.size {
            return Ok(None);
        }
        let url = location(self.repo, &resp).unwrap_or_else(|_| session.clone());
        Ok(Some((url, offset)))
    }
}

/// Whether an upload error may go away by resuming: a broken connection, a server error, or
/// a range the server disagrees with after a broken chunk.
fn resumable(e: &Error) -> bool {
    match e.http_kind() {
        Some(HttpKind::Status(416)) => true,
        Some(kind) => kind.is_transient(),
        None => false,
    }
}
