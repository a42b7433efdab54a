//! The request pipeline: how every `/v2/` request flows, top to bottom, before any handler runs.
//!
//! 1. **Parse** ([`target`]): the path into an [`OciRoute`] and the query into [`Params`], once. The
//!    [`parse`] layer does it for every request and leaves a [`Parsed`] in the request's extensions, where
//!    metrics and the access log read it too.
//! 2. **Route**: the routing table picks the route (longest prefix) and the upstream name.
//! 3. **Identify** ([`identity`]): who is asking, once.
//! 4. **Authorize** ([`authorize`]): whether they may, once, including pull on a mount's source and the
//!    signature of an upstream upload location.
//! 5. **Handle**: the local registry ([`crate::api`]) or forwarding ([`crate::forward`]), with a [`Ctx`]
//!    that carries everything decided above. Handlers never parse, route or authorize again.

pub mod authorize;
pub mod host;
pub mod identity;
pub mod refusals;
pub mod reply;
pub mod request;
pub mod target;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};

use axum::response::{IntoResponse, Response};
use regbridge::Error;

pub use authorize::Grant;
pub use identity::Identity;
pub use request::{Ctx, Endpoint, Parsed, parse};
pub use target::{OciRoute, Params};

use crate::login_limit::ClientAddr;
use crate::routing::{Target, Upstream};
use crate::state::AppState;

/// Who serves a request's repository.
enum Serving {
    Local,
    Upstream(Arc<Upstream>, String),
}

/// `/v2/` with any credentials: 200 when they are valid, 401 with a challenge otherwise.
pub async fn ping(State(state): State<Arc<AppState>>, client: ClientAddr, headers: HeaderMap) -> Response {
    let base = match host::base_url(&state.config, &headers) {
        Ok(base) => base,
        Err(err) => return reply::bad_host(&err),
    };
    match identity::identify(&state, &headers, client).await {
        Ok(Identity::Anonymous) => {
            let err = Error::Unauthenticated { message: "authentication required".into() };
            reply::error_response(&err, &state, &base, &[])
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
        Err(err) => reply::error_response(&err, &state, &base, &[]),
    }
}

/// Every `/v2/<...>` request: steps 2 to 5.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let base = match host::base_url(&state.config, &parts.headers) {
        Ok(base) => base,
        Err(err) => return reply::bad_host(&err),
    };
    let parsed = match parts.extensions.get::<Arc<Parsed>>() {
        Some(parsed) => parsed.clone(),
        None => Arc::new(Parsed::of(&state, &parts.uri)),
    };
    let route = match &parsed.endpoint {
        Endpoint::Oci(Ok(route)) => route,
        Endpoint::Oci(Err(err)) => return reply::error_response(err, &state, &base, &[]),
        _ => {
            return reply::error_response(
                &Error::not_found(regbridge::Resource::Other, parts.uri.path()),
                &state,
                &base,
                &[],
            );
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let params = match Params::parse(route, query) {
        Ok(params) => params,
        Err(err) => return reply::error_response(&err, &state, &base, &[]),
    };
    let scopes = authorize::challenge_scopes(route, &parts.method, &params);
    let fail = |err: &Error| reply::error_response(err, &state, &base, &scopes);

    // 2. Route.
    let serving = match &parsed.route {
        None => Serving::Local,
        Some(Err(err)) => return fail(err),
        Some(Ok((index, upstream_name))) => match state.routes.routes().get(*index).map(|r| &r.target) {
            None | Some(Target::Local) => Serving::Local,
            Some(Target::Upstream(upstream)) => Serving::Upstream(upstream.clone(), upstream_name.clone()),
            Some(Target::Connection(connection)) => match connection.upstream(&state.connections).await {
                Ok(upstream) => Serving::Upstream(upstream, upstream_name.clone()),
                Err(err) => return fail(&err),
            },
        },
    };

    // 3. Identify.
    let identity = match identity::identify(&state, &parts.headers, ClientAddr::of(&parts.extensions)).await {
        Ok(identity) => identity,
        Err(err) => return fail(&err),
    };

    // 4. Authorize.
    let signed = match (&serving, route) {
        (Serving::Upstream(..), OciRoute::Upload(repo, id)) => Some(state.locations.verify(repo.as_str(), id, query)),
        _ => None,
    };
    let grant = match authorize::authorize(&state, &identity, route, &parts.method, &params, signed).await {
        Ok(grant) => grant,
        Err(refusal) if refusal.insufficient_scope => {
            return reply::insufficient_scope(&refusal.error, &state, &base, &scopes, bearer(&parts.headers)).await;
        }
        Err(refusal) => return fail(&refusal.error),
    };

    // 5. Handle.
    let ctx = Ctx { state: state.clone(), base_url: base.clone(), identity, grant, params };
    let result = match serving {
        Serving::Upstream(upstream, upstream_name) => {
            crate::forward::forward(&ctx, &upstream, &upstream_name, route, &parts, body).await
        }
        Serving::Local => crate::api::handle(&ctx, route, &parts, body).await,
    };
    result.unwrap_or_else(|err| fail(&err))
}

/// The bearer token of a request, to recognise a repeated refusal of it.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}
