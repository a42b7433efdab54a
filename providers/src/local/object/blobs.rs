//! Blob reads and per-repository links: a repository reads only blobs linked into it (pushed or mounted).

use futures_util::{StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange};
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};

use super::ObjectStorage;
use super::store::store_err;
use crate::local::storage::BlobRead;

impl ObjectStorage {
    pub(super) async fn linked_blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        if self.head_optional(&self.keys.layer(repo, digest)).await?.is_none() {
            return Ok(None);
        }
        Ok(self.head_optional(&self.keys.blob(digest)).await?.map(|m| m.size))
    }

    /// Makes blob `digest` readable through `repo`. The link is rewritten even when present: its fresh
    /// last-modified time is what tells a collection a push is using the blob right now.
    pub(super) async fn link_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.put(&self.keys.layer(repo, digest), bytes::Bytes::new()).await
    }

    pub(super) async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let link = self.keys.layer(repo, digest);
        if self.head_optional(&link).await?.is_none() {
            return Err(Error::not_found(Resource::Blob, digest.to_string()));
        }
        self.delete(&link).await
    }

    pub(super) async fn read_linked_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead> {
        let missing = || Error::not_found(Resource::Blob, digest.to_string());
        let size = self.linked_blob_size(repo, digest).await?.ok_or_else(missing)?;
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
                Some((start, end))
            }
        };
        let path = self.keys.blob(digest);
        if size == 0 {
            // Some stores refuse a ranged or plain GET of nothing; there is nothing to fetch anyway.
            return Ok(BlobRead { size, range, body: Box::pin(futures_util::stream::empty()) });
        }
        let options = GetOptions::new().with_range(range.map(|(s, e)| GetRange::Bounded(s..e + 1)));
        let result = match self.bucket.get_opts(&path, options).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Err(missing()),
            Err(e) => return Err(store_err("read", &path, e)),
        };
        let body = result.into_stream().map_err(std::io::Error::other).boxed();
        Ok(BlobRead { size, range, body })
    }
}
