//! The storage conformance suite: one async function per guarantee of the `Storage` trait, run against
//! every backend with the same assertions (as `object_store`'s own `integration.rs` does for stores).
//!
//! A backend is a name and an async constructor returning a [`Backend`]: a way to open any number of
//! instances on one shared store (replicas, or a restarted server). Adding one is one line:
//! `backend!(name, constructor);` next to the others, with `async fn constructor() -> Backend`.

mod support {
    pub mod emulators;
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{Error, OciErrorCode, Permissions};
use regbridge_providers::local::gc::lease::Lease;
use regbridge_providers::local::gc::{Collectable, GcOptions, collect};
use regbridge_providers::local::storage::{ByteStream, DEFAULT_UPLOAD_EXPIRY, ReferrerDescriptor};
use regbridge_providers::local::{Bucket, FsStorage, ListPage, ObjectStorage, References, Storage, StoredManifest};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Instances of one backend on one shared store.
pub struct Backend {
    /// Opens an instance with the given upload expiry.
    open: Box<dyn Fn(Duration) -> Arc<dyn Storage> + Send + Sync>,
    /// Creates (`true`) or removes (`false`) a live gc sweep record, as a running collection would.
    sweep: Box<dyn Fn(bool) -> BoxFuture<()> + Send + Sync>,
    /// Whether separate instances may write the same store at once (replicas). The filesystem's lock on
    /// metadata is per process, so its racing tests race within one instance.
    replicas: bool,
    /// Whatever must live as long as the store (a temporary directory, an emulator process).
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Backend {
    fn open(&self) -> Arc<dyn Storage> {
        (self.open)(DEFAULT_UPLOAD_EXPIRY)
    }

    /// Two instances to race with: two replicas where the backend has them, else one instance twice.
    fn racers(&self) -> (Arc<dyn Storage>, Arc<dyn Storage>) {
        let a = self.open();
        let b = if self.replicas { self.open() } else { a.clone() };
        (a, b)
    }
}

async fn fs_backend() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_owned();
    let sweeps = root.join("gc").join("sweeps");
    Backend {
        open: Box::new(move |expiry| Arc::new(FsStorage::open(&root).expect("open").with_upload_expiry(expiry))),
        sweep: Box::new(move |live| {
            let sweeps = sweeps.clone();
            Box::pin(async move {
                if live {
                    std::fs::create_dir_all(&sweeps).expect("sweeps dir");
                    std::fs::write(sweeps.join("test"), b"").expect("sweep record");
                } else {
                    std::fs::remove_file(sweeps.join("test")).expect("remove sweep record");
                }
            })
        }),
        replicas: false,
        _keep: Box::new(dir),
    }
}

/// Object storage on any bucket, under a prefix (what every object-store backend shares). An S3 backend is
/// `object_backend(Arc::new(AmazonS3Builder::new().with_endpoint(..).with_allow_http(true)
/// .with_bucket_name(..).build()?), prefix, Box::new(emulator))`: the whole suite passed that way on
/// moto 5.2.6 by hand (path-style requests, default conditional puts, no copy-if-not-exists setting).
fn object_backend(
    bucket: Arc<dyn Bucket>,
    prefix: &'static str,
    keep: Box<dyn std::any::Any + Send + Sync>,
) -> Backend {
    let sweep_bucket = bucket.clone();
    Backend {
        open: Box::new(move |expiry| Arc::new(ObjectStorage::new(bucket.clone(), prefix).with_upload_expiry(expiry))),
        sweep: Box::new(move |live| {
            let bucket = sweep_bucket.clone();
            Box::pin(async move {
                let path = object_store::path::Path::from(format!("{prefix}/gc/sweeps/test"));
                if live {
                    bucket.put(&path, Bytes::new().into()).await.expect("sweep record");
                } else {
                    bucket.delete(&path).await.expect("remove sweep record");
                }
            })
        }),
        replicas: true,
        _keep: keep,
    }
}

async fn memory_backend() -> Backend {
    object_backend(Arc::new(InMemory::new()), "conformance", Box::new(()))
}

/// S3 on moto's server (started for the test, killed with the backend).
async fn s3_backend() -> Backend {
    let moto = support::emulators::start_moto().await;
    let bucket = support::emulators::s3(&moto).await;
    object_backend(Arc::new(bucket), "conformance", Box::new(moto))
}

/// Azure Blob on Azurite (started for the test, killed with the backend).
async fn azure_backend() -> Backend {
    let azurite = support::emulators::start_azurite().await;
    let container = support::emulators::azure(&azurite).await;
    object_backend(Arc::new(container), "conformance", Box::new(azurite))
}

/// One `#[tokio::test]` per listed guarantee, each on a fresh store from `$constructor`.
macro_rules! guarantees {
    ($constructor:ident; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                super::$test(super::$constructor().await).await
            }
        )*
    };
}

/// The whole suite for backend `$name`, built by `$constructor`.
macro_rules! backend {
    ($name:ident, $constructor:ident) => {
        mod $name {
            guarantees!(
                $constructor;
                blobs_round_trip_with_ranges,
                a_blob_whose_bytes_do_not_match_never_appears,
                chunked_upload_with_chunks_under_a_part,
                an_upload_with_a_twelve_mib_chunk,
                a_streamed_upload_of_many_pieces,
                a_refused_or_broken_chunk_leaves_the_upload_as_it_was,
                a_chunked_upload_alternating_between_instances_completes,
                an_upload_resumes_on_a_new_instance,
                idle_uploads_expire,
                a_cancelled_upload_is_unknown,
                hostile_upload_ids_are_unknown,
                repositories_are_isolated,
                repository_metadata,
                racing_grants_from_two_instances_are_all_kept,
                racing_tags_from_two_instances_are_all_kept,
                the_catalog_is_sorted_with_nested_names,
                manifests_tags_and_referrers,
                deleting_a_repository_keeps_nested_ones,
                a_manifest_write_waits_for_a_live_sweep,
                catalog_pages_follow_the_full_listing,
                tag_pages_follow_the_full_listing,
                hostile_page_bounds_answer_like_the_full_listing,
                pages_see_what_another_instance_wrote,
                gc_sweeps_unreferenced_blobs,
                gc_keeps_referenced_blobs,
                gc_racing_pushes_never_loses_an_acknowledged_blob,
                gc_two_collectors_at_once_one_refuses,
                gc_an_expired_lease_is_taken_over,
                gc_removes_expired_uploads_and_their_parts,
            );
        }
    };
}

backend!(fs, fs_backend);
backend!(memory, memory_backend);
backend!(s3, s3_backend);
backend!(azure, azure_backend);
// GCS: fake-gcs-server, the emulator the tests have, does not take object_store's XML API writes (see the
// README's object storage table and tests/object_store_emulators.rs), so GCS runs only its probe.

// ---------------------------------------------------------------------------------------------------
// Helpers

const MIB: usize = 1024 * 1024;

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("name")
}

fn body(bytes: &[u8]) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::copy_from_slice(bytes))]))
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed as usize) % 251) as u8).collect()
}

fn code(result: Result<impl std::fmt::Debug, Error>) -> OciErrorCode {
    result.expect_err("an error").code()
}

async fn read_all(storage: &dyn Storage, repo: &RepositoryName, digest: &Digest) -> Vec<u8> {
    let read = storage.read_blob(repo, digest, None).await.expect("read blob");
    let chunks: Vec<Bytes> = read.body.try_collect().await.expect("blob body");
    chunks.concat()
}

/// Pushes `bytes` as a blob of `repo` in one request; returns its digest.
async fn push_blob(storage: &dyn Storage, repo: &RepositoryName, bytes: &[u8]) -> Digest {
    let id = storage.start_upload(repo).await.expect("start upload");
    storage.append_upload(repo, &id, None, body(bytes)).await.expect("append");
    let digest = Digest::sha256(bytes);
    assert_eq!(storage.finish_upload(repo, &id, &digest).await.expect("finish"), bytes.len() as u64);
    digest
}

/// Pushes `bytes` in chunks of `chunk` bytes with `Content-Range`s, each through `instances[i % len]`.
async fn push_chunked(instances: &[Arc<dyn Storage>], repo: &RepositoryName, bytes: &[u8], chunk: usize) -> Digest {
    let id = instances[0].start_upload(repo).await.expect("start upload");
    let mut sent = 0u64;
    for (i, piece) in bytes.chunks(chunk).enumerate() {
        let storage = &instances[(i + 1) % instances.len()];
        let range = Some((sent, sent + piece.len() as u64 - 1));
        sent = storage.append_upload(repo, &id, range, body(piece)).await.expect("chunk");
        assert_eq!(instances[i % instances.len()].upload_size(repo, &id).await.expect("size"), sent);
    }
    let digest = Digest::sha256(bytes);
    let last = &instances[bytes.len().div_ceil(chunk) % instances.len()];
    assert_eq!(last.finish_upload(repo, &id, &digest).await.expect("finish"), bytes.len() as u64);
    digest
}

fn manifest(text: &str, subject: Option<Digest>) -> StoredManifest {
    let bytes = Bytes::from(text.to_owned());
    StoredManifest {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: Digest::sha256(&bytes),
        bytes,
        subject,
    }
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("tag")
}

// ---------------------------------------------------------------------------------------------------
// Blobs

async fn blobs_round_trip_with_ranges(backend: Backend) {
    let s = backend.open();
    let repo = name("blobs/app");
    let data = content(100_000, 1);
    let digest = push_blob(&*s, &repo, &data).await;
    assert_eq!(s.blob_size(&repo, &digest).await.unwrap(), Some(data.len() as u64));
    assert_eq!(read_all(&*s, &repo, &digest).await, data);
    let ranged = s.read_blob(&repo, &digest, Some((10, Some(19)))).await.unwrap();
    assert_eq!((ranged.size, ranged.range), (100_000, Some((10, 19))));
    let bytes: Vec<Bytes> = ranged.body.try_collect().await.unwrap();
    assert_eq!(bytes.concat(), &data[10..20]);
    // An end past the blob is clamped; a start past it is RANGE_INVALID.
    let clamped = s.read_blob(&repo, &digest, Some((99_990, Some(1 << 40)))).await.unwrap();
    assert_eq!(clamped.range, Some((99_990, 99_999)));
    assert_eq!(
        code(s.read_blob(&repo, &digest, Some((100_000, None))).await.map(|r| r.size)),
        OciErrorCode::RangeInvalid
    );
    // An empty blob works too.
    let empty = push_blob(&*s, &repo, b"").await;
    assert_eq!(read_all(&*s, &repo, &empty).await, b"");
}

async fn a_blob_whose_bytes_do_not_match_never_appears(backend: Backend) {
    let s = backend.open();
    let repo = name("blobs/liar");
    for len in [10, 6 * MIB] {
        let data = content(len, 2);
        let claimed = Digest::sha256(b"not these bytes");
        let id = s.start_upload(&repo).await.unwrap();
        s.append_upload(&repo, &id, None, body(&data)).await.unwrap();
        let err = s.finish_upload(&repo, &id, &claimed).await.unwrap_err();
        assert_eq!(err.code(), OciErrorCode::DigestInvalid, "{err}");
        assert_eq!(s.blob_size(&repo, &claimed).await.unwrap(), None);
        assert_eq!(s.blob_size(&repo, &Digest::sha256(&data)).await.unwrap(), None);
        assert_eq!(code(s.read_blob(&repo, &claimed, None).await.map(|r| r.size)), OciErrorCode::BlobUnknown);
        // The upload is discarded.
        assert_eq!(code(s.upload_size(&repo, &id).await), OciErrorCode::BlobUploadUnknown);
    }
}

// ---------------------------------------------------------------------------------------------------
// Uploads

async fn chunked_upload_with_chunks_under_a_part(backend: Backend) {
    let s = backend.open();
    let repo = name("uploads/small");
    let data = content(11 * MIB + 333, 3);
    let digest = push_chunked(std::slice::from_ref(&s), &repo, &data, MIB + 17).await;
    assert_eq!(read_all(&*s, &repo, &digest).await, data);
}

async fn an_upload_with_a_twelve_mib_chunk(backend: Backend) {
    let s = backend.open();
    let repo = name("uploads/big");
    let data = content(12 * MIB + 5, 4);
    let id = s.start_upload(&repo).await.unwrap();
    assert_eq!(
        s.append_upload(&repo, &id, Some((0, 12 * MIB as u64 - 1)), body(&data[..12 * MIB])).await.unwrap(),
        12 * MIB as u64
    );
    assert_eq!(s.append_upload(&repo, &id, None, body(&data[12 * MIB..])).await.unwrap(), data.len() as u64);
    let digest = Digest::sha256(&data);
    s.finish_upload(&repo, &id, &digest).await.unwrap();
    assert_eq!(read_all(&*s, &repo, &digest).await, data);
}

async fn a_streamed_upload_of_many_pieces(backend: Backend) {
    let s = backend.open();
    let repo = name("uploads/streamed");
    let data = content(7 * MIB + 99, 5);
    let id = s.start_upload(&repo).await.unwrap();
    let pieces: Vec<std::io::Result<Bytes>> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    s.append_upload(&repo, &id, None, Box::pin(futures_util::stream::iter(pieces))).await.unwrap();
    let digest = Digest::sha256(&data);
    s.finish_upload(&repo, &id, &digest).await.unwrap();
    assert_eq!(read_all(&*s, &repo, &digest).await, data);
}

async fn a_refused_or_broken_chunk_leaves_the_upload_as_it_was(backend: Backend) {
    let s = backend.open();
    let repo = name("uploads/broken");
    let data = content(7 * MIB, 6);
    let id = s.start_upload(&repo).await.unwrap();
    assert_eq!(s.append_upload(&repo, &id, Some((0, 999)), body(&data[..1000])).await.unwrap(), 1000);
    // A chunk that does not start where the upload ends, an empty range, a body of the wrong length.
    assert_eq!(code(s.append_upload(&repo, &id, Some((5, 10)), body(&data[5..11])).await), OciErrorCode::RangeInvalid);
    assert_eq!(code(s.append_upload(&repo, &id, Some((1000, 999)), body(b"")).await), OciErrorCode::RangeInvalid);
    let short = s.append_upload(&repo, &id, Some((1000, 1999)), body(&data[1000..1500])).await;
    assert_eq!(code(short), OciErrorCode::SizeInvalid);
    let long = s.append_upload(&repo, &id, Some((1000, 1999)), body(&data[1000..3000])).await;
    assert_eq!(code(long), OciErrorCode::SizeInvalid);
    // A body that breaks after more than a part's worth.
    let broken: ByteStream = Box::pin(futures_util::stream::iter([
        Ok(Bytes::copy_from_slice(&data[1000..6 * MIB])),
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "body read timed out")),
    ]));
    s.append_upload(&repo, &id, None, broken).await.expect_err("a broken body is an error");
    assert_eq!(s.upload_size(&repo, &id).await.unwrap(), 1000, "every failure left the upload as it was");
    assert_eq!(
        s.append_upload(&repo, &id, Some((1000, data.len() as u64 - 1)), body(&data[1000..])).await.unwrap(),
        data.len() as u64
    );
    let digest = Digest::sha256(&data);
    s.finish_upload(&repo, &id, &digest).await.unwrap();
    assert_eq!(read_all(&*s, &repo, &digest).await, data);
}

async fn a_chunked_upload_alternating_between_instances_completes(backend: Backend) {
    let (a, b) = (backend.open(), backend.open());
    let repo = name("uploads/replicas");
    // Chunks of 3 MiB: parts are filled by bytes received on both instances.
    let data = content(13 * MIB + 1, 7);
    let digest = push_chunked(&[a.clone(), b.clone()], &repo, &data, 3 * MIB).await;
    assert_eq!(read_all(&*b, &repo, &digest).await, data);
    assert_eq!(read_all(&*a, &repo, &digest).await, data);
    // Small chunks only (everything stays in the tail), finished on the other instance.
    let small = content(4000, 8);
    let digest = push_chunked(&[b.clone(), a.clone()], &repo, &small, 1000).await;
    assert_eq!(read_all(&*a, &repo, &digest).await, small);
}

async fn an_upload_resumes_on_a_new_instance(backend: Backend) {
    let repo = name("uploads/resumed");
    let data = content(6 * MIB + 10, 9);
    let id = {
        let first = backend.open();
        let id = first.start_upload(&repo).await.unwrap();
        first.append_upload(&repo, &id, None, body(&data[..4 * MIB])).await.unwrap();
        id
    };
    let second = backend.open();
    let size = second.upload_size(&repo, &id).await.unwrap();
    assert_eq!(size, 4 * MIB as u64);
    second.append_upload(&repo, &id, Some((size, data.len() as u64 - 1)), body(&data[4 * MIB..])).await.unwrap();
    let digest = Digest::sha256(&data);
    second.finish_upload(&repo, &id, &digest).await.unwrap();
    assert_eq!(read_all(&*second, &repo, &digest).await, data);
}

async fn idle_uploads_expire(backend: Backend) {
    let s = (backend.open)(Duration::from_millis(400));
    let repo = name("uploads/idle");
    let id = s.start_upload(&repo).await.unwrap();
    s.append_upload(&repo, &id, None, body(b"abc")).await.unwrap();
    assert_eq!(s.upload_size(&repo, &id).await.unwrap(), 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(code(s.upload_size(&repo, &id).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.append_upload(&repo, &id, None, body(b"d")).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.finish_upload(&repo, &id, &Digest::sha256(b"abc")).await), OciErrorCode::BlobUploadUnknown);
}

async fn a_cancelled_upload_is_unknown(backend: Backend) {
    let s = backend.open();
    let repo = name("uploads/cancelled");
    let id = s.start_upload(&repo).await.unwrap();
    s.append_upload(&repo, &id, None, body(&content(6 * MIB, 1))).await.unwrap();
    s.cancel_upload(&repo, &id).await.unwrap();
    assert_eq!(code(s.upload_size(&repo, &id).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.cancel_upload(&repo, &id).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.finish_upload(&repo, &id, &Digest::sha256(b"")).await), OciErrorCode::BlobUploadUnknown);
}

async fn hostile_upload_ids_are_unknown(backend: Backend) {
    let s = backend.open();
    let (repo, other) = (name("uploads/mine"), name("uploads/theirs"));
    let long = "a".repeat(200);
    for id in ["../x", "", long.as_str(), "../../repositories/x/_meta.json", "abc/def", "%2e%2e"] {
        assert_eq!(code(s.upload_size(&repo, id).await), OciErrorCode::BlobUploadUnknown, "{id:?}");
        assert_eq!(code(s.append_upload(&repo, id, None, body(b"x")).await), OciErrorCode::BlobUploadUnknown, "{id:?}");
        assert_eq!(code(s.cancel_upload(&repo, id).await), OciErrorCode::BlobUploadUnknown, "{id:?}");
    }
    // Another repository's upload id is unknown here.
    let id = s.start_upload(&other).await.unwrap();
    assert_eq!(code(s.upload_size(&repo, &id).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.append_upload(&repo, &id, None, body(b"x")).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(code(s.finish_upload(&repo, &id, &Digest::sha256(b"")).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(s.upload_size(&other, &id).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------------
// Repositories

async fn repositories_are_isolated(backend: Backend) {
    let s = backend.open();
    let (x, y) = (name("iso/x"), name("iso/y"));
    let data = content(1000, 10);
    let digest = push_blob(&*s, &x, &data).await;
    assert_eq!(s.blob_size(&y, &digest).await.unwrap(), None);
    assert_eq!(code(s.read_blob(&y, &digest, None).await.map(|r| r.size)), OciErrorCode::BlobUnknown);
    assert_eq!(code(s.delete_blob(&y, &digest).await), OciErrorCode::BlobUnknown);
    assert!(!s.mount_blob(&x, &y, &digest).await.unwrap(), "y has nothing to mount from");
    // A manifest in y cannot reference x's blob.
    let m = manifest("{\"iso\":1}", None);
    let refs = References { blobs: vec![digest.clone()], manifests: vec![] };
    assert_eq!(code(s.put_manifest(&y, &m, &refs, None, None).await), OciErrorCode::ManifestBlobUnknown);
    // Mounted, it is y's too; deleted from y, x keeps it.
    assert!(s.mount_blob(&y, &x, &digest).await.unwrap());
    assert_eq!(read_all(&*s, &y, &digest).await, data);
    s.delete_blob(&y, &digest).await.unwrap();
    assert_eq!(s.blob_size(&y, &digest).await.unwrap(), None);
    assert_eq!(read_all(&*s, &x, &digest).await, data);
}

async fn repository_metadata(backend: Backend) {
    let s = backend.open();
    let repo = name("meta/app");
    assert_eq!(s.repository(&repo).await.unwrap(), None);
    let created = s.create_repository(&repo, "alice").await.unwrap();
    assert_eq!((created.name.as_str(), created.owner.as_str()), ("meta/app", "alice"));
    // Creating again returns the first creation unchanged.
    assert_eq!(s.create_repository(&repo, "mallory").await.unwrap(), created);
    let updated = s
        .update_repository(
            &repo,
            Box::new(|m| {
                m.grants.entry(Permissions::Pull).or_default().insert("bob".into());
            }),
        )
        .await
        .unwrap();
    assert!(updated.allows("bob", false) && !updated.allows("bob", true));
    assert_eq!(s.repository(&repo).await.unwrap(), Some(updated));
    let missing = name("meta/missing");
    assert_eq!(code(s.update_repository(&missing, Box::new(|_| {})).await), OciErrorCode::NameUnknown);
    assert_eq!(code(s.delete_repository(&missing).await), OciErrorCode::NameUnknown);
    assert_eq!(code(s.list_tags(&missing).await), OciErrorCode::NameUnknown);
    s.delete_repository(&repo).await.unwrap();
    assert_eq!(s.repository(&repo).await.unwrap(), None);
    assert_eq!(code(s.delete_repository(&repo).await), OciErrorCode::NameUnknown);
}

async fn racing_grants_from_two_instances_are_all_kept(backend: Backend) {
    let (a, b) = backend.racers();
    let repo = name("race/grants");
    a.create_repository(&repo, "owner").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (s, repo) = (if i % 2 == 0 { a.clone() } else { b.clone() }, repo.clone());
            tokio::spawn(async move {
                let account = format!("acct{i:02}");
                s.update_repository(
                    &repo,
                    Box::new(move |m| {
                        m.grants.entry(Permissions::PushPull).or_default().insert(account.clone());
                    }),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("grant");
    }
    let meta = b.repository(&repo).await.unwrap().unwrap();
    assert_eq!(meta.grants[&Permissions::PushPull].len(), 20, "{:?}", meta.grants);
}

async fn racing_tags_from_two_instances_are_all_kept(backend: Backend) {
    let (a, b) = backend.racers();
    let repo = name("race/tags");
    a.create_repository(&repo, "owner").await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (s, repo) = (if i % 2 == 0 { a.clone() } else { b.clone() }, repo.clone());
            tokio::spawn(async move {
                let m = manifest(&format!("{{\"n\":{i}}}"), None);
                s.put_manifest(&repo, &m, &References::default(), None, Some(&tag(&format!("t{i:02}")))).await?;
                // Everyone also races on one shared tag.
                s.put_manifest(&repo, &m, &References::default(), None, Some(&tag("latest"))).await?;
                Ok::<_, Error>(m.digest)
            })
        })
        .collect();
    let mut digests = Vec::new();
    for t in tasks {
        digests.push(t.await.unwrap().expect("tag"));
    }
    let tags = a.list_tags(&repo).await.unwrap();
    let mut expected: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    expected.insert(0, "latest".into());
    assert_eq!(tags, expected);
    for (i, d) in digests.iter().enumerate() {
        let got = b.get_manifest(&repo, &Reference::Tag(tag(&format!("t{i:02}")))).await.unwrap().unwrap();
        assert_eq!(&got.digest, d);
    }
    let latest = a.get_manifest(&repo, &Reference::Tag(tag("latest"))).await.unwrap().unwrap();
    assert!(digests.contains(&latest.digest), "latest is one of the writes");
}

async fn the_catalog_is_sorted_with_nested_names(backend: Backend) {
    let s = backend.open();
    for n in ["cat/b", "cat/a/b", "cat/a-b", "cat/a", "cat/a/b/c", "cat/a.b", "cat/a_b"] {
        s.create_repository(&name(n), "owner").await.unwrap();
    }
    let other = backend.open();
    let all = other.list_repositories().await.unwrap();
    assert_eq!(all, ["cat/a", "cat/a-b", "cat/a.b", "cat/a/b", "cat/a/b/c", "cat/a_b", "cat/b"]);
}

// ---------------------------------------------------------------------------------------------------
// Manifests

async fn manifests_tags_and_referrers(backend: Backend) {
    let s = backend.open();
    let repo = name("man/app");
    s.create_repository(&repo, "owner").await.unwrap();
    assert_eq!(s.list_tags(&repo).await.unwrap(), Vec::<String>::new());
    let layer = push_blob(&*s, &repo, b"layer").await;
    let missing = Digest::sha256(b"never pushed");
    let image = manifest("{\"image\":1}", None);
    let bad = References { blobs: vec![layer.clone(), missing.clone()], manifests: vec![] };
    assert_eq!(
        code(s.put_manifest(&repo, &image, &bad, None, Some(&tag("v1"))).await),
        OciErrorCode::ManifestBlobUnknown
    );
    let bad_index = References { blobs: vec![], manifests: vec![missing.clone()] };
    assert_eq!(code(s.put_manifest(&repo, &image, &bad_index, None, None).await), OciErrorCode::ManifestBlobUnknown);
    assert_eq!(s.get_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap(), None);

    let refs = References { blobs: vec![layer.clone()], manifests: vec![] };
    s.put_manifest(&repo, &image, &refs, None, Some(&tag("v1"))).await.unwrap();
    s.put_manifest(&repo, &image, &refs, None, Some(&tag("v2"))).await.unwrap();
    let by_tag = s.get_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap().unwrap();
    assert_eq!(by_tag, image);
    assert_eq!(s.get_manifest(&repo, &Reference::Digest(image.digest.clone())).await.unwrap(), Some(image.clone()));
    // Manifests are per repository like blobs.
    assert_eq!(s.get_manifest(&name("man/other"), &Reference::Digest(image.digest.clone())).await.unwrap(), None);

    let sig = manifest("{\"signature\":1}", Some(image.digest.clone()));
    let descriptor = ReferrerDescriptor {
        media_type: sig.media_type.clone(),
        digest: sig.digest.clone(),
        size: sig.bytes.len() as u64,
        artifact_type: Some("application/example".into()),
        annotations: None,
    };
    s.put_manifest(&repo, &sig, &References::default(), Some(descriptor.clone()), None).await.unwrap();
    assert_eq!(s.referrers(&repo, &image.digest).await.unwrap(), vec![descriptor]);
    assert_eq!(
        s.get_manifest(&repo, &Reference::Digest(sig.digest.clone())).await.unwrap().unwrap().subject,
        Some(image.digest.clone())
    );
    assert_eq!(s.list_tags(&repo).await.unwrap(), ["v1", "v2"]);

    // A tag alone.
    s.delete_manifest(&repo, &Reference::Tag(tag("v2"))).await.unwrap();
    assert_eq!(code(s.delete_manifest(&repo, &Reference::Tag(tag("v2"))).await), OciErrorCode::ManifestUnknown);
    assert_eq!(s.list_tags(&repo).await.unwrap(), ["v1"]);
    // A manifest takes its tags along; a referrer's removal empties its subject's list.
    s.delete_manifest(&repo, &Reference::Digest(image.digest.clone())).await.unwrap();
    assert_eq!(s.get_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap(), None);
    assert_eq!(s.list_tags(&repo).await.unwrap(), Vec::<String>::new());
    assert_eq!(
        code(s.delete_manifest(&repo, &Reference::Digest(image.digest.clone())).await),
        OciErrorCode::ManifestUnknown
    );
    s.delete_manifest(&repo, &Reference::Digest(sig.digest.clone())).await.unwrap();
    assert_eq!(s.referrers(&repo, &image.digest).await.unwrap(), vec![]);
    // A tag can be set again after its manifest was deleted.
    s.put_manifest(&repo, &image, &refs, None, Some(&tag("v1"))).await.unwrap();
    assert_eq!(s.list_tags(&repo).await.unwrap(), ["v1"]);
}

async fn deleting_a_repository_keeps_nested_ones(backend: Backend) {
    let s = backend.open();
    let (parent, child) = (name("del/app"), name("del/app/child"));
    for r in [&parent, &child] {
        s.create_repository(r, "owner").await.unwrap();
        let m = manifest(&format!("{{\"r\":\"{r}\"}}"), None);
        s.put_manifest(r, &m, &References::default(), None, Some(&tag("v1"))).await.unwrap();
    }
    let digest = push_blob(&*s, &parent, b"parent blob").await;
    s.delete_repository(&parent).await.unwrap();
    assert_eq!(s.repository(&parent).await.unwrap(), None);
    assert_eq!(s.blob_size(&parent, &digest).await.unwrap(), None);
    assert_eq!(s.get_manifest(&parent, &Reference::Tag(tag("v1"))).await.unwrap(), None);
    assert_eq!(s.list_tags(&child).await.unwrap(), ["v1"]);
    assert_eq!(s.list_repositories().await.unwrap(), ["del/app/child"]);
    // Re-created, it starts empty.
    s.create_repository(&parent, "owner").await.unwrap();
    assert_eq!(s.list_tags(&parent).await.unwrap(), Vec::<String>::new());
}

async fn a_manifest_write_waits_for_a_live_sweep(backend: Backend) {
    let s = backend.open();
    let repo = name("fence/app");
    let layer = push_blob(&*s, &repo, b"fenced").await;
    (backend.sweep)(true).await;
    let write = tokio::spawn({
        let (s, repo) = (s.clone(), repo.clone());
        async move {
            let m = manifest("{\"fenced\":1}", None);
            s.put_manifest(&repo, &m, &References { blobs: vec![layer], manifests: vec![] }, None, Some(&tag("v1")))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!write.is_finished(), "the write waits while a sweep is live");
    (backend.sweep)(false).await;
    tokio::time::timeout(Duration::from_secs(10), write).await.expect("the write goes on").unwrap().unwrap();
    assert!(s.get_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------------
// Pages of listings

/// Every page of `limit` of a listing, following `more` from the start (bounded).
async fn all_pages<F, Fut>(limit: usize, page: F) -> Vec<String>
where
    F: Fn(Option<String>) -> Fut,
    Fut: Future<Output = ListPage>,
{
    let mut out: Vec<String> = Vec::new();
    for _ in 0..1000 {
        let p = page(out.last().cloned()).await;
        assert!(p.names.len() <= limit, "a page of {} names for a limit of {limit}", p.names.len());
        assert!(p.names.windows(2).all(|w| w[0] < w[1]), "a page in order: {:?}", p.names);
        assert!(p.names.first().is_none_or(|f| out.last().is_none_or(|l| l < f)), "pages continue in order");
        let more = p.more;
        assert!(!more || p.names.len() == limit, "only a full page has more after it: {p:?}");
        out.extend(p.names);
        if !more {
            return out;
        }
    }
    panic!("the listing did not end");
}

/// Repositories with nested names and names sorting between them, in random-ish creation order.
const PAGED_REPOSITORIES: [&str; 14] = [
    "pg/b", "pg/a/b", "pg/a-b", "pg/a", "pg/a/b/c", "pg/a.b", "pg/a_b", "pg/z", "pg/a0", "pg/m/n", "pg/m", "pg/m-n",
    "pg/c", "pg/b/a",
];

async fn catalog_pages_follow_the_full_listing(backend: Backend) {
    let s = backend.open();
    for n in PAGED_REPOSITORIES {
        s.create_repository(&name(n), "owner").await.unwrap();
    }
    s.delete_repository(&name("pg/c")).await.unwrap();
    let full = s.list_repositories().await.unwrap();
    assert_eq!(full.len(), PAGED_REPOSITORIES.len() - 1);
    for limit in [1, 2, 3, 5, 13, 14, 100] {
        let paged = all_pages(limit, |after| {
            let s = s.clone();
            async move { s.list_repositories_page(after.as_deref(), limit).await.unwrap() }
        })
        .await;
        assert_eq!(paged, full, "pages of {limit}");
    }
    let first = s.list_repositories_page(None, 3).await.unwrap();
    assert_eq!(first, ListPage { names: vec!["pg/a".into(), "pg/a-b".into(), "pg/a.b".into()], more: true });
    // After a name that is not there (deleted), and after the last one.
    let after_deleted = s.list_repositories_page(Some("pg/c"), 100).await.unwrap();
    assert_eq!(
        after_deleted,
        ListPage { names: vec!["pg/m".into(), "pg/m-n".into(), "pg/m/n".into(), "pg/z".into()], more: false }
    );
    assert_eq!(s.list_repositories_page(Some("pg/z"), 100).await.unwrap(), ListPage::default());
    assert_eq!(s.list_repositories_page(Some("zzz"), 1).await.unwrap(), ListPage::default());
}

async fn tag_pages_follow_the_full_listing(backend: Backend) {
    let s = backend.open();
    let repo = name("pgt/app");
    s.create_repository(&repo, "owner").await.unwrap();
    let m = manifest("{\"paged\":1}", None);
    let tags = ["v1", "v1.0", "v1-rc", "v10", "v2", "latest", "V1", "_x", "a", "z", "v1_0", "gone"];
    for t in tags {
        s.put_manifest(&repo, &m, &References::default(), None, Some(&tag(t))).await.unwrap();
    }
    s.delete_manifest(&repo, &Reference::Tag(tag("gone"))).await.unwrap();
    let full = s.list_tags(&repo).await.unwrap();
    assert_eq!(full.len(), tags.len() - 1);
    for limit in [1, 2, 4, 11, 12, 1000] {
        let paged = all_pages(limit, |after| {
            let (s, repo) = (s.clone(), repo.clone());
            async move { s.list_tags_page(&repo, after.as_deref(), limit).await.unwrap() }
        })
        .await;
        assert_eq!(paged, full, "pages of {limit}");
    }
    // A nested repository's tags are its own.
    let child = name("pgt/app/child");
    s.create_repository(&child, "owner").await.unwrap();
    assert_eq!(s.list_tags_page(&child, None, 10).await.unwrap(), ListPage::default());
    // Deleting the manifest removes its tags from the pages; a missing repository is not found.
    s.delete_manifest(&repo, &Reference::Digest(m.digest.clone())).await.unwrap();
    assert_eq!(s.list_tags_page(&repo, None, 10).await.unwrap(), ListPage::default());
    assert_eq!(code(s.list_tags_page(&name("pgt/none"), None, 10).await), OciErrorCode::NameUnknown);
    s.delete_repository(&repo).await.unwrap();
    assert_eq!(code(s.list_tags_page(&repo, None, 10).await), OciErrorCode::NameUnknown);
}

/// `after` comes from clients: whatever it holds, a page is what the full listing says it is.
async fn hostile_page_bounds_answer_like_the_full_listing(backend: Backend) {
    let s = backend.open();
    let repo = name("hb/a");
    let m = manifest("{\"hostile\":1}", None);
    for n in ["hb/a", "hb/a/b", "hb/a-b", "hb/b", "hb/a/z"] {
        s.create_repository(&name(n), "owner").await.unwrap();
    }
    for t in ["a", "b", "c-d", "c.d"] {
        s.put_manifest(&repo, &m, &References::default(), None, Some(&tag(t))).await.unwrap();
    }
    let repositories = s.list_repositories().await.unwrap();
    let tags = s.list_tags(&repo).await.unwrap();
    let long = "a/".repeat(5000);
    let hostile = [
        "",
        "hb",
        "hb/",
        "hb//z",
        "hb/a//",
        "hb/./b",
        "hb/../b",
        "hb/a/..",
        "hb/a%2Fb",
        "hb/\u{0}",
        "hb\u{0}/b",
        "hb/\u{e9}",
        "HB/A",
        "hb/a\n",
        "hb/a/b\\",
        "hb/~",
        "\u{10ffff}",
        "b",
        "c",
        "c-",
        "c.d\u{0}",
        long.as_str(),
    ];
    for after in hostile {
        for limit in [0, 1, 2, 1000, usize::MAX] {
            assert_eq!(
                s.list_repositories_page(Some(after), limit).await.unwrap(),
                ListPage::of_sorted(repositories.clone(), Some(after), limit),
                "catalog after {after:?}, limit {limit}"
            );
            assert_eq!(
                s.list_tags_page(&repo, Some(after), limit).await.unwrap(),
                ListPage::of_sorted(tags.clone(), Some(after), limit),
                "tags after {after:?}, limit {limit}"
            );
        }
    }
}

async fn pages_see_what_another_instance_wrote(backend: Backend) {
    let (a, b) = (backend.open(), backend.open());
    let repo = name("pgx/app");
    a.create_repository(&repo, "owner").await.unwrap();
    a.create_repository(&name("pgx/other"), "owner").await.unwrap();
    let m = manifest("{\"other\":1}", None);
    a.put_manifest(&repo, &m, &References::default(), None, Some(&tag("v1"))).await.unwrap();
    assert_eq!(b.list_repositories_page(None, 10).await.unwrap().names, ["pgx/app", "pgx/other"]);
    assert_eq!(b.list_tags_page(&repo, None, 10).await.unwrap().names, ["v1"]);
    b.delete_repository(&name("pgx/other")).await.unwrap();
    b.put_manifest(&repo, &m, &References::default(), None, Some(&tag("v2"))).await.unwrap();
    b.delete_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap();
    assert_eq!(a.list_repositories_page(None, 10).await.unwrap().names, ["pgx/app"]);
    assert_eq!(a.list_tags_page(&repo, None, 10).await.unwrap().names, ["v2"]);
}

// ---------------------------------------------------------------------------------------------------
// Garbage collection (one implementation over `Collectable`, the same guarantees on every backend)

/// Options of a collection that spares nothing for its age: the hardest case for the fence.
fn no_grace() -> GcOptions {
    GcOptions { grace: Duration::ZERO, ..GcOptions::default() }
}

fn collectable(s: &Arc<dyn Storage>) -> &dyn Collectable {
    s.collectable().expect("every backend can be collected")
}

/// An image manifest naming `config` and `layers` (the mark reads these bytes).
fn image(config: &Digest, layers: &[&Digest], note: &str) -> (StoredManifest, References) {
    let text = serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.to_string(), "size": 1},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": l.to_string(), "size": 1,
        })).collect::<Vec<_>>(),
        "annotations": {"note": note},
    })
    .to_string();
    let blobs = std::iter::once(config).chain(layers.iter().copied()).cloned().collect();
    (manifest(&text, None), References { blobs, manifests: vec![] })
}

async fn gc_sweeps_unreferenced_blobs(backend: Backend) {
    let s = backend.open();
    let repo = name("gc/sweep");
    let orphan = push_blob(&*s, &repo, b"nobody references me").await;
    let report = collect(collectable(&s), &no_grace(), |_, _| {}).await.expect("gc");
    assert_eq!(report.deleted, [orphan.to_string()], "{report:?}");
    assert_eq!(report.deleted_bytes, 20);
    // Gone with its link: no repository claims a blob that is gone.
    assert_eq!(s.blob_size(&repo, &orphan).await.unwrap(), None);
    assert!(!collectable(&s).has_blob(&orphan).await.unwrap());
    assert!(collectable(&s).blob_links(&repo).await.unwrap().is_empty());
}

async fn gc_keeps_referenced_blobs(backend: Backend) {
    let s = backend.open();
    let repo = name("gc/keep");
    let (config, layer) = (push_blob(&*s, &repo, b"config").await, push_blob(&*s, &repo, b"layer").await);
    let (m, refs) = image(&config, &[&layer], "kept");
    s.put_manifest(&repo, &m, &refs, None, Some(&tag("v1"))).await.unwrap();
    let fresh = push_blob(&*s, &repo, b"pushed a moment ago").await;
    // The default grace period spares the fresh unreferenced blob; nothing referenced goes either way.
    let report = collect(collectable(&s), &GcOptions::default(), |_, _| {}).await.expect("gc");
    assert!(report.deleted.is_empty() && report.spared == 1, "{report:?}");
    let report = collect(collectable(&s), &no_grace(), |_, _| {}).await.expect("gc");
    assert_eq!(report.deleted, [fresh.to_string()], "{report:?}");
    assert_eq!((report.manifests, report.referenced), (1, 3), "{report:?}");
    assert_eq!(read_all(&*s, &repo, &config).await, b"config");
    assert_eq!(read_all(&*s, &repo, &layer).await, b"layer");
    assert_eq!(s.get_manifest(&repo, &Reference::Tag(tag("v1"))).await.unwrap().map(|g| g.bytes), Some(m.bytes));
}

async fn gc_racing_pushes_never_loses_an_acknowledged_blob(backend: Backend) {
    const ROUNDS: usize = 8;
    let (pusher, collector) = backend.racers();
    let repo = name("gc/race");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gc = tokio::spawn({
        let (done, runs, collector) = (done.clone(), runs.clone(), collector.clone());
        async move {
            let mut deleted = 0;
            // Bounded: the pusher's rounds end well within this; the collector stops with them.
            let started = std::time::Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst) && started.elapsed() < Duration::from_secs(240) {
                deleted += collect(collectable(&collector), &no_grace(), |_, _| {}).await.expect("gc").deleted.len();
                let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                // Bursts of collections overlap PUTs; the pauses between let pushes through (on a loaded
                // machine a push to an emulator takes a few hundred milliseconds).
                tokio::time::sleep(Duration::from_millis([1, 1, 1, 1, 500][run % 5])).await;
            }
            deleted
        }
    });
    let (mut acked, mut lost) = (0, Vec::new());
    for round in 0..ROUNDS {
        let blobs: Vec<Vec<u8>> = (0..3).map(|k| format!("round {round} blob {k} ").repeat(40).into_bytes()).collect();
        let mut stored = None;
        for _attempt in 0..40 {
            let mut digests = Vec::new();
            for blob in &blobs {
                let digest = Digest::sha256(blob);
                if pusher.blob_size(&repo, &digest).await.unwrap().is_none() {
                    push_blob(&*pusher, &repo, blob).await;
                }
                digests.push(digest);
            }
            let (m, refs) = image(&digests[0], &[&digests[1], &digests[2]], &format!("round {round}"));
            match pusher.put_manifest(&repo, &m, &refs, None, Some(&tag("latest"))).await {
                Ok(()) => {
                    stored = Some((m, digests));
                    break;
                }
                // A collection deleted a blob between the check and the PUT: the PUT says so; upload again.
                Err(e) if e.code() == OciErrorCode::ManifestBlobUnknown => continue,
                Err(e) => panic!("manifest PUT: {e}"),
            }
        }
        let Some((m, digests)) = stored else { continue };
        acked += 1;
        // Let collections that may have marked before the PUT finish (bounded: 60 s).
        let seen = runs.load(std::sync::atomic::Ordering::SeqCst);
        let waited = std::time::Instant::now();
        while runs.load(std::sync::atomic::Ordering::SeqCst) < seen + 2 && waited.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if pusher.get_manifest(&repo, &Reference::Digest(m.digest.clone())).await.unwrap().is_none() {
            lost.push(format!("manifest of round {round}"));
        }
        for (digest, blob) in digests.iter().zip(&blobs) {
            match pusher.blob_size(&repo, digest).await.unwrap() {
                Some(_) if read_all(&*pusher, &repo, digest).await == *blob => {}
                other => lost.push(format!("blob {digest} of round {round}: {other:?}")),
            }
        }
        // Unreferenced from now on: the next collections delete them, so they race with the next round.
        pusher.delete_manifest(&repo, &Reference::Digest(m.digest)).await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let deleted = gc.await.expect("collector");
    eprintln!(
        "{acked} acknowledged pushes, {} collections, {deleted} blobs deleted",
        runs.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(lost.is_empty(), "acknowledged pushes lost content: {lost:?}");
    assert!(acked >= ROUNDS / 4, "too few pushes were acknowledged: {acked}");
    assert!(deleted > 0, "the collections never deleted anything, so they raced with nothing");
}

async fn gc_two_collectors_at_once_one_refuses(backend: Backend) {
    let (a, b) = backend.racers();
    // Taken at the same moment by two collectors (two replicas where the backend has them): one wins.
    let (first, second) = tokio::join!(
        Lease::acquire(collectable(&a), Duration::from_secs(60)),
        Lease::acquire(collectable(&b), Duration::from_secs(60))
    );
    let (held, refused) = match (first, second) {
        (Ok(held), Err(e)) | (Err(e), Ok(held)) => (held, e),
        (first, second) => panic!("exactly one collector takes the lease: {first:?}, {second:?}"),
    };
    assert!(refused.to_string().contains("holds the gc lease until"), "{refused}");
    // A whole collection refuses too, saying who holds the lease and until when; a dry run still reports.
    let err = collect(collectable(&b), &no_grace(), |_, _| {}).await.expect_err("a second collector refuses");
    assert_eq!(err.status(), 409, "{err}");
    assert!(err.to_string().contains("(pid ") && err.to_string().contains("until 20"), "{err}");
    let dry = GcOptions { dry_run: true, ..no_grace() };
    assert!(collect(collectable(&b), &dry, |_, _| {}).await.expect("a dry run deletes nothing").dry_run);
    held.release().await;
    collect(collectable(&b), &no_grace(), |_, _| {}).await.expect("the lease was given back");
}

async fn gc_an_expired_lease_is_taken_over(backend: Backend) {
    let (a, b) = backend.racers();
    // A collector that died holding the lease: its record stays, never refreshed.
    let mut dead = Lease::acquire(collectable(&a), Duration::from_secs(1)).await.expect("lease");
    assert!(collect(collectable(&b), &no_grace(), |_, _| {}).await.is_err(), "live until it expires");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // Two collectors take the expired lease over at once: the write is conditional, so one wins.
    let (first, second) = tokio::join!(
        Lease::acquire(collectable(&a), Duration::from_secs(60)),
        Lease::acquire(collectable(&b), Duration::from_secs(60))
    );
    let held = match (first, second) {
        (Ok(held), Err(_)) | (Err(_), Ok(held)) => held,
        (first, second) => panic!("exactly one collector takes the expired lease over: {first:?}, {second:?}"),
    };
    // The collector that stalled finds its lease taken over when it wakes up, and stops.
    let err = dead.keep_alive().await.expect_err("a lease taken over cannot be refreshed");
    assert!(err.to_string().contains("took the gc lease over"), "{err}");
    held.release().await;
    Lease::acquire(collectable(&b), Duration::from_secs(1)).await.expect("expired again");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    collect(collectable(&b), &no_grace(), |_, _| {}).await.expect("a collection takes an expired lease over");
}

async fn gc_removes_expired_uploads_and_their_parts(backend: Backend) {
    let expiry = Duration::from_secs(1);
    let s = (backend.open)(expiry);
    let repo = name("gc/uploads");
    // More than a part: a multipart upload with a part stored and a tail.
    let expired = s.start_upload(&repo).await.unwrap();
    s.append_upload(&repo, &expired, None, body(&content(6 * MIB, 9))).await.unwrap();
    let small = s.start_upload(&repo).await.unwrap();
    s.append_upload(&repo, &small, None, body(b"tail only")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let live = s.start_upload(&repo).await.unwrap();
    s.append_upload(&repo, &live, None, body(b"still going")).await.unwrap();
    let options = GcOptions { upload_expiry: expiry, ..no_grace() };
    let report = collect(collectable(&s), &options, |_, _| {}).await.expect("gc");
    assert_eq!(report.uploads_removed, 2, "{report:?}");
    assert!(report.reclaimed_bytes >= 6 * MIB as u64 + 9, "{report:?}");
    let left: Vec<String> = collectable(&s).uploads().await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(left, std::slice::from_ref(&live), "everything of the expired sessions is gone");
    assert_eq!(code(s.upload_size(&repo, &expired).await), OciErrorCode::BlobUploadUnknown);
    assert_eq!(s.upload_size(&repo, &live).await.unwrap(), 11);
    let digest = Digest::sha256(b"still going");
    assert_eq!(s.finish_upload(&repo, &live, &digest).await.unwrap(), 11);
}
