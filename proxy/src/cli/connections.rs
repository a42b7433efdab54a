//! Where `regbridge registry` acts: the connection store of this host's data directory, or a server's
//! management API (`/admin/v1/registries`), chosen as every management command chooses (see
//! [`StoreArgs`]). The API names connections by id; the CLI by name, which it looks up in the listing.

use regbridge::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use super::accounts::StoreArgs;
use super::outcome::Failure;
use super::remote::{ApiClient, path_segments};
use crate::connections::validate::validate;
use crate::connections::{Connection, ConnectionError, ConnectionInput, ConnectionStore};

/// The registry connections a command acts on.
pub enum Connections {
    /// The store of this host's data directory (secrets under the configuration's key).
    Local(ConnectionStore),
    /// A server's management API.
    Remote(ApiClient),
}

impl Connections {
    /// The connections `args` select.
    pub fn select(args: &StoreArgs) -> Result<Self, Failure> {
        match args.remote()? {
            Some(api) => Ok(Connections::Remote(api)),
            None => {
                let config = args.local()?;
                Ok(Connections::Local(ConnectionStore::open(&config.data_dir, config.connections_key.as_ref())?))
            }
        }
    }

    /// Adds a connection.
    pub async fn create(&self, input: &ConnectionInput) -> Result<Connection, Failure> {
        match self {
            Connections::Local(store) => Ok(store.create(input)?),
            Connections::Remote(api) => {
                api.call(Method::POST, "/admin/v1/registries", Some(&body(input))).await.map_err(Failure::of_api)
            }
        }
    }

    /// Changes the connection `name`: fields `input` does not give keep their value.
    pub async fn update(&self, name: &str, input: &ConnectionInput) -> Result<Connection, Failure> {
        let existing = self.get(name).await?;
        match self {
            Connections::Local(store) => Ok(store.update(&existing.id, input)?),
            Connections::Remote(api) => {
                api.call(Method::PATCH, &path(&existing), Some(&body(input))).await.map_err(Failure::of_api)
            }
        }
    }

    /// Every connection, never a secret.
    pub async fn list(&self) -> Result<Vec<Connection>, Failure> {
        match self {
            Connections::Local(store) => Ok(store.list()?),
            Connections::Remote(api) => {
                #[derive(serde::Deserialize)]
                struct Listing {
                    registries: Vec<Connection>,
                }
                let listing: Listing =
                    api.call(Method::GET, "/admin/v1/registries", None).await.map_err(Failure::of_api)?;
                Ok(listing.registries)
            }
        }
    }

    /// The connection `name`; exit 3 when there is none.
    pub async fn get(&self, name: &str) -> Result<Connection, Failure> {
        match self {
            Connections::Local(store) => Ok(store.get_by_name(name)?),
            Connections::Remote(_) => {
                let found = self.list().await?.into_iter().find(|c| c.name == name);
                Ok(found.ok_or_else(|| ConnectionError::NotFound(format!("named {name:?}")))?)
            }
        }
    }

    /// Removes the connection `name`.
    pub async fn delete(&self, name: &str) -> Result<(), Failure> {
        let existing = self.get(name).await?;
        match self {
            Connections::Local(store) => Ok(store.delete(&existing.id)?),
            Connections::Remote(api) => {
                api.send(Method::DELETE, &path(&existing), None).await.map_err(Failure::of_api).map(drop)
            }
        }
    }

    /// Logs in to the registry of the connection `name`: the connection, and the outcome as the API
    /// answers it (`{"ok":true}`, or `{"ok":false,"error":...,"refused":...}`).
    pub async fn validate(&self, name: &str) -> Result<(Connection, Value), Failure> {
        let connection = self.get(name).await?;
        let outcome = match self {
            Connections::Local(store) => validate(store, &connection.id).await?.to_json(),
            Connections::Remote(api) => api
                .call(Method::POST, &format!("{}/validate", path(&connection)), None)
                .await
                .map_err(Failure::of_api)?,
        };
        Ok((connection, outcome))
    }
}

/// The API path of a connection.
fn path(connection: &Connection) -> String {
    format!("/admin/v1/registries/{}", path_segments(&connection.id))
}

/// `input` as the API's request body: the fields it gives, a secret only here.
fn body(input: &ConnectionInput) -> Value {
    let secret = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
    let all = json!({
        "name": input.name,
        "registry": input.registry,
        "username": input.username,
        "password": secret(&input.password),
        "token": secret(&input.token),
        "active": input.active,
    });
    let given = all.as_object().into_iter().flatten().filter(|(_, v)| !v.is_null());
    Value::Object(given.map(|(k, v)| (k.clone(), v.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_hold_only_what_is_given() {
        let input = ConnectionInput {
            name: Some("hub".into()),
            token: Some(Secret::new("t0ken")),
            active: Some(false),
            ..ConnectionInput::default()
        };
        assert_eq!(body(&input), json!({"name": "hub", "token": "t0ken", "active": false}));
        assert_eq!(body(&ConnectionInput::default()), json!({}));
    }
}
