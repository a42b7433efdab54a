//! `GET /token` (Docker token authentication) and `POST /token` (the OAuth2 password grant): exchange
//! credentials for a short-lived session token limited to the requested scopes the caller may have.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use regbridge::oci::RepositoryName;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{Access, Claims, TokenKind};
use serde_json::json;

use super::auth::{Action, Identity, allowed, basic_identity, identify};
use super::{AppState, base_url, error_response};
use crate::login_limit::ClientAddr;

/// How long a session token lives. Clients ask again when it expires.
const SESSION_TTL: Duration = Duration::from_secs(300);

/// `GET /token?service=...&scope=...&scope=...` with Basic credentials (or none).
pub async fn get_token(
    State(state): State<Arc<AppState>>,
    client: ClientAddr,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let scopes = scopes_of(uri.query().unwrap_or(""));
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
    let scopes = form.iter().filter(|(k, _)| k == "scope").flat_map(|(_, v)| v.split(' ').map(str::to_owned)).collect();
    respond(&state, &headers, identity, scopes).await
}

fn scopes_of(query: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

async fn respond(state: &AppState, headers: &HeaderMap, identity: Result<Identity>, scopes: Vec<String>) -> Response {
    let base = base_url(state, headers);
    let identity = match identity {
        Ok(i) => i,
        Err(err) => {
            let mut r = error_response(&err, state, &base, None);
            // A token request answers wrong credentials with a Basic challenge, as token servers do.
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"regbridge\""));
            return r;
        }
    };
    match issue(state, &identity, &scopes).await {
        Ok((token, _)) => {
            let body = json!({
                "token": token.expose(),
                "access_token": token.expose(),
                "expires_in": SESSION_TTL.as_secs(),
                "issued_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            });
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")],
                body.to_string(),
            )
                .into_response()
        }
        Err(err) => error_response(&err, state, &base, None),
    }
}

/// Grants, for each repository a scope names, every action the identity may do there; scopes it may not
/// have are silently dropped, as the Docker token specification asks.
async fn issue(state: &AppState, identity: &Identity, scopes: &[String]) -> Result<(Secret, Claims)> {
    let mut access = Vec::new();
    for scope in scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(_actions)) = (parts.next(), parts.next(), parts.next()) else { continue };
        match kind {
            "repository" => {
                let Ok(repo) = RepositoryName::parse(name) else { continue };
                // Everything the caller may do on a repository it names is granted, not only the actions
                // asked for: some clients (oras-py) reuse a pull token for a push and only ask again on 403.
                let mut granted = Vec::new();
                for a in [Action::Pull, Action::Push, Action::Delete] {
                    if allowed(state, identity, &repo, a).await? {
                        granted.push(a.as_str());
                    }
                }
                if !granted.is_empty() {
                    access.push(Access::repository(repo.as_str(), &granted));
                }
            }
            "registry" if name == "catalog" && matches!(identity, Identity::User(_)) => {
                access.push(Access { kind: "registry".into(), name: "catalog".into(), actions: vec!["*".into()] });
            }
            _ => {}
        }
    }
    let (sub, acct) = match identity {
        // Anonymous tokens carry no account: their access list (pull, when anonymous pulls are on) is all.
        Identity::Anonymous => ("anonymous".to_owned(), None),
        Identity::User(u) => (u.clone(), None),
        Identity::Token(c) => (c.sub.clone(), c.acct.clone()),
    };
    state.signer.sign(&sub, acct.as_deref(), TokenKind::Session, access, SESSION_TTL)
}
