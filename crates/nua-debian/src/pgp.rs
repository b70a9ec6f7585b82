//! OpenPGP verification of `InRelease`, a cleartext-signed message (RFC 9580 §7), with rPGP
//! (`pgp`, pure Rust: RSA and EdDSA keys, no C library, no gpg binary).
//!
//! The keyring is a file of one or more public keys, binary (`.gpg`, apt's usual format) or
//! ASCII-armored (`.asc`). A message is accepted when at least one of its signatures
//! verifies against the primary key or a subkey of a key in the keyring, as apt does; only
//! the signed text is returned, so nothing outside the signature is ever read.

use std::io::BufReader;
use std::path::Path;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use pgp::types::PublicKeyTrait;

use super::error::{Error, IoContext, Result};

/// Public keys loaded from a keyring file.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// Load every public key of `path` (binary or armored); keys rPGP cannot parse are
    /// skipped, an empty result is an error.
    pub fn load(path: &Path) -> Result<Keyring> {
        let file = fs_err::File::open(path).at(path)?;
        let keyring_error = |reason: String| Error::Keyring {
            path: path.to_owned(),
            reason,
        };
        let (keys, _) = SignedPublicKey::from_reader_many(BufReader::new(file))
            .map_err(|e| keyring_error(format!("not an OpenPGP keyring: {e}")))?;
        let keys: Vec<SignedPublicKey> = keys.filter_map(|k| k.ok()).collect();
        if keys.is_empty() {
            return Err(keyring_error("no public key in it".to_owned()));
        }
        Ok(Keyring { keys })
    }

    /// Number of keys loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was loaded (never true for a loaded keyring).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Verify a cleartext-signed `InRelease` and return its signed text (LF line endings).
pub fn verify_cleartext(
    message: &[u8],
    keyring: &Keyring,
    suite: &str,
    keyring_path: &Path,
) -> Result<String> {
    let refuse = |reason: String| Error::Signature {
        suite: suite.to_owned(),
        keyring: keyring_path.to_owned(),
        reason,
    };
    let text =
        std::str::from_utf8(message).map_err(|_| refuse("it is not UTF-8 text".to_owned()))?;
    let (msg, _) = CleartextSignedMessage::from_string(text)
        .map_err(|e| refuse(format!("not a cleartext-signed message: {e}")))?;
    if msg.signatures().is_empty() {
        return Err(refuse("it carries no signature".to_owned()));
    }
    let signed = msg.signed_text();
    for key in &keyring.keys {
        let good = verify_any(&msg, &key.primary_key, signed.as_bytes())
            || key
                .public_subkeys
                .iter()
                .any(|sub| verify_any(&msg, &sub.key, signed.as_bytes()));
        if good {
            return Ok(signed.replace("\r\n", "\n"));
        }
    }
    let issuers: Vec<String> = msg
        .signatures()
        .iter()
        .flat_map(|s| s.issuer())
        .map(|id| format!("{id:?}"))
        .collect();
    Err(refuse(format!(
        "no signature (issuers: {}) verifies with any of the {} keys",
        issuers.join(", "),
        keyring.len()
    )))
}

fn verify_any(msg: &CleartextSignedMessage, key: &impl PublicKeyTrait, text: &[u8]) -> bool {
    let key_id = key.key_id();
    msg.signatures().iter().any(|sig| {
        let issued_by_key = sig.issuer().is_empty() || sig.issuer().contains(&&key_id);
        issued_by_key && sig.verify(key, text).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

    #[test]
    fn unsigned_and_garbage_are_refused() {
        let path = Path::new(DEBIAN_KEYRING);
        if !path.exists() {
            return; // covered by tests/debian.rs on machines with the keyring
        }
        let keyring = Keyring::load(path).unwrap();
        assert!(keyring.len() >= 2);
        for bad in [&b"Origin: Debian\n"[..], b"\xff\xfe", b""] {
            let err = verify_cleartext(bad, &keyring, "bookworm", path).unwrap_err();
            assert!(matches!(err, Error::Signature { .. }), "{err}");
            assert!(err.to_string().contains("bookworm"), "{err}");
        }
    }

    #[test]
    fn a_keyring_without_keys_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.gpg");
        std::fs::write(&path, b"not a key").unwrap();
        let err = Keyring::load(&path).err().unwrap();
        assert!(matches!(err, Error::Keyring { .. }), "{err}");
    }
}
