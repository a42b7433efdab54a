//! The routes of the server and their health, for admins: the probe `regbridge check` runs, over the
//! routes this server serves ([`crate::manage::routes`]).
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /admin/v1/routes` | 200 `[route...]` |
//! | `GET /admin/v1/routes?health=true&timeout=20s` | 200 `[route...]`, each with `health` |
//! | `GET /admin/v1/routes/health?timeout=20s` | the same |

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use regbridge::Error;
use serde::Deserialize;
use serde_json::json;

use super::caller::Admin;
use super::problem::{ErrorBody, json_response, problem};
use crate::manage::routes::{MAX_API_TIMEOUT, ProbeContext, RouteStatus, check_built};
use crate::state::AppState;

/// How long each route's probe may take unless the query says.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// The routes of this module, merged into [`crate::router::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/routes", get(list_routes)).route("/admin/v1/routes/health", get(routes_health))
}

/// `GET /admin/v1/routes` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoutesQuery {
    /// Probe each route (its control plane and registry), as `regbridge check` does.
    pub health: Option<bool>,
    /// How long each route's probe may take: `20s` (the default), at most `60s`.
    pub timeout: Option<String>,
}

/// `GET /admin/v1/routes/health` query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HealthQuery {
    /// How long each route's probe may take: `20s` (the default), at most `60s`.
    pub timeout: Option<String>,
}

/// The server's routes in the configuration's order: label, prefix, provider, registry host (never a
/// credential); with `health=true`, each route's health. A failed route is an entry with `ok: false`, not
/// an error answer.
#[utoipa::path(get, path = "/admin/v1/routes", tag = "routes", params(RoutesQuery),
    responses((status = 200, body = [RouteStatus]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not an admin")))]
pub(crate) async fn list_routes(
    _admin: Admin,
    State(state): State<Arc<AppState>>,
    query: std::result::Result<Query<RoutesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(&Error::bad_input("the query takes health (true or false) and timeout (such as 20s)"));
    };
    answer(&state, query.health.unwrap_or(false), query.timeout.as_deref()).await
}

/// Every route with its health: `GET /admin/v1/routes?health=true`.
#[utoipa::path(get, path = "/admin/v1/routes/health", tag = "routes", params(HealthQuery),
    responses((status = 200, body = [RouteStatus]), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "not an admin")))]
pub(crate) async fn routes_health(
    _admin: Admin,
    State(state): State<Arc<AppState>>,
    query: std::result::Result<Query<HealthQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(&Error::bad_input("the query takes timeout (such as 20s)"));
    };
    answer(&state, true, query.timeout.as_deref()).await
}

async fn answer(state: &Arc<AppState>, health: bool, timeout: Option<&str>) -> Response {
    let timeout = match timeout.map(crate::values::parse_duration).transpose() {
        Ok(t) => t.unwrap_or(DEFAULT_TIMEOUT),
        Err(e) => return problem(&Error::bad_input(format!("timeout: {e}"))),
    };
    if timeout < Duration::from_secs(1) || timeout > MAX_API_TIMEOUT {
        let most = MAX_API_TIMEOUT.as_secs();
        return problem(&Error::bad_input(format!("timeout: give 1s to {most}s")));
    }
    let ctx = ProbeContext { data_dir: &state.config.data_dir, connections: Some(&state.connections), timeout };
    let routes = check_built(&state.routes, &state.config.routes, &ctx, health).await;
    if health {
        let failed = routes.iter().filter(|r| !r.is_ok()).count();
        tracing::info!(routes = routes.len(), failed, "routes checked");
    }
    json_response(StatusCode::OK, &json!(routes))
}
