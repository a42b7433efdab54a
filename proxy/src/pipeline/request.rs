//! Step 1 of the pipeline for every request, and what the later steps hand the handlers: the parsed
//! request ([`Parsed`], left in the request's extensions by the outermost layer, where metrics and the
//! access log read it too) and the context of an authorized request ([`Ctx`]).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::Next;
use axum::response::Response;
use regbridge::Result;

use super::authorize::Grant;
use super::identity::Identity;
use super::target::{OciRoute, Params};
use crate::state::AppState;

/// What a request is, as the first step of the pipeline found it.
#[derive(Debug)]
pub enum Endpoint {
    /// `/v2/`.
    Ping,
    /// `/token`.
    Token,
    /// `/metrics`.
    Metrics,
    /// `/healthz`, `/readyz`.
    Health,
    /// `/admin/...`.
    Admin,
    /// Any other path.
    Other,
    /// `/v2/<...>`: an OCI endpoint, or why the path is not one.
    Oci(Result<OciRoute>),
}

/// The parsed request: the endpoint and, for a repository, the index of the route serving it.
#[derive(Debug)]
pub struct Parsed {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// For a request naming a repository: the route serving it (an index into the routing table) and the
    /// repository's name there, or why no route serves it (`NAME_UNKNOWN`).
    pub route: Option<Result<(usize, String)>>,
}

impl Parsed {
    /// Parses `uri` (its path as sent, not percent-decoded) and resolves the repository's route.
    pub fn of(state: &AppState, uri: &Uri) -> Self {
        let path = uri.path();
        let endpoint = match path.strip_prefix("/v2/") {
            Some("") => Endpoint::Ping,
            Some(rest) => Endpoint::Oci(OciRoute::parse(rest)),
            None => match path {
                "/v2" => Endpoint::Ping,
                "/token" => Endpoint::Token,
                "/metrics" => Endpoint::Metrics,
                "/healthz" | "/readyz" => Endpoint::Health,
                p if p.starts_with("/admin/") => Endpoint::Admin,
                _ => Endpoint::Other,
            },
        };
        let route = match &endpoint {
            Endpoint::Oci(Ok(route)) => {
                route.repository().map(|name| state.routes.resolve(name).map(|r| (r.index, r.upstream_name)))
            }
            _ => None,
        };
        Parsed { endpoint, route }
    }

    /// The OCI route, when the request is for one.
    pub fn oci(&self) -> Option<&OciRoute> {
        match &self.endpoint {
            Endpoint::Oci(Ok(route)) => Some(route),
            _ => None,
        }
    }
}

/// The outermost layer: parses every request once ([`Parsed::of`]) into its extensions.
pub async fn parse(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let parsed = Arc::new(Parsed::of(&state, request.uri()));
    request.extensions_mut().insert(parsed);
    next.run(request).await
}

/// One request's context for the handlers: everything the pipeline decided.
pub struct Ctx {
    /// The shared state.
    pub state: Arc<AppState>,
    /// The URL clients reach us at.
    pub base_url: String,
    /// Who is asking.
    pub identity: Identity,
    /// What authorization decided beyond yes (a mount source the caller may read).
    pub grant: Grant,
    /// The query parameters, typed.
    pub params: Params,
}
