//! The admin API: registry connections under `/admin/v1/registries`, for admins only (HTTP Basic; see
//! [`Admin`]).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /admin/v1/registries` | 200 `{"registries":[connection...]}` |
//! | `POST /admin/v1/registries` `{name, registry, username?, password?\|token?, active?}` | 201 connection |
//! | `GET /admin/v1/registries/{id}` | 200 connection |
//! | `PUT` or `PATCH /admin/v1/registries/{id}` (fields to change) | 200 connection |
//! | `DELETE /admin/v1/registries/{id}` | 204 |
//! | `POST /admin/v1/registries/{id}/validate` | 200 `{"ok":true}` or `{"ok":false,"error":"...","refused":bool}` |
//!
//! A connection never shows its password or token (`hasSecret` says whether there is one). Errors are
//! `{"errors":[{"code","message","detail"}]}`: 400 `INVALID` with one entry per bad field
//! (`detail.field`), 401 `UNAUTHORIZED`, 404 `NOT_FOUND`, 409 `CONFLICT` naming the existing connection.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::caller::Admin;
use super::problem::{errors, item, json_response};
use crate::connections::validate::validate;
use crate::connections::{ConnectionError, ConnectionInput};
use crate::state::AppState;

/// The admin API's routes, merged into [`super::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/v1/registries", get(list).post(create))
        .route("/admin/v1/registries/{id}", get(get_one).put(update).patch(update).delete(remove))
        .route("/admin/v1/registries/{id}/validate", post(validate_one))
}

/// The answer for a failed operation on registry connections.
fn failure(err: ConnectionError) -> Response {
    match &err {
        ConnectionError::Invalid(fields) => errors(
            StatusCode::BAD_REQUEST,
            fields.iter().map(|f| item("INVALID", &f.message, Some(json!({ "field": f.field })))).collect(),
        ),
        ConnectionError::Conflict { field, existing } => {
            let detail = json!({ "field": field, "existing": existing });
            errors(StatusCode::CONFLICT, vec![item("CONFLICT", &err.to_string(), Some(detail))])
        }
        ConnectionError::NotFound(_) => errors(StatusCode::NOT_FOUND, vec![item("NOT_FOUND", &err.to_string(), None)]),
        ConnectionError::Other(inner) => {
            let status = StatusCode::from_u16(inner.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(error = %inner, source = ?std::error::Error::source(inner), "admin request failed");
            }
            let code = if status.is_server_error() { "INTERNAL" } else { "INVALID" };
            errors(status, vec![item(code, &inner.to_string(), None)])
        }
    }
}

/// The request body as a connection input, or a 400 saying what to send. A value of the wrong type is not
/// echoed: it may be a secret.
fn parse(body: &[u8]) -> Result<ConnectionInput, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        let why = match e.classify() {
            serde_json::error::Category::Data if !e.to_string().starts_with("unknown field") => format!(
                "a field has the wrong type (line {} column {}): name, registry, username, password and token are \
                 strings, active is true or false",
                e.line(),
                e.column()
            ),
            _ => e.to_string(),
        };
        let message = format!(
            "the body is not a registry connection: {why}; send JSON such as \
             {{\"name\":\"ghcr\",\"registry\":\"ghcr.io\",\"username\":\"robot\",\"token\":\"...\"}}"
        );
        Box::new(errors(StatusCode::BAD_REQUEST, vec![item("INVALID", &message, None)]))
    })
}

/// The registry connections.
#[utoipa::path(get, path = "/admin/v1/registries", tag = "registries",
    responses((status = 200, body = Object, description = "`{\"registries\":[connection...]}`"), (status = 401, body = super::problem::ErrorBody)))]
pub(crate) async fn list(_: Admin, State(state): State<Arc<AppState>>) -> Response {
    match state.connections.run(|s| s.list()).await {
        Ok(all) => json_response(StatusCode::OK, &json!({ "registries": all })),
        Err(e) => failure(e),
    }
}

/// Adds a registry connection.
#[utoipa::path(post, path = "/admin/v1/registries", tag = "registries", request_body = Object,
    responses((status = 201, body = Object, description = "the connection"), (status = 400, body = super::problem::ErrorBody), (status = 409, body = super::problem::ErrorBody)))]
pub(crate) async fn create(_: Admin, State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let input = match parse(&body) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    match state.connections.run(move |s| s.create(&input)).await {
        Ok(created) => {
            let (id, name, registry) = (&created.id, &created.name, &created.registry);
            tracing::info!(%id, %name, %registry, "registry connection created");
            let mut response = json_response(StatusCode::CREATED, &json!(created));
            if let Ok(location) = HeaderValue::from_str(&format!("/admin/v1/registries/{}", created.id)) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => failure(e),
    }
}

/// A registry connection.
#[utoipa::path(get, path = "/admin/v1/registries/{id}", tag = "registries", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "the connection"), (status = 404, body = super::problem::ErrorBody)))]
pub(crate) async fn get_one(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.connections.run(move |s| s.get(&id)).await {
        Ok(found) => json_response(StatusCode::OK, &json!(found)),
        Err(e) => failure(e),
    }
}

/// Changes a registry connection (PUT or PATCH).
#[utoipa::path(patch, path = "/admin/v1/registries/{id}", tag = "registries", params(("id" = String, Path)), request_body = Object,
    responses((status = 200, body = Object, description = "the connection"), (status = 400, body = super::problem::ErrorBody), (status = 404, body = super::problem::ErrorBody)))]
pub(crate) async fn update(
    _: Admin,
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let input = match parse(&body) {
        Ok(input) => input,
        Err(response) => return *response,
    };
    match state.connections.run(move |s| s.update(&id, &input)).await {
        Ok(updated) => {
            tracing::info!(id = %updated.id, name = %updated.name, "registry connection updated");
            json_response(StatusCode::OK, &json!(updated))
        }
        Err(e) => failure(e),
    }
}

/// Deletes a registry connection.
#[utoipa::path(delete, path = "/admin/v1/registries/{id}", tag = "registries", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::problem::ErrorBody)))]
pub(crate) async fn remove(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let deleted = id.clone();
    match state.connections.run(move |s| s.delete(&id)).await {
        Ok(()) => {
            tracing::info!(id = %deleted, "registry connection deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => failure(e),
    }
}

/// Logs in to a connection's registry.
#[utoipa::path(post, path = "/admin/v1/registries/{id}/validate", tag = "registries", params(("id" = String, Path)),
    responses((status = 200, body = Object, description = "`{\"ok\":true}` or `{\"ok\":false,\"error\":...}`"), (status = 404, body = super::problem::ErrorBody)))]
pub(crate) async fn validate_one(_: Admin, State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match validate(&state.connections, &id).await {
        Ok(outcome) => json_response(StatusCode::OK, &outcome.to_json()),
        Err(e) => failure(e),
    }
}
