//! A blocking HTTP client with retries: connection errors, timeouts, 5xx answers and bodies
//! cut short are retried with exponential backoff; 4xx answers are final.
//!
//! rustls with the system's root certificates (a proxy's CA in the host trust store works);
//! the Debian archive itself is plain HTTP with signed indexes.

use std::io::Read;
use std::time::Duration;

use super::error::{Error, HttpKind, Result};

/// Retries after the first attempt.
const RETRIES: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// What a body reader can fail with.
pub(crate) enum BodyError {
    /// Reading the body failed: the connection broke (retried).
    Io,
    /// The content is wrong: final, not retried.
    Fatal(Error),
}

impl From<std::io::Error> for BodyError {
    fn from(_: std::io::Error) -> Self {
        BodyError::Io
    }
}

/// A shared client (cheap to clone, safe across threads).
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::blocking::Client,
}

impl Http {
    pub fn new() -> Result<Http> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("nua/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Http {
                url: String::new(),
                kind: HttpKind::Other,
                retries: 0,
                source: Some(e),
            })?;
        Ok(Http { client })
    }

    /// GET `url` and hand its body to `read`, retrying transient failures; `read` runs again
    /// from the start on each attempt.
    pub fn get<T>(
        &self,
        url: &str,
        mut read: impl FnMut(&mut dyn Read) -> std::result::Result<T, BodyError>,
    ) -> Result<T> {
        let mut attempt = 0;
        loop {
            let (kind, source) = match self.client.get(url).send() {
                Ok(resp) if resp.status().is_success() => {
                    let mut resp = resp;
                    match read(&mut resp) {
                        Ok(value) => return Ok(value),
                        Err(BodyError::Fatal(e)) => return Err(e),
                        Err(BodyError::Io) => (HttpKind::Connect, None),
                    }
                }
                Ok(resp) => (HttpKind::Status(resp.status().as_u16()), None),
                Err(e) if e.is_timeout() => (HttpKind::Timeout, Some(e)),
                Err(e) if e.is_connect() || e.is_request() || e.is_body() => {
                    (HttpKind::Connect, Some(e))
                }
                Err(e) => (HttpKind::Other, Some(e)),
            };
            let transient = match kind {
                HttpKind::Status(code) => code >= 500 || code == 408 || code == 429,
                HttpKind::Connect | HttpKind::Timeout => true,
                HttpKind::TooLong | HttpKind::Other => false,
            };
            if !transient || attempt == RETRIES {
                return Err(Error::Http {
                    url: url.to_owned(),
                    kind,
                    retries: attempt,
                    source,
                });
            }
            std::thread::sleep(FIRST_BACKOFF * 2u32.pow(attempt));
            attempt += 1;
        }
    }

    /// GET a small file into memory, refusing more than `limit` bytes.
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>> {
        self.get(url, |body| {
            let mut out = Vec::new();
            body.take(limit + 1).read_to_end(&mut out)?;
            if out.len() as u64 > limit {
                return Err(BodyError::Fatal(Error::Http {
                    url: url.to_owned(),
                    kind: HttpKind::TooLong,
                    retries: 0,
                    source: None,
                }));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_are_retried_then_reported() {
        let http = Http::new().unwrap();
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let start = std::time::Instant::now();
        let err = http.get_bytes("http://127.0.0.1:9/x", 10).unwrap_err();
        match &err {
            Error::Http { kind, retries, .. } => {
                assert_eq!(*kind, HttpKind::Connect);
                assert_eq!(*retries, RETRIES);
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("after 4 retries"), "{err}");
        assert!(start.elapsed() >= FIRST_BACKOFF * 15);
    }
}
