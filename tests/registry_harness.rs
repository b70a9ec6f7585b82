//! Self-tests of the registry test harness (`tests/common/{registry,token,proxy}.rs`), with
//! skopeo as the client: the three registry set-ups accept the right credentials and refuse
//! the wrong ones, and the fault proxy does to the bytes what it is told. The images are tiny
//! ones made with the `oci` module.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::http::Head;
use common::proxy::{Fault, FaultProxy};
use common::registry::{Auth, Registry};
use common::token::Presented;
use nua::oci::{
    write_image, write_layout_dir, BlobStore, ContainerConfig, ImageName, ImageRef, ImageSpec,
    LayerOptions, LayerWriter, Meta,
};
use sha2::Digest as _;

/// A one-layer image whose layer holds `size` incompressible bytes, as an OCI layout `dir`
/// tagged `1` (so `oci:DIR:1` names it).
fn tiny_image(dir: &Path, size: usize) -> ImageRef {
    let store = BlobStore::open(dir.join("cache")).unwrap();
    let opts = LayerOptions {
        source_date_epoch: 1_700_000_000,
        ..LayerOptions::default()
    };
    let mut layer = LayerWriter::new(&store, opts).unwrap();
    layer
        .add_bytes("data.bin", &Meta::new(0o644), &noise(size))
        .unwrap();
    let layer = layer.finish().unwrap();
    let spec = ImageSpec::new(vec![layer], ContainerConfig::default(), 1_700_000_000);
    let image = write_image(&store, &spec).unwrap();
    let names = [ImageName::parse("nua-harness:1").unwrap()];
    write_layout_dir(&store, &image, &names, &dir.join("layout")).unwrap();
    image
}

/// Bytes gzip cannot shrink (xorshift), so blob sizes are what the test asks for.
fn noise(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// skopeo with no policy file, no stored credentials and the registry treated as plain HTTP.
fn skopeo(dir: &Path, args: &[&str]) -> Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .env("REGISTRY_AUTH_FILE", dir.join("no-auth.json"))
        .output()
        .expect("run skopeo")
}

fn push(dir: &Path, host: &str, creds: Option<&str>) -> Output {
    let layout = format!("oci:{}:1", dir.join("layout").display());
    let dest = format!("docker://{host}/nua/harness:1");
    let mut args = vec!["copy", "--dest-tls-verify=false", &layout, &dest];
    if let Some(creds) = creds {
        args.extend(["--dest-creds", creds]);
    }
    skopeo(dir, &args)
}

/// Pull `nua/harness:1` into the OCI layout `dir/NAME`.
fn pull(dir: &Path, host: &str, name: &str, extra: &[&str]) -> Output {
    let src = format!("docker://{host}/nua/harness:1");
    let dest = format!("oci:{}:1", dir.join(name).display());
    let mut args = vec!["copy", "--src-tls-verify=false"];
    args.extend(extra);
    args.extend([src.as_str(), dest.as_str()]);
    skopeo(dir, &args)
}

#[track_caller]
fn assert_ok(out: &Output, registry: &Registry) {
    assert!(
        out.status.success(),
        "skopeo failed ({}): {}\nregistry log: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        registry.log_path().display()
    );
}

#[track_caller]
fn assert_refused(out: &Output, words: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "skopeo succeeded, expected a refusal"
    );
    assert!(
        words.iter().any(|w| stderr.contains(w)),
        "expected one of {words:?} in: {stderr}"
    );
}

/// The registry serves the manifest the project wrote, byte for byte.
#[track_caller]
fn assert_manifest(dir: &Path, host: &str, creds: Option<&str>, image: &ImageRef) {
    let src = format!("docker://{host}/nua/harness:1");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--creds", creds]);
    }
    args.push(&src);
    let out = skopeo(dir, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&out.stdout)));
    assert_eq!(digest, image.manifest.digest.to_string());
}

#[test]
fn push_without_auth() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::None);
    assert_ok(&push(tmp.path(), &registry.host(), None), &registry);
    assert_manifest(tmp.path(), &registry.host(), None, &image);
}

#[test]
fn basic_auth_takes_the_right_password_only() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::basic("nua", "s3cret"));
    let host = registry.host();
    assert_refused(&push(tmp.path(), &host, None), &["unauthorized", "401"]);
    assert_refused(
        &push(tmp.path(), &host, Some("nua:wrong")),
        &["unauthorized", "401"],
    );
    assert_ok(&push(tmp.path(), &host, Some("nua:s3cret")), &registry);
    assert_manifest(tmp.path(), &host, Some("nua:s3cret"), &image);
}

#[test]
fn token_auth_grants_push_to_the_user_only() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 4096);
    let registry = Registry::start(Auth::token("nua", "s3cret"));
    let host = registry.host();

    assert_refused(
        &push(tmp.path(), &host, None),
        &["unauthorized", "denied", "401"],
    );
    let anonymous = registry.token_requests();
    assert!(
        anonymous
            .iter()
            .any(|r| r.credentials == Presented::Anonymous && r.status == 200),
        "an anonymous client gets a token granting nothing: {anonymous:?}"
    );

    assert_refused(
        &push(tmp.path(), &host, Some("nua:wrong")),
        &["unauthorized", "401"],
    );
    assert!(registry
        .token_requests()
        .iter()
        .any(|r| r.credentials == Presented::Invalid && r.status == 401));

    assert_ok(&push(tmp.path(), &host, Some("nua:s3cret")), &registry);
    assert!(
        registry.token_requests().iter().any(|r| {
            r.credentials == Presented::Valid
                && r.scopes
                    .iter()
                    .any(|s| s.starts_with("repository:nua/harness:") && s.contains("push"))
        }),
        "{:?}",
        registry.token_requests()
    );
    assert_manifest(tmp.path(), &host, Some("nua:s3cret"), &image);
}

/// Uploads go through the proxy too (its `Location` rewriting keeps them there); a 503 on a
/// blob is seen and skopeo retries it or reports it; a 429 it retries.
#[test]
fn proxy_passes_pushes_and_serves_a_503() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 200_000);
    let registry = Registry::start(Auth::None);
    let proxy = FaultProxy::start(&registry.host());
    assert_ok(&push(tmp.path(), &proxy.host(), None), &registry);
    let seen = proxy.requests();
    for method in ["POST", "PUT"] {
        assert!(
            seen.iter()
                .any(|(m, p, _)| m == method && p.contains("/blobs/uploads/")),
            "no {method} of an upload went through the proxy: {seen:?}"
        );
    }
    assert_manifest(tmp.path(), &registry.host(), None, &image);

    let layer = format!("/blobs/{}", image.layers[0].digest);
    proxy.inject("GET", &layer, Fault::Status(503), 1);
    let out = pull(tmp.path(), &proxy.host(), "pulled", &["--retry-times", "3"]);
    let gets = layer_gets(&proxy, &layer);
    assert_eq!(gets.first(), Some(&503), "{:?}", proxy.requests());
    if out.status.success() {
        assert_eq!(gets.get(1), Some(&200), "skopeo retried the blob");
        assert_pulled_layer(&tmp.path().join("pulled"), &image);
    } else {
        // skopeo 1.9 (Debian bookworm) does not retry a 5xx on a blob.
        assert_refused(&out, &["503", "unavailable"]);
    }

    // A 429 it retries, after the `Retry-After` delay.
    proxy.inject(
        "GET",
        &layer,
        Fault::TooMany {
            retry_after_secs: 1,
        },
        1,
    );
    let out = pull(
        tmp.path(),
        &proxy.host(),
        "pulled-429",
        &["--retry-times", "3"],
    );
    assert_ok(&out, &registry);
    assert!(layer_gets(&proxy, &layer).ends_with(&[429, 200]));
    assert_pulled_layer(&tmp.path().join("pulled-429"), &image);
}

/// Statuses of the GETs of `layer` the proxy saw, in order.
fn layer_gets(proxy: &FaultProxy, layer: &str) -> Vec<u16> {
    proxy
        .requests()
        .into_iter()
        .filter(|(m, p, _)| m == "GET" && p.contains(layer))
        .map(|(_, _, s)| s)
        .collect()
}

#[track_caller]
fn assert_pulled_layer(layout: &Path, image: &ImageRef) {
    let layer = &image.layers[0];
    let blob = layout.join("blobs/sha256").join(layer.digest.hex());
    let bytes = std::fs::read(blob).unwrap();
    assert_eq!(bytes.len() as u64, layer.size);
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))),
        layer.digest.to_string()
    );
}

#[test]
fn proxy_flipped_byte_fails_the_digest_check() {
    let tmp = common::temp_dir();
    let image = tiny_image(tmp.path(), 200_000);
    let registry = Registry::start(Auth::None);
    assert_ok(&push(tmp.path(), &registry.host(), None), &registry);
    let proxy = FaultProxy::start(&registry.host());
    let layer = image.layers[0].digest.to_string();
    proxy.inject("GET", &layer, Fault::FlipByte { at: 1000 }, 10);
    let out = pull(tmp.path(), &proxy.host(), "pulled", &[]);
    assert_refused(&out, &["digest"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&layer));
}

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
    let body = noise(300_000);
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
    let body = noise(1_000_000);
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
