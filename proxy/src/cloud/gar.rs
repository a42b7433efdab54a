//! Google Artifact Registry routes: the `[routes.gar]` settings and the provider built from them.

use regbridge::{Error, Result};
use serde::Deserialize;

use crate::config_file::RouteConfig;

/// The `[routes.gar]` table of a `provider = "gar"` route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

/// The provider of a `gar` route.
pub(super) async fn provider(r: &RouteConfig) -> Result<regbridge::DynArtifactRegistry> {
    let _ = &r.gar;
    Err(Error::unsupported("gar routes", "this build"))
}
