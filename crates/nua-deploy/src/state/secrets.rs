//! Secrets at rest: AES-256-GCM with a random 96-bit nonce per value, and the label and name
//! of the secret as associated data, so a sealed value moved to another row does not open.
//! The 32-byte key lives in its own file beside the database, created `0600` with
//! `O_EXCL` (two processes cannot make two keys) and refused when others can read it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use super::{Error, Result};

/// Bytes of the key.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// The key secrets are sealed with.
pub struct Key(Aes256Gcm);

/// What a sealed value is bound to: its instance and its name.
pub fn aad(label: &str, name: &str) -> Vec<u8> {
    let mut aad = b"nua-secret-v1\0".to_vec();
    aad.extend_from_slice(label.as_bytes());
    aad.push(0);
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn random(bytes: &mut [u8]) -> Result<()> {
    getrandom::fill(bytes).map_err(|e| Error::Io {
        action: "read random bytes for",
        path: "the state's secrets".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

impl Key {
    /// The key of `path`, made when there is none.
    pub fn load_or_create(path: &Path) -> Result<Key> {
        let bad = |problem: &str| Error::BadKey {
            path: path.to_path_buf(),
            problem: problem.to_owned(),
        };
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                let mut key = [0u8; KEY_LEN];
                random(&mut key)?;
                let written = file.write_all(&key).and_then(|()| file.sync_all());
                if let Err(source) = written {
                    let _ = std::fs::remove_file(path);
                    return Err(Error::Io {
                        action: "write the secrets key",
                        path: path.to_path_buf(),
                        source,
                    });
                }
                Ok(Key(Aes256Gcm::new(&key.into())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::metadata(path).map_err(|source| Error::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                })?;
                if meta.permissions().mode() & 0o077 != 0 {
                    return Err(bad("can be read by others than its owner"));
                }
                let bytes = std::fs::read(path).map_err(|source| Error::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    source,
                })?;
                let key: [u8; KEY_LEN] = bytes
                    .try_into()
                    .map_err(|b: Vec<u8>| bad(&format!("has {} bytes, not {KEY_LEN}", b.len())))?;
                Ok(Key(Aes256Gcm::new(&key.into())))
            }
            Err(source) => Err(Error::Io {
                action: "create the secrets key",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// `(nonce, ciphertext with tag)` of `value`, bound to `aad`.
    pub fn seal(&self, aad: &[u8], value: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let payload = Payload {
            msg: value.as_bytes(),
            aad,
        };
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM encrypts any message this size");
        Ok((nonce.to_vec(), sealed))
    }

    /// The value sealed as `sealed` with `nonce` and `aad`; `None` when it does not open
    /// (another key, another row, tampered bytes).
    pub fn open(&self, aad: &[u8], nonce: &[u8], sealed: &[u8]) -> Option<String> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        let payload = Payload { msg: sealed, aad };
        let plain = self.0.decrypt(Nonce::from_slice(nonce), payload).ok()?;
        String::from_utf8(plain).ok()
    }
}
