//! The router: the pipeline in front of `/v2/`, the token endpoint, the admin API and the operability
//! endpoints, each request parsed once by the outermost layer.

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

use crate::api::{admin, manage, openapi, token};
use crate::state::AppState;

/// The router: `/v2/`, `/v2/{*rest}`, `/token`, and `/metrics`, `/healthz`, `/readyz`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2/", get(crate::pipeline::ping))
        .route("/v2", get(crate::pipeline::ping))
        .route("/v2/{*rest}", any(crate::pipeline::dispatch))
        .route("/token", get(token::get_token).post(token::post_token))
        .route("/metrics", get(crate::observe::metrics_endpoint))
        .route("/healthz", get(crate::observe::healthz))
        .route("/readyz", get(crate::observe::readyz))
        .merge(admin::routes())
        .merge(manage::routes())
        .merge(crate::api::inspect::routes())
        .merge(openapi::routes())
        .merge(crate::api::accounts::routes())
        .merge(crate::api::routing::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::observe::observe))
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::pipeline::parse))
        .with_state(state)
}
