//! Small helpers over the bucket: optional reads, create-only and conditional writes, and the mapping of
//! `object_store` errors to the registry's.

use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{CopyMode, CopyOptions, ObjectMeta, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use regbridge::{Error, Result};

use super::ObjectStorage;

/// How many times a conditional read-modify-write is retried when another writer won the race.
pub(super) const CAS_ATTEMPTS: u32 = 64;

/// A storage failure, naming the operation and the key (keys hold no secrets).
pub(super) fn store_err(what: &str, path: &Path, e: object_store::Error) -> Error {
    Error::internal(format!("object storage: {what} {path}"), e)
}

/// An object's bytes with the version a conditional write needs.
pub(super) struct Versioned {
    pub(super) bytes: Bytes,
    pub(super) version: UpdateVersion,
}

/// A short, randomised pause before retrying a lost compare-and-swap, so racing writers spread out.
pub(super) async fn backoff(attempt: u32) {
    use rand::Rng;
    let ms = rand::thread_rng().gen_range(1..=(2 * u64::from(attempt.min(25)) + 2));
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl ObjectStorage {
    /// The object at `path`, or `None` when there is none.
    pub(super) async fn get_optional(&self, path: &Path) -> Result<Option<Bytes>> {
        Ok(self.get_versioned(path).await?.map(|v| v.bytes))
    }

    /// The object at `path` with its version, or `None`.
    pub(super) async fn get_versioned(&self, path: &Path) -> Result<Option<Versioned>> {
        let result = match self.bucket.get(path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err("read", path, e)),
        };
        let version = UpdateVersion { e_tag: result.meta.e_tag.clone(), version: result.meta.version.clone() };
        let bytes = result.bytes().await.map_err(|e| store_err("read", path, e))?;
        Ok(Some(Versioned { bytes, version }))
    }

    /// The metadata of the object at `path`, or `None`.
    pub(super) async fn head_optional(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        match self.bucket.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err("stat", path, e)),
        }
    }

    /// Writes `bytes` at `path`, replacing what is there.
    pub(super) async fn put(&self, path: &Path, bytes: impl Into<PutPayload>) -> Result<()> {
        self.bucket.put(path, bytes.into()).await.map(drop).map_err(|e| store_err("write", path, e))
    }

    /// Writes `bytes` at `path` only if nothing is there; false when something was.
    pub(super) async fn put_create(&self, path: &Path, bytes: impl Into<PutPayload>) -> Result<bool> {
        self.put_conditional(path, bytes, None).await
    }

    /// Writes content-addressed `bytes` at `path` unless something is there. Where the store has no
    /// create-only put (S3 with conditional puts disabled) an existing object is kept and a missing one
    /// written: the same verified bytes a racing replica would write.
    pub(super) async fn put_content(&self, path: &Path, bytes: Bytes) -> Result<()> {
        match self.bucket.put_opts(path, bytes.clone().into(), PutOptions::from(PutMode::Create)).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(()),
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                if self.head_optional(path).await?.is_none() {
                    self.put(path, bytes).await?;
                }
                Ok(())
            }
            Err(e) => Err(store_err("write", path, e)),
        }
    }

    /// A conditional write: create-only with `None`, else only over exactly `version`. False when the
    /// condition failed (another writer got there first).
    pub(super) async fn put_conditional(
        &self,
        path: &Path,
        bytes: impl Into<PutPayload>,
        version: Option<UpdateVersion>,
    ) -> Result<bool> {
        let mode = version.map(PutMode::Update).unwrap_or(PutMode::Create);
        match self.bucket.put_opts(path, bytes.into(), PutOptions::from(mode)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(store_err("conditional write", path, e)),
        }
    }

    /// Like [`Self::put_conditional`], returning the new version when the write won.
    pub(super) async fn put_versioned(
        &self,
        path: &Path,
        bytes: impl Into<PutPayload>,
        version: Option<UpdateVersion>,
    ) -> Result<Option<UpdateVersion>> {
        let mode = version.map(PutMode::Update).unwrap_or(PutMode::Create);
        match self.bucket.put_opts(path, bytes.into(), PutOptions::from(mode)).await {
            Ok(r) => Ok(Some(r.into())),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(store_err("conditional write", path, e)),
        }
    }

    /// Deletes `path`; a missing object is fine (deletes are idempotent on every store).
    pub(super) async fn delete(&self, path: &Path) -> Result<()> {
        match self.bucket.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err("delete", path, e)),
        }
    }

    /// Copies `from` to `to` unless `to` exists. Content-addressed targets only: where the store cannot copy
    /// create-only (S3 without a copy-if-not-exists setting) an existing target is kept and a missing one
    /// is copied over, which writes the same verified bytes a racing replica would.
    pub(super) async fn copy_create(&self, from: &Path, to: &Path) -> Result<()> {
        let create = CopyOptions::new().with_mode(CopyMode::Create);
        match self.bucket.copy_opts(from, to, create).await {
            Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented { .. }) => {
                if self.head_optional(to).await?.is_some() {
                    return Ok(());
                }
                self.bucket.copy_opts(from, to, CopyOptions::new()).await.map_err(|e| store_err("copy", to, e))
            }
            Err(e) => Err(store_err("copy", to, e)),
        }
    }

    /// Deletes every object under `prefix`, in the store's bulk deletes (1,000 keys a request on S3).
    pub(super) async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        use futures_util::{StreamExt, TryStreamExt};
        let locations = self.bucket.list(Some(prefix)).map_ok(|m| m.location).boxed();
        let mut deleted = self.bucket.delete_stream(locations);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err("delete under", prefix, e)),
            }
        }
        Ok(())
    }
}
