//! What every command needs: the configuration (file, flags, environment) and the provider serving a
//! repository name.

use std::path::PathBuf;
use std::time::Duration;

use regbridge::oci::RepositoryName;
use regbridge::{DynArtifactRegistry, Error, Result};
use regbridge_providers::local::{FsStorage, LocalRegistry, TokenSigner};

use crate::config::ServeConfig;
use crate::config_file::FileConfig;
use crate::routing::Target;
use crate::values::at_least_a_second;

/// `--upload-expiry-secs`, shared by `serve` (which expires sessions) and `gc` (which removes them), so
/// both read the same setting.
#[derive(clap::Args, Debug, Clone)]
pub struct UploadExpiryArgs {
    /// How long an upload session may receive nothing before it expires and gc may remove it: `86400`
    /// (seconds), `24h`, `30m` [default: the file's upload_expiry, else 24h].
    #[arg(long = "upload-expiry", alias = "upload-expiry-secs", env = "REGBRIDGE_UPLOAD_EXPIRY_SECS",
          value_parser = parse_expiry)]
    pub upload_expiry: Option<Duration>,
}

impl UploadExpiryArgs {
    /// `config` with this flag applied over it.
    pub fn apply(&self, config: ServeConfig) -> ServeConfig {
        match self.upload_expiry {
            Some(upload_expiry) => ServeConfig { upload_expiry, ..config },
            None => config,
        }
    }
}

fn parse_expiry(text: &str) -> std::result::Result<Duration, String> {
    super::parse_duration(text, "upload expiry")
}

/// Where the configuration comes from.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArgs {
    /// TOML configuration file: users, routes to upstream registries, listen address, data directory
    /// (see fixtures/config/regbridge.toml). Flags and REGBRIDGE_* variables override it.
    #[arg(long, short, env = "REGBRIDGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port the server listens on [default: 127.0.0.1:5000].
    /// Also `:5000` (every address) or `localhost:5000`.
    #[arg(long, env = "REGBRIDGE_LISTEN", value_parser = crate::values::parse_listen)]
    pub listen: Option<std::net::SocketAddr>,
    /// Directory for blobs, manifests, keys and users [default: regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The URL clients use to reach the server, when it differs from the listen address
    /// (behind a load balancer), e.g. `https://registry.example.com`.
    #[arg(long, env = "REGBRIDGE_PUBLIC_URL")]
    pub public_url: Option<String>,
}

impl ConfigArgs {
    /// The configuration: defaults, then the file, then these flags (the caller applies its own).
    pub fn load(&self) -> Result<ServeConfig> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let defaults = ServeConfig::new();
        let public_url = self.public_url.clone().or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::bad_input(format!("the public URL must start with http:// or https://, got {url:?}")));
        }
        Ok(ServeConfig {
            listen: self.listen.or(file.listen).unwrap_or(defaults.listen),
            public_url,
            data_dir: self.data_dir.clone().or(file.data_dir).unwrap_or(defaults.data_dir),
            anonymous_pull: file.anonymous_pull.unwrap_or(false),
            tls: file.tls.map(|t| (t.cert, t.key)),
            users: file.users,
            routes: file.routes,
            connections_key: file.connections.key,
            manifest_url_prefixes: file.manifests.allowed_urls,
            upload_expiry: file.upload_expiry.unwrap_or(defaults.upload_expiry),
            idle_timeout: file.idle_timeout.map_or(defaults.idle_timeout, at_least_a_second),
            body_read_timeout: file.body_read_timeout.map_or(defaults.body_read_timeout, at_least_a_second),
            max_connections: file.max_connections.unwrap_or(defaults.max_connections),
            ..defaults
        })
    }
}

/// The URL clients reach the server at: the public URL, or the listen address. A wildcard listen address
/// (`0.0.0.0`, `::`) is where the server accepts connections, not an address a client can connect to, so it
/// never goes into credentials or printed URLs: this host's loopback address stands in, with a warning
/// that `--public-url` is needed for clients elsewhere.
pub fn server_url(config: &ServeConfig) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr =
            if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        addr.set_ip(loopback);
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                "the server listens on every address ({}); URLs and credentials printed here name {addr}, which \
                 only this host reaches: give --public-url (REGBRIDGE_PUBLIC_URL) with the URL clients use",
                config.listen
            )
        });
    }
    format!("{scheme}://{addr}")
}

/// A repository name resolved to the provider that serves it.
pub struct Opened {
    /// The provider.
    pub registry: DynArtifactRegistry,
    /// The repository's name at the provider (the route's prefix mapped).
    pub id: String,
    /// The registry URL clients use for it (`https://123.dkr.ecr...`, or this server's URL).
    pub endpoint: String,
    /// The route, for messages.
    pub route: String,
}

/// The local provider over the server's data directory, reachable at the server's URL.
pub fn local_registry(config: &ServeConfig) -> Result<LocalRegistry> {
    let signer = server_signer(config)?;
    let storage = FsStorage::open(config.data_dir.join("storage"))?.with_upload_expiry(config.upload_expiry);
    Ok(LocalRegistry::new(std::sync::Arc::new(storage), signer, server_url(config)))
}

/// The signing key of the server's data directory. Only `serve` creates a data directory: a command
/// pointed at the wrong one must say so, not create a new directory and key whose credentials the server
/// rejects.
pub fn server_signer(config: &ServeConfig) -> Result<TokenSigner> {
    let path = config.data_dir.join("signing.key");
    match std::fs::read(&path) {
        Ok(key) => TokenSigner::new(&key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::bad_input(format!(
            "{} is not a regbridge data directory (it has no signing.key): give the server's --data-dir or \
             --config; only `regbridge serve` creates one",
            config.data_dir.display()
        ))),
        Err(e) => Err(Error::internal(format!("read signing key {}", path.display()), e)),
    }
}

/// The provider serving `name` under the configured routes.
pub async fn open(config: &ServeConfig, name: &str) -> Result<Opened> {
    let parsed = RepositoryName::parse(name)?;
    let routes = crate::server::build_routes(&config.routes).await?;
    let resolved = routes.resolve(&parsed)?;
    let route = resolved.route.label.clone();
    Ok(match &resolved.route.target {
        Target::Local => Opened {
            registry: std::sync::Arc::new(local_registry(config)?),
            id: resolved.upstream_name.clone(),
            endpoint: server_url(config),
            route,
        },
        Target::Upstream(upstream) => Opened {
            registry: upstream.provider.clone(),
            id: resolved.upstream_name.clone(),
            endpoint: upstream.provider.registry_endpoint(),
            route,
        },
        Target::Connection(_) => {
            return Err(Error::unsupported(
                "repository management on a route to a registry connection (a generic registry)",
                route,
            ));
        }
    })
}

/// Whether `name` is served by another registry through the proxy (not by the local registry).
pub async fn is_proxied(config: &ServeConfig, name: &RepositoryName) -> Result<bool> {
    let routes = crate::server::build_routes(&config.routes).await?;
    Ok(!matches!(routes.resolve(name)?.route.target, Target::Local))
}
