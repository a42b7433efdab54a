//! Manifests, tags and referrers. A manifest's bytes are a content-addressed blob; its link in the
//! repository holds its media type and subject; a tag is one key holding a digest.
//!
//! A tag is deleted along with its manifest by a compare-and-swap to an empty object (a tombstone)
//! rather than a delete, because stores have no conditional delete: a replica re-pointing the tag at
//! another manifest meanwhile must not lose that update. Empty tags read as absent.

use bytes::Bytes;
use futures_util::TryStreamExt;
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{Error, Resource, Result};
use serde::{Deserialize, Serialize};

use super::ObjectStorage;
use super::store::store_err;
use crate::local::storage::{References, ReferrerDescriptor, StoredManifest};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestLink {
    media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<Digest>,
}

impl ObjectStorage {
    pub(super) async fn store_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        references: &References,
        referrer: Option<ReferrerDescriptor>,
        tag: Option<&Tag>,
    ) -> Result<()> {
        // The fence against a collection's sweep: intent, wait, check, write, drop the intent.
        let named: Vec<&Digest> = (references.blobs.iter().chain(&references.manifests))
            .chain(manifest.subject.iter())
            .chain(std::iter::once(&manifest.digest))
            .collect();
        let intent = self.begin_intent(&named).await?;
        self.wait_for_sweeps().await?;
        crate::local::check_references(self, repo, references).await?;
        // The digest was checked against these bytes by `store_manifest`; a replica racing us writes the same.
        self.put_content(&self.keys.blob(&manifest.digest), manifest.bytes.clone()).await?;
        let link = ManifestLink { media_type: manifest.media_type.clone(), subject: manifest.subject.clone() };
        self.put(&self.keys.manifest(repo, &manifest.digest), serde_json::to_vec(&link).expect("link serialises"))
            .await?;
        if let (Some(subject), Some(referrer)) = (&manifest.subject, referrer) {
            let json = serde_json::to_vec(&referrer).expect("descriptor serialises");
            self.put(&self.keys.referrer(repo, subject, &manifest.digest), json).await?;
        }
        if let Some(tag) = tag {
            // One atomic put: the last writer of a tag wins, and nothing is read-modified-written.
            self.put(&self.keys.tag(repo, tag.as_str()), manifest.digest.to_string().into_bytes()).await?;
        }
        intent.drop_now().await;
        Ok(())
    }

    /// The digest tag `tag` points at, when it exists.
    async fn tag_target(&self, repo: &RepositoryName, tag: &str) -> Result<Option<Digest>> {
        match self.get_optional(&self.keys.tag(repo, tag)).await? {
            Some(bytes) if !bytes.is_empty() => Ok(Some(Digest::parse(String::from_utf8_lossy(&bytes).trim())?)),
            _ => Ok(None),
        }
    }

    pub(super) async fn load_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => match self.tag_target(repo, t.as_str()).await? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let Some(link) = self.get_optional(&self.keys.manifest(repo, &digest)).await? else {
            return Ok(None);
        };
        let link: ManifestLink =
            serde_json::from_slice(&link).map_err(|e| Error::internal(format!("corrupt manifest link {digest}"), e))?;
        let Some(bytes) = self.get_optional(&self.keys.blob(&digest)).await? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest { media_type: link.media_type, digest, bytes, subject: link.subject }))
    }

    pub(super) async fn remove_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()> {
        let missing = || Error::not_found(Resource::Manifest, format!("{repo}:{reference}"));
        match reference {
            Reference::Tag(t) => {
                if self.tag_target(repo, t.as_str()).await?.is_none() {
                    return Err(missing());
                }
                self.delete(&self.keys.tag(repo, t.as_str())).await
            }
            Reference::Digest(d) => {
                let link_path = self.keys.manifest(repo, d);
                let Some(link) = self.get_optional(&link_path).await? else { return Err(missing()) };
                let link: Option<ManifestLink> = serde_json::from_slice(&link).ok();
                self.delete(&link_path).await?;
                let mut after: Option<String> = None;
                loop {
                    let (tags, more) = self.tags_after(repo, after.as_deref(), 1000).await?;
                    for tag in &tags {
                        self.untag_if(repo, tag, d).await?;
                    }
                    after = tags.last().cloned();
                    if !more {
                        break;
                    }
                }
                if let Some(subject) = link.and_then(|l| l.subject) {
                    self.delete(&self.keys.referrer(repo, &subject, d)).await?;
                }
                Ok(())
            }
        }
    }

    /// Tombstones tag `tag` if it still points at `digest`, with a compare-and-swap on what was read.
    async fn untag_if(&self, repo: &RepositoryName, tag: &str, digest: &Digest) -> Result<()> {
        let path = self.keys.tag(repo, tag);
        let Some(current) = self.get_versioned(&path).await? else { return Ok(()) };
        if current.bytes != digest.to_string().as_bytes() {
            return Ok(());
        }
        // Losing the swap means another writer re-pointed the tag: theirs stands.
        self.put_conditional(&path, Bytes::new(), Some(current.version)).await.map(drop)
    }

    pub(super) async fn list_referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
    ) -> Result<Vec<ReferrerDescriptor>> {
        let prefix = self.keys.referrers(repo, subject);
        let objects: Vec<_> =
            self.bucket.list(Some(&prefix)).try_collect().await.map_err(|e| store_err("list", &prefix, e))?;
        let mut out = Vec::new();
        for object in objects {
            if let Some(bytes) = self.get_optional(&object.location).await?
                && let Ok(d) = serde_json::from_slice::<ReferrerDescriptor>(&bytes)
            {
                out.push(d);
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }
}
