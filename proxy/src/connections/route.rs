//! [`ConnectionRoute`]: a `generic` route whose registry and credentials are a stored connection, looked up
//! at request time, so a connection created, changed or activated after the server started is used at once.

use std::sync::{Arc, Mutex};

use regbridge::oci::RepositoryName;
use regbridge::{Error, Resource, Result};
use regbridge_providers::http::ClientOptions;

use super::validate::generic_registry;
use super::{ConnectionStore, check_name};
use crate::routing::Upstream;

/// The target of a route with `connection = "NAME"`.
#[derive(Debug)]
pub struct ConnectionRoute {
    name: String,
    upstream_prefix: String,
    redirect_blobs: bool,
    options: ClientOptions,
    /// The upstream built from the connection as it was at `(id, updated_at)`; its client keeps what it
    /// learnt (auth scheme, tokens) until the connection changes.
    cached: Mutex<Option<(String, String, Arc<Upstream>)>>,
}

impl ConnectionRoute {
    /// A route to the connection `name`, serving repositories under `upstream_prefix` in its registry.
    /// The connection need not exist yet; the name and prefix must be valid.
    pub fn new(name: &str, upstream_prefix: &str, redirect_blobs: bool, options: ClientOptions) -> Result<Self> {
        check_name(name).map_err(|e| Error::bad_input(format!("connection = {name:?}: {e}")))?;
        let upstream_prefix = upstream_prefix.trim_matches('/').to_owned();
        if !upstream_prefix.is_empty() {
            RepositoryName::parse(&upstream_prefix)
                .map_err(|e| Error::bad_input(format!("invalid upstream_prefix {upstream_prefix:?}: {e}")))?;
        }
        Ok(Self { name: name.to_owned(), upstream_prefix, redirect_blobs, options, cached: Mutex::new(None) })
    }

    /// The connection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The repository path prefix upstream, without surrounding slashes.
    pub fn upstream_prefix(&self) -> &str {
        &self.upstream_prefix
    }

    /// True when `upstream` is the one this route serves with now.
    pub fn is_current(&self, upstream: &Upstream) -> bool {
        let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        cached.as_ref().is_some_and(|(_, _, u)| std::ptr::eq(u.as_ref(), upstream))
    }

    /// The upstream for this request: the cached one while the connection is unchanged, else one built
    /// from the connection as stored now. A missing or inactive connection is an error saying what to do.
    pub async fn upstream(&self, store: &ConnectionStore) -> Result<Arc<Upstream>> {
        let name = self.name.clone();
        let Some(connection) = store.run(move |s| s.find_by_name(&name)).await? else {
            tracing::warn!(connection = %self.name, "a route's registry connection does not exist");
            return Err(Error::not_found(
                Resource::Other,
                format!(
                    "registry connection {:?}, which this route uses: create it with `regbridge registry add --name \
                     {} --registry HOST ...` or POST /admin/v1/registries",
                    self.name, self.name
                ),
            ));
        };
        if !connection.active {
            tracing::warn!(connection = %self.name, "a route's registry connection is inactive");
            return Err(Error::Denied {
                message: format!(
                    "the registry connection {:?} of this route is inactive: activate it with PATCH \
                     /admin/v1/registries/{} {{\"active\":true}}",
                    self.name, connection.id
                ),
            });
        }
        {
            let cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((id, at, upstream)) = cached.as_ref()
                && *id == connection.id
                && *at == connection.updated_at
            {
                return Ok(upstream.clone());
            }
        }
        let id = connection.id.clone();
        let login = store.run(move |s| s.credentials(&id)).await?;
        let generic = generic_registry(&connection, login, &self.upstream_prefix, self.options)
            .map_err(|e| Error::bad_input(format!("registry connection {:?}: {e}", self.name)))?;
        let upstream = Arc::new(Upstream {
            client: generic.client().clone(),
            provider: Arc::new(generic),
            redirect_blobs: self.redirect_blobs,
            download_urls: Default::default(),
        });
        tracing::info!(connection = %self.name, registry = %connection.registry, "route uses the registry connection");
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((connection.id, connection.updated_at, upstream.clone()));
        Ok(upstream)
    }
}
