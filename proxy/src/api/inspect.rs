//! `GET /admin/v1/inspect?reference=NAME[:TAG|@DIGEST]`: what `regbridge inspect` prints, through
//! [`crate::manage::inspect`] (the CLI's code path). The caller needs pull on the repository.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use regbridge::Error;
use regbridge::auth::Action;
use regbridge::oci::RepositoryName;
use serde::Deserialize;

use super::caller::Caller;
use super::manage::{manager, ok, require};
use super::problem::{ErrorBody, problem};
use crate::manage::inspect::{Inspection, parse_reference};
use crate::state::AppState;

/// The route of this module, merged into the server's router beside the other management routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/admin/v1/inspect", get(inspect))
}

/// `?reference=NAME[:TAG|@DIGEST]`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InspectQuery {
    /// The client-visible repository name and a tag (`latest` when absent) or digest: `team/app:v1`,
    /// `team/app@sha256:...`.
    pub reference: String,
}

/// The descriptor of the manifest a reference names on the route serving it, and the platforms of an index.
#[utoipa::path(get, path = "/admin/v1/inspect", tag = "repositories", params(InspectQuery),
    responses((status = 200, body = Inspection), (status = 400, body = ErrorBody, description = "not a reference"),
        (status = 403, body = ErrorBody, description = "the caller may not pull the repository"),
        (status = 404, body = ErrorBody, description = "no such repository, tag or digest"),
        (status = 413, body = ErrorBody, description = "the manifest is larger than 4 MiB"),
        (status = 502, body = ErrorBody, description = "the upstream failed or served other bytes than it named")))]
pub(crate) async fn inspect(
    caller: Caller,
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<InspectQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return problem(&Error::bad_input("give the reference: /admin/v1/inspect?reference=team/app:v1"));
    };
    // Authorized on the parsed name before any route is asked, so a member learns nothing of the rest.
    let name: RepositoryName = match parse_reference(&query.reference) {
        Ok((name, _)) => name,
        Err(e) => return problem(&e),
    };
    if let Err(refused) = require(&caller, Action::Pull, name.as_str()) {
        return *refused;
    }
    let connections = || Ok(state.connections.clone());
    match async { manager(&state, &headers)?.inspect(&query.reference, connections).await }.await {
        Ok(inspection) => ok(StatusCode::OK, &inspection),
        Err(e) => problem(&e),
    }
}
