//! [`ObjectStorage`]: the embedded registry's storage on an object store (S3, GCS, Azure Blob, or
//! `object_store`'s in-memory store), with the filesystem's guarantees kept through the store's own
//! primitives instead of renames and a process-local lock:
//!
//! * blobs are content-addressed and verified before they appear, committed with a create-only copy or
//!   put (two replicas committing the same blob is harmless);
//! * repository metadata is read-modify-written with compare-and-swap on ETag/version, bounded retries;
//! * upload sessions live in the bucket (module `upload`), so any replica can continue or finish one;
//! * the catalog and tags are one key each, listed in order from an offset, so a page costs O(page);
//! * manifest writes take part in the gc fence ([`super::fence`]) through intent and sweep objects, and
//!   garbage collection runs over the bucket's listings (module `gc`).
//!
//! The key layout is in the module `keys`.

mod blobs;
mod fence;
mod finish;
mod gc;
mod keys;
mod listing;
mod manifests;
mod meta;
mod seen;
mod store;
#[cfg(test)]
mod tests;
mod upload;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use regbridge::Result;
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};

use super::storage::{
    BlobRead, ByteStream, DEFAULT_UPLOAD_EXPIRY, ListPage, MetaUpdate, References, ReferrerDescriptor, RepositoryMeta,
    Storage, StoredManifest,
};
use keys::Keys;

use super::presign::Presigner;

/// An object store that can also do multipart uploads part by part (S3, GCS, Azure, InMemory all are).
pub trait Bucket: object_store::ObjectStore + object_store::multipart::MultipartStore {}
impl<T: object_store::ObjectStore + object_store::multipart::MultipartStore> Bucket for T {}

/// Registry storage in an object-store bucket, under a key prefix. Any number of instances (replicas) may
/// share one bucket and prefix: everything another instance needs is in the bucket.
pub struct ObjectStorage {
    bucket: Arc<dyn Bucket>,
    keys: Keys,
    upload_expiry: Duration,
    /// How long a request holds an upload session without renewing ([`upload::LEASE`]; shorter in tests).
    lease: Duration,
    /// Hash states of the uploads this instance appended to last (a cache: see [`upload`]).
    hashes: Mutex<HashMap<String, upload::UploadHash>>,
    /// Signs blob GET URLs, where the store can ([`ObjectStorage::with_presigner`]).
    presigner: Option<Presigner>,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage")
            .field("bucket", &self.bucket.to_string())
            .field("keys", &self.keys)
            .field("upload_expiry", &self.upload_expiry)
            .finish_non_exhaustive()
    }
}

impl ObjectStorage {
    /// Storage in `bucket` under `prefix` (`""` for the whole bucket, `"registry"` or `"a/b"` for a part).
    pub fn new(bucket: Arc<dyn Bucket>, prefix: &str) -> Self {
        Self {
            bucket,
            keys: Keys::new(prefix),
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            lease: upload::LEASE,
            hashes: Mutex::new(HashMap::new()),
            presigner: None,
        }
    }

    /// Blob GETs may be answered with URLs `presigner` signs for the blob's key (S3, GCS and Azure can
    /// sign; `InMemory` cannot, and without a presigner blobs are streamed).
    pub fn with_presigner(mut self, presigner: Presigner) -> Self {
        self.presigner = Some(presigner);
        self
    }

    /// Upload sessions that received nothing for `expiry` are unknown from then on (`BLOB_UPLOAD_UNKNOWN`);
    /// default [`DEFAULT_UPLOAD_EXPIRY`]. Replicas sharing a bucket should use the same value.
    pub fn with_upload_expiry(mut self, expiry: Duration) -> Self {
        self.upload_expiry = expiry;
        self
    }
}

#[async_trait]
impl Storage for ObjectStorage {
    async fn create_repository(&self, name: &RepositoryName, owner: &str) -> Result<RepositoryMeta> {
        self.create_meta(name, owner).await
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryMeta>> {
        self.read_meta(name).await
    }

    async fn update_repository(&self, name: &RepositoryName, update: MetaUpdate) -> Result<RepositoryMeta> {
        self.update_meta(name, update).await
    }

    async fn delete_repository(&self, name: &RepositoryName) -> Result<()> {
        self.delete_meta(name).await
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        self.all_repositories().await
    }

    async fn list_repositories_page(&self, after: Option<&str>, limit: usize) -> Result<ListPage> {
        let (names, more) = self.repositories_after(after, limit).await?;
        Ok(ListPage { names, more })
    }

    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        self.linked_blob_size(repo, digest).await
    }

    async fn read_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead> {
        self.read_linked_blob(repo, digest, range).await
    }

    async fn mount_blob(&self, repo: &RepositoryName, from: &RepositoryName, digest: &Digest) -> Result<bool> {
        if self.linked_blob_size(from, digest).await?.is_none() {
            return Ok(false);
        }
        self.link_blob(repo, digest).await?;
        Ok(true)
    }

    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.unlink_blob(repo, digest).await
    }

    async fn blob_download_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        match &self.presigner {
            Some(presigner) => presigner.get_url(&self.keys.blob(digest), ttl).await.map(Some),
            None => Ok(None),
        }
    }

    async fn start_upload(&self, repo: &RepositoryName) -> Result<String> {
        self.start_session(repo).await
    }

    async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64> {
        Ok(self.session(repo, id).await?.0.size)
    }

    async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        self.append_session(repo, id, range, body).await
    }

    async fn finish_upload(&self, repo: &RepositoryName, id: &str, digest: &Digest) -> Result<u64> {
        self.finish_session(repo, id, digest).await
    }

    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let (session, _) = self.session(repo, id).await?;
        self.take_hash(id);
        self.discard_session(id, &session).await;
        Ok(())
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        references: &References,
        referrer: Option<ReferrerDescriptor>,
        tag: Option<&Tag>,
    ) -> Result<()> {
        self.store_manifest(repo, manifest, references, referrer, tag).await
    }

    async fn get_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<Option<StoredManifest>> {
        self.load_manifest(repo, reference).await
    }

    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()> {
        self.remove_manifest(repo, reference).await
    }

    async fn list_tags(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        self.all_tags(repo).await
    }

    async fn list_tags_page(&self, repo: &RepositoryName, after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.require_listed(repo).await?;
        let (names, more) = self.tags_after(repo, after, limit).await?;
        Ok(ListPage { names, more })
    }

    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<ReferrerDescriptor>> {
        self.list_referrers(repo, subject).await
    }

    async fn seen_recently(&self, name: &str, within: Duration) -> Result<bool> {
        self.record_seen(name, within).await
    }

    fn collectable(&self) -> Option<&dyn crate::local::gc::collectable::Collectable> {
        Some(self)
    }
}
