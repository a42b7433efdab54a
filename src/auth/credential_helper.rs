//! Messages of the docker credential-helper protocol (`docker-credential-<name> get|store|erase|list`).
//!
//! `get` reads a server URL on stdin and writes `{"ServerURL","Username","Secret"}`; `store` reads that
//! object; `erase` reads a server URL; `list` writes `{"<url>": "<username>"}`. A helper that has no
//! credentials prints [`CREDENTIALS_NOT_FOUND`] and exits 1. Identity tokens travel with the user name
//! [`IDENTITY_TOKEN_USERNAME`].

use serde::{Deserialize, Serialize};

use super::docker_config::{AuthEntry, RegistryLogin};
use crate::error::Error;
use crate::secret::Secret;

/// What a helper prints when it has no credentials for a server; docker matches this text.
pub const CREDENTIALS_NOT_FOUND: &str = "credentials not found in native keychain";

/// The user name that marks `Secret` as an identity token rather than a password.
pub const IDENTITY_TOKEN_USERNAME: &str = "<token>";

/// The JSON object of `get` (output) and `store` (input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelperCredentials {
    /// The registry.
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    /// The user name, or `<token>` for an identity token.
    #[serde(rename = "Username")]
    pub username: String,
    /// The password or identity token.
    #[serde(rename = "Secret")]
    pub secret: Secret,
}

impl HelperCredentials {
    /// Parses a `store` request, saying what is missing.
    pub fn parse(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(|e| {
            Error::bad_input(format!("malformed credential-helper message (expected ServerURL, Username, Secret): {e}"))
        })
    }

    /// The JSON `get` prints.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings serialise")
    }

    /// True when `secret` is an identity token.
    pub fn is_identity_token(&self) -> bool {
        self.username == IDENTITY_TOKEN_USERNAME
    }

    /// Builds the message for `server_url` from a decoded login; identity tokens win, as in docker.
    pub fn from_login(server_url: &str, login: &RegistryLogin) -> Self {
        match &login.identity_token {
            Some(token) => {
                Self { server_url: server_url.into(), username: IDENTITY_TOKEN_USERNAME.into(), secret: token.clone() }
            }
            None => {
                Self { server_url: server_url.into(), username: login.username.clone(), secret: login.password.clone() }
            }
        }
    }

    /// The `config.json` entry equivalent to this message.
    pub fn to_auth_entry(&self) -> AuthEntry {
        if self.is_identity_token() {
            AuthEntry::identity_token(self.secret.clone())
        } else {
            AuthEntry::basic(&self.username, &self.secret)
        }
    }
}

/// Reads the server URL a `get` or `erase` request sends on stdin (one line, surrounding space ignored).
pub fn parse_server_url(stdin: &str) -> Result<String, Error> {
    let url = stdin.trim();
    if url.is_empty() {
        return Err(Error::bad_input("no server URL on standard input"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_format() {
        let c = HelperCredentials {
            server_url: "https://r.example".into(),
            username: "u".into(),
            secret: Secret::new("s"),
        };
        assert_eq!(c.to_json(), r#"{"ServerURL":"https://r.example","Username":"u","Secret":"s"}"#);
        assert!(!format!("{c:?}").contains("\"s\""));
        let parsed = HelperCredentials::parse(r#"{"ServerURL":"r","Username":"<token>","Secret":"tok"}"#).unwrap();
        assert!(parsed.is_identity_token());
        assert_eq!(parsed.to_auth_entry().login().unwrap().identity_token.unwrap().expose(), "tok");
        assert!(HelperCredentials::parse(r#"{"ServerURL":"r"}"#).unwrap_err().to_string().contains("Username"));
        assert_eq!(parse_server_url(" https://r.example\n").unwrap(), "https://r.example");
        assert!(parse_server_url("\n").is_err());
    }

    #[test]
    fn from_login_prefers_identity_tokens() {
        let login =
            RegistryLogin { username: "".into(), password: Secret::default(), identity_token: Some(Secret::new("it")) };
        let c = HelperCredentials::from_login("r", &login);
        assert_eq!(c.username, IDENTITY_TOKEN_USERNAME);
        assert_eq!(c.secret.expose(), "it");
    }

    proptest! {
        #[test]
        fn round_trip(server in "\\PC{0,40}", user in "\\PC{1,30}", secret in "\\PC{0,60}") {
            let c = HelperCredentials { server_url: server, username: user, secret: Secret::new(secret) };
            prop_assert_eq!(HelperCredentials::parse(&c.to_json()).unwrap(), c);
        }
    }
}
