//! Where a management command runs: directly on the routes of a configuration (on the server's host, over
//! its data directory), or through the management API of a server `regbridge login` stored.
//!
//! The choice: `--server URL` (REGBRIDGE_SERVER) goes to that server; else `--config` or `--data-dir` (or
//! their variables) run directly; else the default login's server, when there is one; else directly with
//! the discovered configuration. Both ways end in [`crate::manage`]: the API's handlers call the same
//! functions the direct way does.

use std::sync::Arc;
use std::time::Duration;

use regbridge::{CrossAccountAccess, CrossAccountPermissions, Error, Permissions, Repository, Result};
use reqwest::Method;
use serde_json::json;

use super::context::{ConfigArgs, local_registry, server_url};
use super::remote::{ApiClient, Logins, path_segments};
use crate::config::ServeConfig;
use crate::connections::ConnectionStore;
use crate::manage::formats::{Format, SecretTarget, render};
use crate::manage::inspect::Inspection;
use crate::manage::list::{ListPage, ListedRepository};
use crate::manage::{LocalSource, Manager};
use crate::routing::RoutingTable;

/// A command's backend.
pub enum Backend {
    /// The routes of this host's configuration.
    Local {
        /// The configuration (boxed: it is large, and most commands hold one backend briefly).
        config: Box<ServeConfig>,
        /// Its routes, built.
        routes: RoutingTable,
    },
    /// A server's management API.
    Remote(ApiClient),
}

impl Backend {
    /// The backend `args` select (see the module documentation).
    pub async fn select(args: &ConfigArgs) -> Result<Self> {
        match Self::remote(args)? {
            Some(api) => Ok(Backend::Remote(api)),
            None => Self::local(args).await,
        }
    }

    /// The server's API when `args` select one, before anything local is built.
    pub fn remote(args: &ConfigArgs) -> Result<Option<ApiClient>> {
        if args.server.is_some() {
            return ApiClient::from_login(args.server.as_deref()).map(Some);
        }
        let explicit = args.config.is_some() || args.data_dir.is_some();
        if !explicit && Logins::load()?.default.is_some() {
            return ApiClient::from_login(None).map(Some);
        }
        Ok(None)
    }

    /// The local backend, whatever logins exist (`gc` of the storage).
    pub async fn local(args: &ConfigArgs) -> Result<Self> {
        let config = args.load()?;
        let routes = crate::route_build::build_routes(&config.routes).await?;
        Ok(Backend::Local { config: Box::new(config), routes })
    }

    fn manager<'a>(config: &'a ServeConfig, routes: &'a RoutingTable) -> Manager<'a> {
        let for_local = config.clone();
        let local: LocalSource = Arc::new(move || Ok(Arc::new(local_registry(&for_local)?)));
        Manager::new(routes, local, server_url(config))
    }

    /// Creates `name` (idempotent).
    pub async fn create_repository(&self, name: &str) -> Result<Repository> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).create_repository(name).await,
            Backend::Remote(api) => {
                api.call(Method::POST, "/admin/v1/repositories", Some(&json!({"name": name}))).await
            }
        }
    }

    /// The repository `name`.
    pub async fn get_repository(&self, name: &str) -> Result<Repository> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).get_repository(name).await,
            Backend::Remote(api) => {
                api.call(Method::GET, &format!("/admin/v1/repositories/{}", path_segments(name)), None).await
            }
        }
    }

    /// Deletes `name`; answers where it was (the route, or the server).
    pub async fn delete_repository(&self, name: &str) -> Result<String> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).delete_repository(name).await,
            Backend::Remote(api) => {
                api.send(Method::DELETE, &format!("/admin/v1/repositories/{}", path_segments(name)), None).await?;
                Ok(api.base().to_owned())
            }
        }
    }

    /// Every route's repositories whose client-visible name starts with `prefix`, at most `limit`.
    pub async fn list_repositories(&self, prefix: Option<&str>, limit: Option<u32>) -> Result<Vec<ListedRepository>> {
        const PAGE: usize = 500;
        let wanted = limit.map_or(usize::MAX, |l| l as usize);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let size = PAGE.min(wanted - out.len());
            let page: ListPage = match self {
                Backend::Local { config, routes } => {
                    let mut skipped = Vec::new();
                    let page =
                        Self::manager(config, routes).list_page(prefix, size, cursor.as_deref(), &mut skipped).await?;
                    for route in skipped {
                        eprintln!("note: {route} cannot list its repositories; skipped");
                    }
                    page
                }
                Backend::Remote(api) => {
                    let mut query = url::form_urlencoded::Serializer::new(String::new());
                    query.append_pair("limit", &size.to_string());
                    if let Some(prefix) = prefix {
                        query.append_pair("prefix", prefix);
                    }
                    if let Some(cursor) = &cursor {
                        query.append_pair("after", cursor);
                    }
                    api.call(Method::GET, &format!("/admin/v1/repositories?{}", query.finish()), None).await?
                }
            };
            out.extend(page.repositories);
            match page.next {
                Some(next) if out.len() < wanted => cursor = Some(next),
                _ => break,
            }
        }
        out.truncate(wanted);
        Ok(out)
    }

    /// The manifest `reference` (`NAME[:TAG|@DIGEST]`) names, and the platforms of an index.
    pub async fn inspect(&self, reference: &str) -> Result<Inspection> {
        match self {
            Backend::Local { config, routes } => {
                let connections = || {
                    // Opened only for a route to a connection, and never where there is no data directory.
                    super::context::server_signer(config)?;
                    ConnectionStore::open(&config.data_dir, config.connections_key.as_ref())
                };
                Self::manager(config, routes).inspect(reference, connections).await
            }
            Backend::Remote(api) => {
                let query: String =
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("reference", reference).finish();
                api.call(Method::GET, &format!("/admin/v1/inspect?{query}"), None).await
            }
        }
    }

    /// The grants on `name`.
    pub async fn access(&self, name: &str) -> Result<Vec<CrossAccountPermissions>> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).access(name).await,
            Backend::Remote(api) => {
                let query: String =
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("repository", name).finish();
                api.call(Method::GET, &format!("/admin/v1/access?{query}"), None).await
            }
        }
    }

    /// Adds `grant` on `name`; answers the grants after.
    pub async fn grant(&self, name: &str, grant: &CrossAccountPermissions) -> Result<Vec<CrossAccountPermissions>> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).grant(name, grant).await,
            Backend::Remote(api) => {
                let body = json!({"repository": name, "grant": grant});
                api.call(Method::POST, "/admin/v1/access", Some(&body)).await
            }
        }
    }

    /// Revokes `access` on `name` at `level` (every level when `None`); answers the grants after.
    pub async fn revoke(
        &self,
        name: &str,
        access: &CrossAccountAccess,
        level: Option<Permissions>,
    ) -> Result<Vec<CrossAccountPermissions>> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).revoke(name, access, level).await,
            Backend::Remote(api) => {
                let level = level.map(|l| if l.can_push() { "push" } else { "pull" });
                let body = json!({"repository": name, "access": access, "level": level});
                api.call(Method::POST, "/admin/v1/access/revoke", Some(&body)).await
            }
        }
    }

    /// Mints credentials for `name` and renders them as `format`. The JSON format is the `Credentials`
    /// type, both ways.
    pub async fn mint(
        &self,
        name: &str,
        permissions: Permissions,
        ttl: Duration,
        format: Format,
        secret: &SecretTarget,
    ) -> Result<String> {
        match self {
            Backend::Local { config, routes } => {
                let minted = Self::manager(config, routes).mint(name, permissions, ttl).await?;
                if minted.through_proxy {
                    eprintln!(
                        "regbridge: {name} is served through this proxy by a registry that cannot mint scoped \
                         credentials; these are credentials for the proxy at {}",
                        minted.endpoint
                    );
                }
                // The manager logged a warning when the lifetime was clamped.
                render(&minted.credentials, &minted.endpoint, name, format, secret)
            }
            Backend::Remote(api) => {
                let body = json!({
                    "repository": name,
                    "push": permissions.can_push(),
                    "ttl": format!("{}s", ttl.as_secs()),
                    "format": format,
                    "secretName": secret.name,
                    "namespace": secret.namespace,
                });
                if format != Format::Json {
                    return api.send(Method::POST, "/admin/v1/credentials", Some(&body)).await;
                }
                let answer: serde_json::Value = api.call(Method::POST, "/admin/v1/credentials", Some(&body)).await?;
                warn_clamped(ttl, answer["clampedToSecs"].as_u64().map(Duration::from_secs));
                let credentials = &answer["credentials"];
                if credentials.is_null() {
                    return Err(Error::bad_input("the server's answer holds no credentials"));
                }
                Ok(format!("{}\n", serde_json::to_string_pretty(credentials).expect("JSON serialises")))
            }
        }
    }

    /// Deletes what minting left behind for `name`.
    pub async fn cleanup(&self, name: &str) -> Result<()> {
        match self {
            Backend::Local { config, routes } => Self::manager(config, routes).cleanup(name).await,
            Backend::Remote(api) => {
                api.send(Method::POST, "/admin/v1/credentials/cleanup", Some(&json!({"repository": name}))).await?;
                Ok(())
            }
        }
    }
}

/// Tells the user the registry gave a shorter lifetime than asked.
fn warn_clamped(asked: Duration, clamped_to: Option<Duration>) {
    if let Some(lifetime) = clamped_to {
        eprintln!(
            "warning: the registry limits these credentials to {} (asked {}): they expire sooner",
            humantime::format_duration(Duration::from_secs(lifetime.as_secs())),
            humantime::format_duration(asked)
        );
    }
}
