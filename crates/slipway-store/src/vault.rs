//! Encryption of secrets at rest: XChaCha20-Poly1305 with a fresh random nonce per value,
//! the project id and secret name bound as associated data.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

const NONCE_LEN: usize = 24;

/// The 32-byte master key. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key is not valid base64 ({0}); generate one with: head -c 32 /dev/urandom | base64")]
    NotBase64(base64::DecodeError),
    #[error("the master key is {0} bytes long after base64 decoding; it must be exactly 32 (head -c 32 /dev/urandom | base64)")]
    WrongLength(usize),
    #[error("cannot read or create the key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("the key file {path} has mode {mode:o}; it must not be readable by others (chmod 600 {path})")]
    Permissions { path: String, mode: u32 },
}

impl MasterKey {
    /// Reads a base64 key (as in `SLIPWAY_MASTER_KEY`).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(KeyError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        Ok(Self(key))
    }

    /// Reads the key file, or creates it with a new random key and mode 0600.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let file_error = |source| KeyError::File {
            path: path.display().to_string(),
            source,
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let mut key = [0u8; 32];
                getrandom::getrandom(&mut key).expect("the OS random source is available");
                let text = base64::engine::general_purpose::STANDARD.encode(key);
                file.write_all(text.as_bytes()).map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(Self(key))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let mut file = std::fs::File::open(path).map_err(file_error)?;
                let mode = file.metadata().map_err(file_error)?.permissions();
                let mode = std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions {
                        path: path.display().to_string(),
                        mode,
                    });
                }
                let mut text = String::new();
                file.read_to_string(&mut text).map_err(file_error)?;
                Self::from_base64(&text)
            }
            Err(e) => Err(file_error(e)),
        }
    }
}

/// Seals and opens values under the master key.
#[derive(Clone)]
pub(crate) struct Vault {
    cipher: XChaCha20Poly1305,
}

/// A ciphertext could not be opened: wrong key, or tampered data.
#[derive(Debug, thiserror::Error)]
#[error("a stored secret could not be decrypted (wrong master key or tampered data)")]
pub struct Undecryptable;

impl Vault {
    pub(crate) fn new(key: &MasterKey) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new((&key.0).into()),
        }
    }

    /// Returns (nonce, ciphertext).
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).expect("the OS random source is available");
        let ciphertext = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("encryption of an in-memory buffer cannot fail");
        (nonce.to_vec(), ciphertext)
    }

    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, Undecryptable> {
        if nonce.len() != NONCE_LEN {
            return Err(Undecryptable);
        }
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey([byte; 32])
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_associated_data() {
        let vault = Vault::new(&key(1));
        let (nonce, ct) = vault.seal(b"hunter2", b"p1/API_KEY");
        assert_eq!(vault.open(&nonce, &ct, b"p1/API_KEY").unwrap(), b"hunter2");
        assert!(vault.open(&nonce, &ct, b"p2/API_KEY").is_err());
        assert!(Vault::new(&key(2))
            .open(&nonce, &ct, b"p1/API_KEY")
            .is_err());
        let mut tampered = ct.clone();
        tampered[0] ^= 1;
        assert!(vault.open(&nonce, &tampered, b"p1/API_KEY").is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let vault = Vault::new(&key(1));
        let (n1, c1) = vault.seal(b"same", b"aad");
        let (n2, c2) = vault.seal(b"same", b"aad");
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
    }

    #[test]
    fn base64_keys_must_be_32_bytes() {
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(KeyError::WrongLength(3))
        ));
        assert!(matches!(
            MasterKey::from_base64("not base64!"),
            Err(KeyError::NotBase64(_))
        ));
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert!(MasterKey::from_base64(&good).is_ok());
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let second = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(first.0, second.0);
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert!(matches!(
            MasterKey::load_or_create(&path),
            Err(KeyError::Permissions { .. })
        ));
    }
}
