//! The TOML configuration file of `regbridge serve --config FILE`.
//!
//! ```toml
//! listen = "127.0.0.1:5000"
//! public_url = "https://registry.example.com"
//! data_dir = "/var/lib/regbridge"
//! anonymous_pull = false
//! tls = { cert = "tls.crt", key = "tls.key" }
//! upload_expiry = "24h"        # upload sessions idle this long expire; gc removes them
//! idle_timeout = "2m"          # close connections with nothing in flight and no bytes moving this long
//! body_read_timeout = 60       # a request body silent this long ends the request with 408
//! max_connections = 4096        # at the limit, the longest-idle connection makes room
//!
//! [users]                       # name = argon2 PHC hash (`regbridge` hashes with argon2id)
//! alice = "$argon2id$v=19$m=19456,t=2,p=1$..."
//!
//! [[routes]]                    # the default route: everything no other route serves
//! provider = "local"
//!
//! [[routes]]
//! prefix = "hub"                # clients push and pull hub/<name>
//! provider = "generic"
//! registry = "registry.example.com"
//! username = "robot"
//! password_env = "HUB_PASSWORD" # or password = "..." (the file is then a secret itself)
//! upstream_prefix = "library"   # hub/alpine -> library/alpine upstream
//! redirect_blobs = true         # pass upstream blob redirects to clients (default) or stream the bytes
//! idle_timeout = "1m"          # give up on an upstream silent for this long (502)
//!
//! [[routes]]
//! prefix = "ghcr"
//! provider = "generic"
//! connection = "ghcr"           # a registry connection (`regbridge registry add`), used once it exists
//!
//! [connections]
//! key = "..."                   # 32 bytes, hex or base64; else generated into DATA_DIR/connections.key
//!
//! [storage]                     # see crate::storage_config
//! url = "s3://my-bucket/registry"   # default: DATA_DIR/storage on local disk
//!
//! [keys]                        # see crate::keys; default: DATA_DIR/signing.key
//! signing_key_file = "/run/secrets/regbridge-signing-key"   # base64 of >= 32 bytes, shared by replicas
//! [keys]                        # see crate::keys
//! signing_key_file = "/run/secrets/regbridge-signing-key"   # default: DATA_DIR/signing.key
//! ```
//!
//! Values given as flags or `REGBRIDGE_*` environment variables override the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regbridge::{Error, Result, Secret};
use serde::{Deserialize, Serialize};

/// The file's contents. Unknown keys are errors, so a typo does not silently change nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on (`127.0.0.1:5000`, `:5000`, `localhost:5000`).
    #[serde(default, deserialize_with = "crate::values::listen")]
    pub listen: Option<SocketAddr>,
    /// URL clients reach the server at.
    pub public_url: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Let clients without credentials pull.
    pub anonymous_pull: Option<bool>,
    /// HTTPS certificate and key.
    pub tls: Option<TlsConfig>,
    /// How long a connection may sit with no request in flight and no bytes moving (seconds, or `"2m"`).
    #[serde(default, alias = "idle_timeout_secs", deserialize_with = "crate::values::duration")]
    pub idle_timeout: Option<Duration>,
    /// How long a request body may send nothing before the request ends with 408.
    #[serde(default, alias = "body_read_timeout_secs", deserialize_with = "crate::values::duration")]
    pub body_read_timeout: Option<Duration>,
    /// Connections open at once.
    pub max_connections: Option<usize>,
    /// Users: name to argon2 hash.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    /// The routing table.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Registry connections: `[connections]`.
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// How long an upload session may receive nothing before it expires (serve and gc); default 24 h.
    #[serde(default, alias = "upload_expiry_secs", deserialize_with = "crate::values::duration")]
    pub upload_expiry: Option<Duration>,
    /// What pushed manifests may contain: `[manifests]`.
    #[serde(default)]
    pub manifests: ManifestsConfig,
    /// The credential helper's hosts: `[[helper.hosts]]`.
    #[serde(default)]
    pub helper: HelperConfig,
    /// Where the registry's data lives: `[storage]`.
    #[serde(default)]
    pub storage: crate::storage_config::StorageSection,
    /// Where the token signing key comes from: `[keys]`.
    #[serde(default)]
    pub keys: crate::keys::KeysSection,
}

/// `[helper]`: hosts the credential helper answers for beyond those it recognises by pattern.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperConfig {
    /// Hosts added, or recognised ones whose settings are overridden.
    #[serde(default)]
    pub hosts: Vec<HelperHost>,
}

/// One `[[helper.hosts]]` entry: which cloud mints for `host`, and how. Each cloud reads its own settings
/// and refuses the others'.
///
/// ```toml
/// [[helper.hosts]]                     # ECR: the ambient AWS credentials, or a role
/// host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
/// provider = "ecr"
/// role_arn = "arn:aws:iam::123456789012:role/ci"   # needed for --pull-only
///
/// [[helper.hosts]]                     # GAR: Application Default Credentials, or impersonation
/// host = "europe-west1-docker.pkg.dev"
/// provider = "gar"
/// service_account = "pusher@my-project.iam.gserviceaccount.com"
/// pull_service_account = "puller@my-project.iam.gserviceaccount.com"  # needed for --pull-only
///
/// [[helper.hosts]]                     # ACR: an Entra ID identity
/// host = "myreg.azurecr.io"
/// provider = "acr"
/// identity = "service_principal"
/// tenant_id = "11111111-1111-1111-1111-111111111111"
/// client_id = "22222222-2222-2222-2222-222222222222"
/// client_secret_env = "ACR_CLIENT_SECRET"
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct HelperHost {
    /// The registry host as clients name it (`HOST` or `HOST:PORT`).
    pub host: String,
    /// `ecr`, `gar` or `acr`.
    pub provider: String,
    /// ECR: the region [default: from the host].
    pub region: Option<String>,
    /// ECR: the account id [default: from the host].
    pub account: Option<String>,
    /// ECR: a role to assume for the registry-wide session (with `--pull-only`, limited to pulls by a
    /// session policy; without a role, `--pull-only` is refused).
    pub role_arn: Option<String>,
    /// The control plane's endpoint, for tests and private endpoints: ECR: the ECR/STS API (moto); GAR: the
    /// IAM Credentials API; ACR: the registry's data plane, where the token exchange is
    /// [default: `https://HOST`].
    pub endpoint: Option<String>,
    /// GAR: the service account impersonated for logins (IAM Credentials `generateAccessToken`; the caller
    /// needs `roles/iam.serviceAccountTokenCreator` on it) [default: the caller's own token].
    pub service_account: Option<String>,
    /// GAR: the service account impersonated for `--pull-only` logins, one with
    /// `roles/artifactregistry.reader` only; without it `--pull-only` is refused.
    pub pull_service_account: Option<String>,
    /// ACR: the Entra ID identity: `auto` (default: a service principal from `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, else the managed identity), `service_principal`,
    /// `managed_identity`, `workload_identity`, `developer_tools` or `access_token`. ACR has no pull-only
    /// registry-wide login: `--pull-only` is refused.
    pub identity: Option<String>,
    /// ACR service_principal: the tenant (directory) id.
    pub tenant_id: Option<String>,
    /// ACR service_principal: the application id; managed_identity: a user-assigned identity's client id.
    pub client_id: Option<String>,
    /// ACR service_principal: the environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// ACR access_token: the environment variable holding an Entra ID access token (CI, tests).
    pub access_token_env: Option<String>,
}

/// `[manifests]`: validation of pushed manifests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestsConfig {
    /// URL prefixes that foreign layers (descriptors with `urls`) may point at, e.g.
    /// `["https://mcr.microsoft.com/"]`. Empty (the default): a manifest with `urls` is refused, as
    /// distribution does with `validation.manifests.urls.allow` unset.
    #[serde(default)]
    pub allowed_urls: Vec<String>,
}

/// `[connections]`: where the key encrypting registry connections' secrets comes from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// 32 bytes as 64 hex digits or base64 (`openssl rand -base64 32`); when absent, the key is generated
    /// into `DATA_DIR/connections.key`.
    pub key: Option<Secret>,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

/// One route: a client-visible repository prefix and the provider serving it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Client-visible prefix (`""`, the default, serves every name no other route serves).
    #[serde(default)]
    pub prefix: String,
    /// `local`, `generic`, `ecr`, `gar` or `acr`.
    pub provider: String,
    /// generic: the registry, as `host[:port]` or `scheme://host[:port]`; ecr: an override of the data-plane
    /// URL (tests).
    pub registry: Option<String>,
    /// generic: the name of a registry connection (`regbridge registry add`) giving registry and
    /// credentials, looked up when requests arrive; instead of `registry`, `username` and `password`.
    pub connection: Option<String>,
    /// generic: user name for the upstream; ecr: an AWS access key id (else the standard AWS chain).
    pub username: Option<String>,
    /// generic: password or token for the upstream; ecr: the AWS secret access key.
    pub password: Option<Secret>,
    /// Environment variable holding the password (or the AWS secret access key).
    pub password_env: Option<String>,
    /// Repository path prefix upstream (generic, ecr).
    #[serde(default)]
    pub upstream_prefix: String,
    /// ecr: the AWS region.
    pub region: Option<String>,
    /// ecr: the account id (looked up with STS when not given).
    pub account: Option<String>,
    /// ecr: the role assumed for pull credentials.
    pub pull_role_arn: Option<String>,
    /// ecr: the role assumed for push credentials.
    pub push_role_arn: Option<String>,
    /// ecr: the ECR and STS API endpoint (moto in tests).
    pub endpoint: Option<String>,
    /// Pass upstream blob redirects to clients (default true), or follow them and stream the bytes.
    pub redirect_blobs: Option<bool>,
    /// How long to wait for the upstream between two reads (its response headers, or the next bytes of a
    /// body) before the request fails with 502 (seconds, or `"1m"`); default 60 s.
    #[serde(default, alias = "idle_timeout_secs", deserialize_with = "crate::values::duration")]
    pub idle_timeout: Option<Duration>,
    /// gar: the `[routes.gar]` settings.
    #[cfg(feature = "gar")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gar")))]
    pub gar: Option<crate::cloud::gar::Settings>,
    /// acr: the `[routes.acr]` settings.
    #[cfg(feature = "acr")]
    #[cfg_attr(docsrs, doc(cfg(feature = "acr")))]
    pub acr: Option<crate::cloud::acr::Settings>,
}

impl RouteConfig {
    /// The default route to the local registry.
    pub fn local() -> Self {
        Self {
            prefix: String::new(),
            provider: "local".into(),
            registry: None,
            connection: None,
            username: None,
            password: None,
            password_env: None,
            upstream_prefix: String::new(),
            region: None,
            account: None,
            pull_role_arn: None,
            push_role_arn: None,
            endpoint: None,
            redirect_blobs: None,
            idle_timeout: None,
            #[cfg(feature = "gar")]
            gar: None,
            #[cfg(feature = "acr")]
            acr: None,
        }
    }

    /// The upstream password: `password`, or the variable `password_env` names.
    pub fn upstream_password(&self) -> Result<Option<Secret>> {
        match (&self.password, &self.password_env) {
            (Some(_), Some(_)) => {
                Err(Error::bad_input(format!("route {:?}: give password or password_env, not both", self.prefix)))
            }
            (Some(p), None) => Ok(Some(p.clone())),
            (None, Some(var)) => std::env::var(var).map(|v| Some(Secret::new(v))).map_err(|_| {
                Error::bad_input(format!("route {:?}: password_env names {var}, which is not set", self.prefix))
            }),
            (None, None) => Ok(None),
        }
    }
}

impl FileConfig {
    /// Reads and parses `path`, with the file name and the TOML error's position in the message.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::bad_input(format!("cannot read configuration {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::bad_input(format!("invalid configuration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let example = include_str!("../../fixtures/config/regbridge.toml");
        let config = FileConfig::parse(example).unwrap();
        assert_eq!(config.routes.len(), 2);
        assert_eq!(config.routes[1].prefix, "hub");
        assert_eq!(config.routes[1].upstream_prefix, "library");
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let err = FileConfig::parse("lisen = \"127.0.0.1:5000\"").unwrap_err().to_string();
        assert!(err.contains("unknown field `lisen`"), "{err}");
        let err = FileConfig::parse("listen = \"nowhere\"").unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
        let err = FileConfig::parse("[[routes]]\nprefix = \"a\"").unwrap_err().to_string();
        assert!(err.contains("provider"), "{err}");
    }

    #[test]
    fn passwords_from_the_environment() {
        let mut r = RouteConfig::local();
        r.password_env = Some("REGBRIDGE_TEST_SURELY_UNSET_VAR".into());
        assert!(r.upstream_password().unwrap_err().to_string().contains("not set"));
        r.password = Some(Secret::new("x"));
        assert!(r.upstream_password().unwrap_err().to_string().contains("not both"));
    }
}
