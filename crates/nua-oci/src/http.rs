//! The one HTTP stack of the project: a blocking reqwest client on rustls with the system's
//! root certificates (a proxy's CA in the host trust store works), and one retry policy.
//!
//! Connection errors, timeouts, 408, 429 and 5xx answers are retried with exponential backoff;
//! a `Retry-After` header (seconds, RFC 9110 §10.2.3) replaces the computed wait when the server
//! sends one. Other 4xx answers are final. The Debian archive and the registry client share it.

use std::io::Read;
use std::time::Duration;

/// What kind of HTTP failure happened, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpKind {
    /// No connection could be made, or it broke (retried).
    Connect,
    /// The server took too long (retried).
    Timeout,
    /// The server answered with this non-success status (5xx, 408 and 429 retried).
    Status(u16),
    /// The answer was longer than announced.
    TooLong,
    /// Anything else reqwest reports (redirect loops, invalid URL, ...).
    Other,
}

impl std::fmt::Display for HttpKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpKind::Connect => f.write_str("connection failed"),
            HttpKind::Timeout => f.write_str("timed out"),
            HttpKind::Status(code) => write!(f, "HTTP status {code}"),
            HttpKind::TooLong => f.write_str("more bytes than announced"),
            HttpKind::Other => f.write_str("request failed"),
        }
    }
}

impl HttpKind {
    /// The kind of a reqwest error.
    pub fn of(e: &reqwest::Error) -> HttpKind {
        if e.is_timeout() {
            HttpKind::Timeout
        } else if e.is_connect() || e.is_request() || e.is_body() {
            HttpKind::Connect
        } else {
            HttpKind::Other
        }
    }

    /// Whether trying again may succeed.
    pub fn is_transient(self) -> bool {
        match self {
            HttpKind::Status(code) => code >= 500 || code == 408 || code == 429,
            HttpKind::Connect | HttpKind::Timeout => true,
            HttpKind::TooLong | HttpKind::Other => false,
        }
    }
}

/// A request that failed for good: what was asked, how it failed, after how many retries.
#[derive(Debug, thiserror::Error)]
#[error("fetching `{url}` failed: {kind} (after {retries} retries)")]
pub struct HttpError {
    pub url: String,
    pub kind: HttpKind,
    pub retries: u32,
    #[source]
    pub source: Option<reqwest::Error>,
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The wait before the first retry; doubled for each following one.
    pub first_backoff: Duration,
    /// The longest wait, whether computed or asked for with `Retry-After`.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            retries: 4,
            first_backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The wait before retry number `attempt + 1`: the server's `Retry-After` when it gave
    /// one, else exponential backoff; never more than `max_wait`.
    pub fn wait(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = self.first_backoff * 2u32.saturating_pow(attempt.min(16));
        retry_after.unwrap_or(backoff).min(self.max_wait)
    }
}

/// The `Retry-After` of an answer, when given in seconds (the HTTP-date form is ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok().map(Duration::from_secs)
}

/// Send with `send` until the answer is not transient, retrying as `retry` says: the final
/// answer whatever its status, or the error once retries are spent. `url` names the request
/// in the error.
pub fn send_retrying(
    retry: &Retry,
    url: &str,
    mut send: impl FnMut() -> reqwest::Result<reqwest::blocking::Response>,
) -> Result<reqwest::blocking::Response, HttpError> {
    let mut attempt = 0;
    loop {
        let (kind, source, wait) = match send() {
            Ok(resp) => {
                let kind = HttpKind::Status(resp.status().as_u16());
                if !kind.is_transient() {
                    return Ok(resp);
                }
                (kind, None, retry_after(resp.headers()))
            }
            Err(e) => (HttpKind::of(&e), Some(e), None),
        };
        if !kind.is_transient() || attempt == retry.retries {
            return Err(HttpError {
                url: url.to_owned(),
                kind,
                retries: attempt,
                source,
            });
        }
        std::thread::sleep(retry.wait(attempt, wait));
        attempt += 1;
    }
}

/// A blocking client with the project's timeouts and user agent.
pub fn client() -> Result<reqwest::blocking::Client, HttpError> {
    // Redirects are followed (registries send blobs to storage hosts), but never from HTTPS
    // down to plain HTTP.
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("a redirect from HTTPS to plain HTTP was refused")
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::blocking::Client::builder()
        .redirect(redirects)
        .connect_timeout(Duration::from_secs(20))
        .timeout(Duration::from_secs(600))
        .user_agent(concat!("nua/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError {
            url: String::new(),
            kind: HttpKind::Other,
            retries: 0,
            source: Some(e),
        })
}

/// What a body reader can fail with.
pub enum BodyError<E> {
    /// Reading the body failed: the connection broke (retried).
    Io,
    /// The content is wrong: final, not retried.
    Fatal(E),
}

impl<E> From<std::io::Error> for BodyError<E> {
    fn from(_: std::io::Error) -> Self {
        BodyError::Io
    }
}

/// A shared client for plain GETs (cheap to clone, safe across threads).
#[derive(Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    retry: Retry,
}

impl Http {
    pub fn new() -> Result<Http, HttpError> {
        Ok(Http {
            client: client()?,
            retry: Retry::default(),
        })
    }

    /// GET `url` and hand its body to `read`, retrying transient failures; `read` runs again
    /// from the start on each attempt.
    pub fn get<T, E: From<HttpError>>(
        &self,
        url: &str,
        mut read: impl FnMut(&mut dyn Read) -> Result<T, BodyError<E>>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            let (kind, source, retry_after) = match self.client.get(url).send() {
                Ok(mut resp) if resp.status().is_success() => match read(&mut resp) {
                    Ok(value) => return Ok(value),
                    Err(BodyError::Fatal(e)) => return Err(e),
                    Err(BodyError::Io) => (HttpKind::Connect, None, None),
                },
                Ok(resp) => (
                    HttpKind::Status(resp.status().as_u16()),
                    None,
                    retry_after(resp.headers()),
                ),
                Err(e) => (HttpKind::of(&e), Some(e), None),
            };
            if !kind.is_transient() || attempt == self.retry.retries {
                return Err(HttpError {
                    url: url.to_owned(),
                    kind,
                    retries: attempt,
                    source,
                }
                .into());
            }
            std::thread::sleep(self.retry.wait(attempt, retry_after));
            attempt += 1;
        }
    }

    /// GET a small file into memory, refusing more than `limit` bytes.
    pub fn get_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
        self.get(url, |body| {
            let mut out = Vec::new();
            body.take(limit + 1).read_to_end(&mut out)?;
            if out.len() as u64 > limit {
                return Err(BodyError::Fatal(HttpError {
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
        assert_eq!(err.kind, HttpKind::Connect);
        assert_eq!(err.retries, 4);
        assert!(err.to_string().contains("after 4 retries"), "{err}");
        assert!(start.elapsed() >= Retry::default().first_backoff * 15);
    }

    #[test]
    fn retry_after_replaces_the_backoff_and_is_capped() {
        let retry = Retry::default();
        assert_eq!(retry.wait(0, None), Duration::from_millis(500));
        assert_eq!(retry.wait(3, None), Duration::from_secs(4));
        assert_eq!(
            retry.wait(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            retry.wait(0, Some(Duration::from_secs(3600))),
            retry.max_wait
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
    }
}
