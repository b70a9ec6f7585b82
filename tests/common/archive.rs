//! The `src-url` fixture served over HTTP: a deterministic tar.gz of a folder, a tiny file
//! server on 127.0.0.1, and `fixtures/apps/src-url` with the served URL and checksum filled
//! in (its port is only known at test time).

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sha2::Digest;

use super::http::{Acceptor, Head};

/// The version of the `src-url` fixture: its archive is `hello-{VERSION}.tar.gz`.
pub const VERSION: &str = "1.0";

/// A tar.gz of `dir` under the top folder `top/`, the same bytes on every run: entries sorted
/// (folders before their content), modes 0644/0755, owner 0, mtime 0, gzip without name or
/// time.
pub fn tar_gz_of(dir: &Path, top: &str) -> Vec<u8> {
    fn add(tar: &mut tar::Builder<Vec<u8>>, dir: &Path, name: &str) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = format!("{name}/{}", path.file_name().unwrap().to_str().unwrap());
            if path.is_dir() {
                tar.append(
                    &header(&format!("{name}/"), tar::EntryType::Directory, 0),
                    &[][..],
                )
                .unwrap();
                add(tar, &path, &name);
            } else {
                let data = std::fs::read(&path).unwrap();
                let header = header(&name, tar::EntryType::Regular, data.len() as u64);
                tar.append(&header, data.as_slice()).unwrap();
            }
        }
    }
    fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).unwrap();
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        header
    }
    let mut tar = tar::Builder::new(Vec::new());
    let top_header = header(&format!("{top}/"), tar::EntryType::Directory, 0);
    tar.append(&top_header, &[][..]).unwrap();
    add(&mut tar, dir, top);
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// The sha256 of `bytes`, as 64 hex characters.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A file server on 127.0.0.1: `GET /path` of a served path answers its bytes, anything else
/// 404. Stops accepting when dropped.
pub struct FileServer {
    acceptor: Acceptor,
    hits: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serve `files`, keyed by request path (`/hello-1.0.tar.gz`).
    pub fn start(files: BTreeMap<String, Vec<u8>>) -> FileServer {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let acceptor = Acceptor::start(move |conn: TcpStream| {
            let Ok(read_half) = conn.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(read_half);
            let mut conn = conn;
            while let Ok(Some(head)) = Head::read(&mut reader) {
                counter.fetch_add(1, Ordering::SeqCst);
                let (method, target) = head.method_and_target();
                let (status, body) = match files.get(&target) {
                    Some(body) => ("200 OK", body.as_slice()),
                    None => ("404 Not Found", &b"not found\n"[..]),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    body.len()
                );
                let body = if method == "HEAD" { &[][..] } else { body };
                if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body).is_err() {
                    return;
                }
            }
        });
        FileServer { acceptor, hits }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.acceptor.addr()
    }

    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// How many requests were answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// The `src-url` fixture's archive, being served.
pub struct ServedArchive {
    pub server: FileServer,
    /// The archive's URL (`{version}` expanded).
    pub url: String,
    /// The archive's sha256, 64 hex characters.
    pub sha256: String,
    /// The archive itself.
    pub bytes: Vec<u8>,
}

/// The folder whose content the `src-url` fixture's archive holds (without its top folder).
pub fn src_url_content() -> PathBuf {
    super::fixture_app("src-url").join(format!("archive/hello-{VERSION}"))
}

/// Serve `fixtures/apps/src-url/archive/hello-1.0/` as `/hello-1.0.tar.gz`.
pub fn serve_src_url_fixture() -> ServedArchive {
    let name = format!("hello-{VERSION}");
    let bytes = tar_gz_of(&src_url_content(), &name);
    let path = format!("/{name}.tar.gz");
    let server = FileServer::start(BTreeMap::from([(path.clone(), bytes.clone())]));
    ServedArchive {
        url: server.url(&path),
        sha256: sha256_hex(&bytes),
        server,
        bytes,
    }
}

/// Write the `src-url` fixture's `nua-config.toml` into `dest` (created if missing) with
/// `src-url` on `served`'s server (keeping its `{version}` placeholder) and `src-checksum`
/// set; the folder to build.
pub fn src_url_app(dest: &Path, served: &ServedArchive) -> PathBuf {
    let original = super::fixture_app("src-url").join("nua-config.toml");
    let text = std::fs::read_to_string(original).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("src-url") {
            let url = served.server.url("/hello-{version}.tar.gz");
            out.push_str(&format!(
                "src-url = \"{url}\"\nsrc-checksum = \"{}\"\n",
                served.sha256
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        out.contains("src-checksum"),
        "the fixture lost its `src-url` line"
    );
    std::fs::create_dir_all(dest).unwrap();
    std::fs::write(dest.join("nua-config.toml"), out).unwrap();
    dest.to_path_buf()
}
