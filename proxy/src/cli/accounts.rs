//! Where `regbridge users` and `regbridge robots` act: the account store of this host's data directory, or
//! a server's management API (`/admin/v1/users`, `/admin/v1/robots`), chosen as every management command
//! chooses ([`Backend::remote`]). Both ways answer accounts as the API shows them (JSON objects, a secret
//! only in the answer that created or rotated it), so the commands print the same either way.

use std::path::PathBuf;

use regbridge::Secret;
use reqwest::Method;
use serde_json::{Value, json};

use super::backend::Backend;
use super::context::ConfigArgs;
use super::outcome::{Failure, with_secret};
use super::remote::{ApiClient, path_segments};
use crate::accounts::store::{RobotInput, UserInput, UserPatch};
use crate::accounts::{AccountStore, Kind, configured_conflict, configured_view};
use crate::config::ServeConfig;

/// Where the accounts (or registry connections) are: a data directory, or a server.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// TOML configuration file: its data_dir is used (and, for registry connections, its [connections]
    /// key).
    #[arg(long, short, env = "REGBRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// The server's data directory [default: the configuration's, else regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Send the command to this server's management API (as logged in with `regbridge login URL`).
    /// Without it, the default login's server is used unless --config or --data-dir is given.
    #[arg(long, env = "REGBRIDGE_SERVER", global = true)]
    pub server: Option<String>,
}

impl StoreArgs {
    /// The server these flags select, if any (the rule of [`Backend::remote`]).
    pub fn remote(&self) -> Result<Option<ApiClient>, Failure> {
        Ok(Backend::remote(&self.config_args())?)
    }

    /// The local configuration, whose data directory must exist: only `serve` creates one, and accounts or
    /// connections added to a mistyped one would serve nothing.
    pub fn local(&self) -> Result<ServeConfig, Failure> {
        let config = self.config_args().load()?;
        if !config.data_dir.is_dir() {
            return Err(Failure::bad_input(format!(
                "there is no data directory {}: give the server's with --data-dir (only `regbridge serve` creates \
                 one), or log in to the server with `regbridge login URL`",
                config.data_dir.display()
            )));
        }
        Ok(config)
    }

    fn config_args(&self) -> ConfigArgs {
        ConfigArgs {
            server: self.server.clone(),
            ..ConfigArgs::of_data_dir(self.config.clone(), self.data_dir.clone())
        }
    }
}

/// The accounts a command acts on.
pub enum Accounts {
    /// The store of this host's data directory, and the configured users (shown, never changed, as the
    /// API does).
    Local {
        /// The account store.
        store: AccountStore,
        /// The names of the users of `users.json` or the `[users]` table.
        configured: Vec<String>,
    },
    /// A server's management API.
    Remote(ApiClient),
}

impl Accounts {
    /// The accounts `args` select.
    pub fn select(args: &StoreArgs) -> Result<Self, Failure> {
        match args.remote()? {
            Some(api) => Ok(Accounts::Remote(api)),
            None => {
                let config = args.local()?;
                let configured = crate::users::Users::configured_names(&config)?;
                Ok(Accounts::Local { store: AccountStore::open(&config.data_dir)?, configured })
            }
        }
    }

    /// Creates a user; the answer holds the generated password, if one was generated.
    pub async fn create_user(&self, input: UserInput) -> Result<Value, Failure> {
        match self {
            Accounts::Local { store, configured } => {
                refuse_configured(configured, Kind::User, &input.name)?;
                let (account, generated) = store.create_user(&input)?;
                Ok(with_secret(json!(account), "password", generated.as_ref()))
            }
            Accounts::Remote(api) => {
                let mut body = json!({"name": input.name, "role": input.role, "rules": input.rules});
                add_password(&mut body, input.password.as_ref());
                remote(api.call(Method::POST, "/admin/v1/users", Some(&body)).await)
            }
        }
    }

    /// Changes a user.
    pub async fn update_user(&self, name: &str, patch: UserPatch) -> Result<Value, Failure> {
        match self {
            Accounts::Local { store, configured } => {
                refuse_configured(configured, Kind::User, name)?;
                Ok(json!(store.update_user(name, &patch)?))
            }
            Accounts::Remote(api) => {
                let mut body = json!({});
                if let Some(role) = patch.role {
                    body["role"] = json!(role);
                }
                if let Some(rules) = &patch.rules {
                    body["rules"] = json!(rules);
                }
                add_password(&mut body, patch.password.as_ref());
                remote(api.call(Method::PATCH, &path(Kind::User, name), Some(&body)).await)
            }
        }
    }

    /// Adds a robot; the answer holds its secret.
    pub async fn add_robot(&self, input: RobotInput) -> Result<Value, Failure> {
        match self {
            Accounts::Local { store, .. } => {
                let (account, secret) = store.add_robot(&input)?;
                Ok(with_secret(json!(account), "secret", Some(&secret)))
            }
            Accounts::Remote(api) => {
                let body = json!({"name": input.name, "rules": input.rules, "expires": input.expires});
                remote(api.call(Method::POST, "/admin/v1/robots", Some(&body)).await)
            }
        }
    }

    /// Gives a robot a new secret; the answer holds it.
    pub async fn rotate_robot(&self, name: &str) -> Result<Value, Failure> {
        match self {
            Accounts::Local { store, .. } => {
                let (account, secret) = store.rotate_robot(name)?;
                Ok(with_secret(json!(account), "secret", Some(&secret)))
            }
            Accounts::Remote(api) => {
                remote(api.call(Method::POST, &format!("{}/rotate", path(Kind::Robot, name)), None).await)
            }
        }
    }

    /// Every account of `kind`, never a secret or hash.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Value>, Failure> {
        match self {
            Accounts::Local { store, configured } => {
                let configured = configured.iter().filter(|_| kind == Kind::User).map(|n| configured_view(n));
                Ok(configured.chain(store.list(kind)?.iter().map(|a| json!(a))).collect())
            }
            Accounts::Remote(api) => {
                let (path, field) = match kind {
                    Kind::User => ("/admin/v1/users", "users"),
                    Kind::Robot => ("/admin/v1/robots", "robots"),
                };
                let mut answer: Value = remote(api.call(Method::GET, path, None).await)?;
                match answer[field].take() {
                    Value::Array(accounts) => Ok(accounts),
                    _ => Err(Failure { code: 1, message: format!("the server's answer to {path} has no {field:?}") }),
                }
            }
        }
    }

    /// The account `name` of `kind`.
    pub async fn get(&self, kind: Kind, name: &str) -> Result<Value, Failure> {
        match self {
            Accounts::Local { configured, .. } if kind == Kind::User && configured.iter().any(|c| c == name) => {
                Ok(configured_view(name))
            }
            Accounts::Local { store, .. } => Ok(json!(store.get(kind, name)?)),
            Accounts::Remote(api) => remote(api.call(Method::GET, &path(kind, name), None).await),
        }
    }

    /// Removes the account `name` of `kind`.
    pub async fn delete(&self, kind: Kind, name: &str) -> Result<(), Failure> {
        match self {
            Accounts::Local { store, configured } => {
                refuse_configured(configured, kind, name)?;
                Ok(store.delete(kind, name)?)
            }
            Accounts::Remote(api) => remote(api.send(Method::DELETE, &path(kind, name), None).await).map(drop),
        }
    }
}

/// The conflict of changing a configured user (it is changed in its file), as the API answers it.
fn refuse_configured(configured: &[String], kind: Kind, name: &str) -> Result<(), Failure> {
    match kind == Kind::User && configured.iter().any(|c| c == name) {
        true => Err(configured_conflict(name).into()),
        false => Ok(()),
    }
}

/// The API path of one account.
fn path(kind: Kind, name: &str) -> String {
    let collection = match kind {
        Kind::User => "users",
        Kind::Robot => "robots",
    };
    format!("/admin/v1/{collection}/{}", path_segments(name))
}

/// Sets `password` in a request body (only in the body: it is never logged or printed).
fn add_password(body: &mut Value, password: Option<&Secret>) {
    if let Some(password) = password {
        body["password"] = Value::String(password.expose().to_owned());
    }
}

/// A management API call's result, its error worded as the local command's.
fn remote<T>(result: regbridge::Result<T>) -> Result<T, Failure> {
    result.map_err(Failure::of_api)
}
