//! Finishing an upload session: verify its bytes against the digest, then commit them create-only as the
//! blob. Held under the session's lease like an append, so no append runs meanwhile.

use futures_util::StreamExt;
use object_store::ObjectStoreExt;
use object_store::multipart::PartId;
use object_store::path::Path;
use regbridge::oci::{Algorithm, Digest, Digester, RepositoryName};
use regbridge::{Error, Result};

use super::ObjectStorage;
use super::store::store_err;
use super::upload::{Held, Session};

impl ObjectStorage {
    pub(super) async fn finish_session(&self, repo: &RepositoryName, id: &str, digest: &Digest) -> Result<u64> {
        let mut held = self.hold(repo, id).await?;
        let saved = self
            .take_hash(id)
            .filter(|h| h.generation == held.session.generation && h.digester.algorithm() == digest.algorithm())
            .map(|h| h.digester);
        match self.commit(&held, digest, saved).await {
            Ok(size) => {
                held.ended();
                self.link_blob(repo, digest).await?;
                self.discard_session(id, &held.session).await;
                Ok(size)
            }
            Err(e @ Error::DigestInvalid { .. }) => {
                held.ended();
                self.discard_session(id, &held.session).await;
                Err(e)
            }
            Err(e) => {
                self.release(held).await;
                Err(e)
            }
        }
    }

    /// Verifies the session's bytes against `digest` and stores them as that blob.
    async fn commit(&self, held: &Held, digest: &Digest, saved: Option<Digester>) -> Result<u64> {
        let (id, session) = (&held.id, &held.session);
        let target = self.keys.blob(digest);
        if session.parts.is_empty() {
            // Everything is in the tail (under one part): hash it here and put it create-only.
            let bytes = self.tail_bytes(id, session).await?;
            check_digest(digest, Digest::of(digest.algorithm(), &bytes))?;
            self.put_content(&target, bytes).await?;
            return Ok(session.size);
        }
        let data = self.data_key(id)?;
        // A finish that died after completing leaves the staged object; completing again would fail.
        let staged = self.head_optional(&data).await?.filter(|m| m.size == session.size);
        if staged.is_none() {
            let mut parts: Vec<PartId> = session.parts.iter().map(|c| PartId { content_id: c.clone() }).collect();
            if session.tail_len() > 0 {
                let tail = self.tail_bytes(id, session).await?;
                let last = self
                    .bucket
                    .put_part(&data, &session.multipart, parts.len(), tail.into())
                    .await
                    .map_err(|e| store_err("write part of", &data, e))?;
                parts.push(last);
            }
            self.bucket
                .complete_multipart(&data, &session.multipart, parts)
                .await
                .map_err(|e| store_err("complete upload", &data, e))?;
            let stored = self.head_optional(&data).await?.map(|m| m.size);
            if stored != Some(session.size) {
                return Err(Error::internal(
                    format!("upload {id}: the completed object has {stored:?} bytes, the session {}", session.size),
                    std::io::Error::other("start the upload again"),
                ));
            }
        }
        let actual = match saved.filter(|_| staged.is_none()) {
            Some(digester) => digester.finish(),
            None => self.hash_object(&data, digest.algorithm()).await?,
        };
        check_digest(digest, actual)?;
        self.copy_create(&data, &target).await?;
        Ok(session.size)
    }

    /// Hashes the object at `path` by reading it once (a session this instance did not append to last).
    async fn hash_object(&self, path: &Path, algorithm: Algorithm) -> Result<Digest> {
        let mut stream = self.bucket.get(path).await.map_err(|e| store_err("read", path, e))?.into_stream();
        let mut hasher = algorithm.hasher();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk.map_err(|e| store_err("read", path, e))?);
        }
        Ok(hasher.finish())
    }

    /// Removes a session and everything it stored: state first (from then on it is unknown), then the
    /// multipart upload, the staged object and the tail. Best effort past the state: gc sweeps leftovers.
    pub(super) async fn discard_session(&self, id: &str, session: &Session) {
        let (Ok(state), Ok(data)) = (self.state_key(id), self.data_key(id)) else { return };
        let _ = self.delete(&state).await;
        let _ = self.bucket.abort_multipart(&data, &session.multipart).await;
        let _ = self.delete(&data).await;
        if let Some(tail) = &session.tail
            && let Ok(key) = self.tail_key(id, tail)
        {
            let _ = self.delete(&key).await;
        }
    }
}

fn check_digest(expected: &Digest, actual: Digest) -> Result<()> {
    if &actual == expected {
        Ok(())
    } else {
        Err(Error::DigestInvalid { expected: expected.to_string(), actual: actual.to_string() })
    }
}
