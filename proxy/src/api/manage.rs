//! The management API over the routes: repositories, cross-account access, credentials and their cleanup,
//! gc, and the API tokens `regbridge login` stores. Every call goes through [`crate::manage`], the code the
//! CLI runs on the server's host.
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /admin/v1/tokens` `{ttl?}` (HTTP Basic only) | 201 `{token, user, expiresAt}` |
//! | `GET /admin/v1/whoami` | 200 `{user, admin}` |
//! | `POST /admin/v1/repositories` `{name}` | 201 repository (200 when it existed) |
//! | `GET` / `DELETE /admin/v1/repositories/{name}` | 200 repository / 204 |
//! | `GET /admin/v1/access?repository=NAME` | 200 `[grant...]` |
//! | `POST /admin/v1/access` `{repository, grant}` | 200 `[grant...]` after |
//! | `POST /admin/v1/access/revoke` `{repository, access, level?}` | 200 `[grant...]` after; 404 when none held |
//! | `POST /admin/v1/credentials` `{repository, push?, ttl?, format?, secretName?, namespace?}` | 200 in the format |
//! | `POST /admin/v1/credentials/cleanup` `{repository}` | 204 |
//! | `POST /admin/v1/gc` `{dryRun?, grace?, cloud?}` | 200 report; 409 while one runs |
//! | `GET /admin/v1/gc` | 200 `{running, last?}` |
//! | `GET /admin/v1/inspect?reference=NAME[:TAG\|@DIGEST]` | 200 `{name, reference, route, descriptor, platforms}` |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use regbridge::{CrossAccountAccess, CrossAccountPermissions, Error, Permissions, Repository, Result};
use regbridge_providers::local::gc::GcOptions;
use regbridge_providers::local::{LocalRegistry, TokenKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::caller::{Admin, Caller};
use super::problem::{ErrorBody, json_response, problem};
use crate::manage::formats::{Format, SecretTarget, render};
use crate::manage::gc::GcStatus;
use crate::manage::{self, Manager};
use crate::pipeline::host;
use crate::state::AppState;
use regbridge::auth::Action;

/// The default lifetime of an API token.
const TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// The longest an API token may live: a stolen one stops working within a week whatever was asked.
const TOKEN_MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The routes of this module, merged into [`super::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/tokens", post(create_token))
        .route("/admin/v1/whoami", get(whoami))
        .route("/admin/v1/repositories", get(list_repositories).post(create_repository))
        .route("/admin/v1/repositories/{*name}", get(get_repository).delete(delete_repository))
        .route("/admin/v1/access", get(get_access).post(add_access))
        .route("/admin/v1/access/revoke", post(revoke_access))
        .route("/admin/v1/credentials", post(mint))
        .route("/admin/v1/credentials/cleanup", post(cleanup))
        .route("/admin/v1/credentials/server", post(server_credentials))
        .route("/admin/v1/gc", get(gc_status).post(gc_run))
}

/// The manager over the server's routes, with this request's idea of the server's URL.
pub(super) fn manager<'a>(state: &'a Arc<AppState>, headers: &axum::http::HeaderMap) -> Result<Manager<'a>> {
    let endpoint = host::base_url(&state.config, headers)?;
    let (storage, signer, url) = (state.storage.clone(), state.signer.clone(), endpoint.clone());
    let local: manage::LocalSource =
        Arc::new(move || Ok(Arc::new(LocalRegistry::new(storage.clone(), signer.clone(), url.clone()))));
    Ok(Manager::new(&state.routes, local, endpoint))
}

/// Parses a JSON body, or says what to send. Values of the wrong type are not echoed: they may be secrets.
fn body<T: DeserializeOwned>(bytes: &[u8], example: &str) -> std::result::Result<T, Box<Response>> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        let why = match e.classify() {
            serde_json::error::Category::Data => {
                let text = e.to_string();
                text.split(" at line").next().unwrap_or(&text).to_owned()
            }
            _ => format!("not JSON ({e})"),
        };
        Box::new(problem(&Error::bad_input(format!("the body is not valid: {why}; send JSON such as {example}"))))
    })
}

/// Refuses (403) unless the caller may do `action` on the repository `name`: a member reaches through the
/// management API exactly what its rules give it on the registry API.
pub(super) fn require(caller: &Caller, action: Action, name: &str) -> std::result::Result<(), Box<Response>> {
    if caller.principal.may(action, name) {
        return Ok(());
    }
    let who = &caller.principal.name;
    Err(Box::new(problem(&Error::Denied { message: format!("{who} may not {} {name}", action.as_str()) })))
}

/// The lifetime field `name`: `default` when absent, else at least a second and at most `max`.
fn duration(
    text: Option<&str>,
    name: &str,
    default: Duration,
    max: Option<Duration>,
) -> std::result::Result<Duration, Box<Response>> {
    let value = match text.map(crate::values::parse_duration).transpose() {
        Ok(value) => value.unwrap_or(default),
        Err(e) => return Err(Box::new(problem(&Error::bad_input(format!("{name}: {e}"))))),
    };
    let too_long = max.is_some_and(|max| value > max);
    if value < Duration::from_secs(1) || too_long {
        let most = max.map_or(String::new(), |m| format!(" and at most {}", humantime::format_duration(m)));
        return Err(Box::new(problem(&Error::bad_input(format!("{name}: give at least 1s{most}")))));
    }
    Ok(value)
}

/// A JSON answer of `value`.
pub(super) fn ok<T: Serialize>(status: StatusCode, value: &T) -> Response {
    json_response(status, &json!(value))
}

/// `POST /admin/v1/tokens` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// How long the token lives: `12h` (the default), `30m`, `7d` at most.
    pub ttl: Option<String>,
}

/// An API token for `Authorization: Bearer`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAnswer {
    /// The token; shown only in this answer.
    pub token: String,
    /// Whom it authenticates.
    pub user: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Issues an API token for the user of the request's Basic credentials (a token cannot issue a longer-lived
/// one: Bearer is refused here).
#[utoipa::path(post, path = "/admin/v1/tokens", tag = "auth", request_body = TokenRequest,
    responses((status = 201, body = TokenAnswer), (status = 401, body = ErrorBody)))]
pub(crate) async fn create_token(caller: Caller, State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    if !caller.by_password {
        return problem(&Error::Unauthenticated {
            message: "an API token cannot issue another; log in with the user name and password (HTTP Basic)".into(),
        });
    }
    let request: TokenRequest = match body(&bytes, r#"{"ttl":"12h"}"#) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let ttl = match duration(request.ttl.as_deref(), "ttl", TOKEN_TTL, Some(TOKEN_MAX_TTL)) {
        Ok(ttl) => ttl,
        Err(response) => return *response,
    };
    let user = caller.principal.name;
    match state.signer.sign(&user, None, TokenKind::Api, Vec::new(), ttl) {
        Ok((token, claims)) => {
            tracing::info!(%user, ttl_secs = ttl.as_secs(), "API token issued");
            let answer = TokenAnswer { token: token.expose().to_owned(), user, expires_at: claims.expires_at() };
            ok(StatusCode::CREATED, &answer)
        }
        Err(e) => problem(&e),
    }
}

/// Who the caller is.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhoAmI {
    /// The user.
    pub user: String,
    /// Whether it is an administrator.
    pub admin: bool,
}

/// The authenticated caller.
#[utoipa::path(get, path = "/admin/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
pub(crate) async fn whoami(caller: Caller) -> Response {
    let admin = caller.principal.is_admin();
    ok(StatusCode::OK, &WhoAmI { user: caller.principal.name, admin })
}

/// `POST /admin/v1/repositories` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRepository {
    /// The client-visible name (`team/app`); the route serving it decides the provider.
    pub name: String,
}

/// Creates a repository at the provider of its route; idempotent.
#[utoipa::path(post, path = "/admin/v1/repositories", tag = "repositories", request_body = NewRepository,
    responses((status = 201, body = Object, description = "the repository"), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody, description = "no route serves the name")))]
pub(crate) async fn create_repository(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: Bytes,
) -> Response {
    let request: NewRepository = match body(&bytes, r#"{"name":"team/app"}"#) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    if let Err(refused) = require(&caller, Action::Push, &request.name) {
        return *refused;
    }
    let result = async { manager(&state, &headers)?.create_repository(&request.name).await }.await;
    match result {
        Ok(repo) => {
            tracing::info!(repository = %request.name, "repository created");
            let mut response = ok(StatusCode::CREATED, &repo);
            if let Ok(location) = HeaderValue::from_str(&format!("/admin/v1/repositories/{}", request.name)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => problem(&e),
    }
}

/// `GET /admin/v1/repositories` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only client-visible names starting with this (`team/`).
    pub prefix: Option<String>,
    /// At most this many (100 by default, 1000 at most).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// The repositories of every route the caller may pull, a page at a time.
#[utoipa::path(get, path = "/admin/v1/repositories", tag = "repositories", params(ListQuery),
    responses((status = 200, body = crate::manage::list::ListPage), (status = 400, body = ErrorBody)))]
pub(crate) async fn list_repositories(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    query: std::result::Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(&Error::bad_input("the query takes prefix, limit (1 to 1000) and after"));
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return problem(&Error::bad_input("limit: give 1 to 1000"));
    }
    let mut skipped = Vec::new();
    let listed = async {
        manager(&state, &headers)?.list_page(query.prefix.as_deref(), limit, query.after.as_deref(), &mut skipped).await
    }
    .await;
    match listed {
        Ok(mut page) => {
            // A member sees what it may pull; the cursor still moves past the rest.
            page.repositories.retain(|r| caller.principal.may(Action::Pull, &r.name));
            ok(StatusCode::OK, &page)
        }
        Err(e) => problem(&e),
    }
}

/// A repository.
#[utoipa::path(get, path = "/admin/v1/repositories/{name}", tag = "repositories",
    params(("name" = String, Path, description = "the client-visible name; may contain `/`")),
    responses((status = 200, body = Object, description = "the repository"), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_repository(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(refused) = require(&caller, Action::Pull, &name) {
        return *refused;
    }
    match async { manager(&state, &headers)?.get_repository(&name).await }.await {
        Ok(repo) => ok::<Repository>(StatusCode::OK, &repo),
        Err(e) => problem(&e),
    }
}

/// Deletes a repository and everything in it.
#[utoipa::path(delete, path = "/admin/v1/repositories/{name}", tag = "repositories",
    params(("name" = String, Path, description = "the client-visible name; may contain `/`")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn delete_repository(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
) -> Response {
    if let Err(refused) = require(&caller, Action::Delete, &name) {
        return *refused;
    }
    match async { manager(&state, &headers)?.delete_repository(&name).await }.await {
        Ok(route) => {
            tracing::info!(repository = %name, %route, "repository deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => problem(&e),
    }
}

/// `?repository=NAME`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RepositoryQuery {
    /// The client-visible repository name.
    pub repository: String,
}

/// The cross-account grants on a repository.
#[utoipa::path(get, path = "/admin/v1/access", tag = "access", params(RepositoryQuery),
    responses((status = 200, body = [Object], description = "the grants"), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_access(
    _: Admin,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    query: std::result::Result<Query<RepositoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(&Error::bad_input("give the repository: /admin/v1/access?repository=team/app"));
    };
    match async { manager(&state, &headers)?.access(&query.repository).await }.await {
        Ok(grants) => ok(StatusCode::OK, &grants),
        Err(e) => problem(&e),
    }
}

/// `POST /admin/v1/access` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The client-visible repository name.
    pub repository: String,
    /// Who gets what: `{"access":{"platform":"aws","accountIds":["123456789012"]},"permissions":"pull"}`.
    #[schema(value_type = Object)]
    pub grant: CrossAccountPermissions,
}

/// Grants cross-account access, keeping every grant already there.
#[utoipa::path(post, path = "/admin/v1/access", tag = "access", request_body = GrantRequest,
    responses((status = 200, body = [Object], description = "the grants after"), (status = 400, body = ErrorBody)))]
pub(crate) async fn add_access(
    _: Admin,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: Bytes,
) -> Response {
    let example = r#"{"repository":"team/app","grant":{"access":{"platform":"aws","accountIds":["123456789012"]},"permissions":"pull"}}"#;
    let request: GrantRequest = match body(&bytes, example) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    match async { manager(&state, &headers)?.grant(&request.repository, &request.grant).await }.await {
        Ok(grants) => {
            tracing::info!(repository = %request.repository, platform = request.grant.access.platform(), "access granted");
            ok(StatusCode::OK, &grants)
        }
        Err(e) => problem(&e),
    }
}

/// The level a revocation names.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The pull grants.
    Pull,
    /// The push grants.
    Push,
}

impl Level {
    /// The permissions of grants at this level.
    pub fn permissions(self) -> Permissions {
        match self {
            Level::Pull => Permissions::Pull,
            Level::Push => Permissions::PushPull,
        }
    }
}

/// `POST /admin/v1/access/revoke` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The client-visible repository name.
    pub repository: String,
    /// The principals: `{"platform":"aws","accountIds":["123456789012"]}`.
    #[schema(value_type = Object)]
    pub access: CrossAccountAccess,
    /// Only this level; every level they hold when absent.
    pub level: Option<Level>,
}

/// Revokes principals' access at every level they hold (or one); 404 when none of them holds any.
#[utoipa::path(post, path = "/admin/v1/access/revoke", tag = "access", request_body = RevokeRequest,
    responses((status = 200, body = [Object], description = "the grants after"), (status = 404, body = ErrorBody)))]
pub(crate) async fn revoke_access(
    _: Admin,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: Bytes,
) -> Response {
    let example = r#"{"repository":"team/app","access":{"platform":"aws","accountIds":["123456789012"]}}"#;
    let request: RevokeRequest = match body(&bytes, example) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let level = request.level.map(Level::permissions);
    match async { manager(&state, &headers)?.revoke(&request.repository, &request.access, level).await }.await {
        Ok(grants) => {
            tracing::info!(repository = %request.repository, platform = request.access.platform(), "access revoked");
            ok(StatusCode::OK, &grants)
        }
        Err(e) => problem(&e),
    }
}

/// `POST /admin/v1/credentials` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MintRequest {
    /// The client-visible repository name.
    pub repository: String,
    /// Push as well as pull (pull only by default).
    #[serde(default)]
    pub push: bool,
    /// How long they live: `15m` (the default), `900s`, `1h`; the cloud may clamp it.
    pub ttl: Option<String>,
    /// The output format; `json` by default.
    #[serde(default)]
    pub format: Format,
    /// The Secret's name for `k8s-secret` [default: `regbridge-<repo>`].
    pub secret_name: Option<String>,
    /// The Secret's namespace for `k8s-secret`.
    pub namespace: Option<String>,
}

/// The `json` format's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MintAnswer {
    /// The registry URL the credentials are for.
    pub registry: String,
    /// The credentials (`authMethod`, `username`, `password`, `expiresAt`).
    #[schema(value_type = Object)]
    pub credentials: regbridge::Credentials,
    /// They are for this proxy: the route's registry cannot mint scoped credentials.
    pub through_proxy: bool,
    /// The registry gave a shorter lifetime than asked: this many seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped_to_secs: Option<u64>,
}

/// Mints short-lived credentials for one repository at the provider of its route.
#[utoipa::path(post, path = "/admin/v1/credentials", tag = "credentials", request_body = MintRequest,
    responses((status = 200, body = MintAnswer, description = "format json; other formats are their text"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn mint(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: Bytes,
) -> Response {
    let request: MintRequest =
        match body(&bytes, r#"{"repository":"team/app","push":false,"ttl":"15m","format":"json"}"#) {
            Ok(r) => r,
            Err(response) => return *response,
        };
    // The provider clamps the lifetime to what it supports, and says so (`clampedToSecs`).
    let ttl = match duration(request.ttl.as_deref(), "ttl", Duration::from_secs(900), None) {
        Ok(ttl) => ttl,
        Err(response) => return *response,
    };
    if let Err(refused) = require(&caller, if request.push { Action::Push } else { Action::Pull }, &request.repository)
    {
        return *refused;
    }
    let permissions = if request.push { Permissions::PushPull } else { Permissions::Pull };
    let minted = match async { manager(&state, &headers)?.mint(&request.repository, permissions, ttl).await }.await {
        Ok(m) => m,
        Err(e) => return problem(&e),
    };
    tracing::info!(repository = %request.repository, push = request.push, ttl_secs = ttl.as_secs(), "credentials minted");
    if request.format == Format::Json {
        let answer = MintAnswer {
            registry: minted.endpoint,
            credentials: minted.credentials,
            through_proxy: minted.through_proxy,
            clamped_to_secs: minted.clamped_to.map(|d| d.as_secs()),
        };
        return ok(StatusCode::OK, &answer);
    }
    let target = SecretTarget { name: request.secret_name, namespace: request.namespace };
    match render(&minted.credentials, &minted.endpoint, &request.repository, request.format, &target) {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, request.format.content_type())], text).into_response(),
        Err(e) => problem(&e),
    }
}

/// `POST /admin/v1/credentials/cleanup` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CleanupRequest {
    /// The client-visible repository name.
    pub repository: String,
}

/// Deletes what minting left behind at the route's provider (ACR tokens and scope maps).
#[utoipa::path(post, path = "/admin/v1/credentials/cleanup", tag = "credentials", request_body = CleanupRequest,
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(crate) async fn cleanup(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    bytes: Bytes,
) -> Response {
    let request: CleanupRequest = match body(&bytes, r#"{"repository":"team/app"}"#) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    if let Err(refused) = require(&caller, Action::Push, &request.repository) {
        return *refused;
    }
    match async { manager(&state, &headers)?.cleanup(&request.repository).await }.await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => problem(&e),
    }
}

/// `POST /admin/v1/credentials/server` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServerCredentialsRequest {
    /// Pull only (push, pull and delete by default).
    #[serde(default)]
    pub pull_only: bool,
    /// How long they live: `15m` (the default), at most `12h`.
    pub ttl: Option<String>,
}

/// Credentials for this server's registry API as a whole.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerCredentials {
    /// The user name to present.
    pub username: String,
    /// The password (a signed token).
    pub secret: String,
    /// When they stop working.
    pub expires_at: DateTime<Utc>,
}

/// The longest server-wide credentials live: they open every repository.
const SERVER_CREDENTIALS_MAX_TTL: Duration = Duration::from_secs(12 * 3600);

/// Credentials for this server on every repository the caller may use: what `docker-credential-regbridge`
/// answers for a server it is logged in to. An administrator's open every repository (user
/// `regbridge-credential-helper`); a member's or robot's carry exactly its rules (with `pullOnly`, only their
/// pull; user `regbridge-credential-helper@NAME`), and a robot's never outlive it.
#[utoipa::path(post, path = "/admin/v1/credentials/server", tag = "credentials", request_body = ServerCredentialsRequest,
    responses((status = 200, body = ServerCredentials), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub(crate) async fn server_credentials(caller: Caller, State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    let request: ServerCredentialsRequest = match body(&bytes, r#"{"pullOnly":false,"ttl":"15m"}"#) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let ttl = match duration(request.ttl.as_deref(), "ttl", Duration::from_secs(900), Some(SERVER_CREDENTIALS_MAX_TTL))
    {
        Ok(ttl) => ttl,
        Err(response) => return *response,
    };
    let (user, access, ttl) = match manage::server_grant(&caller.principal, request.pull_only, ttl) {
        Ok(grant) => grant,
        Err(e) => return problem(&e),
    };
    match state.signer.sign(&user, None, TokenKind::Minted, access, ttl) {
        Ok((token, claims)) => ok(
            StatusCode::OK,
            &ServerCredentials { username: user, secret: token.expose().to_owned(), expires_at: claims.expires_at() },
        ),
        Err(e) => problem(&e),
    }
}

/// `POST /admin/v1/gc` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GcRequest {
    /// Report what would be deleted, delete nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Spare unreferenced blobs used more recently than this: `1h` (the default), `0s`.
    pub grace: Option<String>,
    /// Clean the routes' cloud registries (expired ACR tokens) instead of the local storage.
    #[serde(default)]
    pub cloud: bool,
}

/// Runs a collection (one at a time: 409 while another runs) and answers its report.
#[utoipa::path(post, path = "/admin/v1/gc", tag = "gc", request_body = GcRequest,
    responses((status = 200, body = Object, description = "the report"), (status = 409, body = ErrorBody)))]
pub(crate) async fn gc_run(admin: Admin, State(state): State<Arc<AppState>>, bytes: Bytes) -> Response {
    let request: GcRequest = match body(&bytes, r#"{"dryRun":true,"grace":"1h"}"#) {
        Ok(r) => r,
        Err(response) => return *response,
    };
    let grace = match request.grace.as_deref().map(crate::values::parse_duration).transpose() {
        // Zero is a valid grace period: spare nothing.
        Ok(grace) => grace.unwrap_or(Duration::from_secs(3600)),
        Err(e) => return problem(&Error::bad_input(format!("grace: {e}"))),
    };
    {
        let mut status = state.gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if status.running {
            return problem(&Error::AlreadyExists {
                resource: regbridge::Resource::Other,
                name: "a gc run in progress (GET /admin/v1/gc shows when it ends)".into(),
            });
        }
        status.running = true;
    }
    tracing::info!(user = %admin.0.principal.name, dry_run = request.dry_run, cloud = request.cloud, "gc started");
    let result: Result<serde_json::Value> = if request.cloud {
        manage::gc::cloud(&state.config.routes).await.map(|r| json!(r))
    } else {
        let options = GcOptions {
            grace,
            upload_expiry: state.config.upload_expiry,
            dry_run: request.dry_run,
            ..GcOptions::default()
        };
        manage::gc::local(&*state.storage, &options, |_, _| {}).await.map(|report| json!(report))
    };
    let mut status = state.gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    status.running = false;
    status.finished_at = Some(Utc::now());
    match result {
        Ok(report) => {
            status.last = Some(report.clone());
            json_response(StatusCode::OK, &report)
        }
        Err(e) => {
            status.last = Some(json!({ "error": e.to_string() }));
            problem(&e)
        }
    }
}

/// Whether a collection runs, and the last one's report.
#[utoipa::path(get, path = "/admin/v1/gc", tag = "gc", responses((status = 200, body = GcStatus)))]
pub(crate) async fn gc_status(_: Admin, State(state): State<Arc<AppState>>) -> Response {
    let status = state.gc.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    ok(StatusCode::OK, &status)
}
