//! Error answers: the OCI error body with its status, and on 401 (or a repeated insufficient-scope 403) a
//! `WWW-Authenticate` challenge naming the scopes the request needs (RFC 6750 section 3).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regbridge::Error;
use regbridge::auth::{Scope, scope::format_list};

use crate::state::AppState;

/// The `WWW-Authenticate` value asking for a token with `scopes`; `insufficient` adds
/// `error="insufficient_scope"`. Every part is ours: the base URL comes from a validated `Host` or the
/// configuration, scopes are formatted from typed values.
pub fn challenge(state: &AppState, base_url: &str, scopes: &[Scope], insufficient: bool) -> String {
    let mut value = format!("Bearer realm=\"{base_url}/token\",service=\"{}\"", state.config.service);
    if !scopes.is_empty() {
        value.push_str(&format!(",scope=\"{}\"", format_list(scopes)));
    }
    if insufficient {
        value.push_str(",error=\"insufficient_scope\"");
    }
    value
}

/// An OCI error response; 401s carry a challenge for `scopes`.
pub fn error_response(err: &Error, state: &AppState, base_url: &str, scopes: &[Scope]) -> Response {
    with_challenge(err, state, base_url, scopes, false)
}

fn with_challenge(err: &Error, state: &AppState, base_url: &str, scopes: &[Scope], insufficient: bool) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(error = %err, source = ?std::error::Error::source(err), "request failed");
    }
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], envelope(err)).into_response();
    if (status == StatusCode::UNAUTHORIZED || insufficient)
        && let Ok(v) = HeaderValue::from_str(&challenge(state, base_url, scopes, insufficient))
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    if let Error::TooManyRequests { retry_after: Some(after), .. } = err {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
    }
    response
}

/// The OCI error body of `err`.
pub fn envelope(err: &Error) -> Vec<u8> {
    serde_json::to_vec(&err.to_envelope()).unwrap_or_else(|_| b"{\"errors\":[]}".to_vec())
}

/// The answer to a session token that lacks a scope the request needs.
///
/// Clients disagree on which status makes them fetch a new token: docker, containerd and python-dxf ask
/// again on 401 (the Docker token specification's answer), while oras-py retries a 401 with the same token
/// and asks again only on a 403 (RFC 6750's status for `insufficient_scope`). So the first refusal of a token
/// for a scope is a 401, and the same refusal repeated within a minute is a 403; both carry the challenge
/// with `error="insufficient_scope"` and the scopes needed. Either way the token endpoint grants only what
/// the credentials behind the token allow, so asking again never widens access. Replicas share what they
/// refused through storage, so the retry is known as one on whichever replica it reaches.
pub async fn insufficient_scope(
    err: &Error,
    state: &AppState,
    base_url: &str,
    scopes: &[Scope],
    token: Option<&str>,
) -> Response {
    let repeated = match token {
        Some(token) => state.scope_refusals.seen_before(state.storage.as_ref(), token, scopes).await,
        None => false,
    };
    if !repeated {
        return with_challenge(err, state, base_url, scopes, true);
    }
    let denied = Error::Denied { message: format!("{err}; ask the token endpoint for the scope in the challenge") };
    with_challenge(&denied, state, base_url, scopes, true)
}

/// A 400 for a `Host` header we cannot build URLs from (no challenge: its realm would be that host).
pub fn bad_host(err: &Error) -> Response {
    (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], envelope(err)).into_response()
}
