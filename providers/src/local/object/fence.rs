//! The manifest-write side of the gc fence ([`crate::local::fence`]) on object storage: the same records
//! as on the filesystem, as objects — an intent written create-only, sweeps judged live by the store's
//! last-modified time.

use std::time::Instant;

use futures_util::TryStreamExt;
use object_store::path::Path;
use regbridge::Result;
use regbridge::oci::Digest;

use super::ObjectStorage;
use super::store::store_err;
use crate::local::fence::{MAX_WAIT, SWEEP_LEASE, intent_bytes, sweep_too_long};

/// A manifest write's intent object. Removed by [`Intent::drop_now`]; a write cancelled midway (the client
/// went away) removes it from `Drop` on a spawned task.
pub(super) struct Intent {
    bucket: std::sync::Arc<dyn super::Bucket>,
    path: Option<Path>,
}

impl Intent {
    /// Removes the intent (step 5 of a write).
    pub(super) async fn drop_now(mut self) {
        if let Some(path) = self.path.take() {
            // One delete; an intent left behind only makes collections keep a few blobs until it is stale.
            let _ = object_store::ObjectStoreExt::delete(&*self.bucket, &path).await;
        }
    }
}

impl Drop for Intent {
    fn drop(&mut self) {
        if let (Some(path), Ok(handle)) = (self.path.take(), tokio::runtime::Handle::try_current()) {
            let bucket = self.bucket.clone();
            handle.spawn(async move {
                let _ = object_store::ObjectStoreExt::delete(&*bucket, &path).await;
            });
        }
    }
}

impl ObjectStorage {
    /// Records the intent of a write naming `digests` (step 1).
    pub(super) async fn begin_intent(&self, digests: &[&Digest]) -> Result<Intent> {
        let path = self.keys.gc_intent(&uuid::Uuid::new_v4().simple().to_string());
        self.put_create(&path, intent_bytes(digests)).await?;
        Ok(Intent { bucket: self.bucket.clone(), path: Some(path) })
    }

    /// Waits until no live sweep record exists (step 2).
    pub(super) async fn wait_for_sweeps(&self) -> Result<()> {
        let prefix = self.keys.gc_sweeps();
        let started = Instant::now();
        loop {
            let sweeps: Vec<_> =
                self.bucket.list(Some(&prefix)).try_collect().await.map_err(|e| store_err("list", &prefix, e))?;
            let now = chrono::Utc::now();
            let lease = chrono::Duration::from_std(SWEEP_LEASE).expect("lease fits");
            if !sweeps.iter().any(|s| now - s.last_modified < lease) {
                return Ok(());
            }
            if started.elapsed() > MAX_WAIT {
                return Err(sweep_too_long());
            }
            // Polling a listing is a request each time: slower than the filesystem's 20 ms.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
