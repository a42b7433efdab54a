//! The routing table built from the configuration's `[[routes]]`: each route's target (the local
//! registry, an upstream registry, a cloud route with minted credentials, or a registry connection),
//! for the server at start-up, for `regbridge` commands that act on routes, and for the management
//! API's route checks.

use std::sync::Arc;

use regbridge::{Error, Result};
use regbridge_providers::http::{MintedCredentials, UpstreamClient};

use crate::config_file::RouteConfig;
use crate::connections::ConnectionRoute;
use crate::routing::{Route, RoutingTable, Target, Upstream};

/// How messages name the `index`-th route of the configuration: `route 2 (generic "hub")`.
pub fn route_label(index: usize, r: &RouteConfig) -> String {
    format!("route {} ({} {:?})", index + 1, r.provider, r.prefix)
}

fn upstream(provider: regbridge::DynArtifactRegistry, client: UpstreamClient, r: &RouteConfig) -> Target {
    Target::Upstream(Arc::new(Upstream {
        provider,
        client,
        redirect_blobs: r.redirect_blobs.unwrap_or(true),
        download_urls: Default::default(),
    }))
}

/// The target of a route whose provider is built without I/O (`local`, `generic`); `None` for cloud
/// providers.
fn sync_target(r: &RouteConfig, label: &str) -> Result<Option<Target>> {
    let named = |e: Error| Error::bad_input(format!("{label}: {e}"));
    if r.connection.is_some() && r.provider != "generic" {
        return Err(Error::bad_input(format!("{label}: connection = \"NAME\" is for generic routes only")));
    }
    Ok(Some(match r.provider.as_str() {
        "local" => Target::Local,
        "generic" if r.connection.is_some() => connection_target(r).map_err(named)?,
        "generic" => {
            // The factory's path, so a control plane building this route gets the same provider.
            let generic = crate::factory::generic(r).map_err(named)?;
            let client = generic.client().clone();
            upstream(Arc::new(generic), client, r)
        }
        "ecr" | "gar" | "acr" => return Ok(None),
        other => {
            return Err(Error::bad_input(format!(
                "{label}: unknown provider {other:?}; use local, generic, ecr, gar or acr"
            )));
        }
    }))
}

/// A generic route to a registry connection, looked up per request. The connection gives registry and
/// credentials, so the route may not give them as well (which would win would be a guess).
fn connection_target(r: &RouteConfig) -> Result<Target> {
    let name = r.connection.as_deref().unwrap_or_default();
    if r.registry.is_some() || r.username.is_some() || r.password.is_some() || r.password_env.is_some() {
        return Err(Error::bad_input(format!(
            "connection = {name:?} gives the registry and its credentials: remove registry, username, password \
             and password_env from this route"
        )));
    }
    let options = crate::factory::client_options(r);
    let route = ConnectionRoute::new(name, &r.upstream_prefix, r.redirect_blobs.unwrap_or(true), options)?;
    Ok(Target::Connection(Arc::new(route)))
}

/// The routing table for `routes` whose providers need no I/O to build; cloud routes are an error.
pub fn build_routes_sync(routes: &[RouteConfig]) -> Result<RoutingTable> {
    if routes.is_empty() {
        return Ok(RoutingTable::local_only());
    }
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        let label = route_label(i, r);
        let target = sync_target(r, &label)?
            .ok_or_else(|| Error::bad_input(format!("{label}: cloud routes need Server::bind_async")))?;
        out.push(Route { prefix: r.prefix.clone(), target, label });
    }
    RoutingTable::new(out)
}

/// The routing table for `routes` (the local registry alone when there are none).
pub async fn build_routes(routes: &[RouteConfig]) -> Result<RoutingTable> {
    if routes.is_empty() {
        return Ok(RoutingTable::local_only());
    }
    let mut out = Vec::new();
    for (i, r) in routes.iter().enumerate() {
        out.push(build_route(i, r).await?);
    }
    RoutingTable::new(out)
}

/// The route `r`, the `index`-th of the configuration, built on its own: [`build_routes`] for one route, so
/// `regbridge check` can report each route's error instead of stopping at the first.
pub async fn build_route(index: usize, r: &RouteConfig) -> Result<Route> {
    let label = route_label(index, r);
    let target = match sync_target(r, &label)? {
        Some(t) => t,
        None => cloud_target(r, &label).await?,
    };
    Ok(Route { prefix: r.prefix.clone(), target, label })
}

/// How long credentials minted for the proxy's own requests to a cloud registry live.
const MINTED_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// A cloud route: the provider, and a `/v2/` client whose credentials it mints per repository.
async fn cloud_target(r: &RouteConfig, label: &str) -> Result<Target> {
    let named = |e: Error| Error::bad_input(format!("{label}: {e}"));
    let provider = crate::factory::provider(r).await.map_err(named)?;
    let endpoint = url::Url::parse(&provider.registry_endpoint())
        .map_err(|e| named(Error::bad_input(format!("the registry endpoint is not a URL: {e}"))))?;
    let credentials = Arc::new(MintedCredentials::new(provider.clone(), MINTED_TTL));
    let options = crate::factory::client_options(r);
    let client = UpstreamClient::new(endpoint, provider.to_string(), credentials, options).map_err(named)?;
    Ok(upstream(provider, client, r))
}
