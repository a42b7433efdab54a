//! What every command needs: the configuration (file, flags, environment) and the provider serving a
//! repository name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regbridge::{Error, Result};
use regbridge_providers::local::{LocalRegistry, TokenSigner};

use crate::config::ServeConfig;
use crate::config_file::FileConfig;
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
    /// (see fixtures/config/regbridge.toml). Flags and REGBRIDGE_* variables override it. Without it, the
    /// first that exists of ./regbridge.toml, $XDG_CONFIG_HOME/regbridge/config.toml (or
    /// ~/.config/regbridge/config.toml) and /etc/regbridge/regbridge.toml is used.
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
    /// Send the command to this server's management API (as logged in with `regbridge login URL`) instead
    /// of acting on this host's configuration. Without it, the default login's server is used unless
    /// --config or --data-dir is given.
    #[arg(long, env = "REGBRIDGE_SERVER")]
    pub server: Option<String>,
}

impl ConfigArgs {
    /// The configuration of the commands on a data directory's stores (`registry`, `users`, `robots`): the
    /// file and the directory, no listen address (their caller sets `server` for its `--server`).
    pub fn of_data_dir(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> Self {
        Self { config, data_dir, listen: None, public_url: None, server: None }
    }

    /// The configuration: defaults, then the file, then these flags (the caller applies its own).
    pub fn load(&self) -> Result<ServeConfig> {
        let file = match discover(self.config.as_deref(), &Discovery::from_env())? {
            Some(path) => {
                tracing::debug!(config = %path.display(), "configuration file");
                FileConfig::load(&path)?
            }
            None => {
                tracing::debug!("no configuration file found; defaults, flags and REGBRIDGE_* variables only");
                FileConfig::default()
            }
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
            storage: crate::storage_config::StorageConfig::resolve(file.storage)?,
            signing_key: crate::keys::SigningKey::resolve(&file.keys)?,
            ..defaults
        })
    }
}

/// Where [`discover`] looks, taken from the process's environment (or given by a test).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// The directory `./regbridge.toml` is relative to.
    pub cwd: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`, when set and not empty.
    pub xdg_config_home: Option<PathBuf>,
    /// `$HOME`, for the `~/.config` fallback.
    pub home: Option<PathBuf>,
    /// The system-wide file, `/etc/regbridge/regbridge.toml`.
    pub system: PathBuf,
}

impl Discovery {
    /// The places of this process: its working directory, `XDG_CONFIG_HOME`, `HOME`, `/etc`.
    pub fn from_env() -> Self {
        // An empty variable counts as unset, as the XDG base directory specification says.
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Self {
            cwd: std::env::current_dir().ok(),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            system: PathBuf::from("/etc/regbridge/regbridge.toml"),
        }
    }

    /// The candidate files, in the order they are tried.
    pub fn candidates(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(cwd) = &self.cwd {
            out.push(cwd.join("regbridge.toml"));
        }
        match (&self.xdg_config_home, &self.home) {
            (Some(xdg), _) => out.push(xdg.join("regbridge/config.toml")),
            (None, Some(home)) => out.push(home.join(".config/regbridge/config.toml")),
            (None, None) => {}
        }
        out.push(self.system.clone());
        out
    }
}

/// The configuration file to read: `explicit` (`--config` or `REGBRIDGE_CONFIG`), which must exist, else
/// the first of [`Discovery::candidates`] that exists, else none.
pub fn discover(explicit: Option<&Path>, places: &Discovery) -> Result<Option<PathBuf>> {
    if let Some(path) = explicit {
        if !path.is_file() {
            return Err(Error::bad_input(format!(
                "the configuration file {} (--config or REGBRIDGE_CONFIG) does not exist or is not a file",
                path.display()
            )));
        }
        return Ok(Some(path.to_owned()));
    }
    Ok(places.candidates().into_iter().find(|p| p.is_file()))
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

/// The local provider over the server's data directory, reachable at the server's URL.
pub fn local_registry(config: &ServeConfig) -> Result<LocalRegistry> {
    let signer = server_signer(config)?;
    let storage = crate::storage_config::open_storage(&config.storage, &config.data_dir, config.upload_expiry)?;
    Ok(LocalRegistry::new(storage, signer, server_url(config)).with_blob_redirect(config.storage.blob_redirect()))
}

/// The server's signing key: the configured one, else its data directory's. Only `serve` creates a data
/// directory: a command pointed at the wrong one must say so, not create a new directory and key whose
/// credentials the server rejects.
pub fn server_signer(config: &ServeConfig) -> Result<TokenSigner> {
    config.signing_key.signer(&config.data_dir, false)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn places(root: &Path) -> Discovery {
        Discovery {
            cwd: Some(root.join("cwd")),
            xdg_config_home: Some(root.join("xdg")),
            home: Some(root.join("home")),
            system: root.join("etc/regbridge.toml"),
        }
    }

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn the_first_existing_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut at = places(root);
        assert_eq!(discover(None, &at).unwrap(), None, "nothing anywhere");
        touch(&root.join("etc/regbridge.toml"));
        assert_eq!(discover(None, &at).unwrap(), Some(root.join("etc/regbridge.toml")));
        touch(&root.join("home/.config/regbridge/config.toml"));
        assert_eq!(discover(None, &at).unwrap(), Some(root.join("etc/regbridge.toml")), "XDG is set: no fallback");
        at.xdg_config_home = None;
        assert_eq!(discover(None, &at).unwrap(), Some(root.join("home/.config/regbridge/config.toml")));
        touch(&root.join("xdg/regbridge/config.toml"));
        at.xdg_config_home = Some(root.join("xdg"));
        assert_eq!(discover(None, &at).unwrap(), Some(root.join("xdg/regbridge/config.toml")));
        touch(&root.join("cwd/regbridge.toml"));
        assert_eq!(discover(None, &at).unwrap(), Some(root.join("cwd/regbridge.toml")));
        let explicit = root.join("explicit.toml");
        touch(&explicit);
        assert_eq!(discover(Some(&explicit), &at).unwrap(), Some(explicit));
    }

    #[test]
    fn an_explicit_file_that_does_not_exist_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let at = places(dir.path());
        touch(&dir.path().join("cwd/regbridge.toml"));
        let missing = dir.path().join("missing.toml");
        let err = discover(Some(&missing), &at).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }
}
