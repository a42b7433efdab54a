//! Azure Container Registry routes: the `[routes.acr]` settings and the provider built from them.

use regbridge::{Error, Result};
use serde::Deserialize;

use crate::config_file::RouteConfig;

/// The `[routes.acr]` table of a `provider = "acr"` route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

/// The provider of a `acr` route.
pub(super) async fn provider(r: &RouteConfig) -> Result<regbridge::DynArtifactRegistry> {
    let _ = &r.acr;
    Err(Error::unsupported("acr routes", "this build"))
}
