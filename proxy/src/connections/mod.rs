//! Registry connections: named credentials for generic upstream registries (Docker Hub, GHCR, a private
//! Harbor), kept in `DATA_DIR/connections.db` with their secrets encrypted ([`crypto`]), managed through the
//! admin API (`/admin/v1/registries`) and the `regbridge registry` command (`crate::cli`), checked against the
//! registry ([`validate`]), and usable as the target of a `generic` route ([`route`]) without a restart.
//!
//! A connection's password or token never leaves the store except to log in to its registry: the
//! [`Connection`] everyone else sees has only a `hasSecret` flag.

pub mod crypto;
pub mod route;
pub mod store;
pub mod validate;

use std::fmt;

use regbridge::{Error, Resource, Secret};
use regbridge_providers::generic::normalize_registry_url;
use serde::{Deserialize, Serialize};

pub use route::ConnectionRoute;
pub use store::ConnectionStore;

/// A stored connection as shown by the API and the CLI: everything but its secret (read back from the API
/// by the CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// A UUID, assigned on creation.
    pub id: String,
    /// The unique name routes and the CLI refer to it by.
    pub name: String,
    /// The registry as `host[:port]`, normalised (lower-case host, no default port); unique.
    pub registry: String,
    /// The user name to log in with; `None` for anonymous access.
    pub username: Option<String>,
    /// Whether a password or token is stored (it is never shown).
    pub has_secret: bool,
    /// Inactive connections are kept but serve no route.
    pub active: bool,
    /// When it was created (RFC 3339, UTC).
    pub created_at: String,
    /// When it was last changed (RFC 3339 with nanoseconds, UTC); routes rebuild their client when it moves.
    pub updated_at: String,
}

/// The body of a create or update: on update, absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionInput {
    /// The connection's name.
    pub name: Option<String>,
    /// The registry, as `host[:port]` (`ghcr.io`, `myregistry.azurecr.io`).
    pub registry: Option<String>,
    /// The user name for the password or token.
    pub username: Option<String>,
    /// A password (give this or `token`).
    pub password: Option<Secret>,
    /// An access token (give this or `password`).
    pub token: Option<Secret>,
    /// Whether routes may use it; true when created without it.
    pub active: Option<bool>,
}

/// One invalid field of a create or update, with what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON field (`name`, `registry`, `username`, `password`, `token`).
    pub field: &'static str,
    /// What is wrong and what to write.
    pub message: String,
}

/// Why a connection operation failed.
#[derive(Debug)]
pub enum ConnectionError {
    /// Fields of the input are invalid (HTTP 400, CLI exit 2).
    Invalid(Vec<FieldError>),
    /// The name or registry belongs to another connection (HTTP 409).
    Conflict {
        /// `name` or `registry`.
        field: &'static str,
        /// The connection that has it.
        existing: Box<Connection>,
    },
    /// No connection has this id or name (HTTP 404, CLI exit 3).
    NotFound(String),
    /// Anything else: the database, the key (HTTP 500).
    Other(Error),
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Invalid(errors) => {
                let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
                f.write_str(&messages.join("; "))
            }
            ConnectionError::Conflict { field: "name", existing } => write!(
                f,
                "a registry connection named {:?} already exists (id {}, registry {}): choose another name, or \
                 update that connection",
                existing.name, existing.id, existing.registry
            ),
            ConnectionError::Conflict { existing, .. } => write!(
                f,
                "the registry {} already has a connection, {:?} (id {}): update that connection instead of \
                 adding another",
                existing.registry, existing.name, existing.id
            ),
            ConnectionError::NotFound(what) => write!(f, "no registry connection {what}"),
            ConnectionError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ConnectionError {}

impl From<Error> for ConnectionError {
    fn from(e: Error) -> Self {
        ConnectionError::Other(e)
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Other(e) => e,
            ConnectionError::NotFound(_) => Error::not_found(Resource::Other, e.to_string()),
            ConnectionError::Conflict { ref existing, .. } => Error::AlreadyExists {
                resource: Resource::Other,
                name: format!("registry connection {}", existing.name),
            },
            ConnectionError::Invalid(_) => Error::bad_input(e.to_string()),
        }
    }
}

/// The fields of a connection after checking and normalising.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub name: String,
    pub registry: String,
    pub username: Option<String>,
    /// A new secret, when the input gave one.
    pub secret: Option<Secret>,
    pub active: bool,
}

/// The longest connection name.
const MAX_NAME: usize = 63;

/// Checks a connection name: lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit.
pub fn check_name(name: &str) -> Result<(), String> {
    const RULE: &str = "write 1 to 63 lower-case letters, digits, '.', '_' or '-', starting with a letter or \
                        digit, such as dockerhub or ghcr-team";
    if name.trim().is_empty() {
        return Err(format!("the name is empty: {RULE}"));
    }
    let valid = name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if valid { Ok(()) } else { Err(format!("the name {name:?} is not valid: {RULE}")) }
}

/// The registry as stored: `host[:port]` (lower-case, no default port), validated by the generic
/// provider's URL rules. It is written without scheme or trailing `/`, as container platforms ask for a
/// registry, so each registry has one spelling and connections are unique per registry. The one scheme
/// kept is `http://`, for a registry on a trusted network that serves no TLS (see [`is_plain_http`]); on
/// loopback hosts, where plain HTTP is the default, it is dropped.
pub fn normalize_registry(input: &str) -> Result<String, String> {
    let url = normalize_registry_url(input).map_err(|e| e.to_string())?;
    let authority = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let plain_http = input.trim().get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    if (input.contains("://") && !plain_http) || input.trim().ends_with('/') {
        return Err(format!(
            "write the registry as {authority} (host and port only, without a scheme or a trailing /; \
             http://{authority} for a registry without TLS), not {input:?}"
        ));
    }
    let https_by_default = normalize_registry_url(authority).map_err(|e| e.to_string())?.scheme() == "https";
    Ok(if plain_http && https_by_default { format!("http://{authority}") } else { authority.to_owned() })
}

/// Whether a stored registry is reached over plain HTTP although it is not on this host: its traffic,
/// the stored credentials included, can be read on the network, so commands warn.
pub fn is_plain_http(registry: &str) -> bool {
    registry.starts_with("http://")
}

impl ConnectionInput {
    /// The checked fields of a new connection (`existing` is `None`) or of `existing` updated with this
    /// input. Every invalid field is reported, each with what to write.
    pub(crate) fn check(&self, existing: Option<&Connection>) -> Result<Fields, ConnectionError> {
        let mut errors = Vec::new();
        let mut invalid = |field: &'static str, message: String| errors.push(FieldError { field, message });
        let name = match (&self.name, existing) {
            (Some(name), _) => name.trim().to_owned(),
            (None, Some(e)) => e.name.clone(),
            (None, None) => String::new(),
        };
        if let Err(message) = check_name(&name) {
            invalid("name", message);
        }
        let registry = match (&self.registry, existing) {
            (Some(r), _) => match normalize_registry(r) {
                Ok(r) => r,
                Err(message) => {
                    invalid("registry", message);
                    String::new()
                }
            },
            (None, Some(e)) => e.registry.clone(),
            (None, None) => {
                invalid("registry", "the registry is missing: write it as host[:port], such as ghcr.io".into());
                String::new()
            }
        };
        let username = self.username.clone().or_else(|| existing.and_then(|e| e.username.clone()));
        if let Some(user) = &username
            && (user.is_empty() || user.contains(':') || user.chars().any(char::is_control))
        {
            invalid("username", "write the user name without ':' or control characters, and not empty".into());
        }
        let secret = match (&self.password, &self.token) {
            (Some(_), Some(_)) => {
                invalid("token", "give either a password or a token, not both".into());
                None
            }
            (Some(s), None) | (None, Some(s)) => Some(s.clone()),
            (None, None) => None,
        };
        let field = if self.token.is_some() { "token" } else { "password" };
        if secret.as_ref().is_some_and(Secret::is_empty) {
            invalid(
                field,
                format!("the {field} is empty: give the {field} for {}", username.as_deref().unwrap_or("the user")),
            );
        }
        let has_secret = self.password.is_some() || self.token.is_some() || existing.is_some_and(|e| e.has_secret);
        match (&username, has_secret) {
            (Some(_), false) => invalid("password", "give the password or token of this user name".into()),
            (None, true) => invalid("username", "give the user name that goes with the password or token".into()),
            _ => {}
        }
        if !errors.is_empty() {
            return Err(ConnectionError::Invalid(errors));
        }
        let active = self.active.or(existing.map(|e| e.active)).unwrap_or(true);
        Ok(Fields { name, registry, username, secret, active })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, registry: &str) -> ConnectionInput {
        ConnectionInput {
            name: Some(name.into()),
            registry: Some(registry.into()),
            username: Some("robot".into()),
            password: Some(Secret::new("pw")),
            ..Default::default()
        }
    }

    #[test]
    fn registries_are_written_as_host_and_port() {
        assert_eq!(normalize_registry("ghcr.io").unwrap(), "ghcr.io");
        assert_eq!(normalize_registry("myregistry.azurecr.io").unwrap(), "myregistry.azurecr.io");
        assert_eq!(normalize_registry("GHCR.io").unwrap(), "ghcr.io");
        assert_eq!(normalize_registry("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(normalize_registry("ghcr.io:443").unwrap(), "ghcr.io");
        // Plain HTTP is kept where it is not the default, dropped on loopback where it is.
        assert_eq!(normalize_registry("http://127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(normalize_registry("HTTP://Registry.LAN:5000").unwrap(), "http://registry.lan:5000");
        assert!(is_plain_http("http://registry.lan:5000") && !is_plain_http("registry.lan:5000"));
        assert!(normalize_registry("http://registry.lan/").unwrap_err().contains("trailing /"));
        let err = normalize_registry("https://myregistry.azurecr.io/").unwrap_err();
        assert!(err.contains("write the registry as myregistry.azurecr.io"), "{err}");
        let err = normalize_registry("ghcr.io/team").unwrap_err();
        assert!(err.contains("without a path"), "{err}");
        assert!(normalize_registry("").unwrap_err().contains("ghcr.io"));
    }

    #[test]
    fn every_bad_field_is_reported() {
        let bad = ConnectionInput {
            name: Some("Bad Name".into()),
            registry: Some("https://ghcr.io/".into()),
            username: Some("a:b".into()),
            password: Some(Secret::new("x")),
            token: Some(Secret::new("y")),
            active: None,
        };
        let Err(ConnectionError::Invalid(errors)) = bad.check(None) else { panic!("invalid") };
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["name", "registry", "username", "token"]);
        assert!(!format!("{bad:?}").contains("\"y\""), "Debug of the input hides the token");
        let Err(ConnectionError::Invalid(errors)) = ConnectionInput::default().check(None) else { panic!() };
        assert_eq!(errors.iter().map(|e| e.field).collect::<Vec<_>>(), ["name", "registry"]);
    }

    #[test]
    fn credentials_come_in_pairs_and_updates_merge() {
        let mut only_user = input("a", "ghcr.io");
        only_user.password = None;
        let Err(ConnectionError::Invalid(errors)) = only_user.check(None) else { panic!() };
        assert_eq!(errors[0].field, "password");
        let anonymous = ConnectionInput { username: None, password: None, ..input("a", "ghcr.io") };
        assert!(anonymous.check(None).unwrap().username.is_none());

        let existing = Connection {
            id: "1".into(),
            name: "hub".into(),
            registry: "docker.io".into(),
            username: Some("robot".into()),
            has_secret: true,
            active: true,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let patch = ConnectionInput { active: Some(false), ..Default::default() };
        let fields = patch.check(Some(&existing)).unwrap();
        assert_eq!((fields.name.as_str(), fields.registry.as_str(), fields.active), ("hub", "docker.io", false));
        assert!(fields.secret.is_none(), "the stored secret is kept");
    }
}
