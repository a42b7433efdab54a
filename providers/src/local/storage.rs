//! The storage behind the embedded registry: repositories, content-addressed blobs, upload sessions,
//! manifests, tags and referrers.
//!
//! [`Storage`] is the seam an object-storage backend plugs into; [`super::fs::FsStorage`] is the
//! filesystem implementation. Every method takes validated names and digests, so a backend never sees
//! untrusted path text.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{Permissions, Result};
use serde::{Deserialize, Serialize};

/// How long an upload session may receive nothing before it expires: a day, long enough for any
/// client that pauses a push, short enough that abandoned uploads do not fill the disk for a week
/// (distribution's default is a week).
pub const DEFAULT_UPLOAD_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// A change to a repository's metadata, applied under the storage's lock, or (object storage) to the
/// version read, again to a newer one when a compare-and-swap loses: so it may run more than once.
pub type MetaUpdate = Box<dyn for<'a> Fn(&'a mut RepositoryMeta) + Send + Sync + 'static>;

/// A stream of body bytes, as request and response bodies are.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What is kept about a repository besides its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryMeta {
    /// The routable name.
    pub name: String,
    /// The account that owns it; credentials of other accounts need a grant.
    pub owner: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Cross-account grants: the accounts allowed each permission level.
    #[serde(default)]
    pub grants: BTreeMap<Permissions, BTreeSet<String>>,
}

impl RepositoryMeta {
    /// Whether `account` may pull (`push == false`) or push this repository.
    pub fn allows(&self, account: &str, push: bool) -> bool {
        if account == self.owner {
            return true;
        }
        let granted = |level: Permissions| self.grants.get(&level).is_some_and(|s| s.contains(account));
        granted(Permissions::PushPull) || (!push && granted(Permissions::Pull))
    }
}

/// A manifest as stored: its bytes exactly as pushed, and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// The media type it was pushed with.
    pub media_type: String,
    /// Its digest (of `bytes`).
    pub digest: Digest,
    /// The bytes.
    pub bytes: Bytes,
    /// The digest of its `subject`, when it has one.
    pub subject: Option<Digest>,
}

/// What a manifest needs in its repository before it may be stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Blobs (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests (the entries of an index).
    pub manifests: Vec<Digest>,
}

/// A descriptor listed by the referrers API (image-spec `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerDescriptor {
    /// The referrer's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// `artifactType`, or the config's media type where the manifest has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Its annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// A blob to read: its total size and the bytes of the requested range.
pub struct BlobRead {
    /// The blob's full size.
    pub size: u64,
    /// The inclusive byte range being returned, when a range was asked for.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub body: ByteStream,
}

/// One page of a sorted listing (repository names or tags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// The names, sorted (byte order), all after the `after` asked for.
    pub names: Vec<String>,
    /// Whether names follow the last one of this page.
    pub more: bool,
}

impl ListPage {
    /// The page of `sorted` after `after` (exclusive), at most `limit`: what every backend must answer,
    /// computed over a whole list (the default implementations, and a reference for tests).
    pub fn of_sorted(sorted: Vec<String>, after: Option<&str>, limit: usize) -> Self {
        let start = after.map_or(0, |a| sorted.partition_point(|n| n.as_str() <= a));
        let mut names: Vec<String> = sorted.into_iter().skip(start).take(limit.saturating_add(1)).collect();
        let more = names.len() > limit;
        names.truncate(limit);
        Self { names, more }
    }
}

/// The storage of the embedded registry. Reads of a blob or manifest go through a repository: content is
/// shared between repositories, but a repository sees only what was pushed or mounted into it.
#[async_trait]
pub trait Storage: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a repository owned by `owner`, or returns the existing one unchanged.
    async fn create_repository(&self, name: &RepositoryName, owner: &str) -> Result<RepositoryMeta>;
    /// The repository, when it exists.
    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryMeta>>;
    /// Rewrites a repository's metadata under a lock (read-modify-write of grants).
    async fn update_repository(&self, name: &RepositoryName, update: MetaUpdate) -> Result<RepositoryMeta>;
    /// Deletes a repository with its tags and manifests; `NotFound` when missing.
    async fn delete_repository(&self, name: &RepositoryName) -> Result<()>;
    /// Every repository name, sorted.
    async fn list_repositories(&self) -> Result<Vec<String>>;
    /// The repository names after `after` (exclusive; any string, it need not be a name), at most
    /// `limit`, sorted as [`Self::list_repositories`] sorts them, and whether more follow.
    ///
    /// The default reads the whole list: correct on every backend, but O(repositories) a page. A backend
    /// overrides it where it can seek (an index, or the store's own ordered listing), so a page costs
    /// O(`limit`) plus the seek.
    async fn list_repositories_page(&self, after: Option<&str>, limit: usize) -> Result<ListPage> {
        Ok(ListPage::of_sorted(self.list_repositories().await?, after, limit))
    }

    /// The size of blob `digest` in `repo`, when the repository has it.
    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;
    /// Reads blob `digest` of `repo`, optionally an inclusive byte range (`end` past the blob is
    /// clamped; a start past it is `RANGE_INVALID`).
    async fn read_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead>;
    /// Makes blob `digest` (already stored for `from`) visible in `repo`: a cross-repository mount.
    /// Returns false when `from` does not have it.
    async fn mount_blob(&self, repo: &RepositoryName, from: &RepositoryName, digest: &Digest) -> Result<bool>;
    /// Removes blob `digest` from `repo` (the content stays while other repositories use it).
    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()>;
    /// A short-lived URL that serves blob `digest` (which the caller has checked `repo` has) straight from
    /// storage, when the backend can presign one.
    ///
    /// The default is `None`: the registry streams the blob itself ([`super::fs::FsStorage`] does). A backend
    /// that presigns signs a GET of the blob's bytes only, valid for about `ttl`, and carries no credential
    /// of the registry's in it beyond the storage's own signature; [`super::presign::Presigner`] does that
    /// over an `object_store` signer.
    async fn blob_download_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        let _ = (digest, ttl);
        Ok(None)
    }

    /// Opens an upload session for `repo`, returning its id.
    async fn start_upload(&self, repo: &RepositoryName) -> Result<String>;
    /// Bytes received so far by upload `id`.
    async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64>;
    /// Appends `body` to upload `id`, returning the new size. With `range` (the inclusive `Content-Range`
    /// of a chunk), the chunk must start where the upload ends (`RANGE_INVALID` otherwise) and have exactly
    /// that many bytes (`SIZE_INVALID` otherwise).
    ///
    /// All or nothing: when this fails (a refused chunk, a body that ends with an error, a failed write),
    /// the upload is left exactly as it was before the call, its size and its hash state.
    async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64>;
    /// Verifies upload `id` against `digest` and stores it as a blob of `repo`; `DIGEST_INVALID` (and the
    /// upload discarded) when the bytes hash to something else. Returns the blob's size.
    async fn finish_upload(&self, repo: &RepositoryName, id: &str, digest: &Digest) -> Result<u64>;
    /// Discards upload `id`.
    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()>;

    /// Stores a manifest under its digest, records `referrer` under its subject, and tags it when `tag` is
    /// given; `MANIFEST_BLOB_UNKNOWN` when something in `references` is not in `repo` (checked with
    /// [`super::check_references`]). Validation of shape and digest happens before, in
    /// [`super::store_manifest`].
    ///
    /// # Contract
    ///
    /// Once this returns `Ok`, no garbage collection — one running now, or any later — deletes the
    /// manifest or anything in `references` while the manifest exists, whatever its grace period. An
    /// implementation fences the check and the write against the collection's sweep (the filesystem's:
    /// [`super::fence`]); a collection that deleted a reference first makes this fail instead.
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        references: &References,
        referrer: Option<ReferrerDescriptor>,
        tag: Option<&Tag>,
    ) -> Result<()>;
    /// The manifest `reference` of `repo`, when it exists.
    async fn get_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<Option<StoredManifest>>;
    /// Deletes a manifest by digest (with the tags pointing at it) or a tag alone; `NotFound` when missing.
    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()>;
    /// The tags of `repo`, sorted; `NotFound` when the repository does not exist.
    async fn list_tags(&self, repo: &RepositoryName) -> Result<Vec<String>>;
    /// The tags of `repo` after `after` (exclusive; any string), at most `limit`, sorted, and whether more
    /// follow; `NotFound` when the repository does not exist. The default reads the whole list, as
    /// [`Self::list_repositories_page`]'s does.
    async fn list_tags_page(&self, repo: &RepositoryName, after: Option<&str>, limit: usize) -> Result<ListPage> {
        Ok(ListPage::of_sorted(self.list_tags(repo).await?, after, limit))
    }
    /// The manifests of `repo` whose subject is `subject`.
    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<ReferrerDescriptor>>;
    /// Records the event `name` (64 lowercase hex digits, e.g. a SHA-256) as seen now, and says whether any
    /// server on this storage recorded it within the last `within`: memory that replicas behind a load
    /// balancer share (a refusal the proxy must answer differently when it is repeated). Only the last
    /// `within` is kept, so what this stores stays bounded. Storage one server owns needs no such memory
    /// (that server's own decides): the default records nothing and answers `false`.
    async fn seen_recently(&self, name: &str, within: Duration) -> Result<bool> {
        let _ = (name, within);
        Ok(false)
    }

    /// This storage as garbage collection sees it ([`super::gc::collect`]), when it can be collected.
    fn collectable(&self) -> Option<&dyn super::gc::collectable::Collectable> {
        None
    }
}
