//! Encryption of connection secrets at rest: XChaCha20-Poly1305 under a 32-byte key, a random nonce per
//! secret, and the connection's id as associated data, so a ciphertext copied onto another row does not
//! decrypt.
//!
//! The key comes from the configuration (`[connections] key`, 64 hex digits or base64 of 32 bytes) or, when
//! none is configured, from `DATA_DIR/connections.key`, generated (mode 0600) on first use.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::write_private;

/// The file holding the generated key, in the data directory.
pub const KEY_FILE: &str = "connections.key";

/// The first byte of every stored ciphertext: the format, so a later one can be told apart.
const FORMAT: u8 = 1;
const NONCE_LEN: usize = 24;

/// Encrypts and decrypts connection secrets. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
    /// Where the key came from, for error messages.
    source: String,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher").field("key", &Secret::REDACTED).field("source", &self.source).finish()
    }
}

impl Cipher {
    /// A cipher with `key`; `source` says where it came from in error messages.
    pub fn new(key: &[u8; 32], source: impl Into<String>) -> Self {
        Self { aead: XChaCha20Poly1305::new(key.into()), source: source.into() }
    }

    /// The cipher under the configured key, or else the key in `DATA_DIR/connections.key`, created on first
    /// use.
    pub fn load(data_dir: &Path, configured: Option<&Secret>) -> Result<Self> {
        if let Some(key) = configured {
            return Ok(Self::new(&parse_key(key.expose())?, "the [connections] key of the configuration"));
        }
        let path = data_dir.join(KEY_FILE);
        let source = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                let encoded = Secret::new(format!("{}\n", STANDARD.encode(key)));
                // Another process may have created it first; its key then wins and is read back.
                match write_private(&path, encoded.expose().as_bytes()) {
                    Ok(()) => return Ok(Self::new(&key, source)),
                    Err(_) if path.exists() => {
                        std::fs::read_to_string(&path).map_err(|e| Error::internal(format!("read {source}"), e))?
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(Error::internal(format!("read {source}"), e)),
        };
        let key = parse_key(text.trim()).map_err(|e| Error::bad_input(format!("{source}: {e}")))?;
        Ok(Self::new(&key, source))
    }

    /// Where the key came from (the configuration, or the key file's path).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `plaintext` encrypted with a fresh random nonce, bound to `context` (the connection's id): the
    /// format byte, the nonce, then the ciphertext with its tag.
    pub fn encrypt(&self, plaintext: &Secret, context: &str) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let payload = Payload { msg: plaintext.expose().as_bytes(), aad: context.as_bytes() };
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| Error::Internal { message: "encrypting a connection secret failed".into(), source: None })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plaintext of what [`encrypt`](Self::encrypt) produced for `context`. Fails when the key or the
    /// context differ, or the bytes were altered.
    pub fn decrypt(&self, sealed: &[u8], context: &str) -> Result<Secret> {
        let fail = |why: &str| Error::Internal {
            message: format!("cannot decrypt a stored connection secret ({why}) with the key from {}", self.source),
            source: None,
        };
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT {
            return Err(fail("unknown format"));
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        let plain = self
            .aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| fail("wrong key, or the data was altered"))?;
        String::from_utf8(plain).map(Secret::new).map_err(|_| fail("not text"))
    }
}

/// A 32-byte key written as 64 hex digits or as base64.
fn parse_key(text: &str) -> Result<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        STANDARD.decode(text).ok()
    };
    bytes.and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok()).ok_or_else(|| {
        Error::bad_input(
            "the connections key must be 32 bytes, written as 64 hex digits or in base64: generate one with \
             `openssl rand -base64 32`",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let cipher = Cipher::new(&[7; 32], "test");
        let secret = Secret::new("s3cr3t-Passw0rd");
        let a = cipher.encrypt(&secret, "id-1").unwrap();
        let b = cipher.encrypt(&secret, "id-1").unwrap();
        assert_ne!(a, b, "nonces differ");
        assert!(!a.windows(secret.expose().len()).any(|w| w == secret.expose().as_bytes()));
        assert_eq!(cipher.decrypt(&a, "id-1").unwrap(), secret);
    }

    #[test]
    fn wrong_key_context_or_bytes_fail() {
        let cipher = Cipher::new(&[7; 32], "test");
        let sealed = cipher.encrypt(&Secret::new("pw"), "id-1").unwrap();
        let err = Cipher::new(&[8; 32], "other").decrypt(&sealed, "id-1").unwrap_err().to_string();
        assert!(err.contains("wrong key") && !err.contains("pw"), "{err}");
        assert!(cipher.decrypt(&sealed, "id-2").is_err(), "bound to the connection id");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(cipher.decrypt(&altered, "id-1").is_err());
        assert!(cipher.decrypt(&sealed[..10], "id-1").is_err());
    }

    #[test]
    fn keys_from_configuration_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let hex_key = Secret::new("ab".repeat(32));
        let b64_key = Secret::new(STANDARD.encode([0xab; 32]));
        let sealed = Cipher::load(dir.path(), Some(&hex_key)).unwrap().encrypt(&Secret::new("x"), "c").unwrap();
        assert_eq!(Cipher::load(dir.path(), Some(&b64_key)).unwrap().decrypt(&sealed, "c").unwrap().expose(), "x");
        let err = Cipher::load(dir.path(), Some(&Secret::new("short"))).unwrap_err().to_string();
        assert!(err.contains("openssl rand -base64 32"), "{err}");
        assert!(!dir.path().join(KEY_FILE).exists(), "a configured key writes no file");

        let first = Cipher::load(dir.path(), None).unwrap();
        let sealed = first.encrypt(&Secret::new("y"), "c").unwrap();
        let again = Cipher::load(dir.path(), None).unwrap();
        assert_eq!(again.decrypt(&sealed, "c").unwrap().expose(), "y", "the generated key is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
