//! The one HTTP stack of the project: a blocking reqwest client on rustls with the system's
//! root certificates (a proxy's CA in the host trust store works), and one retry policy.
//!
//! Connection errors, timeouts, 408, 429 and 5xx answers are retried with exponential backoff;
//! a `Retry-After` header (seconds, RFC 9110 §10.2.3) replaces the computed wait when the server
//! sends one. Other 4xx answers are final. The Debian archive and the registry client share it.
//!
//! Downloads have a low-speed limit, as curl's `--speed-limit`/`--speed-time`: the headers of an
//! answer must come within [`LowSpeed::time`], and a body slower than [`LowSpeed::bytes_per_sec`]
//! on average over that time is abandoned as [`Stalled`] (and resumed or retried by the caller),
//! so that a server that trickles or stops sending never hangs a pull.

use std::io::{self, Read};
use std::time::{Duration, Instant};

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

/// The longest a request that sends a body (an upload) may take, answer included: such
/// requests set it themselves, since the client's timeout is the low-speed time.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// A blocking client with the project's redirect policy and user agent. `idle` bounds the wait
/// for an answer's headers and each read of its body (the timeout of reqwest's blocking client
/// is per wait, not per request, so a long download is not cut short); a request that sends a
/// body waits for the whole upload and sets its own timeout ([`UPLOAD_TIMEOUT`]).
pub fn client(idle: Duration) -> Result<reqwest::blocking::Client, HttpError> {
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
        .timeout(idle)
        .user_agent(concat!("nua/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError {
            url: String::new(),
            kind: HttpKind::Other,
            retries: 0,
            source: Some(e),
        })
}

/// `NUA_LOW_SPEED_LIMIT`: the low-speed limit in bytes per second (0 turns the check off).
pub const NUA_LOW_SPEED_LIMIT: &str = "NUA_LOW_SPEED_LIMIT";
/// `NUA_LOW_SPEED_TIME`: the seconds a transfer may stay under the limit, and the longest wait
/// for an answer's headers.
pub const NUA_LOW_SPEED_TIME: &str = "NUA_LOW_SPEED_TIME";

/// The low-speed limit of downloads (curl's `--speed-limit` and `--speed-time`): a body that
/// brings fewer than `bytes_per_sec × time` bytes in any `time` is abandoned, and no answer
/// waits longer than `time` for its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowSpeed {
    /// The slowest acceptable average rate; 0 checks only that the headers and some byte come
    /// within `time`.
    pub bytes_per_sec: u64,
    /// The window the rate is averaged over, and the longest wait for headers or any byte.
    pub time: Duration,
}

impl Default for LowSpeed {
    /// 1 KiB/s over 30 s: far below any working link, quick to give up on a dead one.
    fn default() -> LowSpeed {
        LowSpeed {
            bytes_per_sec: 1024,
            time: Duration::from_secs(30),
        }
    }
}

impl LowSpeed {
    /// The default, with [`NUA_LOW_SPEED_LIMIT`] and [`NUA_LOW_SPEED_TIME`] applied when they
    /// are set; a value that is not a number is an error naming the variable.
    pub fn from_env() -> Result<LowSpeed, String> {
        let mut low = LowSpeed::default();
        let read = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Ok(v) if !v.trim().is_empty() => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("`{name}` must be a whole number, not `{v}`")),
                _ => Ok(None),
            }
        };
        if let Some(limit) = read(NUA_LOW_SPEED_LIMIT)? {
            low.bytes_per_sec = limit;
        }
        if let Some(secs) = read(NUA_LOW_SPEED_TIME)? {
            if secs == 0 {
                return Err(format!("`{NUA_LOW_SPEED_TIME}` must be at least 1 second"));
            }
            low.time = Duration::from_secs(secs);
        }
        Ok(low)
    }

    /// Bytes a window must bring.
    fn floor(&self) -> u64 {
        self.bytes_per_sec
            .saturating_mul(self.time.as_secs().max(1))
    }

    /// `body`, abandoned as [`Stalled`] when it gets slower than this limit. The client must
    /// have been made with [`LowSpeed::time`] as its timeout ([`client`]), which bounds each
    /// read: a server that sends nothing at all is caught by that, one that trickles by the
    /// rate.
    pub fn watch<R: Read>(self, body: R) -> Watched<R> {
        Watched {
            body,
            limit: self,
            window_start: Instant::now(),
            window_bytes: 0,
            total: 0,
        }
    }
}

/// A transfer abandoned for being slower than its [`LowSpeed`] limit: the `io::Error` a
/// [`Watched`] body fails with carries it (see [`Stalled::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "stalled: {bytes} bytes in the last {secs} s ({rate} B/s), below the low-speed limit of {limit} B/s",
    secs = over.as_secs(),
    rate = bytes / over.as_secs().max(1),
    limit = limit.bytes_per_sec
)]
pub struct Stalled {
    /// Bytes that came in the last window.
    pub bytes: u64,
    /// The window.
    pub over: Duration,
    /// Bytes the whole body brought before it was abandoned.
    pub total: u64,
    pub limit: LowSpeed,
}

impl Stalled {
    /// The stall an I/O error of a [`Watched`] body reports, if it is one.
    pub fn of(e: &io::Error) -> Option<Stalled> {
        e.get_ref()?.downcast_ref::<Stalled>().copied()
    }

    /// Bytes of the body that came before the last, slow window: what the attempt achieved.
    pub fn before_window(&self) -> u64 {
        self.total - self.bytes
    }
}

/// A body watched by a [`LowSpeed`] limit (see [`LowSpeed::watch`]).
pub struct Watched<R> {
    body: R,
    limit: LowSpeed,
    window_start: Instant,
    window_bytes: u64,
    total: u64,
}

impl<R> Watched<R> {
    fn stalled(&self, over: Duration) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            Stalled {
                bytes: self.window_bytes,
                over,
                total: self.total,
                limit: self.limit,
            },
        )
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.body.read(buf) {
            Ok(n) => n,
            // The request's timeout bounds each read: nothing came for `time`.
            Err(e) if is_timeout(&e) => {
                return Err(self.stalled(self.window_start.elapsed().max(self.limit.time)))
            }
            Err(e) => return Err(e),
        };
        self.window_bytes += n as u64;
        self.total += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.limit.time {
            if self.window_bytes < self.limit.floor() && n > 0 {
                return Err(self.stalled(elapsed));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

/// Whether a body's I/O error is reqwest's timeout (what a read past the request's timeout
/// fails with).
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
            .is_some_and(reqwest::Error::is_timeout)
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
    low_speed: LowSpeed,
}

impl Http {
    /// A client with the default retries and the low-speed limit of the environment
    /// ([`LowSpeed::from_env`]; the command line has refused a bad value before).
    pub fn new() -> Result<Http, HttpError> {
        let low_speed = LowSpeed::from_env().unwrap_or_default();
        Ok(Http {
            client: client(low_speed.time)?,
            retry: Retry::default(),
            low_speed,
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
                Ok(resp) if resp.status().is_success() => {
                    match read(&mut self.low_speed.watch(resp)) {
                        Ok(value) => return Ok(value),
                        Err(BodyError::Fatal(e)) => return Err(e),
                        Err(BodyError::Io) => (HttpKind::Connect, None, None),
                    }
                }
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

    /// A body that gives `fast` bytes at once, then one byte per `every`.
    struct Trickle {
        fast: usize,
        every: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.fast > 0 {
                let n = self.fast.min(buf.len());
                self.fast -= n;
                return Ok(n);
            }
            std::thread::sleep(self.every);
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_trickle_is_abandoned_as_stalled_with_what_came_before_it() {
        let low = LowSpeed {
            bytes_per_sec: 1000,
            time: Duration::from_secs(1),
        };
        let every = Duration::from_millis(100);
        let mut sink = Vec::new();
        let e = io::copy(&mut low.watch(Trickle { fast: 0, every }), &mut sink).unwrap_err();
        let stall = Stalled::of(&e).expect("a stall");
        assert_eq!(stall.before_window(), 0);
        assert!(stall.bytes < 1000, "{stall:?}");
        assert!(
            e.to_string()
                .contains("below the low-speed limit of 1000 B/s"),
            "{e}"
        );

        // Fast bytes first, then a trickle: what came before the slow window is told apart.
        let body = Trickle {
            fast: 50_000,
            every,
        };
        let e = io::copy(&mut low.watch(body), &mut io::sink()).unwrap_err();
        let stall = Stalled::of(&e).expect("a stall");
        assert!(stall.before_window() >= 50_000, "{stall:?}");

        // A body that keeps up is read to its end; other errors pass through unchanged.
        let mut body = low.watch(io::repeat(7).take(3 << 20));
        assert_eq!(io::copy(&mut body, &mut io::sink()).unwrap(), 3 << 20);
        let broken = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(Stalled::of(&broken).is_none());
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
