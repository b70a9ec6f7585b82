//! Pinned compressors for layer blobs.

use std::io::{self, Write};

use super::pgzip::ParallelGzEncoder;

/// Layer compression; the level is part of the pinned output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (deflate via zlib-rs) at level 0–9.
    Gzip(u32),
    /// gzip compressed on every core, pigz style (see `pgzip.rs`): a different byte stream
    /// than [`Compression::Gzip`] at the same level, but the same on any machine whatever
    /// its number of cores.
    ParallelGzip(u32),
    /// zstd at level 1–22 (single-threaded, so the output does not depend on the machine).
    Zstd(i32),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip(6)
    }
}

impl Compression {
    /// OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip(_) | Compression::ParallelGzip(_) => {
                super::super::image::media_type::LAYER_GZIP
            }
            Compression::Zstd(_) => super::super::image::media_type::LAYER_ZSTD,
        }
    }

    /// Name and level for cache keys: `gzip-6`, `pgzip-6`, `zstd-3`.
    ///
    /// Stable: a layer's bytes depend on the compressor and its level, so caches key on this
    /// name. Changing what it returns for an existing variant invalidates every cache.
    pub fn cache_name(&self) -> String {
        match self {
            Compression::Gzip(level) => format!("gzip-{level}"),
            Compression::ParallelGzip(level) => format!("pgzip-{level}"),
            Compression::Zstd(level) => format!("zstd-{level}"),
        }
    }

    /// `gzip` or `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip(_) | Compression::ParallelGzip(_) => "gzip",
            Compression::Zstd(_) => "zstd",
        }
    }
}

/// Gzip header OS byte: 255 means "unknown", so the header does not depend on the host.
const GZIP_OS_UNKNOWN: u8 = 255;

pub(crate) enum Compressor<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    ParallelGzip(ParallelGzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    pub fn new(out: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip(level) => Compressor::Gzip(
                // No file name, no comment, mtime 0: the RFC 1952 header is the same everywhere.
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(GZIP_OS_UNKNOWN)
                    .write(out, flate2::Compression::new(level.min(9))),
            ),
            Compression::ParallelGzip(level) => {
                let level = level.min(9);
                // XFL as zlib sets it: 2 for maximum compression, 4 for fastest.
                let xfl = match level {
                    9 => 2,
                    1 => 4,
                    _ => 0,
                };
                let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNKNOWN];
                Compressor::ParallelGzip(ParallelGzEncoder::new(out, level, header)?)
            }
            Compression::Zstd(level) => {
                let mut encoder = zstd::stream::write::Encoder::new(out, level)?;
                encoder.include_checksum(true)?;
                Compressor::Zstd(encoder)
            }
        })
    }

    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::ParallelGzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::ParallelGzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::ParallelGzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::ParallelGzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_header_is_fixed() {
        let mut c = Compressor::new(Vec::new(), Compression::Gzip(6)).unwrap();
        c.write_all(b"data").unwrap();
        let out = c.finish().unwrap();
        // magic, CM=deflate, FLG=0 (no name), MTIME=0, XFL=0, OS=255.
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    }

    #[test]
    fn cache_names_are_stable() {
        assert_eq!(Compression::Gzip(6).cache_name(), "gzip-6");
        assert_eq!(Compression::ParallelGzip(6).cache_name(), "pgzip-6");
        assert_eq!(Compression::Zstd(3).cache_name(), "zstd-3");
        assert_eq!(Compression::Zstd(-1).cache_name(), "zstd--1");
    }

    #[test]
    fn zstd_round_trips() {
        let mut c = Compressor::new(Vec::new(), Compression::Zstd(3)).unwrap();
        c.write_all(b"data data data").unwrap();
        let out = c.finish().unwrap();
        assert_eq!(zstd::decode_all(&out[..]).unwrap(), b"data data data");
    }
}
