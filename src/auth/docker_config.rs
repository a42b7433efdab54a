//! `~/.docker/config.json` (also podman's and skopeo's `auth.json`): the `auths` map, read and written
//! without losing the fields regbridge does not manage (`credHelpers`, `credsStore`, `proxies`, ...).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::server::ServerAddress;
use super::{decode_basic, encode_basic};
use crate::error::Error;
use crate::secret::Secret;

/// One `auths` entry as stored: `auth` is `base64(user:pass)`; `identitytoken` is an OAuth refresh token
/// some registries hand out at login. Docker also accepts separate `username`/`password` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEntry {
    /// `base64(user:pass)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Secret>,
    /// A plain user name (rarely written, but read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A plain password (rarely written, but read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// An identity (refresh) token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identitytoken: Option<Secret>,
    /// Anything else in the entry, kept as is.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Credentials for one registry, decoded from an [`AuthEntry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryLogin {
    /// The user name (empty for identity-token logins).
    pub username: String,
    /// The password (empty for identity-token logins).
    pub password: Secret,
    /// The identity token, when the registry issued one.
    pub identity_token: Option<Secret>,
}

impl AuthEntry {
    /// An entry holding `base64(user:pass)`, as `docker login` writes it.
    pub fn basic(username: &str, password: &Secret) -> Self {
        Self { auth: Some(Secret::new(encode_basic(username, password))), ..Self::default() }
    }

    /// An entry holding an identity token.
    pub fn identity_token(token: Secret) -> Self {
        Self { identitytoken: Some(token), ..Self::default() }
    }

    /// Decodes the entry; `auth` wins over separate fields, as in Docker.
    pub fn login(&self) -> Result<RegistryLogin, Error> {
        let (username, password) = match (&self.auth, &self.username) {
            (Some(auth), _) if !auth.is_empty() => decode_basic(auth.expose())?,
            (_, Some(user)) => (user.clone(), self.password.clone().unwrap_or_default()),
            _ => (String::new(), Secret::default()),
        };
        if username.is_empty() && self.identitytoken.is_none() {
            return Err(Error::Unauthenticated {
                message: "the auths entry has neither credentials nor an identity token".into(),
            });
        }
        Ok(RegistryLogin { username, password, identity_token: self.identitytoken.clone() })
    }
}

/// A whole `config.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerConfig {
    /// Credentials by registry key (`host`, or `https://index.docker.io/v1/` for Docker Hub).
    #[serde(default)]
    pub auths: BTreeMap<String, AuthEntry>,
    /// Credential helpers by registry host (`{"ghcr.io": "regbridge"}` runs `docker-credential-regbridge`).
    #[serde(default, rename = "credHelpers", skip_serializing_if = "BTreeMap::is_empty")]
    pub cred_helpers: BTreeMap<String, String>,
    /// Everything else (`credsStore`, `proxies`, `HttpHeaders`, ...), kept as is.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl DockerConfig {
    /// Parses a `config.json`, saying where it is malformed.
    pub fn parse(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| Error::bad_input(format!("malformed docker config.json: {e}")))
    }

    /// Pretty JSON, as docker writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a config of strings serialises")
    }

    /// A config with one registry's credentials.
    pub fn with_login(server: &ServerAddress, entry: AuthEntry) -> Self {
        let mut config = Self::default();
        config.set(server, entry);
        config
    }

    /// Stores `entry` for `server`, replacing any entry whose key normalises to the same registry.
    pub fn set(&mut self, server: &ServerAddress, entry: AuthEntry) {
        self.remove(server);
        self.auths.insert(server.config_key(), entry);
    }

    /// Removes every entry for `server`; returns whether there was one.
    pub fn remove(&mut self, server: &ServerAddress) -> bool {
        let before = self.auths.len();
        self.auths.retain(|key, _| ServerAddress::parse(key).map(|k| &k != server).unwrap_or(true));
        before != self.auths.len()
    }

    /// The entry for `server`, matching keys the way Docker does (scheme, path and Hub aliases ignored).
    pub fn get(&self, server: &ServerAddress) -> Option<&AuthEntry> {
        self.auths.get(&server.config_key()).or_else(|| {
            self.auths
                .iter()
                .find(|(key, _)| ServerAddress::parse(key).map(|k| &k == server).unwrap_or(false))
                .map(|(_, e)| e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_docker_writes() {
        // What docker writes after logins to Docker Hub, GHCR (identity token) and Quay, with fields
        // regbridge does not manage.
        let json = include_str!("../../fixtures/docker/config.json");
        let config = DockerConfig::parse(json).unwrap();
        let hub = config.get(&ServerAddress::parse("docker.io").unwrap()).unwrap().login().unwrap();
        assert_eq!((hub.username.as_str(), hub.password.expose()), ("user", "pass"));
        let ghcr = config.get(&ServerAddress::parse("ghcr.io").unwrap()).unwrap().login().unwrap();
        assert_eq!(ghcr.identity_token.unwrap().expose(), "refresh-123");
        let quay = config.get(&ServerAddress::parse("https://quay.io/").unwrap()).unwrap().login().unwrap();
        assert_eq!(quay.password.expose(), "pw");
        // Unmanaged fields survive a round trip.
        let again = DockerConfig::parse(&config.to_json()).unwrap();
        assert_eq!(again, config);
        assert_eq!(again.other["credsStore"], "desktop");
        assert_eq!(again.cred_helpers.len(), 1);
    }

    #[test]
    fn set_replaces_equivalent_keys() {
        let mut config = DockerConfig::parse(r#"{"auths":{"https://ghcr.io/":{"auth":"YTpi"}}}"#).unwrap();
        let ghcr = ServerAddress::parse("ghcr.io").unwrap();
        config.set(&ghcr, AuthEntry::basic("u", &Secret::new("p")));
        assert_eq!(config.auths.len(), 1);
        assert_eq!(config.get(&ghcr).unwrap().login().unwrap().username, "u");
        assert!(config.remove(&ghcr));
        assert!(config.get(&ghcr).is_none());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(DockerConfig::parse("{").is_err());
        assert!(DockerConfig::parse(r#"{"auths":[]}"#).is_err());
        assert!(AuthEntry::default().login().is_err());
        let bad = AuthEntry { auth: Some(Secret::new("%%%")), ..AuthEntry::default() };
        assert!(bad.login().is_err());
    }

    proptest! {
        #[test]
        fn login_round_trip(user in "[a-zA-Z0-9._-]{1,30}", pass in "\\PC{0,60}", host in "[a-z0-9]{1,10}\\.[a-z]{2,5}") {
            let server = ServerAddress::parse(&host).unwrap();
            let config = DockerConfig::with_login(&server, AuthEntry::basic(&user, &Secret::new(pass.clone())));
            let parsed = DockerConfig::parse(&config.to_json()).unwrap();
            let login = parsed.get(&server).unwrap().login().unwrap();
            prop_assert_eq!(login.username, user);
            prop_assert_eq!(login.password.expose(), pass.as_str());
        }
    }
}
