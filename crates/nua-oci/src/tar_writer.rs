//! A minimal deterministic tar writer: ustar headers, PAX records only when needed.
//!
//! Written here rather than through the `tar` crate's `Builder` so every header byte is under
//! our control: no atime/ctime, empty uname/gname, no GNU long-name blocks, PAX extended
//! headers (POSIX.1-2001) only for what ustar cannot hold (long paths or link targets, xattrs as
//! `SCHILY.xattr.<name>`, sizes ≥ 8 GiB, large ids), with a fixed name and records sorted by key.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// The entry kinds a layer can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Hardlink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

impl Kind {
    fn typeflag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::Hardlink => b'1',
            Kind::Symlink => b'2',
            Kind::Char => b'3',
            Kind::Block => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

/// Everything written into one header; `path` already normalized (dirs end with `/`).
pub(crate) struct Header<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    pub link: &'a [u8],
    pub device: (u32, u32),
    pub xattrs: &'a BTreeMap<String, Vec<u8>>,
}

/// Streams tar entries to `out`.
pub(crate) struct TarWriter<W> {
    out: W,
    copy_buf: Vec<u8>,
}

const MAX_OCTAL_11: u64 = 0o777_7777_7777;
const MAX_OCTAL_7: u64 = 0o777_7777;

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            copy_buf: vec![0; 256 * 1024],
        }
    }

    /// Write the header of an entry (and its PAX header when needed).
    pub fn header(&mut self, h: &Header<'_>) -> io::Result<()> {
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let (name, prefix) = match split_ustar_path(h.path) {
            Some(split) => split,
            None => {
                pax.insert("path".into(), h.path.to_vec());
                (&h.path[..100], &[][..])
            }
        };
        let link = if h.link.len() > 100 {
            pax.insert("linkpath".into(), h.link.to_vec());
            &h.link[..100]
        } else {
            h.link
        };
        let mut numeric = |key: &str, value: u64, max: u64| {
            if value > max {
                pax.insert(key.into(), value.to_string().into_bytes());
                0
            } else {
                value
            }
        };
        let size = numeric("size", h.size, MAX_OCTAL_11);
        let uid = numeric("uid", h.uid, MAX_OCTAL_7);
        let gid = numeric("gid", h.gid, MAX_OCTAL_7);
        let mtime = numeric("mtime", h.mtime, MAX_OCTAL_11);
        for (key, value) in h.xattrs {
            pax.insert(format!("SCHILY.xattr.{key}"), value.clone());
        }
        if !pax.is_empty() {
            let records = pax_records(&pax);
            let block = ustar_block(&UstarFields {
                name: b"././@PaxHeader",
                prefix: b"",
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: records.len() as u64,
                mtime,
                typeflag: b'x',
                link: b"",
                device: (0, 0),
            });
            self.out.write_all(&block)?;
            self.out.write_all(&records)?;
            self.pad(records.len() as u64)?;
        }
        let block = ustar_block(&UstarFields {
            name,
            prefix,
            mode: h.mode & 0o7777,
            uid,
            gid,
            size,
            mtime,
            typeflag: h.kind.typeflag(),
            link,
            device: h.device,
        });
        self.out.write_all(&block)
    }

    /// Copy exactly `size` bytes of entry data from `reader`, then pad to a block.
    ///
    /// Returns `UnexpectedEof` when the reader ends early.
    pub fn data(&mut self, reader: &mut dyn Read, size: u64) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.copy_buf.len() as u64) as usize;
            let n = match reader.read(&mut self.copy_buf[..want]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.copy_buf[..n])?;
            left -= n as u64;
        }
        self.pad(size)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.out.write_all(&[0; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Write the end-of-archive marker (two zero blocks) and give back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0; 2 * BLOCK])?;
        Ok(self.out)
    }
}

/// Split a path into ustar `name` (≤ 100 bytes) and `prefix` (≤ 155 bytes) at a `/`.
fn split_ustar_path(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= 100 {
        return Some((path, b""));
    }
    // A directory's trailing slash belongs to the name part; split at an earlier slash.
    let search = &path[..path.len() - 1];
    search
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i <= 155 && path.len() - i - 1 <= 100 && i > 0)
        .map(|(i, _)| (&path[i + 1..], &path[..i]))
        .next()
}

/// PAX records `"<len> <key>=<value>\n"`, where `<len>` counts the whole record itself.
fn pax_records(pax: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in pax {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

struct UstarFields<'a> {
    name: &'a [u8],
    prefix: &'a [u8],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &'a [u8],
    device: (u32, u32),
}

fn ustar_block(f: &UstarFields<'_>) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..f.name.len()].copy_from_slice(f.name);
    octal(&mut b[100..108], f.mode.into());
    octal(&mut b[108..116], f.uid);
    octal(&mut b[116..124], f.gid);
    octal(&mut b[124..136], f.size);
    octal(&mut b[136..148], f.mtime);
    b[156] = f.typeflag;
    b[157..157 + f.link.len()].copy_from_slice(f.link);
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty on purpose.
    octal(&mut b[329..337], f.device.0.into());
    octal(&mut b[337..345], f.device.1.into());
    b[345..345 + f.prefix.len()].copy_from_slice(f.prefix);
    // Checksum: sum of all bytes with the checksum field itself read as spaces.
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    let digits = format!("{sum:06o}");
    b[148..154].copy_from_slice(digits.as_bytes());
    b[154] = 0;
    b[155] = b' ';
    b
}

/// Zero-padded octal digits followed by a NUL, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    field[..width].copy_from_slice(&digits.as_bytes()[digits.len() - width..]);
    field[width] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(path: &'a [u8], xattrs: &'a BTreeMap<String, Vec<u8>>) -> Header<'a> {
        Header {
            path,
            kind: Kind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime: 42,
            size: 5,
            link: b"",
            device: (0, 0),
            xattrs,
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut pax = BTreeMap::new();
        pax.insert("path".to_string(), vec![b'a'; 94]);
        let rec = pax_records(&pax);
        // "102 path=" + 94 + "\n" = 4 + 5 + 94 + 1 = 104? length field must match the total.
        let text = String::from_utf8(rec.clone()).unwrap();
        let len: usize = text.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(len, rec.len());
    }

    #[test]
    fn long_paths_and_xattrs_read_back_with_the_tar_crate() {
        let long = format!("{}/file.txt", "d".repeat(200));
        let mut xattrs = BTreeMap::new();
        xattrs.insert("user.test".to_string(), b"value".to_vec());
        let none = BTreeMap::new();
        let mut w = TarWriter::new(Vec::new());
        for (path, x) in [(long.as_bytes(), &none), (b"short".as_slice(), &xattrs)] {
            w.header(&header(path, x)).unwrap();
            w.data(&mut &b"hello"[..], 5).unwrap();
        }
        let bytes = w.finish().unwrap();
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let xattr: Vec<String> = entry
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(|e| format!("{}={}", e.unwrap().key().unwrap(), "v"))
                .collect();
            assert_eq!(entry.header().uid().unwrap(), 1000);
            assert_eq!(entry.header().mtime().unwrap(), 42);
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            seen.push((path, body, xattr));
        }
        assert_eq!(seen[0].0, long);
        assert_eq!(seen[0].1, "hello");
        assert_eq!(seen[1].0, "short");
        assert_eq!(seen[1].2, vec!["SCHILY.xattr.user.test=v".to_string()]);
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut w = TarWriter::new(Vec::new());
        let err = w.data(&mut &b"abc"[..], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
