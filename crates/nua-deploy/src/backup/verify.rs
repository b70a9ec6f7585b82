//! What a dump holds, measured as it streams past on its way to the repository, so a restore
//! can be compared with it: a volume's file tree ([`Tree`]), the rows of a SQL dump
//! ([`SqlRows`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry of a volume, as compared: never its times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// `file`, `dir`, `symlink`, `hardlink`, or `other`.
    pub kind: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    /// The content's SHA-256 (files), or the link's target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A volume's file tree: path → entry.
pub type Tree = BTreeMap<String, Entry>;

/// Read a tar stream to its file tree.
pub fn tree_of(reader: impl Read) -> std::io::Result<Tree> {
    let mut archive = tar::Archive::new(reader);
    let mut tree = Tree::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header = entry.header().clone();
        let path = entry.path()?.to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if path.is_empty() || path == "." {
            continue;
        }
        let kind = header.entry_type();
        let (kind, sha256, link) = if kind.is_file() {
            let mut hasher = Sha256::new();
            std::io::copy(&mut entry, &mut HashWriter(&mut hasher))?;
            ("file", Some(hex::encode(hasher.finalize())), None)
        } else if kind.is_dir() {
            ("dir", None, None)
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .map(|l| l.to_string_lossy().trim_start_matches("./").to_owned());
            (
                if kind.is_symlink() {
                    "symlink"
                } else {
                    "hardlink"
                },
                None,
                target,
            )
        } else {
            ("other", None, None)
        };
        tree.insert(
            path,
            Entry {
                kind: kind.to_owned(),
                mode: header.mode()? & 0o7777,
                uid: header.uid()?,
                gid: header.gid()?,
                size: if kind == "file" { header.size()? } else { 0 },
                sha256,
                link,
            },
        );
    }
    Ok(tree)
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The differences of two trees, at most `limit`, as lines.
pub fn tree_differences(dumped: &Tree, restored: &Tree, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    for (path, entry) in dumped {
        match restored.get(path) {
            None => out.push(format!("`{path}` is missing")),
            Some(other) if other != entry => out.push(format!(
                "`{path}` differs: dumped {}, restored {}",
                describe(entry),
                describe(other)
            )),
            Some(_) => {}
        }
    }
    for path in restored.keys().filter(|p| !dumped.contains_key(*p)) {
        out.push(format!("`{path}` was not in the dump"));
    }
    out.truncate(limit);
    out
}

fn describe(entry: &Entry) -> String {
    let mut text = format!(
        "{} {:o} {}:{} {} bytes",
        entry.kind, entry.mode, entry.uid, entry.gid, entry.size
    );
    if let Some(sha) = &entry.sha256 {
        text.push_str(&format!(" sha256 {}", &sha[..12]));
    }
    if let Some(link) = &entry.link {
        text.push_str(&format!(" -> {link}"));
    }
    text
}

/// The differences of two table → row count maps, as lines.
pub fn count_differences(
    dumped: &BTreeMap<String, u64>,
    restored: &BTreeMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, rows) in dumped {
        match restored.get(table) {
            None => out.push(format!("table `{table}` is missing")),
            Some(n) if n != rows => {
                out.push(format!("table `{table}` has {n} rows, the dump {rows}"))
            }
            Some(_) => {}
        }
    }
    for table in restored.keys().filter(|t| !dumped.contains_key(*t)) {
        out.push(format!("table `{table}` was not in the dump"));
    }
    out
}

/// A writer that passes every byte on to `inner` and a copy to a thread measuring the
/// stream; [`Tee::finish`] gives the byte count and the thread's result.
pub struct Tee<W, T> {
    inner: W,
    copy: Option<SyncSender<Vec<u8>>>,
    measure: Option<JoinHandle<T>>,
    pub bytes: u64,
}

impl<W: Write, T: Send + 'static> Tee<W, T> {
    /// `measure` reads the copy; it must read to the end (or the stream stalls).
    pub fn new(inner: W, measure: impl FnOnce(ChannelReader) -> T + Send + 'static) -> Self {
        let (send, receive) = sync_channel(16);
        let handle = std::thread::spawn(move || {
            measure(ChannelReader {
                receive,
                chunk: Vec::new(),
                at: 0,
            })
        });
        Tee {
            inner,
            copy: Some(send),
            measure: Some(handle),
            bytes: 0,
        }
    }

    /// The end of the stream: the byte count and what was measured.
    pub fn finish(mut self) -> (W, u64, T) {
        drop(self.copy.take());
        let measured = self
            .measure
            .take()
            .expect("finished once")
            .join()
            .expect("the measuring thread does not panic");
        (self.inner, self.bytes, measured)
    }
}

impl<W: Write, T> Write for Tee<W, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(copy) = &self.copy {
            // A measure that stopped reading (it failed) no longer gets copies.
            if copy.send(buf[..n].to_vec()).is_err() {
                self.copy = None;
            }
        }
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The reading end of a [`Tee`]'s copy.
pub struct ChannelReader {
    receive: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.receive.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Row counts of a SQL dump in `mysqldump` form, read as it streams: tables from `CREATE
/// TABLE`, rows from the tuples of `INSERT INTO … VALUES (…),(…);` (quoted strings, escapes
/// and comments skipped).
#[derive(Debug, Default)]
pub struct SqlRows {
    pub counts: BTreeMap<String, u64>,
    /// The statement being read (its start only: enough to know what it is).
    head: Vec<u8>,
    state: SqlState,
    depth: u32,
    table: Option<String>,
    /// A backslash was just read in a string.
    escaped: bool,
    /// A newline ended the last character: a line comment may start.
    line_start: bool,
    /// The byte before this one (across chunks).
    prev: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum SqlState {
    #[default]
    Code,
    Quoted(u8),
    LineComment,
    BlockComment,
}

impl SqlRows {
    pub fn new() -> SqlRows {
        SqlRows {
            line_start: true,
            ..SqlRows::default()
        }
    }

    /// Read everything of `reader`.
    pub fn read(mut self, mut reader: impl Read) -> std::io::Result<BTreeMap<String, u64>> {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(self.counts);
            }
            self.feed(&buf[..n]);
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let prev = std::mem::replace(&mut self.prev, b);
            match self.state {
                SqlState::Quoted(q) => {
                    if self.escaped {
                        self.escaped = false;
                    } else if b == b'\\' {
                        self.escaped = true;
                    } else if b == q {
                        self.state = SqlState::Code;
                    }
                }
                SqlState::LineComment => {
                    if b == b'\n' {
                        self.state = SqlState::Code;
                        self.line_start = true;
                    }
                    continue;
                }
                SqlState::BlockComment => {
                    if b == b'/' && prev == b'*' {
                        self.state = SqlState::Code;
                    }
                    continue;
                }
                SqlState::Code => {
                    if b == b'-' && self.line_start {
                        self.state = SqlState::LineComment;
                        continue;
                    }
                    if b == b'*' && prev == b'/' {
                        self.head.pop();
                        self.state = SqlState::BlockComment;
                        continue;
                    }
                    match b {
                        b'\'' | b'"' | b'`' => {
                            self.state = SqlState::Quoted(b);
                        }
                        b'(' => {
                            if self.depth == 0 && self.table.is_some() {
                                *self
                                    .counts
                                    .entry(self.table.clone().unwrap_or_default())
                                    .or_default() += 1;
                            }
                            self.depth += 1;
                        }
                        b')' => self.depth = self.depth.saturating_sub(1),
                        b';' => {
                            self.head.clear();
                            self.table = None;
                            self.depth = 0;
                            self.line_start = false;
                            continue;
                        }
                        _ => {}
                    }
                }
            }
            self.line_start = b == b'\n';
            if self.head.len() < 512 {
                self.head.push(b);
                if self.table.is_none() && self.depth == 0 {
                    self.recognise();
                }
            }
        }
    }

    /// What the statement read so far is: a table made (with no rows yet), or rows for one.
    fn recognise(&mut self) {
        let text = String::from_utf8_lossy(&self.head);
        let text = text.trim_start();
        for (prefix, rows) in [("CREATE TABLE ", false), ("INSERT INTO ", true)] {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            let rest = rest.trim_start_matches("IF NOT EXISTS ");
            let Some(name) = rest.strip_prefix('`').and_then(|r| {
                let end = r.find('`')?;
                Some(r[..end].to_owned())
            }) else {
                continue;
            };
            if !rest[name.len() + 2..].contains(' ') && !rest[name.len() + 2..].contains('(') {
                // The name may not be whole yet.
                continue;
            }
            self.counts.entry(name.clone()).or_default();
            let values = text.find(" VALUES").map(|at| &text[at + " VALUES".len()..]);
            if rows && values.is_some_and(|v| v.starts_with(|c: char| c.is_ascii_whitespace())) {
                self.table = Some(name);
            }
        }
    }
}
