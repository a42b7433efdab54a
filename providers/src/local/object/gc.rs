//! [`Collectable`] for [`ObjectStorage`]: enumerations are prefix listings (the store's last-modified time
//! is a blob's or record's age), deletions are deletes, and the lease is one object written with a
//! compare-and-swap on its ETag/version.
//!
//! A blob counts as touched when its content or any repository's link to it was last written: linking an
//! existing blob rewrites the link (`blobs`), as touching the file does on the filesystem.
//!
//! `object_store` cannot list a bucket's multipart uploads, so an expired session's multipart upload is
//! aborted by the id its state records; one whose state was never written (a replica killed between
//! creating the upload and writing its state) is left to the bucket's lifecycle rule.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, UpdateVersion};
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, Result};

use super::ObjectStorage;
use super::keys::relative;
use super::store::store_err;
use super::upload::Session;
use crate::local::fence::{STALE_INTENT, SWEEP_LEASE};
use crate::local::gc::{Collectable, LeaseVersion, StoredBlob, UploadSession};
use crate::local::storage::Storage;

/// How long ago `meta`'s object was written (zero for the future: clocks differ a little).
fn age(meta: &ObjectMeta) -> Duration {
    (chrono::Utc::now() - meta.last_modified).to_std().unwrap_or_default()
}

/// `<alg>/<hex>` as a digest.
fn digest_of(relative: &str) -> Option<Digest> {
    let (alg, hex) = relative.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// The objects of one upload session's directory.
struct UploadDir {
    id: String,
    objects: Vec<ObjectMeta>,
    session: Option<Session>,
}

fn encode(version: UpdateVersion) -> LeaseVersion {
    LeaseVersion(serde_json::to_string(&(version.e_tag, version.version)).expect("strings serialise"))
}

fn decode(version: &LeaseVersion) -> Result<UpdateVersion> {
    let (e_tag, version): (Option<String>, Option<String>) =
        serde_json::from_str(&version.0).map_err(|e| Error::internal("gc: lease version", e))?;
    Ok(UpdateVersion { e_tag, version })
}

impl ObjectStorage {
    async fn list_all(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        self.bucket.list(Some(prefix)).try_collect().await.map_err(|e| store_err("list", prefix, e))
    }

    /// `<alg>/<hex>` keys under `prefix` as digests.
    async fn digests_under(&self, prefix: &Path) -> Result<Vec<Digest>> {
        let objects = self.list_all(prefix).await?;
        Ok(objects.iter().filter_map(|m| relative(&m.location, prefix)).filter_map(|r| digest_of(&r)).collect())
    }

    /// Every upload directory with its objects and parsed state (none when missing or unreadable).
    async fn upload_dirs(&self) -> Result<Vec<UploadDir>> {
        let prefix = self.keys.uploads();
        let mut dirs: HashMap<String, Vec<ObjectMeta>> = HashMap::new();
        for meta in self.list_all(&prefix).await? {
            let Some(rest) = relative(&meta.location, &prefix) else { continue };
            let id = rest.split('/').next().unwrap_or_default().to_owned();
            dirs.entry(id).or_default().push(meta);
        }
        let mut out = Vec::new();
        for (id, objects) in dirs {
            // Ids that are not ours never become keys; nothing of them is touched.
            let Ok(state) = self.state_key(&id) else { continue };
            let session = match objects.iter().any(|m| m.location == state) {
                true => self.get_optional(&state).await?.and_then(|b| serde_json::from_slice(&b).ok()),
                false => None,
            };
            out.push(UploadDir { id, objects, session });
        }
        Ok(out)
    }
}

#[async_trait]
impl Collectable for ObjectStorage {
    /// The catalog, and every name holding manifests or links without a catalog entry (a repository
    /// deleted while a write went on, or written by a push before its metadata): the mark must not miss
    /// a manifest because its repository is not listed.
    async fn gc_repositories(&self) -> Result<Vec<RepositoryName>> {
        let mut names: BTreeSet<String> = self.all_repositories().await?.into_iter().collect();
        let prefix = self.keys.repositories();
        for meta in self.list_all(&prefix).await? {
            let Some(rest) = relative(&meta.location, &prefix) else { continue };
            // Repository components never start with `_`: the first one that does ends the name.
            let parts: Vec<&str> = rest.split('/').take_while(|p| !p.starts_with('_')).collect();
            names.insert(parts.join("/"));
        }
        Ok(names.iter().filter_map(|n| RepositoryName::parse(n).ok()).collect())
    }

    async fn manifest_digests(&self, repo: &RepositoryName) -> Result<Vec<Digest>> {
        self.digests_under(&self.keys.manifests(repo)).await
    }

    async fn blob_links(&self, repo: &RepositoryName) -> Result<Vec<Digest>> {
        self.digests_under(&self.keys.layers(repo)).await
    }

    async fn blob_content(&self, digest: &Digest) -> Result<Option<Bytes>> {
        self.get_optional(&self.keys.blob(digest)).await
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.head_optional(&self.keys.blob(digest)).await?.is_some())
    }

    async fn blobs(&self) -> Result<Vec<StoredBlob>> {
        // The youngest link to each blob, from one listing of every repository's keys.
        let repositories = self.keys.repositories();
        let mut linked: HashMap<Digest, Duration> = HashMap::new();
        for meta in self.list_all(&repositories).await? {
            let Some(rest) = relative(&meta.location, &repositories) else { continue };
            let parts: Vec<&str> = rest.rsplitn(4, '/').collect();
            if let [hex, alg, "_layers", _repo] = parts[..]
                && let Ok(digest) = Digest::parse(&format!("{alg}:{hex}"))
            {
                let idle = linked.entry(digest).or_insert(Duration::MAX);
                *idle = (*idle).min(age(&meta));
            }
        }
        let prefix = self.keys.blobs();
        let mut out = Vec::new();
        for meta in self.list_all(&prefix).await? {
            let Some(digest) = relative(&meta.location, &prefix).and_then(|r| digest_of(&r)) else { continue };
            let idle = linked.get(&digest).map_or(age(&meta), |l| age(&meta).min(*l));
            out.push(StoredBlob { digest, size: meta.size, idle });
        }
        Ok(out)
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        Storage::delete_blob(self, repo, digest).await
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<bool> {
        let path = self.keys.blob(digest);
        if self.head_optional(&path).await?.is_none() {
            return Ok(false);
        }
        self.delete(&path).await?;
        Ok(true)
    }

    /// A session's idle time is its state's; a directory without a readable state (left by a crash)
    /// counts from its youngest object.
    async fn uploads(&self) -> Result<Vec<UploadSession>> {
        Ok(self
            .upload_dirs()
            .await?
            .into_iter()
            .map(|dir| match &dir.session {
                Some(session) => UploadSession { id: dir.id, size: session.size, idle: session.idle() },
                None => UploadSession {
                    size: dir.objects.iter().map(|m| m.size).sum(),
                    idle: dir.objects.iter().map(age).min().unwrap_or_default(),
                    id: dir.id,
                },
            })
            .collect())
    }

    async fn remove_upload(&self, id: &str) -> Result<()> {
        let dir = self.keys.upload(id)?;
        self.take_hash(id);
        if let Some(bytes) = self.get_optional(&self.state_key(id)?).await?
            && let Ok(session) = serde_json::from_slice::<Session>(&bytes)
        {
            // Aborting the multipart upload frees its parts, which no listing shows.
            self.discard_session(id, &session).await;
        }
        // Tails of failed appends, a staged object: everything else under the session.
        self.delete_prefix(&dir).await
    }

    /// Tails a live session no longer names: left by appends that failed after writing them.
    async fn remove_strays(&self, min_age: Duration, dry_run: bool) -> Result<(usize, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for dir in self.upload_dirs().await? {
            let Some(session) = &dir.session else { continue };
            let current = session.tail.as_ref().map(|t| self.tail_key(&dir.id, t)).transpose()?;
            let tails = self.keys.upload(&dir.id)?.join("tail");
            for meta in &dir.objects {
                if meta.location.prefix_match(&tails).is_none()
                    || current.as_ref() == Some(&meta.location)
                    || age(meta) <= min_age
                {
                    continue;
                }
                if !dry_run {
                    self.delete(&meta.location).await?;
                }
                count += 1;
                bytes += meta.size;
            }
        }
        Ok((count, bytes))
    }

    async fn record_sweep(&self) -> Result<String> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        self.put_create(&self.keys.gc_sweep(&name), Bytes::new()).await?;
        Ok(name)
    }

    async fn refresh_sweep(&self, name: &str) -> Result<()> {
        // Rewriting the record moves its last-modified time, which is what writes judge it by.
        self.put(&self.keys.gc_sweep(name), Bytes::new()).await
    }

    async fn remove_sweep(&self, name: &str) -> Result<()> {
        self.delete(&self.keys.gc_sweep(name)).await
    }

    async fn remove_dead_sweeps(&self) -> Result<()> {
        for meta in self.list_all(&self.keys.gc_sweeps()).await? {
            if age(&meta) > SWEEP_LEASE * 2 {
                self.delete(&meta.location).await?;
            }
        }
        Ok(())
    }

    async fn intended(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for meta in self.list_all(&self.keys.gc_intents()).await? {
            if age(&meta) > STALE_INTENT {
                self.delete(&meta.location).await?;
                continue;
            }
            // Gone since the listing: its write finished, and the re-mark sees its manifest.
            let Some(bytes) = self.get_optional(&meta.location).await? else { continue };
            out.extend(String::from_utf8_lossy(&bytes).lines().filter_map(|l| Digest::parse(l.trim()).ok()));
        }
        Ok(out)
    }

    async fn read_lease(&self) -> Result<Option<(Bytes, LeaseVersion)>> {
        Ok(self.get_versioned(&self.keys.gc_lease()).await?.map(|v| (v.bytes, encode(v.version))))
    }

    async fn write_lease(&self, bytes: Bytes, over: Option<&LeaseVersion>) -> Result<Option<LeaseVersion>> {
        let over = over.map(decode).transpose()?;
        Ok(self.put_versioned(&self.keys.gc_lease(), bytes, over).await?.map(encode))
    }
}
