//! The OCI distribution API over local storage: one router, one dispatcher that parses the path into an
//! [`OciRoute`], authenticates, authorizes and calls the endpoint's handler.

mod admin;
mod auth;
mod blobs;
mod listing;
mod manifests;
mod token;
mod uploads;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use regbridge::Error;
use regbridge_providers::local::{Storage, TokenSigner};

pub(crate) use auth::authorize;
pub use auth::{Action, Identity};

use crate::config::ServeConfig;
use crate::forward::location::LocationSigner;
use crate::login_limit::ClientAddr;
use crate::route::OciRoute;
use crate::routing::{RoutingTable, Target};
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
}

/// One request's context: the shared state, the URL clients reach us at, and who is asking.
pub(crate) struct Ctx {
    pub state: Arc<AppState>,
    pub base_url: String,
    pub identity: Identity,
}

/// The router: `/v2/`, `/v2/{*rest}`, `/token`, and `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/", get(ping))
        .route("/v2", get(ping))
        .route("/v2/{*rest}", any(dispatch))
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/metrics", get(crate::observe::metrics_endpoint))
        .route("/healthz", get(crate::observe::healthz))
        .route("/readyz", get(crate::observe::readyz))
        .merge(admin::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::observe::observe))
        .with_state(state)
}

/// The URL clients use to reach this server: the configured public URL, or scheme and `Host` of the request.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = if state.config.tls.is_some() { "https" } else { "http" };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.listen.to_string());
    format!("{scheme}://{host}")
}

/// The `WWW-Authenticate` value asking for a token with `scope`.
pub(crate) fn challenge(state: &AppState, base_url: &str, scope: Option<&str>) -> String {
    let mut value = format!("Bearer realm=\"{base_url}/token\",service=\"{}\"", state.config.service);
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    value
}

/// An OCI error response; 401s carry a challenge for `scope`.
pub(crate) fn error_response(err: &Error, state: &AppState, base_url: &str, scope: Option<&str>) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, source = ?std::error::Error::source(err), "request failed");
    }
    let body = serde_json::to_vec(&err.to_envelope()).expect("envelope serialises");
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = HeaderValue::from_str(&challenge(state, base_url, scope))
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    if let Error::TooManyRequests { retry_after: Some(after), .. } = err {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    response
}

async fn ping(State(state): State<Arc<AppState>>, client: ClientAddr, headers: HeaderMap) -> Response {
    let base = base_url(&state, &headers);
    match auth::identify(&state, &headers, client).await {
        Ok(Identity::Anonymous) => {
            let err = Error::Unauthenticated { message: "authentication required".into() };
            error_response(&err, &state, &base, None)
        }
        Ok(_) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("docker-distribution-api-version"), "registry/2.0"),
            ],
            "{}",
        )
            .into_response(),
        Err(err) => error_response(&err, &state, &base, None),
    }
}

/// The scope a request to `route` with `method` needs, as named in challenges.
fn scope_for(route: &OciRoute, method: &Method) -> String {
    match route.repository() {
        None => "registry:catalog:*".into(),
        Some(repo) => {
            let actions = match Action::for_request(route, method) {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            };
            format!("repository:{repo}:{actions}")
        }
    }
}

async fn dispatch(State(state): State<Arc<AppState>>, Path(rest): Path<String>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let base = base_url(&state, &parts.headers);
    let route = match OciRoute::parse(&rest) {
        Ok(r) => r,
        Err(err) => return error_response(&err, &state, &base, None),
    };
    let scope = scope_for(&route, &parts.method);
    let identity = match auth::identify(&state, &parts.headers, ClientAddr::of(&parts.extensions)).await {
        Ok(i) => i,
        Err(err) => return error_response(&err, &state, &base, Some(&scope)),
    };
    let ctx = Ctx { state: state.clone(), base_url: base.clone(), identity };
    if let Some(repo) = route.repository() {
        let upstream = match state.routes.resolve(repo) {
            Err(err) => return error_response(&err, &state, &base, Some(&scope)),
            Ok(resolved) => match &resolved.route.target {
                Target::Local => None,
                Target::Upstream(upstream) => Some((upstream.clone(), resolved.upstream_name)),
                Target::Connection(route) => match route.upstream(&state.connections).await {
                    Ok(upstream) => Some((upstream, resolved.upstream_name)),
                    Err(err) => return error_response(&err, &state, &base, Some(&scope)),
                },
            },
        };
        if let Some((upstream, upstream_name)) = upstream {
            return crate::forward::forward(&ctx, &upstream, repo, &upstream_name, &route, &parts, body)
                .await
                .unwrap_or_else(|err| error_response(&err, &state, &base, Some(&scope)));
        }
    }
    let query = parts.uri.query().unwrap_or("");
    let result = match (&route, &parts.method) {
        (OciRoute::Catalog, &Method::GET) => listing::catalog(&ctx, query).await,
        (OciRoute::Tags(repo), &Method::GET) => listing::tags(&ctx, repo, query).await,
        (OciRoute::Referrers(repo, digest), &Method::GET) => listing::referrers(&ctx, repo, digest, query).await,
        (OciRoute::Manifest(repo, reference), &Method::GET) => manifests::get(&ctx, repo, reference, true).await,
        (OciRoute::Manifest(repo, reference), &Method::HEAD) => manifests::get(&ctx, repo, reference, false).await,
        (OciRoute::Manifest(repo, reference), &Method::PUT) => {
            manifests::put(&ctx, repo, reference, &parts.headers, body).await
        }
        (OciRoute::Manifest(repo, reference), &Method::DELETE) => manifests::delete(&ctx, repo, reference).await,
        (OciRoute::Blob(repo, digest), &Method::GET) => blobs::get(&ctx, repo, digest, &parts.headers, true).await,
        (OciRoute::Blob(repo, digest), &Method::HEAD) => blobs::get(&ctx, repo, digest, &parts.headers, false).await,
        (OciRoute::Blob(repo, digest), &Method::DELETE) => blobs::delete(&ctx, repo, digest).await,
        (OciRoute::UploadStart(repo), &Method::POST) => uploads::start(&ctx, repo, query, body).await,
        (OciRoute::Upload(repo, id), &Method::PATCH) => uploads::patch(&ctx, repo, id, &parts.headers, body).await,
        (OciRoute::Upload(repo, id), &Method::PUT) => uploads::put(&ctx, repo, id, query, body).await,
        (OciRoute::Upload(repo, id), &Method::GET) => uploads::status(&ctx, repo, id).await,
        (OciRoute::Upload(repo, id), &Method::DELETE) => uploads::cancel(&ctx, repo, id).await,
        (_, method) => Err(Error::unsupported(format!("{method} on this endpoint"), "regbridge")),
    };
    result.unwrap_or_else(|err| error_response(&err, &state, &base, Some(&scope)))
}

/// A header value from a string we built (digests, numbers, URLs of our own).
pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of query parameter `key` (the first, when repeated).
pub(crate) fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// A request body as the storage's byte stream.
pub(crate) fn body_stream(body: Body) -> regbridge_providers::local::storage::ByteStream {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
