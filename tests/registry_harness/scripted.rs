//! The fault proxy against a scripted upstream (raw HTTP answers, no registry): exact bytes
//! for flips, truncations and resets, on chunked and sized bodies, with keep-alive.

use super::*;

/// A scripted upstream: answers each request on a connection with the next of `responses`
/// (raw bytes, `UPSTREAM` replaced by its address), then closes. Returns its address.
fn fake_upstream(responses: Vec<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let responses: Vec<Vec<u8>> = responses
        .into_iter()
        .map(|r| replace(&r, b"UPSTREAM", addr.as_bytes()))
        .collect();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let conn = conn.unwrap();
            let mut out = conn.try_clone().unwrap();
            let mut input = BufReader::new(conn);
            for response in &responses {
                let Ok(Some(req)) = Head::read(&mut input) else {
                    break;
                };
                let length = req.get("content-length").map_or(0, |v| v.parse().unwrap());
                std::io::copy(&mut (&mut input).take(length), &mut std::io::sink()).unwrap();
                // The proxy may hang up mid-body (faults): not an error here.
                if out.write_all(response).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    match haystack.windows(from.len()).position(|w| w == from) {
        Some(i) => [&haystack[..i], to, &haystack[i + from.len()..]].concat(),
        None => haystack.to_vec(),
    }
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in body.chunks(chunk) {
        out.extend(format!("{:x}\r\n", part.len()).bytes());
        out.extend(part);
        out.extend(b"\r\n");
    }
    out.extend(b"0\r\n\r\n");
    out
}

fn with_length(body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend(body);
    out
}

/// Send a GET on `conn` and read the answer: status, headers, body (de-chunked) and the
/// error that ended it early, if any.
fn get(
    conn: &mut BufReader<TcpStream>,
    path: &str,
) -> (u16, Head, Vec<u8>, Option<std::io::ErrorKind>) {
    write!(conn.get_mut(), "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = Head::read(conn).unwrap().unwrap();
    let mut body = Vec::new();
    let err = if let Some(n) = head.get("content-length") {
        let n: u64 = n.parse().unwrap();
        match conn.take(n).read_to_end(&mut body) {
            Ok(got) if got as u64 == n => None,
            Ok(_) => Some(std::io::ErrorKind::UnexpectedEof),
            Err(e) => Some(e.kind()),
        }
    } else {
        loop {
            let mut line = String::new();
            match conn.read_line(&mut line) {
                Ok(0) => break Some(std::io::ErrorKind::UnexpectedEof),
                Err(e) => break Some(e.kind()),
                Ok(_) => {}
            }
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            if size == 0 {
                conn.read_line(&mut line).unwrap();
                break None;
            }
            let mut part = Vec::new();
            if let Err(e) = (&mut *conn).take(size as u64 + 2).read_to_end(&mut part) {
                break Some(e.kind());
            }
            body.extend(&part[..part.len().min(size)]);
            if part.len() < size + 2 {
                break Some(std::io::ErrorKind::UnexpectedEof);
            }
        }
    };
    (head.status(), head, body, err)
}

fn connect(host: &str) -> BufReader<TcpStream> {
    let conn = TcpStream::connect(host).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    BufReader::new(conn)
}

#[test]
fn proxy_faults_on_chunked_and_sized_bodies_keep_alive() {
    let body = noise(1, 300_000);
    let upstream = fake_upstream(vec![
        chunked(&body, 10_000),
        with_length(&body, "Location: http://UPSTREAM/v2/x/blobs/uploads/1\r\n"),
        chunked(&body, 70_000),
        with_length(&body, ""),
    ]);
    let proxy = FaultProxy::start(&upstream);
    proxy.inject("GET", "/flip", Fault::FlipByte { at: 123_456 }, 1);
    proxy.inject(
        "GET",
        "/cut",
        Fault::Truncate {
            after_bytes: 100_000,
        },
        1,
    );
    proxy.inject(
        "GET",
        "/busy",
        Fault::TooMany {
            retry_after_secs: 7,
        },
        1,
    );
    let mut conn = connect(&proxy.host());

    // Chunked, one byte flipped, connection kept alive.
    let (status, _, got, err) = get(&mut conn, "/flip");
    assert_eq!((status, err), (200, None));
    assert_eq!(got.len(), body.len());
    let diff: Vec<usize> = (0..body.len()).filter(|&i| got[i] != body[i]).collect();
    assert_eq!(diff, [123_456]);

    // Sized, untouched, on the same connection; a 429 answered by the proxy in between.
    let (status, head, _, _) = get(&mut conn, "/busy");
    assert_eq!((status, head.get("retry-after")), (429, Some("7")));
    let (status, head, got, err) = get(&mut conn, "/plain");
    assert_eq!((status, err, got == body), (200, None, true));
    let location = format!("http://{}/v2/x/blobs/uploads/1", proxy.host());
    assert_eq!(head.get("location"), Some(location.as_str()));

    // Chunked, truncated: exactly the first 100,000 bytes, then a clean close.
    let (status, _, got, err) = get(&mut conn, "/cut");
    assert_eq!(status, 200);
    assert_eq!(err, Some(std::io::ErrorKind::UnexpectedEof));
    assert_eq!(got.len(), 100_000);
    assert!(got == body[..100_000]);

    let seen = proxy.requests();
    let statuses: Vec<u16> = seen.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(statuses, [200, 429, 200, 200]);
}

#[test]
fn proxy_reset_sends_rst_and_status_skips_upstream() {
    let body = noise(1, 1_000_000);
    let upstream = fake_upstream(vec![with_length(&body, "")]);
    let proxy = FaultProxy::start(&upstream);
    proxy.inject(
        "GET",
        "/blob",
        Fault::Reset {
            after_bytes: 50_000,
        },
        1,
    );
    proxy.inject("HEAD", "/blob", Fault::Status(500), 1);

    let mut conn = connect(&proxy.host());
    let (status, _, got, err) = get(&mut conn, "/blob");
    assert_eq!(status, 200);
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    assert!(got.len() <= 50_000 && got[..] == body[..got.len()]);

    let mut conn = connect(&proxy.host());
    write!(conn.get_mut(), "HEAD /blob HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(Head::read(&mut conn).unwrap().unwrap().status(), 500);
    assert_eq!(
        proxy.requests(),
        [
            ("GET".to_owned(), "/blob".to_owned(), 200),
            ("HEAD".to_owned(), "/blob".to_owned(), 500)
        ]
    );
}
