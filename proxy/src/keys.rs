//! The token signing key from configuration, so replicas share it: `[keys] signing_key_file`,
//! `REGBRIDGE_SIGNING_KEY_FILE` or `REGBRIDGE_SIGNING_KEY`. Without them the key is `DATA_DIR/signing.key`,
//! generated on the first start, as before. Every replica given the same key accepts the others' tokens
//! and upload locations (the upload-location key is derived from it).
//!
//! The format, in the file and the variable alike: the standard base64 (padding optional, surrounding
//! whitespace ignored) of at least 32 random bytes, e.g. `openssl rand -base64 48 > signing-key`. To let
//! new replicas share an existing server's key: `base64 -w0 DATA_DIR/signing.key`.

use std::path::{Path, PathBuf};

use base64::Engine;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::TokenSigner;
use serde::Deserialize;

/// The variable holding the key itself (base64).
pub const KEY_VAR: &str = "REGBRIDGE_SIGNING_KEY";
/// The variable naming a file holding the key (base64).
pub const KEY_FILE_VAR: &str = "REGBRIDGE_SIGNING_KEY_FILE";
/// The shortest key accepted, in bytes (HS256 wants a key as long as its 32-byte hash).
pub const MIN_KEY_BYTES: usize = 32;

/// `[keys]` in the configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysSection {
    /// A file holding the token signing key (base64 of at least 32 bytes).
    pub signing_key_file: Option<PathBuf>,
}

/// Where the token signing key comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SigningKey {
    /// `DATA_DIR/signing.key`, generated on the first start.
    #[default]
    DataDir,
    /// A file (`[keys] signing_key_file` or `REGBRIDGE_SIGNING_KEY_FILE`), and the setting that named it.
    File(PathBuf, &'static str),
    /// The key itself (`REGBRIDGE_SIGNING_KEY`).
    Value(Secret),
}

impl SigningKey {
    /// The source `section` and the process's variables give; the variables win over the file.
    pub fn resolve(section: &KeysSection) -> Result<Self> {
        Self::resolve_with(section, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`SigningKey::resolve`] with the variables from `var` (tests).
    pub fn resolve_with(section: &KeysSection, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        match (var(KEY_VAR), var(KEY_FILE_VAR)) {
            (Some(_), Some(_)) => Err(Error::bad_input(format!("set {KEY_VAR} or {KEY_FILE_VAR}, not both"))),
            (Some(value), None) => Ok(Self::Value(Secret::new(value))),
            (None, Some(path)) => Ok(Self::File(path.into(), KEY_FILE_VAR)),
            (None, None) => {
                Ok(section.signing_key_file.clone().map_or(Self::DataDir, |p| Self::File(p, "[keys] signing_key_file")))
            }
        }
    }

    /// The signer: the configured key, or the data directory's (created when `create`, as only `serve`
    /// does; otherwise a missing one is an error naming the data directory).
    pub fn signer(&self, data_dir: &Path, create: bool) -> Result<TokenSigner> {
        match self {
            Self::DataDir if create => TokenSigner::load_or_create(&data_dir.join("signing.key")),
            Self::DataDir => data_dir_signer(data_dir),
            Self::Value(value) => TokenSigner::new(&decode(value.expose(), KEY_VAR)?),
            Self::File(path, setting) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::bad_input(format!("{setting}: cannot read the signing key file {}: {e}", path.display()))
                })?;
                TokenSigner::new(&decode(&text, &format!("{setting} ({})", path.display()))?)
            }
        }
    }
}

/// The data directory's existing key; a directory without one is not a server's.
fn data_dir_signer(data_dir: &Path) -> Result<TokenSigner> {
    let path = data_dir.join("signing.key");
    match std::fs::read(&path) {
        Ok(key) => TokenSigner::new(&key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::bad_input(format!(
            "{} is not a regbridge data directory (it has no signing.key): give the server's --data-dir or \
             --config (or its {KEY_VAR} / [keys] signing_key_file); only `regbridge serve` creates one",
            data_dir.display()
        ))),
        Err(e) => Err(Error::internal(format!("read signing key {}", path.display()), e)),
    }
}

/// The key bytes of base64 `text`; what is wrong is said without showing the text.
fn decode(text: &str, setting: &str) -> Result<Vec<u8>> {
    let trimmed = text.trim().trim_end_matches('=');
    let key = base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed).map_err(|_| {
        Error::bad_input(format!("{setting}: the signing key is not base64; make one with `openssl rand -base64 48`"))
    })?;
    if key.len() < MIN_KEY_BYTES {
        return Err(Error::bad_input(format!(
            "{setting}: the signing key has {} bytes; it needs at least {MIN_KEY_BYTES} (`openssl rand -base64 48`)",
            key.len()
        )));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn sources_in_order() {
        let section = KeysSection { signing_key_file: Some("/k".into()) };
        assert_eq!(SigningKey::resolve_with(&KeysSection::default(), |_| None).unwrap(), SigningKey::DataDir);
        assert_eq!(
            SigningKey::resolve_with(&section, |_| None).unwrap(),
            SigningKey::File("/k".into(), "[keys] signing_key_file")
        );
        let file_var = |n: &str| (n == KEY_FILE_VAR).then(|| "/env".to_owned());
        assert_eq!(
            SigningKey::resolve_with(&section, file_var).unwrap(),
            SigningKey::File("/env".into(), KEY_FILE_VAR)
        );
        let both = |_: &str| Some("x".to_owned());
        assert!(SigningKey::resolve_with(&section, both).unwrap_err().to_string().contains("not both"));
    }

    #[test]
    fn the_same_key_from_a_file_or_a_variable_signs_alike() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 48];
        let file = dir.path().join("key");
        std::fs::write(&file, format!("{}\n", b64(&key))).unwrap();
        let from_file = SigningKey::File(file, KEY_FILE_VAR).signer(dir.path(), false).unwrap();
        let from_var = SigningKey::Value(Secret::new(b64(&key).trim_end_matches('='))).signer(dir.path(), false);
        let from_var = from_var.unwrap();
        assert_eq!(from_file.derive_key("upload-location"), from_var.derive_key("upload-location"));
        assert!(!dir.path().join("signing.key").exists(), "a configured key writes nothing");
    }

    #[test]
    fn short_or_garbled_keys_are_refused_without_showing_them() {
        let dir = tempfile::tempdir().unwrap();
        let short = SigningKey::Value(Secret::new(b64(&[1u8; 16]))).signer(dir.path(), true).unwrap_err();
        assert!(short.to_string().contains("has 16 bytes; it needs at least 32"), "{short}");
        assert!(short.to_string().contains(KEY_VAR), "{short}");
        let garbled = SigningKey::Value(Secret::new("not-base64-secret!")).signer(dir.path(), true).unwrap_err();
        assert!(garbled.to_string().contains("not base64"), "{garbled}");
        assert!(!garbled.to_string().contains("not-base64-secret"), "{garbled}");
        let missing = SigningKey::File("/nonexistent/key".into(), "[keys] signing_key_file");
        let err = missing.signer(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("[keys] signing_key_file: cannot read the signing key file /nonexistent/key"), "{err}");
    }
}
