//! Cache keys: the one hasher every step key, input digest and test marker is made with.
//!
//! A key is the hex sha256 of its parts. Two encodings of parts exist, because caches made
//! by earlier versions are keyed with both and must keep their keys byte for byte:
//! [`KeyHasher::part`] (a `0` byte, the length as 8 little-endian bytes, the bytes: the
//! base, package, command and test steps) and [`KeyHasher::field`] (the bytes then a `0`
//! byte: the source, `nua/` files and metadata steps, the wrapped image). A step keeps the
//! encoding it has; a new step uses [`key_of`].

use sha2::{Digest as _, Sha256};

/// A cache key being made. It is also an [`std::io::Write`], for streamed content.
#[derive(Default)]
pub struct KeyHasher(Sha256);

impl KeyHasher {
    pub fn new() -> KeyHasher {
        KeyHasher::default()
    }

    /// Add `bytes` as they are (a parent key first, or content of a known shape).
    pub fn raw(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.0.update(bytes);
        self
    }

    /// Add `bytes` delimited and length-prefixed, so that no two lists of parts collide.
    pub fn part(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update([0]);
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
        self
    }

    /// Add `bytes` followed by a `0` byte (the older, terminated encoding).
    pub fn field(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.0.update(bytes);
        self.0.update([0]);
        self
    }

    /// The key: the hex digest of everything added.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl std::io::Write for KeyHasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A key from a parent key and parts, each part delimited so that no two lists collide.
pub fn key_of(parent: &str, parts: &[&str]) -> String {
    parts
        .iter()
        .fold(KeyHasher::new().raw(parent), |key, part| key.part(part))
        .finish()
}

/// A digest of some bytes, for the inputs a key is made of (see [`crate::why::Inputs`]).
pub fn digest(bytes: &[u8]) -> String {
    KeyHasher::new().raw(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys of existing caches: these values must never change (a change here makes every
    // cached layer of every user a miss).

    #[test]
    fn delimited_keys_keep_their_bytes() {
        assert_eq!(
            key_of("parent", &["unpack", "[]", "true"]),
            "22ab1ab3baf5042bed35eaee29b96ab64c89017a7dea290a6109ee47924f38d5"
        );
        assert_eq!(
            key_of("", &[]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(key_of("", &["ab", "c"]), key_of("", &["a", "bc"]));
    }

    #[test]
    fn terminated_keys_keep_their_bytes() {
        let step = ["nua-step-v3", "source", "parent", "gzip", "0"]
            .iter()
            .fold(KeyHasher::new(), |key, part| key.field(part))
            .raw("sha256:00")
            .finish();
        assert_eq!(
            step,
            "db9bb9cef08c81f983134e70e6b73e5bc51b9add8db1ddd5b41046f4376d9275"
        );
        assert_eq!(
            KeyHasher::new()
                .field("nua-wrap-v1")
                .raw("sha256:ab")
                .finish(),
            "07650bcef4e9d077c20f84e6571ddac1f0fd7c868f7e27fd67c45328837c5753"
        );
    }

    #[test]
    fn streamed_content_hashes_as_raw_bytes() {
        let mut key = KeyHasher::new().raw("x ");
        std::io::copy(&mut &b"content"[..], &mut key).unwrap();
        assert_eq!(key.finish(), digest(b"x content"));
    }
}
