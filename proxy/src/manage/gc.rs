//! Garbage collection, for `regbridge gc` and `POST /admin/v1/gc`: the storage's mark and sweep (fs or
//! object storage, one collector at a time through the lease), or (`cloud`) the expired credentials
//! regbridge minted in the routes' cloud registries.

use std::path::Path;

use chrono::{DateTime, Utc};
use regbridge::{Error, Result};
use regbridge_providers::local::Storage;
use regbridge_providers::local::gc::{GcOptions, GcReport, collect};
use serde::Serialize;

use crate::config_file::RouteConfig;
use crate::storage_config::{StorageConfig, StorageUrl, open_storage};

/// Collects `storage` (the server's own, or one opened by [`open_configured`]); `progress(done, total)`
/// is called as blobs are examined.
pub async fn local(
    storage: &dyn Storage,
    options: &GcOptions,
    progress: impl FnMut(usize, usize) + Send,
) -> Result<GcReport> {
    let collectable =
        storage.collectable().ok_or_else(|| Error::bad_input("this storage cannot be garbage collected"))?;
    collect(collectable, options, progress).await
}

/// Opens the storage `[storage]` names, as `serve` does, for `regbridge gc` on this host. Local storage
/// must exist already (a wrong `--data-dir` must not create an empty one and report nothing to collect).
pub fn open_configured(
    storage: &StorageConfig,
    data_dir: &Path,
    options: &GcOptions,
) -> Result<std::sync::Arc<dyn Storage>> {
    if let StorageUrl::Fs(_) = storage.url {
        let root = storage.fs_root(data_dir)?;
        if !root.is_dir() {
            return Err(Error::bad_input(format!(
                "no local storage at {}; give the server's --data-dir or --config",
                root.display()
            )));
        }
    }
    open_storage(storage, data_dir, options.upload_expiry)
}

/// What the cloud cleanup did on one route.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CloudReport {
    /// The route's prefix.
    pub route: String,
    /// Its provider (`acr`).
    pub provider: String,
    /// The provider's report.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}

/// The cleanup of every route whose provider mints cloud-side credentials (ACR): expired tokens and their
/// scope maps. ECR and GAR mint nothing that stays behind.
pub async fn cloud(routes: &[RouteConfig]) -> Result<Vec<CloudReport>> {
    let mut reports = Vec::new();
    for route in routes.iter().filter(|r| r.provider == "acr") {
        #[cfg(feature = "acr")]
        {
            let report = crate::cloud::acr::cleanup_expired_tokens(route).await?;
            tracing::info!(
                route = %route.prefix,
                tokens_deleted = report.tokens_deleted.len(),
                scope_maps_deleted = report.scope_maps_deleted.len(),
                tokens_kept = report.tokens_kept,
                "gc: cleaned the route's expired tokens"
            );
            let report = serde_json::to_value(&report).map_err(|e| Error::internal("gc report", e))?;
            reports.push(CloudReport { route: route.prefix.clone(), provider: "acr".into(), report });
        }
        #[cfg(not(feature = "acr"))]
        return Err(Error::bad_input(format!(
            "route {:?} is an acr route, and this binary was built without ACR",
            route.prefix
        )));
    }
    Ok(reports)
}

/// The last gc, and whether one runs.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcStatus {
    /// A collection runs now.
    pub running: bool,
    /// When the last one finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its report (or error).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub last: Option<serde_json::Value>,
}
