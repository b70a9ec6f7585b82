//! The bits of HTTP/1.1 the test servers share (the fault proxy and the token service):
//! reading and editing a message head, telling how its body is framed, and a listener thread
//! that hands each connection to a handler thread until dropped. No body handling beyond
//! framing, no TLS.

use std::io::{self, BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A listener on a free port of 127.0.0.1 whose connections each get a thread running
/// `handle`; stops accepting on Drop (connections in progress finish on their own).
pub struct Acceptor {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Acceptor {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let handle = Arc::new(handle);
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let handle = handle.clone();
                    std::thread::spawn(move || handle(conn));
                }
            })
        };
        Acceptor {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the thread blocked in `accept`.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How a message body is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy)]
pub enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

pub fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The start line and headers of an HTTP/1.1 message, headers in their order.
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Read a head; `None` when the stream ends before its first byte (a client closing a
    /// kept-alive connection).
    pub fn read(r: &mut impl BufRead) -> io::Result<Option<Head>> {
        let mut start = String::new();
        if r.read_line(&mut start)? == 0 {
            return Ok(None);
        }
        let mut headers = Vec::new();
        let mut size = start.len();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "end of stream in a message head",
                ));
            }
            size += line.len();
            if size > 64 * 1024 {
                return Err(bad("message head larger than 64 KiB".into()));
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header line {line:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        Ok(Some(Head {
            start: start.trim_end().to_owned(),
            headers,
        }))
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Replace every value of header `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) {
        match self
            .headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => {
                self.headers[i].1 = value.to_owned();
                let mut seen = 0;
                self.headers.retain(|(n, _)| {
                    seen += usize::from(n.eq_ignore_ascii_case(name));
                    !n.eq_ignore_ascii_case(name) || seen == 1
                });
            }
            None => self.headers.push((name.to_owned(), value.to_owned())),
        }
    }

    /// Whether a comma-separated header holds `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Method and request target of a request head.
    pub fn method_and_target(&self) -> (String, String) {
        let mut parts = self.start.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        (method, target)
    }

    /// Status code of a response head (0 when it does not parse).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn content_length(&self) -> Option<u64> {
        self.get("content-length").and_then(|v| v.parse().ok())
    }

    pub fn request_framing(&self) -> Framing {
        if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match self.content_length() {
                Some(n) => Framing::Length(n),
                None => Framing::Empty,
            }
        }
    }

    pub fn response_framing(&self, method: &str, status: u16) -> Framing {
        if method == "HEAD" || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else if self.has_token("transfer-encoding", "chunked") {
            Framing::Chunked
        } else {
            match self.content_length() {
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            }
        }
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut out = String::with_capacity(256);
        out.push_str(&self.start);
        out.push_str("\r\n");
        for (n, v) in &self.headers {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        w.write_all(out.as_bytes())
    }
}
