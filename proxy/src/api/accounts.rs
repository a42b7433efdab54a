//! The account endpoints of the management API, for admins only ([`Admin`]):
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /admin/v1/users` | 200 `{"users":[account...]}` (configured users have `"configured":true`) |
//! | `POST /admin/v1/users` `{name, role?, rules?, password?}` | 201 account, with `password` when generated |
//! | `GET /admin/v1/users/{name}` | 200 account |
//! | `PATCH /admin/v1/users/{name}` `{role?, rules?, password?}` | 200 account |
//! | `DELETE /admin/v1/users/{name}` | 204 |
//! | `GET /admin/v1/robots` | 200 `{"robots":[account...]}` |
//! | `POST /admin/v1/robots` `{name, rules, expires}` | 201 account with its `secret` (shown only here) |
//! | `GET /admin/v1/robots/{name}` | 200 account |
//! | `DELETE /admin/v1/robots/{name}` | 204 |
//! | `POST /admin/v1/robots/{name}/rotate` | 200 account with its new `secret` |
//!
//! Listings never show a hash or secret. Users of `users.json` or the TOML `[users]` table are admins that
//! these endpoints show but do not change (409: edit the file). Errors are the admin API's
//! `{"errors":[...]}`: 400 `INVALID` (one entry per bad field), 401, 403 `DENIED` for non-admins, 404,
//! 409 `CONFLICT`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use regbridge::Secret;
use serde_json::{Value, json};

use super::caller::Admin;
use super::problem::{errors, item, json_response};
use crate::accounts::store::{RobotInput, UserInput, UserPatch};
use crate::accounts::{Account, AccountError, Kind, configured_view};
use crate::state::AppState;

/// The account routes, merged into [`super::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/users", get(list_users).post(create_user))
        .route("/admin/v1/users/{name}", get(get_user).patch(update_user).delete(delete_user))
        .route("/admin/v1/robots", get(list_robots).post(create_robot))
        .route("/admin/v1/robots/{name}", get(get_robot).delete(delete_robot))
        .route("/admin/v1/robots/{name}/rotate", post(rotate_robot))
}

/// The answer for a failed operation.
fn failure(err: AccountError) -> Response {
    match &err {
        AccountError::Invalid(fields) => errors(
            StatusCode::BAD_REQUEST,
            fields.iter().map(|(field, message)| item("INVALID", message, Some(json!({ "field": field })))).collect(),
        ),
        AccountError::Conflict(m) => errors(StatusCode::CONFLICT, vec![item("CONFLICT", m, None)]),
        AccountError::NotFound(m) => errors(StatusCode::NOT_FOUND, vec![item("NOT_FOUND", m, None)]),
        AccountError::Other(inner) => {
            tracing::error!(error = %inner, "account request failed");
            errors(StatusCode::INTERNAL_SERVER_ERROR, vec![item("INTERNAL", &inner.to_string(), None)])
        }
    }
}

/// The body as `T`, or a 400 saying what to send. Values are not echoed: one may be a password.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8], example: &str) -> Result<T, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        let why = match e.classify() {
            serde_json::error::Category::Data if !e.to_string().starts_with("unknown field") => {
                format!("a field is missing or has the wrong type (line {} column {})", e.line(), e.column())
            }
            _ => e.to_string(),
        };
        let message = format!("the body is not valid: {why}; send JSON such as {example}");
        Box::new(errors(StatusCode::BAD_REQUEST, vec![item("INVALID", &message, None)]))
    })
}

const USER_EXAMPLE: &str =
    r#"{"name":"alice","role":"member","rules":[{"repositories":"team/*","actions":["pull","push"]}]}"#;
const ROBOT_EXAMPLE: &str =
    r#"{"name":"ci","rules":[{"repositories":"ci/*","actions":["push","pull"]}],"expires":"30d"}"#;

/// An account with a secret shown once (`password` or `secret`).
fn with_secret(account: &Account, field: &str, secret: Option<&Secret>) -> Value {
    let mut value = json!(account);
    if let (Some(secret), Some(map)) = (secret, value.as_object_mut()) {
        map.insert(field.to_owned(), Value::String(secret.expose().to_owned()));
    }
    value
}

fn created(path: &str, body: &Value) -> Response {
    let mut response = json_response(StatusCode::CREATED, body);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(location) = HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn configured_conflict(name: &str) -> Response {
    failure(crate::accounts::configured_conflict(name))
}

/// Lists users.
#[utoipa::path(get, path = "/admin/v1/users", tag = "accounts",
    responses((status = 200, description = "Every user, never a password or hash"), (status = 403, description = "Not an admin")))]
pub(crate) async fn list_users(_: Admin, State(state): State<Arc<AppState>>) -> Response {
    match state.accounts.run(|s| s.list(Kind::User)).await {
        Ok(all) => {
            let mut users: Vec<Value> = state.users.names().map(configured_view).collect();
            users.extend(all.iter().map(|a| json!(a)));
            json_response(StatusCode::OK, &json!({ "users": users }))
        }
        Err(e) => failure(e),
    }
}

/// Creates a user; without a password one is generated and shown in this answer only.
#[utoipa::path(post, path = "/admin/v1/users", tag = "accounts", request_body = UserInput,
    responses((status = 201, description = "Created", body = Account), (status = 400, description = "Invalid fields"),
        (status = 409, description = "The name is taken")))]
pub(crate) async fn create_user(_: Admin, State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: UserInput = match parse(&body, USER_EXAMPLE) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    if state.users.contains(&input.name) {
        return configured_conflict(&input.name);
    }
    match state.accounts.run(move |s| s.create_user(&input)).await {
        Ok((account, password)) => {
            tracing::info!(name = %account.name, role = account.role.as_str(), "user created");
            created(&format!("/admin/v1/users/{}", account.name), &with_secret(&account, "password", password.as_ref()))
        }
        Err(e) => failure(e),
    }
}

/// Shows a user.
#[utoipa::path(get, path = "/admin/v1/users/{name}", tag = "accounts", params(("name" = String, Path, description = "The user name")),
    responses((status = 200, description = "The user", body = Account), (status = 404, description = "No such user")))]
pub(crate) async fn get_user(_: Admin, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if state.users.contains(&name) {
        return json_response(StatusCode::OK, &configured_view(&name));
    }
    match state.accounts.run(move |s| s.get(Kind::User, &name)).await {
        Ok(account) => json_response(StatusCode::OK, &json!(account)),
        Err(e) => failure(e),
    }
}

/// Changes a user's role, rules or password.
#[utoipa::path(patch, path = "/admin/v1/users/{name}", tag = "accounts", request_body = UserPatch,
    params(("name" = String, Path, description = "The user name")),
    responses((status = 200, description = "The changed user", body = Account), (status = 404, description = "No such user")))]
pub(crate) async fn update_user(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    if state.users.contains(&name) {
        return configured_conflict(&name);
    }
    let patch: UserPatch = match parse(&body, r#"{"role":"admin"} or {"password":"..."}"#) {
        Ok(patch) => patch,
        Err(response) => return *response,
    };
    match state.accounts.run(move |s| s.update_user(&name, &patch)).await {
        Ok(account) => {
            tracing::info!(name = %account.name, role = account.role.as_str(), "user updated");
            json_response(StatusCode::OK, &json!(account))
        }
        Err(e) => failure(e),
    }
}

/// Deletes a user.
#[utoipa::path(delete, path = "/admin/v1/users/{name}", tag = "accounts", params(("name" = String, Path, description = "The user name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such user")))]
pub(crate) async fn delete_user(_: Admin, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if state.users.contains(&name) {
        return configured_conflict(&name);
    }
    remove(&state, Kind::User, name).await
}

async fn remove(state: &AppState, kind: Kind, name: String) -> Response {
    let deleted = name.clone();
    match state.accounts.run(move |s| s.delete(kind, &name)).await {
        Ok(()) => {
            tracing::info!(name = %deleted, ?kind, "account deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => failure(e),
    }
}

/// Lists robot accounts.
#[utoipa::path(get, path = "/admin/v1/robots", tag = "accounts",
    responses((status = 200, description = "Every robot, never a secret or hash")))]
pub(crate) async fn list_robots(_: Admin, State(state): State<Arc<AppState>>) -> Response {
    match state.accounts.run(|s| s.list(Kind::Robot)).await {
        Ok(all) => json_response(StatusCode::OK, &json!({ "robots": all })),
        Err(e) => failure(e),
    }
}

/// Creates a robot; its secret is in this answer only.
#[utoipa::path(post, path = "/admin/v1/robots", tag = "accounts", request_body = RobotInput,
    responses((status = 201, description = "Created, with `secret`", body = Account), (status = 400, description = "Invalid fields"),
        (status = 409, description = "The name is taken")))]
pub(crate) async fn create_robot(_: Admin, State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input: RobotInput = match parse(&body, ROBOT_EXAMPLE) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    match state.accounts.run(move |s| s.add_robot(&input)).await {
        Ok((account, secret)) => {
            tracing::info!(name = %account.name, expires_at = ?account.expires_at, "robot account created");
            created(&format!("/admin/v1/robots/{}", account.name), &with_secret(&account, "secret", Some(&secret)))
        }
        Err(e) => failure(e),
    }
}

/// Shows a robot (`NAME` or `robot$NAME`).
#[utoipa::path(get, path = "/admin/v1/robots/{name}", tag = "accounts", params(("name" = String, Path, description = "NAME or robot$NAME")),
    responses((status = 200, description = "The robot", body = Account), (status = 404, description = "No such robot")))]
pub(crate) async fn get_robot(_: Admin, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.accounts.run(move |s| s.get(Kind::Robot, &name)).await {
        Ok(account) => json_response(StatusCode::OK, &json!(account)),
        Err(e) => failure(e),
    }
}

/// Deletes a robot: its secret and its session tokens stop working at once.
#[utoipa::path(delete, path = "/admin/v1/robots/{name}", tag = "accounts", params(("name" = String, Path, description = "NAME or robot$NAME")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such robot")))]
pub(crate) async fn delete_robot(_: Admin, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    remove(&state, Kind::Robot, name).await
}

/// Gives a robot a new secret (in this answer only); the old one and its session tokens stop working.
#[utoipa::path(post, path = "/admin/v1/robots/{name}/rotate", tag = "accounts", params(("name" = String, Path, description = "NAME or robot$NAME")),
    responses((status = 200, description = "The robot with its new `secret`", body = Account), (status = 404, description = "No such robot")))]
pub(crate) async fn rotate_robot(_: Admin, State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match state.accounts.run(move |s| s.rotate_robot(&name)).await {
        Ok((account, secret)) => {
            tracing::info!(name = %account.name, "robot secret rotated");
            let mut response = json_response(StatusCode::OK, &with_secret(&account, "secret", Some(&secret)));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => failure(e),
    }
}
