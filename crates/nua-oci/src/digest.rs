//! `sha256:<hex>` content digests and a hashing writer.
//!
//! Only sha256 is accepted: the OCI image spec says implementations SHOULD support sha256 and
//! everything this project reads or writes uses it; anything else is refused by name.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use super::error::Error;

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The only algorithm supported.
    pub const ALGORITHM: &'static str = "sha256";

    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(bytes).into())
    }

    /// Digest from a raw 32-byte sha256 hash.
    pub fn from_hash(hash: [u8; 32]) -> Digest {
        Digest {
            hex: hex::encode(hash),
        }
    }

    /// Digest from 64 hex characters (no algorithm prefix), as found in blob file names.
    pub fn from_hex(hex: &str) -> Result<Digest, Error> {
        let invalid = |reason| Error::InvalidDigest {
            value: hex.to_owned(),
            reason,
        };
        if hex.len() != 64 {
            return Err(invalid("a sha256 digest has 64 hex characters"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("only lowercase hex characters are allowed"));
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// The hex part, the file name of the blob under `blobs/sha256/`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Path of the blob in an OCI image layout (and in a blob store): `blobs/sha256/<hex>`.
    pub fn blob_path(&self) -> String {
        format!("blobs/{}/{}", Self::ALGORITHM, self.hex)
    }

    /// Algorithm name (always `sha256`).
    pub fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(Error::InvalidDigest {
                value: s.to_owned(),
                reason: "expected `algorithm:hex`",
            });
        };
        if algorithm != Self::ALGORITHM {
            return Err(Error::InvalidDigest {
                value: s.to_owned(),
                reason: "unsupported algorithm, only `sha256` is supported",
            });
        }
        Digest::from_hex(hex).map_err(|e| match e {
            Error::InvalidDigest { reason, .. } => Error::InvalidDigest {
                value: s.to_owned(),
                reason,
            },
            other => other,
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes and counts everything written through it to an inner writer.
pub struct Sha256Writer<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W> Sha256Writer<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> Self {
        Sha256Writer {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Digest of everything written, the size, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        let digest = Digest::from_hash(self.hasher.finalize().into());
        (digest, self.len, self.inner)
    }
}

impl<W: Write> Write for Sha256Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hash a reader to its end: digest and size.
pub fn hash_reader(mut reader: impl io::Read) -> io::Result<(Digest, u64)> {
    let mut writer = Sha256Writer::new(io::sink());
    io::copy(&mut reader, &mut writer)?;
    let (digest, size, _) = writer.finish();
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_empty_input_is_the_well_known_one() {
        assert_eq!(Digest::of(b"").to_string(), EMPTY);
        assert_eq!(hash_reader(&b""[..]).unwrap(), (Digest::of(b""), 0));
    }

    #[test]
    fn parse_round_trips_and_serde_uses_the_string_form() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&format!("\"{EMPTY}\"")).unwrap();
        assert_eq!(back, d);
        assert_eq!(d.blob_path(), format!("blobs/sha256/{}", d.hex()));
    }

    #[test]
    fn invalid_digests_are_refused_with_a_reason() {
        for (input, reason) in [
            ("e3b0", "expected `algorithm:hex`"),
            ("sha512:abcd", "unsupported algorithm"),
            ("sha256:abcd", "64 hex"),
            (
                "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
                "lowercase",
            ),
        ] {
            let err = input.parse::<Digest>().unwrap_err().to_string();
            assert!(err.contains(reason), "{input}: {err}");
            assert!(err.contains(input), "{input}: {err}");
        }
    }

    #[test]
    fn writer_hashes_what_passes_through() {
        let mut w = Sha256Writer::new(Vec::new());
        w.write_all(b"hello ").unwrap();
        w.write_all(b"world").unwrap();
        let (digest, len, inner) = w.finish();
        assert_eq!(inner, b"hello world");
        assert_eq!(len, 11);
        assert_eq!(digest, Digest::of(b"hello world"));
    }
}
