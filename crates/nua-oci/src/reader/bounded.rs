//! Opening a blob of a layout folder for reading, bounded by the size it should have.
//!
//! Input is hostile: a layer "blob" may be a symlink to `/dev/zero`, a fifo, or a file larger
//! than its descriptor says. Files that are not regular are refused before a byte is read
//! (before they are even opened when a `stat` can tell, and again on the open handle, which
//! is opened non-blocking so a fifo cannot hang the open); a regular file whose size on disk
//! differs from the descriptor's is refused up front; and every read goes through
//! [`Bounded`], which never pulls more than `size + 1` bytes from its source and fails on the
//! extra byte. The tarball side applies the same rules to its entries (`source.rs`).

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// A reader that yields at most `size` bytes of `inner` and fails, naming the blob, when
/// `inner` has more: it reads `size + 1` bytes at the most, so an endless source costs
/// nothing more than its descriptor announced.
pub struct Bounded<R> {
    inner: R,
    left: u64,
    size: u64,
    blob: String,
}

impl<R: Read> Bounded<R> {
    /// Bound `inner` to `size` bytes; `blob` names it in the error (what and where).
    pub fn new(inner: R, size: u64, blob: String) -> Self {
        Bounded {
            inner,
            left: size,
            size,
            blob,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Room for one byte past the end, to tell "ends here" from "goes on".
        let want = (buf.len() as u64).min(self.left.saturating_add(1)) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.left = 0;
            return Err(io::Error::other(Error::Oversized {
                blob: self.blob.clone(),
                expected: self.size,
            }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Open the file `path` (`blob` names it in errors) if it is a regular file, following
/// symlinks: its handle and its size on disk.
pub(super) fn open_regular(path: &Path, blob: &str) -> Result<Option<(File, u64)>> {
    match std::fs::metadata(path) {
        Ok(md) => check_regular(&md, path, blob)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    }
    // Non-blocking, so a fifo swapped in after the `stat` does not wait for a writer; the
    // flag changes nothing for the regular file it must then be.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .at(path)?;
    let md = file.metadata().at(path)?;
    check_regular(&md, path, blob)?;
    Ok(Some((file, md.len())))
}

fn check_regular(md: &Metadata, path: &Path, blob: &str) -> Result<()> {
    if md.is_file() {
        return Ok(());
    }
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(Error::NotRegular {
        blob: blob.to_owned(),
        location: path.to_path_buf(),
        kind: kind.into(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::BlobStore;

    /// A source that never ends, counting what was taken from it.
    struct Endless {
        taken: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(0);
            self.taken += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn an_endless_source_stops_one_byte_past_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut writer = store.writer().unwrap();
        let mut endless = Endless { taken: 0 };
        let size = 300 * 1024 + 7;
        let mut bounded = Bounded::new(&mut endless, size, "blob `sha256:ab…`".into());
        let err = io::copy(&mut bounded, &mut writer).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("blob `sha256:ab…`"), "{message}");
        assert!(message.contains(&size.to_string()), "{message}");
        assert!(endless.taken <= size + 1, "{} bytes taken", endless.taken);
        assert!(writer.len() <= size + 1, "{} bytes written", writer.len());
        writer.flush().unwrap();
        let in_tmp: u64 = std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(in_tmp <= size + 1, "{in_tmp} bytes in tmp/");
        // Dropped uncommitted: nothing stays.
        drop(writer);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn a_source_of_exactly_its_size_reads_whole() {
        let mut out = Vec::new();
        let mut bounded = Bounded::new(&b"twelve bytes"[..], 12, "blob".into());
        io::copy(&mut bounded, &mut out).unwrap();
        assert_eq!(out, b"twelve bytes");
        let mut short = Bounded::new(&b"twelve bytes"[..], 11, "blob".into());
        assert!(io::copy(&mut short, &mut io::sink()).is_err());
    }

    #[test]
    fn devices_and_fifos_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        let err = open_regular(&link, "blob `x`").unwrap_err().to_string();
        assert!(
            err.contains("character device") && err.contains("blob `x`"),
            "{err}"
        );

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = open_regular(&fifo, "blob `y`").unwrap_err().to_string();
        assert!(err.contains("fifo"), "{err}");

        let regular = dir.path().join("regular");
        std::fs::write(&regular, b"abc").unwrap();
        let target = dir.path().join("to-regular");
        std::os::unix::fs::symlink("regular", &target).unwrap();
        let (_, size) = open_regular(&target, "blob").unwrap().unwrap();
        assert_eq!(size, 3);
        assert!(open_regular(&dir.path().join("absent"), "blob")
            .unwrap()
            .is_none());
    }
}
