//! [`Collectable`]: what a garbage collection needs of a storage backend, so one collection
//! ([`super::collect`]) serves the filesystem and every object store. Enumerations instead of directory
//! walks, deletions of what a collection removes, and the records of the fence ([`crate::local::fence`])
//! and of the collector lease ([`super::lease`]).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use regbridge::Result;
use regbridge::oci::{Digest, RepositoryName};

/// A blob's content as a collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// How long ago it was last written or used by a push (linked into a repository again): the grace
    /// period spares blobs more recently touched than that.
    pub idle: Duration,
}

/// An upload session as a collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// Its id.
    pub id: String,
    /// The bytes it holds.
    pub size: u64,
    /// How long it has received nothing.
    pub idle: Duration,
}

/// The version of the lease record a compare-and-swap writes over (an ETag and object version, or a
/// generation on the filesystem). Opaque: only the backend that returned it reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseVersion(pub(crate) String);

/// A storage a collection can run over. Every method takes names, digests and ids that the backend's own
/// enumerations returned or that were validated, and tolerates what concurrent writers do meanwhile
/// (an entry listed, then gone, is skipped).
#[async_trait]
pub trait Collectable: Send + Sync {
    /// Every repository that may hold manifests (what the storage's `list_repositories` lists, at least).
    async fn gc_repositories(&self) -> Result<Vec<RepositoryName>>;
    /// The digests of the manifests stored in `repo`.
    async fn manifest_digests(&self, repo: &RepositoryName) -> Result<Vec<Digest>>;
    /// The digests of the blobs linked into `repo` (what it may read).
    async fn blob_links(&self, repo: &RepositoryName) -> Result<Vec<Digest>>;
    /// The stored bytes of `digest` (a manifest's, for the mark), when it exists.
    async fn blob_content(&self, digest: &Digest) -> Result<Option<Bytes>>;
    /// Whether content `digest` is stored.
    async fn has_blob(&self, digest: &Digest) -> Result<bool>;
    /// Every blob in storage.
    async fn blobs(&self) -> Result<Vec<StoredBlob>>;
    /// Deletes the content of `digest` (not the links to it); false when it was already gone.
    async fn remove_blob(&self, digest: &Digest) -> Result<bool>;
    /// Removes `repo`'s link to `digest`, as the storage's `delete_blob` does (`NotFound` when it has none).
    /// A method of its own so this trait needs nothing of `Storage`, which hands it out.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()>;
    /// Every upload session, live or not.
    async fn uploads(&self) -> Result<Vec<UploadSession>>;
    /// Removes upload session `id` with everything it stored (on object storage: aborts its multipart
    /// upload, deletes its tail and staged object).
    async fn remove_upload(&self, id: &str) -> Result<()>;
    /// Removes (or, with `dry_run`, counts) what interrupted writes left behind, older than `min_age`:
    /// staging files on the filesystem, superseded tails of upload sessions on object storage. Returns how
    /// many and their bytes.
    async fn remove_strays(&self, min_age: Duration, dry_run: bool) -> Result<(usize, u64)>;

    /// Writes a new sweep record (step 1 of a sweep), returning its name.
    async fn record_sweep(&self) -> Result<String>;
    /// Refreshes sweep record `name`, so manifest writes keep taking it for live.
    async fn refresh_sweep(&self, name: &str) -> Result<()>;
    /// Removes sweep record `name`.
    async fn remove_sweep(&self, name: &str) -> Result<()>;
    /// Removes the sweep records of collections that died (they are ignored anyway).
    async fn remove_dead_sweeps(&self) -> Result<()>;
    /// Every digest named by a manifest write's intent (step 2 of a sweep); intents too old to belong to a
    /// running write are removed instead.
    async fn intended(&self) -> Result<Vec<Digest>>;

    /// The collector lease record and its version, when there is one.
    async fn read_lease(&self) -> Result<Option<(Bytes, LeaseVersion)>>;
    /// Writes the lease record: create-only with `over == None`, else only over exactly that version.
    /// `None` when the condition failed (another collector wrote first).
    async fn write_lease(&self, bytes: Bytes, over: Option<&LeaseVersion>) -> Result<Option<LeaseVersion>>;
}
