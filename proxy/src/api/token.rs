//! `GET /token` (Docker token authentication) and `POST /token` (the OAuth2 password grant): exchange
//! credentials for a short-lived session token limited to the requested scopes the caller may have.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use regbridge::auth::Scope;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::token::ISSUER;
use regbridge_providers::local::{Access, Claims, TokenKind};
use serde_json::json;

use crate::login_limit::ClientAddr;
use crate::pipeline::authorize::allowed_actions;
use crate::pipeline::host;
use crate::pipeline::identity::{ANONYMOUS_SUBJECT, Identity, basic_identity, identify};
use crate::pipeline::reply::bad_host;
use crate::pipeline::reply::error_response;
use crate::state::AppState;

/// How long a session token lives. Clients ask again when it expires.
const SESSION_TTL: Duration = Duration::from_secs(300);

/// `GET /token?service=...&scope=...&scope=...` with Basic credentials (or none).
pub async fn get_token(
    State(state): State<Arc<AppState>>,
    client: ClientAddr,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or("");
    let values: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .collect();
    let scopes = Scope::parse_list(values.iter().map(String::as_str));
    let identity = identify(&state, &headers, client).await;
    respond(&state, &headers, identity, scopes).await
}

/// `POST /token` with `grant_type=password&username=...&password=...&scope=...` (form-encoded).
pub async fn post_token(
    State(state): State<Arc<AppState>>,
    client: ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let identity = match get("grant_type").as_deref() {
        Some("password") => {
            let (user, pass) = (get("username").unwrap_or_default(), Secret::new(get("password").unwrap_or_default()));
            basic_identity(&state, &user, &pass, client).await
        }
        other => Err(Error::bad_input(format!("unsupported grant_type {other:?}; use password"))),
    };
    let scopes = Scope::parse_list(form.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.as_str()));
    respond(&state, &headers, identity, scopes).await
}

async fn respond(state: &AppState, headers: &HeaderMap, identity: Result<Identity>, scopes: Vec<Scope>) -> Response {
    let base = match host::base_url(&state.config, headers) {
        Ok(base) => base,
        Err(err) => return bad_host(&err),
    };
    let identity = match identity {
        Ok(i) => i,
        Err(err) => {
            let mut r = error_response(&err, state, &base, &[]);
            // A token request answers wrong credentials with a Basic challenge, as token servers do.
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"regbridge\""));
            return r;
        }
    };
    match issue(state, &identity, &scopes).await {
        Ok((token, claims)) => {
            let body = json!({
                "token": token.expose(),
                "access_token": token.expose(),
                "expires_in": (claims.exp - claims.iat).max(0),
                "issued_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
                body.to_string(),
            )
                .into_response()
        }
        Err(err) => error_response(&err, state, &base, &[]),
    }
}

/// Grants, for each scope asked for, exactly the actions asked for that the identity may do there: the
/// intersection, never more (scopes it may not have at all are dropped, as the Docker token specification
/// asks). The token expires after [`SESSION_TTL`], or when the credential it was issued for does, whichever
/// is first: a session token exchanged for another never outlives the first one's source.
async fn issue(state: &AppState, identity: &Identity, scopes: &[Scope]) -> Result<(Secret, Claims)> {
    let mut access: Vec<Access> = Vec::new();
    for scope in scopes {
        match scope {
            Scope::Repository { name, actions } => {
                let granted = actions.intersect(allowed_actions(state, identity, name).await?);
                if granted.is_empty() {
                    continue;
                }
                let names: Vec<&str> = granted.iter().map(|a| a.as_str()).collect();
                // A repository named twice (`pull` then `push`) gets one entry with both.
                match access.iter_mut().find(|a| a.kind == "repository" && a.name == name.as_str()) {
                    Some(entry) => {
                        for n in names {
                            if !entry.actions.iter().any(|a| a == n) {
                                entry.actions.push(n.to_owned());
                            }
                        }
                    }
                    None => access.push(Access::repository(name.as_str(), &names)),
                }
            }
            // Others get the catalog filtered to what they may pull.
            Scope::Catalog if matches!(identity, Identity::User(p) if p.is_admin()) => {
                access.push(Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] });
            }
            Scope::Catalog => {}
        }
    }
    let (sub, acct) = match identity {
        // Anonymous tokens carry no account: their access list (pull, when anonymous pulls are on) is all.
        Identity::Anonymous => (ANONYMOUS_SUBJECT.to_owned(), None),
        Identity::User(p) => (p.name.clone(), None),
        Identity::Token(c) => (c.sub.clone(), c.acct.clone()),
    };
    let now = Utc::now().timestamp();
    let mut exp = now + SESSION_TTL.as_secs() as i64;
    if let Some(until) = identity.expires_at() {
        if until.timestamp() <= now {
            return Err(Error::Unauthenticated { message: "the credentials have expired".into() });
        }
        exp = exp.min(until.timestamp());
    }
    let claims =
        Claims { iss: ISSUER.into(), sub, acct, kind: TokenKind::Session, access, exp, iat: now, jti: String::new() };
    state.signer.sign_claims(claims)
}
