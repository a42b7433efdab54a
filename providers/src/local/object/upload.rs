//! Upload sessions as multipart uploads, with their state in the bucket so any replica can continue one.
//!
//! `uploads/<id>/state` holds the session: the repository, the multipart upload's id, the ids of the parts
//! stored so far, the size, the tail object and the last activity. Parts are exactly [`PART_SIZE`] bytes
//! (the 5 MiB most stores require of every part but the last); bytes that do not fill a part yet wait in
//! a tail object, read back by the next append. Every change to the state is a compare-and-swap on the
//! version read.
//!
//! An append or finish first takes a short lease in the state (a compare-and-swap), so two concurrent
//! PATCHes of one session cannot both write parts: the second is refused with `TOOMANYREQUESTS`. Parts
//! and the new tail are recorded only when the request succeeds: a failed append leaves the state as it
//! was (parts it uploaded are not listed, so completing ignores them and later appends overwrite them).
//!
//! The hash state stays in memory on the instance that appended last (keyed by the state's generation);
//! an instance finishing a session it did not append to last completes the multipart upload into a
//! staging object and hashes that once (`finish`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{PutMode, PutOptions, UpdateVersion};
use regbridge::oci::{Algorithm, Digester, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};
use serde::{Deserialize, Serialize};

use super::store::store_err;
use super::{Bucket, ObjectStorage};
use crate::local::storage::ByteStream;

/// The size of every part but the last: the minimum S3 and GCS accept, so a session buffers at most this
/// much in memory and in its tail.
pub(super) const PART_SIZE: usize = 5 * 1024 * 1024;

/// How long a request holds a session; renewed before each part, so only a request stalled this long
/// (or killed) loses it to another.
pub(super) const LEASE: Duration = Duration::from_secs(60);

/// Hash state of an upload, valid while the session is at `generation`.
pub(super) struct UploadHash {
    pub(super) generation: u64,
    pub(super) digester: Digester,
    kept: Instant,
}

/// A request's hold on a session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lease {
    holder: String,
    until: DateTime<Utc>,
}

/// The stored state of an upload session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Session {
    repo: String,
    pub(super) multipart: String,
    /// Content ids of the parts stored so far, part `i` at index `i`, each [`PART_SIZE`] bytes.
    pub(super) parts: Vec<String>,
    pub(super) size: u64,
    /// The object (under `tail/`) holding the bytes after the parts, when there are any.
    pub(super) tail: Option<String>,
    /// Incremented by every append that stores something; the hash cache is keyed by it.
    pub(super) generation: u64,
    updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease: Option<Lease>,
}

impl Session {
    /// Whether a request holds the session now.
    #[cfg(test)]
    pub(super) fn lease_held(&self) -> bool {
        self.lease.as_ref().is_some_and(|l| l.until > Utc::now())
    }

    /// How long the session has received nothing.
    pub(super) fn idle(&self) -> Duration {
        (Utc::now() - self.updated_at).to_std().unwrap_or_default()
    }

    pub(super) fn tail_len(&self) -> u64 {
        self.size - (self.parts.len() * PART_SIZE) as u64
    }
}

fn busy(id: &str) -> Error {
    Error::TooManyRequests {
        message: format!("another request is writing to upload {id}; retry once it is done"),
        retry_after: Some(Duration::from_secs(1)),
    }
}

fn wrong_length(expected: u64, got: String) -> Error {
    Error::invalid(
        OciErrorCode::SizeInvalid,
        format!("the Content-Range announced {expected} bytes, the body had {got}; nothing of it was kept"),
    )
}

/// With a `Content-Range`, the chunk must be non-empty and start where the upload ends.
fn check_range(range: Option<(u64, u64)>, size: u64) -> Result<()> {
    let Some((start, end)) = range else { return Ok(()) };
    if end < start {
        return Err(Error::invalid(OciErrorCode::RangeInvalid, format!("the chunk range {start}-{end} is empty")));
    }
    if start != size {
        return Err(Error::invalid(
            OciErrorCode::RangeInvalid,
            format!(
                "the chunk starts at byte {start}, but the upload has {size} bytes; send the chunk starting at {size}"
            ),
        ));
    }
    Ok(())
}

fn lease_until(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).expect("lease fits")
}

/// A session held by one request: the state as last written by it and the version to swap against.
pub(super) struct Held {
    pub(super) id: String,
    pub(super) session: Session,
    version: UpdateVersion,
    holder: String,
    bucket: Arc<dyn Bucket>,
    key: Path,
}

impl Held {
    /// Marks the session as ended by this request (finished or discarded): nothing to give back on drop.
    pub(super) fn ended(&mut self) {
        self.session.lease = None;
    }
}

impl Drop for Held {
    /// A request cancelled while it holds the lease (its client went away and the request's future was
    /// dropped) gives the lease back from a spawned task, so a retry need not wait for it to run out.
    /// Requests that end normally have cleared `lease` by then.
    fn drop(&mut self) {
        if self.session.lease.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let mut session = self.session.clone();
        session.lease = None;
        let json = serde_json::to_vec(&session).expect("session serialises");
        let (bucket, key, version) = (self.bucket.clone(), self.key.clone(), self.version.clone());
        handle.spawn(async move {
            // Conditional: if anyone changed the session since, theirs stands.
            let _ = bucket.put_opts(&key, json.into(), PutOptions::from(PutMode::Update(version))).await;
        });
    }
}

impl ObjectStorage {
    pub(super) fn state_key(&self, id: &str) -> Result<Path> {
        Ok(self.keys.upload(id)?.join("state"))
    }

    pub(super) fn data_key(&self, id: &str) -> Result<Path> {
        Ok(self.keys.upload(id)?.join("data"))
    }

    pub(super) fn tail_key(&self, id: &str, tail: &str) -> Result<Path> {
        Ok(self.keys.upload(id)?.join("tail").join(tail))
    }

    pub(super) fn take_hash(&self, id: &str) -> Option<UploadHash> {
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).remove(id)
    }

    fn keep_hash(&self, id: &str, generation: u64, digester: Digester) {
        let hash = UploadHash { generation, digester, kept: Instant::now() };
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), hash);
    }

    pub(super) async fn start_session(&self, repo: &RepositoryName) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let data = self.data_key(&id)?;
        let multipart = self.bucket.create_multipart(&data).await.map_err(|e| store_err("start upload", &data, e))?;
        let session = Session {
            repo: repo.to_string(),
            multipart,
            parts: Vec::new(),
            size: 0,
            tail: None,
            generation: 0,
            updated_at: Utc::now(),
            lease: None,
        };
        let json = serde_json::to_vec(&session).expect("session serialises");
        if !self.put_create(&self.state_key(&id)?, json).await? {
            return Err(Error::internal("upload id collision", std::io::Error::other(id)));
        }
        // Hash states of abandoned uploads would otherwise stay in memory for good.
        let expiry = self.upload_expiry;
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, h| h.kept.elapsed() <= expiry);
        self.keep_hash(&id, 0, Algorithm::Sha256.hasher());
        Ok(id)
    }

    /// Session `id` of `repo` with its version; unknown when missing, of another repository or expired.
    pub(super) async fn session(&self, repo: &RepositoryName, id: &str) -> Result<(Session, UpdateVersion)> {
        let unknown = || Error::not_found(Resource::Upload, id);
        let stored = self.get_versioned(&self.state_key(id)?).await?.ok_or_else(unknown)?;
        let session: Session = serde_json::from_slice(&stored.bytes)
            .map_err(|e| Error::internal(format!("corrupt upload state {id}"), e))?;
        if session.repo != repo.as_str() || session.idle() > self.upload_expiry {
            return Err(unknown());
        }
        Ok((session, stored.version))
    }

    /// Takes the lease on session `id` (refused while another request's lease is live).
    pub(super) async fn hold(&self, repo: &RepositoryName, id: &str) -> Result<Held> {
        let (mut session, version) = self.session(repo, id).await?;
        if session.lease.as_ref().is_some_and(|l| l.until > Utc::now()) {
            return Err(busy(id));
        }
        let holder = uuid::Uuid::new_v4().simple().to_string();
        session.lease = Some(Lease { holder: holder.clone(), until: lease_until(self.lease) });
        let key = self.state_key(id)?;
        let mut held = Held { id: id.to_owned(), session, version, holder, bucket: self.bucket.clone(), key };
        if let Err(e) = self.write_held(&mut held).await {
            held.session.lease = None; // never held: nothing to give back
            return Err(e);
        }
        Ok(held)
    }

    /// Writes `held.session` over the version it holds; fails when another request took the session
    /// (its lease ran out) or it was cancelled or finished meanwhile.
    async fn write_held(&self, held: &mut Held) -> Result<()> {
        let key = self.state_key(&held.id)?;
        let json = serde_json::to_vec(&held.session).expect("session serialises");
        match self.put_versioned(&key, json, Some(held.version.clone())).await? {
            Some(version) => {
                held.version = version;
                Ok(())
            }
            None if self.head_optional(&key).await?.is_none() => Err(Error::not_found(Resource::Upload, &held.id)),
            None => Err(busy(&held.id)),
        }
    }

    /// Renews the lease when less than half of it is left, before a request writes a part.
    async fn renew(&self, held: &mut Held) -> Result<()> {
        let half = chrono::Duration::from_std(self.lease / 2).expect("lease fits");
        if held.session.lease.as_ref().is_some_and(|l| l.until - Utc::now() > half) {
            return Ok(());
        }
        held.session.lease = Some(Lease { holder: held.holder.clone(), until: lease_until(self.lease) });
        self.write_held(held).await
    }

    /// Gives the lease back, leaving the session as it was; best effort (it runs out anyway).
    pub(super) async fn release(&self, mut held: Held) {
        held.session.lease = None;
        let _ = self.write_held(&mut held).await;
    }

    pub(super) async fn tail_bytes(&self, id: &str, session: &Session) -> Result<Bytes> {
        let Some(tail) = &session.tail else { return Ok(Bytes::new()) };
        let key = self.tail_key(id, tail)?;
        self.get_optional(&key).await?.ok_or_else(|| {
            Error::internal(format!("upload {id} lost its buffered bytes"), std::io::Error::other(key.to_string()))
        })
    }

    pub(super) async fn append_session(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        let mut held = self.hold(repo, id).await?;
        if let Err(e) = check_range(range, held.session.size) {
            self.release(held).await;
            return Err(e);
        }
        let saved = self.take_hash(id).filter(|h| h.generation == held.session.generation).map(|h| h.digester);
        let expected = range.map(|(start, end)| end - start + 1);
        match self.receive(&mut held, saved.clone(), body, expected).await {
            Ok((new_size, hash)) => {
                if let Some(digester) = hash {
                    self.keep_hash(id, held.session.generation, digester);
                }
                Ok(new_size)
            }
            Err(e) => {
                // All or nothing: the state is left as it was, parts written by this request unlisted.
                if let Some(digester) = saved {
                    self.keep_hash(id, held.session.generation, digester);
                }
                self.release(held).await;
                Err(e)
            }
        }
    }

    /// Streams `body` into parts and a new tail, then records them in one swap of the state.
    async fn receive(
        &self,
        held: &mut Held,
        mut hash: Option<Digester>,
        mut body: ByteStream,
        expected: Option<u64>,
    ) -> Result<(u64, Option<Digester>)> {
        let id = held.id.clone();
        let data = self.data_key(&id)?;
        let mut buffer = BytesMut::from(self.tail_bytes(&id, &held.session).await?.as_ref());
        let mut parts: Vec<String> = Vec::new();
        let mut received = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::invalid(
                    OciErrorCode::BlobUploadInvalid,
                    format!("the request body ended with an error after {received} bytes: {e}"),
                )
            })?;
            received += chunk.len() as u64;
            if let Some(expected) = expected
                && received > expected
            {
                return Err(wrong_length(expected, format!("more than {expected}")));
            }
            if let Some(h) = hash.as_mut() {
                h.update(&chunk);
            }
            buffer.extend_from_slice(&chunk);
            while buffer.len() >= PART_SIZE {
                let part = buffer.split_to(PART_SIZE).freeze();
                self.renew(held).await?;
                let index = held.session.parts.len() + parts.len();
                let multipart = held.session.multipart.clone();
                let stored = self
                    .bucket
                    .put_part(&data, &multipart, index, part.into())
                    .await
                    .map_err(|e| store_err("write part of", &data, e))?;
                parts.push(stored.content_id);
            }
        }
        if let Some(expected) = expected
            && received != expected
        {
            return Err(wrong_length(expected, received.to_string()));
        }
        // Nothing is changed in `held.session` until the swap, so a failure before it releases the
        // session exactly as it was.
        let previous = held.session.clone();
        if received == 0 {
            held.session.lease = None;
            if let Err(e) = self.write_held(held).await {
                held.session = previous;
                return Err(e);
            }
            return Ok((held.session.size, hash));
        }
        let old_tail = held.session.tail.clone();
        let new_tail = if buffer.is_empty() {
            None
        } else {
            let name = uuid::Uuid::new_v4().simple().to_string();
            self.put(&self.tail_key(&id, &name)?, buffer.freeze()).await?;
            Some(name)
        };
        held.session.parts.extend(parts);
        held.session.size += received;
        held.session.tail = new_tail.clone();
        held.session.generation += 1;
        held.session.updated_at = Utc::now();
        held.session.lease = None;
        if let Err(e) = self.write_held(held).await {
            held.session = previous;
            if let Some(name) = new_tail {
                let _ = self.delete(&self.tail_key(&id, &name)?).await;
            }
            return Err(e);
        }
        if let Some(name) = old_tail {
            let _ = self.delete(&self.tail_key(&id, &name)?).await;
        }
        Ok((held.session.size, hash))
    }
}
