//! Registry server addresses, normalised the way Docker compares them.
//!
//! Docker keys `config.json` by what the user typed at `docker login`, and looks credentials up by host:
//! `https://host/`, `http://host/v2/` and `host` are the same registry, and Docker Hub answers to
//! `docker.io`, `index.docker.io`, `registry-1.docker.io` and `https://index.docker.io/v1/`, stored under the
//! last of these.

use std::fmt;

use crate::error::{Error, OciErrorCode};

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// The canonical host of Docker Hub.
pub const DOCKER_HUB_HOST: &str = "docker.io";

/// A registry's `host[:port]`, lower case, with Docker Hub's aliases folded into `docker.io`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ServerAddress(String);

impl ServerAddress {
    /// Normalises what a user or a config file gives: a scheme, a trailing slash and any path are
    /// dropped; an empty host is an error.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let trimmed = input.trim();
        let without_scheme =
            trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).unwrap_or(trimmed);
        let host = without_scheme.split('/').next().unwrap_or("").to_ascii_lowercase();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
            return Err(Error::invalid(
                OciErrorCode::NameInvalid,
                format!("invalid registry address {input:?}: expected a host such as ghcr.io or 127.0.0.1:5000"),
            ));
        }
        let host = match host.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB_HOST.to_owned(),
            _ => host,
        };
        Ok(Self(host))
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.0
    }

    /// True for Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB_HOST
    }

    /// The key Docker writes into `config.json` for this registry.
    pub fn config_key(&self) -> String {
        if self.is_docker_hub() { DOCKER_HUB_CONFIG_KEY.to_owned() } else { self.0.clone() }
    }
}

impl fmt::Display for ServerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_equivalences() {
        let hub = ServerAddress::parse("docker.io").unwrap();
        for alias in ["index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io", "Docker.IO"] {
            assert_eq!(ServerAddress::parse(alias).unwrap(), hub, "{alias}");
        }
        assert_eq!(hub.config_key(), DOCKER_HUB_CONFIG_KEY);
        let ghcr = ServerAddress::parse("ghcr.io").unwrap();
        for alias in ["https://ghcr.io/", "http://ghcr.io", "ghcr.io/v2/", " GHCR.io "] {
            assert_eq!(ServerAddress::parse(alias).unwrap(), ghcr, "{alias}");
        }
        assert_eq!(ghcr.config_key(), "ghcr.io");
        assert_eq!(ServerAddress::parse("127.0.0.1:5000").unwrap().host(), "127.0.0.1:5000");
        assert_ne!(ServerAddress::parse("127.0.0.1:5000").unwrap(), ServerAddress::parse("127.0.0.1").unwrap());
    }

    #[test]
    fn rejects_empty_hosts() {
        for bad in ["", "https://", "/path", "user@host", "a b"] {
            assert!(ServerAddress::parse(bad).is_err(), "{bad:?}");
        }
    }
}
