//! [`FsStorage`]: the embedded registry's storage on a local filesystem.
//!
//! Layout under the root (names and digests are validated before they become paths):
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>          content, written once, verified before it appears
//! uploads/<id>/data, uploads/<id>/repo  upload sessions (survive restarts)
//! repositories/<name>/_meta.json        owner, creation time, cross-account grants
//! repositories/<name>/_layers/<alg>/<hex>       the blobs this repository may read
//! repositories/<name>/_manifests/<alg>/<hex>    {mediaType, subject} of its manifests
//! repositories/<name>/_tags/<tag>               the digest a tag points at
//! repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   referrer descriptors
//! tmp/                                          staging for atomic renames
//! gc/intents/<uuid>, gc/sweeps/<uuid>           the fence between manifest writes and gc (`fence`)
//! index.sqlite, index.lock                      the listing index and its write lock (`index`)
//! gc/lease/<generation>                         one collector at a time (`gc::lease`)
//! ```
//!
//! Every file that becomes visible is written elsewhere first and renamed into place, so a killed
//! server leaves either the old state or the new one, never a partial file. Repository path components
//! never start with `_`, so the `_*` entries cannot collide with nested repositories.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use regbridge::oci::{Algorithm, Digest, Digester, Reference, RepositoryName, Tag};
use regbridge::{Error, OciErrorCode, Resource, Result};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncSeekExt;

use super::fence;
use super::index::{Contents, INDEX_FILE, Index};
use super::storage::{
    BlobRead, ByteStream, ListPage, MetaUpdate, References, ReferrerDescriptor, RepositoryMeta, Storage, StoredManifest,
};

/// Read buffer for blob downloads: large enough that a 1 GiB blob is a few thousand reads.
const READ_CHUNK: usize = 256 * 1024;

/// How many manifests the read cache keeps before it starts over.
const MANIFEST_CACHE_ENTRIES: usize = 4096;

fn io_err(what: impl std::fmt::Display, e: std::io::Error) -> Error {
    Error::internal(format!("storage: {what}"), e)
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

pub use super::storage::DEFAULT_UPLOAD_EXPIRY;

/// Hash state of an upload kept between requests, valid while the upload file has `size` bytes.
#[derive(Debug)]
struct UploadHash {
    size: u64,
    digester: Digester,
    /// When it was kept: states of uploads idle past their expiry are dropped.
    kept: Instant,
}

/// Registry storage in a directory.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
    upload_expiry: Duration,
    hashes: Mutex<HashMap<String, UploadHash>>,
    meta_lock: tokio::sync::Mutex<()>,
    manifests: Mutex<HashMap<(String, String), StoredManifest>>,
    index: Index,
}

impl FsStorage {
    /// Storage rooted at `root`, created when missing. Its listing index (`index.sqlite`, see
    /// [`Self::index_path`]) is rebuilt from the directories when it is missing or incomplete, which takes
    /// a few seconds per 100,000 repositories.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs", "uploads", "repositories", "tmp"] {
            std::fs::create_dir_all(root.join(dir)).map_err(|e| io_err(format!("create {}", root.display()), e))?;
        }
        let index = Index::open(&root, || contents(&root))?;
        Ok(Self {
            index,
            root,
            upload_expiry: DEFAULT_UPLOAD_EXPIRY,
            hashes: Mutex::new(HashMap::new()),
            meta_lock: tokio::sync::Mutex::new(()),
            manifests: Mutex::new(HashMap::new()),
        })
    }

    /// Upload sessions that received nothing for `expiry` are unknown from then on
    /// (`BLOB_UPLOAD_UNKNOWN`), and `gc` removes them; default [`DEFAULT_UPLOAD_EXPIRY`].
    pub fn with_upload_expiry(mut self, expiry: Duration) -> Self {
        self.upload_expiry = expiry;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The listing index: removing it (with the server stopped) makes the next open rebuild it.
    pub fn index_path(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }

    /// Rebuilds the listing index from the directories, for when something other than this storage
    /// changed them (a restored backup); writes wait meanwhile.
    pub async fn rebuild_index(&self) -> Result<()> {
        let root = self.root.clone();
        self.index.rebuild(move || contents(&root)).await
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs").join(d.algorithm().as_str()).join(&d.hex()[..2]).join(d.hex())
    }

    fn repo_dir(&self, repo: &RepositoryName) -> PathBuf {
        self.root.join("repositories").join(repo.as_str())
    }

    fn layer_link(&self, repo: &RepositoryName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_layers").join(d.algorithm().as_str()).join(d.hex())
    }

    fn manifest_link(&self, repo: &RepositoryName, d: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_manifests").join(d.algorithm().as_str()).join(d.hex())
    }

    fn tag_path(&self, repo: &RepositoryName, tag: &str) -> PathBuf {
        self.repo_dir(repo).join("_tags").join(tag)
    }

    fn referrers_dir(&self, repo: &RepositoryName, subject: &Digest) -> PathBuf {
        self.repo_dir(repo).join("_referrers").join(subject.algorithm().as_str()).join(subject.hex())
    }

    fn referrer_path(&self, repo: &RepositoryName, subject: &Digest, d: &Digest) -> PathBuf {
        self.referrers_dir(repo, subject).join(format!("{}-{}", d.algorithm(), d.hex()))
    }

    fn upload_dir(&self, id: &str) -> Result<PathBuf> {
        // Ids are uuids we issued; anything else never becomes a path.
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::not_found(Resource::Upload, id));
        }
        Ok(self.root.join("uploads").join(id))
    }

    /// Writes `bytes` to `target` through a staged file and a rename.
    async fn write_atomic(&self, target: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
        tokio::fs::write(&tmp, bytes).await.map_err(|e| io_err("write staging file", e))?;
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_err("create directory", e))?;
        }
        tokio::fs::rename(&tmp, target).await.map_err(|e| io_err(format!("rename into {}", target.display()), e))
    }

    async fn exists(path: &Path) -> Result<bool> {
        tokio::fs::try_exists(path).await.map_err(|e| io_err(format!("stat {}", path.display()), e))
    }

    async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
        match tokio::fs::read(path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(format!("read {}", path.display()), e)),
        }
    }

    async fn remove_optional(path: &Path) -> Result<bool> {
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(format!("remove {}", path.display()), e)),
        }
    }

    async fn link_blob(&self, repo: &RepositoryName, d: &Digest) -> Result<()> {
        // A garbage collection running now must spare a blob a push is using, even an old one.
        let blob = self.blob_path(d);
        let _ = tokio::task::spawn_blocking(move || super::mtime::touch(&blob)).await;
        let link = self.layer_link(repo, d);
        if !Self::exists(&link).await? {
            self.write_atomic(&link, b"").await?;
        }
        Ok(())
    }

    async fn require_repo(&self, repo: &RepositoryName) -> Result<RepositoryMeta> {
        self.repository(repo).await?.ok_or_else(|| Error::not_found(Resource::Repository, repo.as_str()))
    }

    /// The directory of upload `id` of `repo`. An upload whose data was already stored as a blob (a
    /// server killed while finishing it leaves the directory without `data`) is unknown, as it is once
    /// finished normally.
    /// An upload idle for longer than the expiry is unknown too, whether or not gc removed it yet.
    async fn upload_of(&self, repo: &RepositoryName, id: &str) -> Result<PathBuf> {
        let dir = self.upload_dir(id)?;
        let unknown = || Error::not_found(Resource::Upload, id);
        match Self::read_optional(&dir.join("repo")).await? {
            Some(owner) if owner == repo.as_str().as_bytes() => {}
            _ => return Err(unknown()),
        }
        match tokio::fs::metadata(dir.join("data")).await {
            Ok(meta) if super::mtime::idle(&meta) <= self.upload_expiry => Ok(dir),
            Ok(_) => Err(unknown()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(unknown()),
            Err(e) => Err(io_err("stat upload", e)),
        }
    }

    fn forget_manifests(&self) {
        self.manifests.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn take_hash(&self, id: &str) -> Option<UploadHash> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).remove(id)
    }

    fn keep_hash(&self, id: &str, size: u64, digester: Digester) {
        let hash = UploadHash { size, digester, kept: Instant::now() };
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), hash);
    }
}

/// Chunks read ahead of the client, per download.
const READ_AHEAD: usize = 2;

/// `len` bytes of `file` from its position, read on a blocking thread up to [`READ_AHEAD`] chunks ahead of
/// the consumer: the next chunk comes off the disk while the previous one is being sent, instead of reads
/// and writes taking turns (hyper flushes a chunk before asking for the next one once its bounded write
/// buffer is full). Memory per download stays at a few chunks; a consumer that goes away stops the reads.
fn read_ahead(mut file: std::fs::File, len: u64) -> ByteStream {
    use std::io::Read as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut left = len;
        while left > 0 {
            let mut chunk = vec![0u8; READ_CHUNK.min(left as usize)];
            let sent = match file.read_exact(&mut chunk) {
                Ok(()) => {
                    left -= chunk.len() as u64;
                    tx.blocking_send(Ok(bytes::Bytes::from(chunk)))
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// Appends a stream to a file on a blocking thread, hashing as it goes, while the async side keeps
/// receiving: network and disk+hash overlap on two cores. Returns the bytes written and the hash state.
/// With `expected`, a body of any other length is an error (`SIZE_INVALID`), found as soon as it runs
/// over, so an oversized chunk is never read to its end. On any error the caller rolls the file back.
async fn append_hashing(
    path: PathBuf,
    mut hash: Option<Digester>,
    mut body: ByteStream,
    expected: Option<u64>,
) -> Result<(u64, Option<Digester>)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Option<Digester>)> {
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            if let Some(h) = hash.as_mut() {
                h.update(&chunk);
            }
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        out.flush()?;
        Ok((written, hash))
    });
    let mut received = 0u64;
    let mut failure = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if let Some(expected) = expected
                    && received > expected
                {
                    failure = Some(wrong_length(expected, format!("more than {expected}")));
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                failure = Some(Error::invalid(
                    OciErrorCode::BlobUploadInvalid,
                    format!("the request body ended with an error after {received} bytes: {e}"),
                ));
                break;
            }
        }
    }
    drop(tx);
    let (written, hash) = writer
        .await
        .map_err(|e| Error::internal("storage: upload writer", e))?
        .map_err(|e| io_err("write upload", e))?;
    if let Some(failure) = failure {
        return Err(failure);
    }
    match expected {
        Some(expected) if written != expected => Err(wrong_length(expected, written.to_string())),
        _ => Ok((written, hash)),
    }
}

fn wrong_length(expected: u64, got: String) -> Error {
    Error::invalid(
        OciErrorCode::SizeInvalid,
        format!("the Content-Range announced {expected} bytes, the body had {got}; nothing of it was kept"),
    )
}

fn hash_file(path: &Path, algorithm: Algorithm) -> std::io::Result<Digest> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = algorithm.hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Every repository under `root` (a directory with `_meta.json`, nested names included), sorted.
fn walk_repositories(root: &Path) -> Result<Vec<String>> {
    let root = root.join("repositories");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("list repositories", e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == "_meta.json" {
                if let Ok(rel) = dir.strip_prefix(&root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            } else if !name.starts_with('_') && entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The tags in a repository's `_tags` directory, sorted.
fn read_tags(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list tags", e)),
    };
    let mut tags = Vec::new();
    for entry in entries {
        tags.push(entry.map_err(|e| io_err("list tags", e))?.file_name().to_string_lossy().into_owned());
    }
    tags.sort();
    Ok(tags)
}

/// What the listing index must hold: the directories' repositories and tags.
fn contents(root: &Path) -> Result<Contents> {
    let repositories = walk_repositories(root)?;
    let mut tags = Vec::new();
    for name in &repositories {
        for tag in read_tags(&root.join("repositories").join(name).join("_tags"))? {
            tags.push((name.clone(), tag));
        }
    }
    Ok(Contents { repositories, tags })
}

#[async_trait]
impl Storage for FsStorage {
    async fn create_repository(&self, name: &RepositoryName, owner: &str) -> Result<RepositoryMeta> {
        let _guard = self.meta_lock.lock().await;
        if let Some(meta) = self.repository(name).await? {
            return Ok(meta);
        }
        let meta = RepositoryMeta {
            name: name.to_string(),
            owner: owner.into(),
            created_at: Utc::now(),
            grants: Default::default(),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
        // Indexed first (see `index`): a crash in between leaves an entry without a repository, which
        // listings skip, never a repository the index misses.
        let lock = self.index.lock().await?;
        self.index.add_repository(&lock, name).await?;
        self.write_atomic(&self.repo_dir(name).join("_meta.json"), &json).await?;
        Ok(meta)
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryMeta>> {
        let Some(bytes) = Self::read_optional(&self.repo_dir(name).join("_meta.json")).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::internal(format!("corrupt metadata of {name}"), e))
    }

    async fn update_repository(&self, name: &RepositoryName, update: MetaUpdate) -> Result<RepositoryMeta> {
        let _guard = self.meta_lock.lock().await;
        // Under the index's lock too: a delete by another process cannot come between the check and the
        // write, which would bring back a repository the index has forgotten.
        let _lock = self.index.lock().await?;
        let mut meta = self.require_repo(name).await?;
        update(&mut meta);
        let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
        self.write_atomic(&self.repo_dir(name).join("_meta.json"), &json).await?;
        Ok(meta)
    }

    async fn delete_repository(&self, name: &RepositoryName) -> Result<()> {
        let _guard = self.meta_lock.lock().await;
        let lock = self.index.lock().await?;
        self.require_repo(name).await?;
        let dir = self.repo_dir(name);
        // Remove the metadata first: from then on the repository is gone even if the rest is interrupted.
        Self::remove_optional(&dir.join("_meta.json")).await?;
        for sub in ["_tags", "_manifests", "_referrers", "_layers"] {
            match tokio::fs::remove_dir_all(dir.join(sub)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(format!("delete {name}"), e)),
            }
        }
        // Nested repositories (`name/child`) live below this directory and stay.
        let _ = tokio::fs::remove_dir(&dir).await;
        self.forget_manifests();
        self.index.remove_repository(&lock, name).await
    }

    async fn list_repositories(&self) -> Result<Vec<String>> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || walk_repositories(&root))
            .await
            .map_err(|e| Error::internal("list repositories", e))?
    }

    async fn list_repositories_page(&self, after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.index.repositories_page(after, limit).await
    }

    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        if !Self::exists(&self.layer_link(repo, digest)).await? {
            return Ok(None);
        }
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat blob", e)),
        }
    }

    async fn read_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead> {
        let missing = || Error::not_found(Resource::Blob, digest.to_string());
        if !Self::exists(&self.layer_link(repo, digest)).await? {
            return Err(missing());
        }
        let mut file = match tokio::fs::File::open(self.blob_path(digest)).await {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(missing()),
            Err(e) => return Err(io_err("open blob", e)),
        };
        let size = file.metadata().await.map_err(|e| io_err("stat blob", e))?.len();
        let range = match range {
            None => None,
            Some((start, end)) => {
                if start >= size {
                    return Err(Error::invalid(
                        OciErrorCode::RangeInvalid,
                        format!("range starts at byte {start}, but the blob has {size} bytes"),
                    ));
                }
                let end = end.unwrap_or(size - 1).min(size - 1);
                if end < start {
                    return Err(Error::invalid(OciErrorCode::RangeInvalid, format!("range {start}-{end} is empty")));
                }
                file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| io_err("seek blob", e))?;
                Some((start, end))
            }
        };
        let len = range.map(|(s, e)| e - s + 1).unwrap_or(size);
        Ok(BlobRead { size, range, body: read_ahead(file.into_std().await, len) })
    }

    async fn mount_blob(&self, repo: &RepositoryName, from: &RepositoryName, digest: &Digest) -> Result<bool> {
        if self.blob_size(from, digest).await?.is_none() {
            return Ok(false);
        }
        self.link_blob(repo, digest).await?;
        Ok(true)
    }

    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if Self::remove_optional(&self.layer_link(repo, digest)).await? {
            Ok(())
        } else {
            Err(Error::not_found(Resource::Blob, digest.to_string()))
        }
    }

    async fn start_upload(&self, repo: &RepositoryName) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.upload_dir(&id)?;
        tokio::fs::create_dir_all(&dir).await.map_err(|e| io_err("create upload", e))?;
        tokio::fs::write(dir.join("data"), b"").await.map_err(|e| io_err("create upload", e))?;
        // The owner file is written last: an upload without it is not visible.
        self.write_atomic(&dir.join("repo"), repo.as_str().as_bytes()).await?;
        // Hash states of abandoned uploads would otherwise stay in memory for good.
        let expiry = self.upload_expiry;
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, h| h.kept.elapsed() <= expiry);
        self.keep_hash(&id, 0, Algorithm::Sha256.hasher());
        Ok(id)
    }

    async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64> {
        let dir = self.upload_of(repo, id).await?;
        match tokio::fs::metadata(dir.join("data")).await {
            Ok(meta) => Ok(meta.len()),
            // Finished (and so moved into blobs/) by a concurrent request since the check above.
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::not_found(Resource::Upload, id)),
            Err(e) => Err(io_err("stat upload", e)),
        }
    }

    async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        let size = self.upload_size(repo, id).await?;
        if let Some((start, end)) = range
            && end < start
        {
            return Err(Error::invalid(OciErrorCode::RangeInvalid, format!("the chunk range {start}-{end} is empty")));
        }
        if let Some((start, _)) = range
            && start != size
        {
            return Err(Error::invalid(
                OciErrorCode::RangeInvalid,
                format!(
                    "the chunk starts at byte {start}, but the upload has {size} bytes; send the chunk starting at {size}"
                ),
            ));
        }
        // The saved hash state is usable only if it covers exactly the bytes on disk (a restart loses it).
        let hash = self.take_hash(id).filter(|h| h.size == size).map(|h| h.digester);
        let path = self.upload_dir(id)?.join("data");
        let expected = range.map(|(start, end)| end - start + 1);
        match append_hashing(path.clone(), hash.clone(), body, expected).await {
            Ok((written, hash)) => {
                let new_size = size + written;
                if let Some(digester) = hash {
                    self.keep_hash(id, new_size, digester);
                }
                Ok(new_size)
            }
            Err(e) => {
                // All or nothing: a refused chunk, a body that broke midway (client gone, read timeout) or
                // a failed write is cut off again, so the upload keeps exactly its size and hash state from
                // before this request and the client resumes from the size a status request reports.
                // Keeping a partial body instead would need it flushed and hashed exactly; cutting it off
                // is one rule for every failure.
                let file = tokio::fs::OpenOptions::new().write(true).open(&path).await;
                match file {
                    Ok(file) => file.set_len(size).await.map_err(|e| io_err("roll back upload", e))?,
                    // Finished or cancelled by a concurrent request meanwhile: nothing to roll back.
                    Err(e) if e.kind() == ErrorKind::NotFound => return Err(Error::not_found(Resource::Upload, id)),
                    Err(e) => return Err(io_err("roll back upload", e)),
                }
                if let Some(digester) = hash {
                    self.keep_hash(id, size, digester);
                }
                Err(e)
            }
        }
    }

    async fn finish_upload(&self, repo: &RepositoryName, id: &str, digest: &Digest) -> Result<u64> {
        let dir = self.upload_of(repo, id).await?;
        let data = dir.join("data");
        let size = tokio::fs::metadata(&data).await.map_err(|e| io_err("stat upload", e))?.len();
        let saved = self.take_hash(id).filter(|h| h.size == size && h.digester.algorithm() == digest.algorithm());
        let actual = match saved {
            Some(h) => h.digester.finish(),
            None => {
                let (path, alg) = (data.clone(), digest.algorithm());
                tokio::task::spawn_blocking(move || hash_file(&path, alg))
                    .await
                    .map_err(|e| Error::internal("hash upload", e))?
                    .map_err(|e| io_err("hash upload", e))?
            }
        };
        if &actual != digest {
            let _ = tokio::fs::remove_dir_all(&dir).await;
            return Err(Error::DigestInvalid { expected: digest.to_string(), actual: actual.to_string() });
        }
        let target = self.blob_path(digest);
        if Self::exists(&target).await? {
            // Someone stored the same content first; theirs is identical.
            let _ = tokio::fs::remove_file(&data).await;
        } else {
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| io_err("create blob directory", e))?;
            }
            tokio::fs::rename(&data, &target).await.map_err(|e| io_err("store blob", e))?;
        }
        self.link_blob(repo, digest).await?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(size)
    }

    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        let dir = self.upload_of(repo, id).await?;
        self.take_hash(id);
        tokio::fs::remove_dir_all(&dir).await.map_err(|e| io_err("cancel upload", e))
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        references: &References,
        referrer: Option<ReferrerDescriptor>,
        tag: Option<&Tag>,
    ) -> Result<()> {
        // The fence against a collection's sweep (see `fence`): intent, wait, check, write, drop the intent.
        let named: Vec<&Digest> = (references.blobs.iter().chain(&references.manifests))
            .chain(manifest.subject.iter())
            .chain(std::iter::once(&manifest.digest))
            .collect();
        let intent = fence::intents_dir(&self.root).join(uuid::Uuid::new_v4().simple().to_string());
        self.write_atomic(&intent, &fence::intent_bytes(&named)).await?;
        let _intent = fence::Intent(intent);
        fence::wait_for_sweeps(&self.root).await?;
        super::check_references(self, repo, references).await?;
        let blob = self.blob_path(&manifest.digest);
        if !Self::exists(&blob).await? {
            self.write_atomic(&blob, &manifest.bytes).await?;
        }
        let link = ManifestLink { media_type: manifest.media_type.clone(), subject: manifest.subject.clone() };
        let link = serde_json::to_vec(&link).expect("link serialises");
        self.write_atomic(&self.manifest_link(repo, &manifest.digest), &link).await?;
        if let (Some(subject), Some(referrer)) = (&manifest.subject, referrer) {
            let json = serde_json::to_vec(&referrer).expect("descriptor serialises");
            self.write_atomic(&self.referrer_path(repo, subject, &manifest.digest), &json).await?;
        }
        if let Some(tag) = tag {
            let lock = self.index.lock().await?;
            self.index.add_tag(&lock, repo, tag).await?;
            self.write_atomic(&self.tag_path(repo, tag.as_str()), manifest.digest.to_string().as_bytes()).await?;
        }
        self.forget_manifests();
        Ok(())
    }

    async fn get_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<Option<StoredManifest>> {
        let key = (repo.to_string(), reference.to_string());
        if let Some(hit) = self.manifests.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(Some(hit.clone()));
        }
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => match Self::read_optional(&self.tag_path(repo, t.as_str())).await? {
                Some(bytes) => Digest::parse(String::from_utf8_lossy(&bytes).trim())?,
                None => return Ok(None),
            },
        };
        let Some(link) = Self::read_optional(&self.manifest_link(repo, &digest)).await? else {
            return Ok(None);
        };
        let link: ManifestLink =
            serde_json::from_slice(&link).map_err(|e| Error::internal(format!("corrupt manifest link {digest}"), e))?;
        let Some(bytes) = Self::read_optional(&self.blob_path(&digest)).await? else {
            return Ok(None);
        };
        let manifest =
            StoredManifest { media_type: link.media_type, digest, bytes: Bytes::from(bytes), subject: link.subject };
        let mut cache = self.manifests.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MANIFEST_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, manifest.clone());
        Ok(Some(manifest))
    }

    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()> {
        let missing = || Error::not_found(Resource::Manifest, format!("{repo}:{reference}"));
        // Files first, then their index entries, under the index's lock (see `index`).
        let lock = self.index.lock().await?;
        let result = match reference {
            Reference::Tag(t) => {
                if Self::remove_optional(&self.tag_path(repo, t.as_str())).await? {
                    self.index.remove_tag(&lock, repo, t.as_str()).await?;
                    Ok(())
                } else {
                    Err(missing())
                }
            }
            Reference::Digest(d) => {
                let link_path = self.manifest_link(repo, d);
                let Some(link) = Self::read_optional(&link_path).await? else { return Err(missing()) };
                let link: Option<ManifestLink> = serde_json::from_slice(&link).ok();
                Self::remove_optional(&link_path).await?;
                for tag in self.list_tags(repo).await.unwrap_or_default() {
                    let path = self.tag_path(repo, &tag);
                    if Self::read_optional(&path).await?.is_some_and(|b| b == d.to_string().as_bytes()) {
                        Self::remove_optional(&path).await?;
                        self.index.remove_tag(&lock, repo, &tag).await?;
                    }
                }
                if let Some(subject) = link.and_then(|l| l.subject) {
                    Self::remove_optional(&self.referrer_path(repo, &subject, d)).await?;
                }
                Ok(())
            }
        };
        self.forget_manifests();
        result
    }

    async fn list_tags(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        if !Self::exists(&self.repo_dir(repo).join("_meta.json")).await? {
            return Err(Error::not_found(Resource::Repository, repo.as_str()));
        }
        let dir = self.repo_dir(repo).join("_tags");
        tokio::task::spawn_blocking(move || read_tags(&dir)).await.map_err(|e| Error::internal("list tags", e))?
    }

    async fn list_tags_page(&self, repo: &RepositoryName, after: Option<&str>, limit: usize) -> Result<ListPage> {
        if !Self::exists(&self.repo_dir(repo).join("_meta.json")).await? {
            return Err(Error::not_found(Resource::Repository, repo.as_str()));
        }
        self.index.tags_page(repo, after, limit).await
    }

    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<ReferrerDescriptor>> {
        let mut out = Vec::new();
        let mut dir = match tokio::fs::read_dir(self.referrers_dir(repo, subject)).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list referrers", e)),
        };
        while let Some(entry) = dir.next_entry().await.map_err(|e| io_err("list referrers", e))? {
            if let Some(bytes) = Self::read_optional(&entry.path()).await?
                && let Ok(d) = serde_json::from_slice::<ReferrerDescriptor>(&bytes)
            {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn collectable(&self) -> Option<&dyn super::gc::collectable::Collectable> {
        Some(self)
    }
}
