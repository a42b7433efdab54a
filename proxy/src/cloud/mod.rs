//! The providers of cloud routes (`ecr`, `gar`, `acr`), built from a route's settings.

#[cfg(feature = "acr")]
#[cfg_attr(docsrs, doc(cfg(feature = "acr")))]
pub mod acr;
#[cfg(feature = "ecr")]
pub(crate) mod ecr;
#[cfg(feature = "gar")]
#[cfg_attr(docsrs, doc(cfg(feature = "gar")))]
pub mod gar;

use std::sync::Arc;

use regbridge::{DynArtifactRegistry, Error, Result};

use crate::config_file::RouteConfig;

/// The provider of a cloud route, when this binary has it.
pub(crate) async fn provider(r: &RouteConfig) -> Result<DynArtifactRegistry> {
    match r.provider.as_str() {
        #[cfg(feature = "ecr")]
        "ecr" => Ok(Arc::new(ecr::provider(r).await?)),
        #[cfg(feature = "gar")]
        "gar" => gar::provider(r).await,
        #[cfg(feature = "acr")]
        "acr" => acr::provider(r).await,
        other => Err(Error::bad_input(format!("provider {other:?} is not built into this binary"))),
    }
}
