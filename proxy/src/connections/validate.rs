//! Checking a connection against its registry: log in to `/v2/` as a client would (Basic, or the bearer
//! token flow the registry's challenge asks for) and report the registry's answer.

use regbridge::{Error, Secret};
use regbridge_providers::generic::{GenericRegistry, GenericRegistryBuilder};
use regbridge_providers::http::ClientOptions;
use serde_json::{Value, json};

use super::{Connection, ConnectionError, ConnectionStore};

/// The generic provider for `connection` with its `login`, serving repositories under `prefix` upstream.
pub fn generic_registry(
    connection: &Connection,
    login: Option<(String, Secret)>,
    prefix: &str,
    options: ClientOptions,
) -> regbridge::Result<GenericRegistry> {
    let mut builder = GenericRegistryBuilder::new(&connection.registry).with_prefix(prefix).with_options(options);
    if let Some((user, secret)) = login {
        builder = builder.with_credentials(user, secret);
    }
    builder.build()
}

/// The outcome of validating a connection.
#[derive(Debug)]
pub struct Validation {
    /// `None` when the registry accepted the login.
    pub error: Option<Error>,
}

impl Validation {
    /// `{"ok":true}`, or `{"ok":false,"error":"<the registry's error>","refused":BOOL}`: `refused` when
    /// the registry refused the credentials (see [`Self::is_auth_failure`]), so a client of the API tells a
    /// wrong password from an unreachable registry as the CLI's exit code does (4 or 1).
    pub fn to_json(&self) -> Value {
        match &self.error {
            None => json!({ "ok": true }),
            Some(e) => json!({ "ok": false, "error": e.to_string(), "refused": self.is_auth_failure() }),
        }
    }

    /// True when the registry refused the credentials (as opposed to being unreachable or failing).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self.error, Some(Error::Unauthenticated { .. } | Error::Denied { .. }))
    }
}

/// Logs in to the registry of the connection with `id` with its stored credentials. Errors are about the
/// connection itself (unknown id, unreadable secret); the registry's refusal is in the [`Validation`].
pub async fn validate(store: &ConnectionStore, id: &str) -> Result<Validation, ConnectionError> {
    let id = id.to_owned();
    let (connection, login) = store
        .run(move |s| -> Result<_, ConnectionError> {
            let connection = s.get(&id)?;
            let login = s.credentials(&id)?;
            Ok((connection, login))
        })
        .await?;
    let registry = generic_registry(&connection, login, "", ClientOptions::default())?;
    Ok(Validation { error: registry.client().ping(&[]).await.err() })
}
