//! The storage URL: `fs:PATH`, `memory://`, `s3://`, `gs://`, `az://`.

use std::path::PathBuf;

use regbridge::{Error, Result};

/// Where storage is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// Local disk: the path given, or `DATA_DIR/storage` when `None`.
    Fs(Option<PathBuf>),
    /// In memory, lost when the process ends (tests).
    Memory,
    /// Amazon S3 or an S3-compatible server.
    S3 {
        /// The bucket.
        bucket: String,
        /// Keys start with `prefix/` (empty: the bucket's root).
        prefix: String,
    },
    /// Google Cloud Storage.
    Gcs {
        /// The bucket.
        bucket: String,
        /// The key prefix.
        prefix: String,
    },
    /// Azure Blob Storage.
    Azure {
        /// The container.
        container: String,
        /// The key prefix.
        prefix: String,
    },
}

/// What every message about a bad URL ends with.
const FORMS: &str = "write fs:PATH, memory://, s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX] or az://CONTAINER[/PREFIX]";

impl StorageUrl {
    /// Parses `text`; `source` (`[storage] url`, `REGBRIDGE_STORAGE_URL`) names the setting in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let bad = |why: &str| Error::bad_input(format!("{source} {:?}: {why}; {FORMS}", redacted(text)));
        if let Some(path) = text.strip_prefix("fs:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(bad("fs: needs a directory"));
            }
            return Ok(Self::Fs(Some(PathBuf::from(path))));
        }
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad("not a storage URL"));
        };
        if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) || rest.chars().any(char::is_control) {
            return Err(bad("a query, a fragment, whitespace and control characters are not allowed"));
        }
        let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if name.contains('@') {
            return Err(bad(
                "credentials do not go in the URL: use [storage]'s credential settings or the cloud's own chain",
            ));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(bad("the prefix may not have empty, . or .. segments"));
        }
        let bucket = || {
            let ok = (3..=63).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
            if ok {
                Ok(name.to_owned())
            } else {
                Err(bad("invalid bucket or container name (3-63 lowercase letters, digits, - . _)"))
            }
        };
        match scheme {
            "memory" if rest.is_empty() => Ok(Self::Memory),
            "memory" => Err(bad("memory:// takes no bucket or path")),
            "s3" => Ok(Self::S3 { bucket: bucket()?, prefix }),
            "gs" => Ok(Self::Gcs { bucket: bucket()?, prefix }),
            "az" => Ok(Self::Azure { container: bucket()?, prefix }),
            "file" => Err(bad("local disk is written fs:PATH")),
            other => Err(bad(&format!("unknown scheme {other:?}"))),
        }
    }

    /// The scheme, for messages: `fs`, `memory`, `s3`, `gs`, `az`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Fs(_) => "fs",
            Self::Memory => "memory",
            Self::S3 { .. } => "s3",
            Self::Gcs { .. } => "gs",
            Self::Azure { .. } => "az",
        }
    }
}

impl std::fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fs(None) => write!(f, "fs:DATA_DIR/storage"),
            Self::Fs(Some(p)) => write!(f, "fs:{}", p.display()),
            Self::Memory => write!(f, "memory://"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            Self::Azure { container, prefix } => write!(f, "az://{container}/{prefix}"),
        }
    }
}

/// `text` with any `user:password@` before the first `/` after the scheme replaced, for messages.
fn redacted(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else { return text.to_owned() };
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<credentials>{}", &rest[at..]),
        None => text.to_owned(),
    }
}
