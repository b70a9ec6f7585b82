//! A fault-injecting HTTP/1.1 proxy for the registry tests: clients talk to it as if it were
//! the registry, it forwards to the real one and, for the requests a test picked, answers an
//! error status, resets or truncates the response body, or flips one of its bytes.
//!
//! Plain TCP, one thread per client connection, one upstream connection per client
//! connection (kept alive while both ends keep it). Bodies are streamed through 64 KiB
//! buffers whatever their size, `Content-Length` and chunked alike; `Range` and every other
//! header pass through. Not a general proxy: origin-form request targets only, no TLS, no
//! `CONNECT`, no HTTP/2.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{Acceptor, Framing, Head};

/// What the proxy does to a request picked by [`FaultProxy::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward, then reset the connection (RST, not FIN) after this many body bytes.
    Reset { after_bytes: u64 },
    /// Answer this status (e.g. 500, 503) without forwarding.
    Status(u16),
    /// Answer 429 with `Retry-After` without forwarding.
    TooMany { retry_after_secs: u64 },
    /// Forward, then close the connection cleanly after this many body bytes: the client gets
    /// fewer bytes than `Content-Length` announced (or no last chunk).
    Truncate { after_bytes: u64 },
    /// Forward with the body byte at this offset inverted.
    FlipByte { at: u64 },
    /// Forward the first `after_bytes` of the body at full speed, then one byte every
    /// `every_ms` milliseconds until the client gives up.
    Trickle { after_bytes: u64, every_ms: u64 },
    /// Answer `307` to a storage URL of the proxy's own (`/storage/…?X-Amz-Signature=…`, as S3
    /// presigns them) without forwarding; the proxy answers every storage URL `403`.
    RedirectToForbiddenStorage,
}

/// The query of the storage URLs [`Fault::RedirectToForbiddenStorage`] sends clients to: a
/// signature that must never reach an error message.
pub const STORAGE_SIGNATURE: &str = "X-Amz-Signature=5ecret5ignature";

struct Rule {
    method: String,
    path_part: String,
    fault: Fault,
    left: usize,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: Vec<(String, String, u16)>,
}

impl State {
    /// The fault for this request, if a rule with uses left matches (the earliest injected).
    fn take_fault(&mut self, method: &str, path: &str) -> Option<Fault> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.left > 0 && r.method == method && path.contains(&r.path_part))?;
        rule.left -= 1;
        Some(rule.fault)
    }
}

/// An HTTP proxy on 127.0.0.1 in front of a registry; stops accepting on Drop.
pub struct FaultProxy {
    state: Arc<Mutex<State>>,
    acceptor: Acceptor,
}

impl FaultProxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream` (`HOST:PORT`).
    pub fn start(upstream: &str) -> FaultProxy {
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = {
            let (state, upstream) = (state.clone(), upstream.to_owned());
            Acceptor::start(move |client| {
                // The proxy's own address, for `Location`: where the client reached it.
                let Ok(me) = client.local_addr() else { return };
                let conn = Conn {
                    upstream: upstream.clone(),
                    me: me.to_string(),
                    state: state.clone(),
                };
                conn.serve(client)
            })
        };
        FaultProxy { state, acceptor }
    }

    /// `127.0.0.1:PORT`, to use in place of the registry's.
    pub fn host(&self) -> String {
        self.acceptor.addr().to_owned()
    }

    /// The next `times` requests whose path contains `path_part` (e.g. "/blobs/sha256:") and
    /// whose method is `method` get `fault`; others pass through untouched.
    pub fn inject(&self, method: &str, path_part: &str, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            method: method.to_owned(),
            path_part: path_part.to_owned(),
            fault,
            left: times,
        });
    }

    /// (method, path, status) of every request seen, in the order their answers began; the
    /// status is the one the client got (injected or the registry's).
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A client connection and what it needs to forward.
struct Conn {
    upstream: String,
    me: String,
    state: Arc<Mutex<State>>,
}

/// What to do with the client connection after an exchange.
enum Next {
    Request,
    Close,
    /// Close with a reset (`SO_LINGER` is already set).
    Reset,
}

/// How a relayed response ended.
enum Ended {
    Complete,
    /// The fault cut the body: the client connection must be reset or closed now.
    Cut,
}

impl Conn {
    fn serve(self, client: TcpStream) {
        let timeout = Some(Duration::from_secs(60));
        let _ = client.set_read_timeout(timeout);
        let Ok(client_w) = client.try_clone() else {
            return;
        };
        let mut client_w = client_w;
        let mut client_r = BufReader::with_capacity(64 * 1024, client);
        let mut upstream: Option<(BufReader<TcpStream>, TcpStream)> = None;
        loop {
            match self.exchange(&mut client_r, &mut client_w, &mut upstream) {
                Ok(Next::Request) => continue,
                // No shutdown: it would send a FIN before the RST.
                Ok(Next::Reset) => return,
                Ok(Next::Close) | Err(_) => break,
            }
        }
        let _ = client_w.shutdown(Shutdown::Both);
    }

    /// One request and its answer.
    fn exchange(
        &self,
        client_r: &mut BufReader<TcpStream>,
        client_w: &mut TcpStream,
        upstream: &mut Option<(BufReader<TcpStream>, TcpStream)>,
    ) -> io::Result<Next> {
        // A TLS client hello: clients told the registry is insecure try HTTPS first and fall
        // back to HTTP on an HTTP answer (as Go's server gives); waiting for a request line
        // would stall them until the read timeout.
        if client_r.fill_buf()?.first() == Some(&0x16) {
            client_w.write_all(
                b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTP server.\n",
            )?;
            return Ok(Next::Close);
        }
        let Some(mut req) = Head::read(client_r)? else {
            return Ok(Next::Close);
        };
        let (method, path) = req.method_and_target();
        let next = if req.has_token("connection", "close") {
            Next::Close
        } else {
            Next::Request
        };
        let req_framing = req.request_framing();
        // Go and reqwest do not send `Expect`, but a client that does would wait for a
        // `100 Continue` while the proxy waits for its body.
        if req.get("expect").is_some() {
            req.remove("expect");
            client_w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let storage = path.starts_with("/storage/");
        let fault = (!storage)
            .then(|| self.lock().take_fault(&method, &path))
            .flatten();
        // Each request is recorded before its answer is sent: a client that has its answer
        // finds it in `requests()`.
        let record = |status: u16| {
            let seen = (method.clone(), path.clone(), status);
            self.lock().seen.push(seen);
        };
        if storage {
            relay_body(client_r, &mut io::sink(), req_framing, None)?;
            answer_error(client_w, &method, Fault::Status(403), record)?;
            return Ok(next);
        }
        if fault == Some(Fault::RedirectToForbiddenStorage) {
            relay_body(client_r, &mut io::sink(), req_framing, None)?;
            record(307);
            let location = format!("http://{}/storage{path}?{STORAGE_SIGNATURE}", self.me);
            write!(
                client_w,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\n\
                 Content-Length: 0\r\n\r\n"
            )?;
            client_w.flush()?;
            return Ok(next);
        }
        if let Some(fault @ (Fault::Status(_) | Fault::TooMany { .. })) = fault {
            relay_body(client_r, &mut io::sink(), req_framing, None)?;
            answer_error(client_w, &method, fault, record)?;
            return Ok(next);
        }

        if !upstream.as_ref().is_some_and(|(_, w)| still_open(w)) {
            let w = TcpStream::connect(&self.upstream)?;
            w.set_read_timeout(Some(Duration::from_secs(120)))?;
            let r = BufReader::with_capacity(64 * 1024, w.try_clone()?);
            *upstream = Some((r, w));
        }
        let (up_r, up_w) = upstream.as_mut().expect("connected above");
        req.set("host", &self.upstream);
        req.write_to(up_w)?;
        relay_body(client_r, up_w, req_framing, None)?;
        up_w.flush()?;

        let mut resp = Head::read(up_r)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "upstream closed"))?;
        let status = resp.status();
        let resp_framing = resp.response_framing(&method, status);
        let upstream_close =
            resp.has_token("connection", "close") || matches!(resp_framing, Framing::UntilClose);
        if let Some(location) = resp.get("location") {
            let rewritten = location.replace(&self.upstream, &self.me);
            resp.set("location", &rewritten);
        }
        self.lock().seen.push((method, path, status));
        resp.write_to(client_w)?;
        let ended = relay_body(up_r, client_w, resp_framing, fault)?;
        client_w.flush()?;
        if upstream_close {
            *upstream = None;
        }
        Ok(match (ended, fault) {
            (Ended::Cut, Some(Fault::Reset { .. })) => {
                set_reset_on_close(client_w);
                Next::Reset
            }
            (Ended::Cut, _) => Next::Close,
            (Ended::Complete, _) if matches!(resp_framing, Framing::UntilClose) => Next::Close,
            (Ended::Complete, _) => next,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Answer an injected status in the distribution spec's error format, calling `record` with
/// the status before anything is sent.
fn answer_error(
    client: &mut TcpStream,
    method: &str,
    fault: Fault,
    record: impl FnOnce(u16),
) -> io::Result<()> {
    let (status, reason, code, extra) = match fault {
        Fault::TooMany { retry_after_secs } => (
            429,
            "Too Many Requests",
            "TOOMANYREQUESTS",
            format!("Retry-After: {retry_after_secs}\r\n"),
        ),
        Fault::Status(s) => (s, "Injected", "UNAVAILABLE", String::new()),
        _ => unreachable!("only status faults are answered without forwarding"),
    };
    let body = format!(
        r#"{{"errors":[{{"code":"{code}","message":"injected by the test proxy","detail":null}}]}}"#
    );
    let body = if method == "HEAD" { "" } else { body.as_str() };
    record(status);
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()
}

/// Whether the upstream connection is still usable: the registry may have closed it while
/// idle, which shows as a readable end of stream.
fn still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let open = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && open
}

/// Make the last `close` of `stream` send a TCP reset (RST) and drop unsent data: `SO_LINGER`
/// with a zero timeout (`TcpStream::set_linger` is not stable yet).
fn set_reset_on_close(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Copy one body from `from` to `to` as framed, applying a body fault to the payload bytes
/// (offsets count payload bytes, not chunk framing). A fault whose offset lies past the end
/// of the body does nothing.
fn relay_body(
    from: &mut BufReader<TcpStream>,
    to: &mut impl Write,
    framing: Framing,
    fault: Option<Fault>,
) -> io::Result<Ended> {
    let mut payload = Payload {
        to,
        offset: 0,
        fault,
    };
    let mut buf = vec![0u8; 64 * 1024];
    match framing {
        Framing::Empty => Ok(Ended::Complete),
        Framing::Length(n) => payload.copy(from, Some(n), &mut buf),
        Framing::UntilClose => payload.copy(from, None, &mut buf),
        Framing::Chunked => loop {
            let mut line = String::new();
            from.read_line(&mut line)?;
            let size = line
                .trim_end()
                .split(';')
                .next()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| super::http::bad(format!("bad chunk size line {line:?}")))?;
            payload.to.write_all(line.as_bytes())?;
            if size == 0 {
                // Trailers, then the empty line that ends the message.
                loop {
                    let mut trailer = String::new();
                    from.read_line(&mut trailer)?;
                    payload.to.write_all(trailer.as_bytes())?;
                    if trailer.trim_end().is_empty() {
                        return Ok(Ended::Complete);
                    }
                }
            }
            if let Ended::Cut = payload.copy(from, Some(size), &mut buf)? {
                return Ok(Ended::Cut);
            }
            let mut crlf = [0u8; 2];
            from.read_exact(&mut crlf)?;
            payload.to.write_all(&crlf)?;
        },
    }
}

/// The receiving end of a body, counting payload bytes to apply a fault at the right one.
struct Payload<'a, W: Write> {
    to: &'a mut W,
    offset: u64,
    fault: Option<Fault>,
}

impl<W: Write> Payload<'_, W> {
    /// Copy `len` bytes (or up to end of stream when `None`).
    fn copy(
        &mut self,
        from: &mut impl Read,
        len: Option<u64>,
        buf: &mut [u8],
    ) -> io::Result<Ended> {
        let mut left = len;
        loop {
            if let Some(Fault::Reset { after_bytes } | Fault::Truncate { after_bytes }) = self.fault
            {
                if self.offset >= after_bytes {
                    self.to.flush()?;
                    return Ok(Ended::Cut);
                }
            }
            let want = match left {
                Some(0) => return Ok(Ended::Complete),
                Some(n) => n.min(buf.len() as u64) as usize,
                None => buf.len(),
            };
            let got = from.read(&mut buf[..want])?;
            if got == 0 {
                return match left {
                    None => Ok(Ended::Complete),
                    Some(_) => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body shorter than announced",
                    )),
                };
            }
            self.write(&mut buf[..got])?;
            left = left.map(|n| n - got as u64);
        }
    }

    fn write(&mut self, chunk: &mut [u8]) -> io::Result<()> {
        if let Some(Fault::Trickle {
            after_bytes,
            every_ms,
        }) = self.fault
        {
            let fast = after_bytes
                .saturating_sub(self.offset)
                .min(chunk.len() as u64) as usize;
            self.to.write_all(&chunk[..fast])?;
            self.to.flush()?;
            for byte in &chunk[fast..] {
                std::thread::sleep(Duration::from_millis(every_ms));
                self.to.write_all(std::slice::from_ref(byte))?;
                self.to.flush()?;
            }
            self.offset += chunk.len() as u64;
            return Ok(());
        }
        let start = self.offset;
        let end = start + chunk.len() as u64;
        let keep = match self.fault {
            Some(Fault::FlipByte { at }) if (start..end).contains(&at) => {
                chunk[(at - start) as usize] ^= 0xff;
                chunk.len()
            }
            Some(Fault::Reset { after_bytes } | Fault::Truncate { after_bytes })
                if after_bytes < end =>
            {
                (after_bytes - start) as usize
            }
            _ => chunk.len(),
        };
        self.to.write_all(&chunk[..keep])?;
        self.offset += keep as u64;
        Ok(())
    }
}
