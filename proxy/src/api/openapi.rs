//! The management API's OpenAPI 3.1 document, generated from the handlers' annotations and served at
//! `GET /admin/v1/openapi.json` (without credentials: it describes the API, it holds nothing secret). The
//! copy checked in as `docs/openapi.json` is compared with it by a test, so the two never drift apart.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;

use crate::state::AppState;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "regbridge management API",
        description = "Repositories, access, credentials, users, robots, \
        registry connections, routes and gc of a regbridge server. Authenticate with HTTP Basic or with an API \
        token from POST /admin/v1/tokens as Bearer."
    ),
    paths(
        super::manage::create_token,
        super::manage::whoami,
        super::manage::list_repositories,
        super::manage::create_repository,
        super::manage::get_repository,
        super::manage::delete_repository,
        super::manage::get_access,
        super::manage::add_access,
        super::manage::revoke_access,
        super::manage::mint,
        super::manage::cleanup,
        super::manage::server_credentials,
        super::manage::gc_run,
        super::manage::gc_status,
        super::inspect::inspect,
        super::admin::list,
        super::admin::create,
        super::admin::get_one,
        super::admin::update,
        super::admin::remove,
        super::admin::validate_one,
        super::accounts::list_users,
        super::accounts::create_user,
        super::accounts::get_user,
        super::accounts::update_user,
        super::accounts::delete_user,
        super::accounts::list_robots,
        super::accounts::create_robot,
        super::accounts::get_robot,
        super::accounts::delete_robot,
        super::accounts::rotate_robot,
        super::routing::list_routes,
        super::routing::routes_health,
    ),
    components(schemas(crate::manage::formats::Format))
)]
pub struct ApiDoc;

/// The document as pretty JSON, as checked in.
pub fn document() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

/// `GET /admin/v1/openapi.json`.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route(
        "/admin/v1/openapi.json",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], document()).into_response() }),
    )
}

#[cfg(test)]
mod tests {
    /// The checked-in document, which `REGBRIDGE_UPDATE_OPENAPI=1 cargo test -p regbridge-proxy --lib openapi`
    /// rewrites after an API change.
    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let generated = super::document();
        if std::env::var_os("REGBRIDGE_UPDATE_OPENAPI").is_some() {
            std::fs::write(CHECKED_IN, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from the API's annotations: run \
             `REGBRIDGE_UPDATE_OPENAPI=1 cargo test -p regbridge-proxy --lib openapi` and commit the file"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
        for path in ["/admin/v1/credentials", "/admin/v1/repositories/{name}", "/admin/v1/registries/{id}"] {
            assert!(doc["paths"][path].is_object(), "{path} is documented");
        }
    }
}
