//! Where the registry's blobs, manifests, tags and upload sessions live: `[storage]` in the configuration
//! file and `REGBRIDGE_STORAGE_*` variables, and [`open_storage`], the one function that opens it for the
//! server, the CLI and the library factory.
//!
//! ```toml
//! [storage]
//! url = "s3://my-bucket/registry"  # fs:PATH (default: DATA_DIR/storage), memory://, s3://, gs://, az://
//! region = "eu-west-1"             # S3 [default: AWS_REGION / AWS_DEFAULT_REGION]
//! endpoint = "http://127.0.0.1:9000"  # S3-compatible (MinIO, moto), Azure or GCS emulator
//! allow_http = true                # plain HTTP to the endpoint [default: false]
//! path_style = true                # S3 path-style requests [default: true with an endpoint]
//! redirect = true                  # blob GETs answer 307 to a presigned URL [default: true]
//! presign_ttl = "10m"              # how long presigned URLs live [default: 10m]
//! # Credentials: each cloud's standard chain unless given here:
//! # S3 access_key_id + secret_access_key (AWS_* variables, profiles, instance and task roles)
//! # Azure account + access_key (AZURE_STORAGE_* variables, workload or managed identity)
//! # GCS service_account_path (GOOGLE_* variables, Application Default Credentials)
//! ```
//!
//! The variables `REGBRIDGE_STORAGE_URL`, `REGBRIDGE_STORAGE_ENDPOINT` and `REGBRIDGE_STORAGE_REGION`
//! override the file's `url`, `endpoint` and `region`.

mod open;
mod url;

use std::path::PathBuf;
use std::time::Duration;

use regbridge::{Result, Secret};
use serde::Deserialize;

pub use open::open_storage;
pub use url::StorageUrl;

/// How long presigned blob URLs live unless `presign_ttl` says otherwise.
pub const DEFAULT_PRESIGN_TTL: Duration = Duration::from_secs(600);

/// The variable that overrides `[storage] url`.
pub const URL_VAR: &str = "REGBRIDGE_STORAGE_URL";
/// The variable that overrides `[storage] endpoint`.
pub const ENDPOINT_VAR: &str = "REGBRIDGE_STORAGE_ENDPOINT";
/// The variable that overrides `[storage] region`.
pub const REGION_VAR: &str = "REGBRIDGE_STORAGE_REGION";

/// `[storage]` as written in the file. Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// `fs:PATH`, `memory://`, `s3://BUCKET[/PREFIX]`, `gs://BUCKET[/PREFIX]`, `az://CONTAINER[/PREFIX]`.
    pub url: Option<String>,
    /// S3: the region.
    pub region: Option<String>,
    /// The service's endpoint: an S3-compatible server, an Azure or GCS emulator, a private endpoint.
    pub endpoint: Option<String>,
    /// Allow plain HTTP to `endpoint`.
    pub allow_http: Option<bool>,
    /// S3: path-style requests (`ENDPOINT/BUCKET/KEY`) instead of virtual-hosted ones.
    pub path_style: Option<bool>,
    /// S3: an access key id (with `secret_access_key`) instead of the standard AWS chain.
    pub access_key_id: Option<String>,
    /// S3: the secret access key.
    pub secret_access_key: Option<Secret>,
    /// Azure: the storage account.
    pub account: Option<String>,
    /// Azure: the account's access key instead of Entra ID.
    pub access_key: Option<Secret>,
    /// GCS: a service account key file instead of Application Default Credentials.
    pub service_account_path: Option<PathBuf>,
    /// Blob GETs answer 307 to a presigned storage URL (where the backend can presign) instead of
    /// streaming the bytes.
    pub redirect: Option<bool>,
    /// How long presigned URLs live (seconds, or `"10m"`).
    #[serde(default, deserialize_with = "crate::values::duration")]
    pub presign_ttl: Option<Duration>,
}

/// The storage settings, resolved from the file and the environment.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Where storage is.
    pub url: StorageUrl,
    /// Where the URL came from (`[storage] url` or `REGBRIDGE_STORAGE_URL`), for messages.
    pub source: &'static str,
    /// The rest of `[storage]`, with the variables applied.
    pub settings: StorageSection,
    /// Blob GETs redirect to presigned URLs (`[storage] redirect`, default true).
    pub redirect: bool,
    /// Lifetime of presigned URLs (`[storage] presign_ttl`, default 10 minutes).
    pub presign_ttl: Duration,
}

impl StorageConfig {
    /// How long presigned blob URLs live when blob GETs redirect to storage; `None` when they always
    /// stream (`redirect = false`).
    pub fn blob_redirect(&self) -> Option<Duration> {
        self.redirect.then_some(self.presign_ttl)
    }
}

impl Default for StorageConfig {
    /// Local disk under the data directory, as without any configuration.
    fn default() -> Self {
        Self {
            url: StorageUrl::Fs(None),
            source: "[storage] url",
            settings: StorageSection::default(),
            redirect: true,
            presign_ttl: DEFAULT_PRESIGN_TTL,
        }
    }
}

impl StorageConfig {
    /// `section` with the process's `REGBRIDGE_STORAGE_*` variables over it.
    pub fn resolve(section: StorageSection) -> Result<Self> {
        Self::resolve_with(section, |name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`StorageConfig::resolve`] with the variables from `var` (tests).
    pub fn resolve_with(mut section: StorageSection, var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (text, source) = match var(URL_VAR) {
            Some(url) => (Some(url), URL_VAR),
            None => (section.url.clone(), "[storage] url"),
        };
        section.endpoint = var(ENDPOINT_VAR).or(section.endpoint);
        section.region = var(REGION_VAR).or(section.region);
        let url = match &text {
            None => StorageUrl::Fs(None),
            Some(text) => StorageUrl::parse(text, source)?,
        };
        let config = Self {
            url,
            source,
            redirect: section.redirect.unwrap_or(true),
            presign_ttl: section.presign_ttl.unwrap_or(DEFAULT_PRESIGN_TTL),
            settings: section,
        };
        config.check_settings()?;
        Ok(config)
    }

    /// The directory of `fs` storage (`DATA_DIR/storage` unless `fs:PATH` says otherwise); an error for
    /// object storage, which has no directory.
    pub fn fs_root(&self, data_dir: &std::path::Path) -> Result<PathBuf> {
        match &self.url {
            StorageUrl::Fs(path) => Ok(path.clone().unwrap_or_else(|| data_dir.join("storage"))),
            other => Err(regbridge::Error::bad_input(format!(
                "{} is {other}, not fs storage: it has no directory",
                self.source
            ))),
        }
    }

    /// Settings that make no sense together are refused now, naming what to remove.
    fn check_settings(&self) -> Result<()> {
        let s = &self.settings;
        let bad = |why: String| regbridge::Error::bad_input(format!("[storage]: {why}"));
        if self.presign_ttl < Duration::from_secs(1) || self.presign_ttl > Duration::from_secs(7 * 24 * 3600) {
            return Err(bad("presign_ttl must be between 1s and 7 days (S3's longest presigned URL)".into()));
        }
        if s.access_key_id.is_some() != s.secret_access_key.is_some() {
            return Err(bad("give access_key_id and secret_access_key together, or neither".into()));
        }
        let scheme = self.url.scheme();
        let given = |set: bool, key: &str, only: &str| {
            if set && scheme != only {
                Err(bad(format!("{key} is an {only} setting; url is {scheme}")))
            } else {
                Ok(())
            }
        };
        given(s.access_key_id.is_some(), "access_key_id", "s3")?;
        given(s.path_style.is_some(), "path_style", "s3")?;
        given(s.access_key.is_some(), "access_key", "az")?;
        given(s.service_account_path.is_some(), "service_account_path", "gs")?;
        if let Some(endpoint) = &s.endpoint {
            let parsed = ::url::Url::parse(endpoint)
                .map_err(|e| bad(format!("endpoint {endpoint:?} is not a URL ({e}); write http(s)://HOST[:PORT]")))?;
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(bad("endpoint: credentials do not go in the URL; use the credential settings".into()));
            }
            if parsed.scheme() == "http" && s.allow_http != Some(true) {
                return Err(bad(format!("endpoint {endpoint:?} is plain HTTP: set allow_http = true")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
