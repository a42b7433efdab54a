//! The local registry's handlers (step 5 of the [pipeline](crate::pipeline)), the token endpoint and the
//! router that puts the pipeline in front of them.

mod admin;
mod blobs;
mod listing;
mod manifests;
mod token;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use axum::routing::{any, get};
use regbridge::{Error, Result};
use regbridge_providers::local::{Storage, TokenSigner};

use crate::config::ServeConfig;
use crate::forward::location::LocationSigner;
use crate::pipeline::{Ctx, OciRoute};
use crate::routing::RoutingTable;
use crate::users::Users;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub config: ServeConfig,
    /// The local storage.
    pub storage: Arc<dyn Storage>,
    /// Signs and verifies tokens.
    pub signer: TokenSigner,
    /// Configured users.
    pub users: Users,
    /// Which provider serves which names.
    pub routes: RoutingTable,
    /// Signs upload locations of upstream routes.
    pub locations: LocationSigner,
    /// A plain HTTP client (no credentials) for following presigned blob redirects.
    pub http: reqwest::Client,
    /// Registry connections (`/admin/v1/registries`, and routes with `connection = "NAME"`).
    pub connections: crate::connections::ConnectionStore,
    /// This server's metric handles.
    pub meters: crate::observe::Meters,
    /// Recent insufficient-scope refusals (see [`crate::pipeline::reply::insufficient_scope`]).
    pub scope_refusals: crate::pipeline::reply::ScopeRefusals,
}

/// The router: `/v2/`, `/v2/{*rest}`, `/token`, and `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/", get(crate::pipeline::ping))
        .route("/v2", get(crate::pipeline::ping))
        .route("/v2/{*rest}", any(crate::pipeline::dispatch))
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/metrics", get(crate::observe::metrics_endpoint))
        .route("/healthz", get(crate::observe::healthz))
        .route("/readyz", get(crate::observe::readyz))
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::observe::observe))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::pipeline::parse))
        .with_state(state)
}

/// Step 5 for the local registry: the endpoint's handler. Authorization is done.
pub(crate) async fn handle(ctx: &Ctx, route: &OciRoute, parts: &Parts, body: Body) -> Result<Response> {
    let headers = &parts.headers;
    match (route, &parts.method) {
        (OciRoute::Catalog, &Method::GET) => listing::catalog(ctx).await,
        (OciRoute::Tags(repo), &Method::GET) => listing::tags(ctx, repo).await,
        (OciRoute::Referrers(repo, digest), &Method::GET) => listing::referrers(ctx, repo, digest).await,
        (OciRoute::Manifest(repo, reference), &Method::GET) => manifests::get(ctx, repo, reference, true).await,
        (OciRoute::Manifest(repo, reference), &Method::HEAD) => manifests::get(ctx, repo, reference, false).await,
        (OciRoute::Manifest(repo, reference), &Method::PUT) => {
            manifests::put(ctx, repo, reference, headers, body).await
        }
        (OciRoute::Manifest(repo, reference), &Method::DELETE) => manifests::delete(ctx, repo, reference).await,
        (OciRoute::Blob(repo, digest), &Method::GET) => blobs::get(ctx, repo, digest, headers, true).await,
        (OciRoute::Blob(repo, digest), &Method::HEAD) => blobs::get(ctx, repo, digest, headers, false).await,
        (OciRoute::Blob(repo, digest), &Method::DELETE) => blobs::delete(ctx, repo, digest).await,
        (OciRoute::UploadStart(repo), &Method::POST) => uploads::start(ctx, repo, body).await,
        (OciRoute::Upload(repo, id), &Method::PATCH) => uploads::patch(ctx, repo, id, headers, body).await,
        (OciRoute::Upload(repo, id), &Method::PUT) => uploads::put(ctx, repo, id, body).await,
        (OciRoute::Upload(repo, id), &Method::GET) => uploads::status(ctx, repo, id).await,
        (OciRoute::Upload(repo, id), &Method::DELETE) => uploads::cancel(ctx, repo, id).await,
        (_, method) => Err(Error::unsupported(format!("{method} on this endpoint"), "regbridge")),
    }
}

/// A header value from a string we built (digests, numbers, URLs of our own).
pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request body as the storage's byte stream.
pub(crate) fn body_stream(body: Body) -> regbridge_providers::local::storage::ByteStream {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
