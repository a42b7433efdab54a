//! [`Caller`]: the authenticated [`Principal`] of a management API request (HTTP Basic, any user or robot).
//! Endpoints that act on repositories check [`Principal::may`]; admin-only ones use
//! [`Admin`], defined here too, which wraps it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::problem::{errors, item};
use crate::accounts::Principal;
use crate::login_limit::ClientAddr;
use crate::pipeline::identity::{Identity, api_token_principal, basic_identity};
use crate::state::AppState;

/// The user or robot a request authenticated as (HTTP Basic, or an API token of `POST /admin/v1/tokens` as
/// Bearer); extracting it answers 401 (or 429) otherwise.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Who.
    pub principal: Principal,
    /// Authenticated by password (Basic), not by an API token.
    pub by_password: bool,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let value = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return match api_token_principal(state, credentials.trim()).await {
                Ok(principal) => Ok(Caller { principal, by_password: false }),
                Err(e) => Err(unauthorized(&e.to_string())),
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(unauthorized(
                "the management API needs a user's or robot's credentials (HTTP Basic) or an API token (Bearer)",
            ));
        }
        let (user, password) = regbridge::auth::decode_basic(credentials).map_err(|e| unauthorized(&e.to_string()))?;
        let client = ClientAddr::of(&parts.extensions);
        match basic_identity(state, &user, &password, client).await {
            Ok(Identity::User(principal)) => Ok(Caller { principal, by_password: true }),
            Ok(_) => Err(unauthorized("the management API needs a user's or robot's credentials, not a token")),
            Err(regbridge::Error::TooManyRequests { message, retry_after }) => {
                let mut response = errors(StatusCode::TOO_MANY_REQUESTS, vec![item("TOOMANYREQUESTS", &message, None)]);
                let after = retry_after.unwrap_or_default().as_secs();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after));
                Err(response)
            }
            Err(regbridge::Error::Unauthenticated { message }) => Err(unauthorized(&message)),
            Err(e) => {
                tracing::error!(error = %e, "authenticating a management API request failed");
                Err(errors(StatusCode::INTERNAL_SERVER_ERROR, vec![item("INTERNAL", &e.to_string(), None)]))
            }
        }
    }
}

/// 401 with a Basic challenge.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut response = errors(StatusCode::UNAUTHORIZED, vec![item("UNAUTHORIZED", message, None)]);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"regbridge admin\""));
    response
}

/// Proof that the request carries an admin's credentials (any user whose principal
/// [`is_admin`](crate::accounts::Principal::is_admin)); extracting it answers 401 without valid credentials
/// and 403 for others.
pub(crate) struct Admin(pub Caller);

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Response> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.principal.is_admin() {
            let message = format!("{} is not an admin; only admins may use this endpoint", caller.principal.name);
            return Err(errors(StatusCode::FORBIDDEN, vec![item("DENIED", &message, None)]));
        }
        Ok(Admin(caller))
    }
}
