//! What every request shares: settings, storage, keys, users, routes and the caches around them.

use std::sync::Arc;

use regbridge_providers::local::{Storage, TokenSigner};

use crate::config::ServeConfig;
use crate::forward::location::LocationSigner;
use crate::routing::RoutingTable;
use crate::users::Users;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Settings.
    pub config: ServeConfig,
    /// The local storage.
    pub storage: Arc<dyn Storage>,
    /// Signs and verifies tokens.
    pub signer: TokenSigner,
    /// Configured users, and the verifier every account's password goes through.
    pub users: Users,
    /// Users and robot accounts of the management API (`DATA_DIR/accounts.db`).
    pub accounts: crate::accounts::AccountStore,
    /// Which provider serves which names.
    pub routes: RoutingTable,
    /// Signs upload locations of upstream routes.
    pub locations: LocationSigner,
    /// A plain HTTP client (no credentials) for following presigned blob redirects.
    pub http: reqwest::Client,
    /// Registry connections (`/admin/v1/registries`, and routes with `connection = "NAME"`).
    pub connections: crate::connections::ConnectionStore,
    /// This server's metric handles.
    pub meters: crate::observe::meters::Meters,
    /// Recent insufficient-scope refusals (see [`crate::pipeline::reply::insufficient_scope`]).
    pub scope_refusals: crate::pipeline::refusals::ScopeRefusals,
    /// The last gc of `POST /admin/v1/gc`, and whether one runs.
    pub gc: std::sync::Mutex<crate::manage::gc::GcStatus>,
}
