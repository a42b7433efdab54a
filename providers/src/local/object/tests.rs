//! Unit tests of [`super::ObjectStorage`] on `object_store`'s in-memory store: the key layout and the
//! upload machinery. The guarantees every backend shares are in `tests/storage_conformance.rs`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use regbridge::Error;
use regbridge::oci::{Digest, RepositoryName};

use super::upload::PART_SIZE;
use super::{Bucket, ObjectStorage};
use crate::local::storage::{ByteStream, Storage};

fn repo(name: &str) -> RepositoryName {
    RepositoryName::parse(name).unwrap()
}

fn body(bytes: Vec<u8>) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(Bytes::from(bytes))]))
}

async fn keys(bucket: &InMemory) -> Vec<String> {
    let all: Vec<_> = bucket.list(None).try_collect().await.unwrap();
    let mut keys: Vec<String> = all.into_iter().map(|m| m.location.to_string()).collect();
    keys.sort();
    keys
}

fn storage(bucket: &Arc<InMemory>) -> ObjectStorage {
    ObjectStorage::new(bucket.clone() as Arc<dyn Bucket>, "reg/one")
}

#[tokio::test]
async fn everything_lives_under_the_prefix_in_the_documented_layout() {
    let bucket = Arc::new(InMemory::new());
    let s = storage(&bucket);
    let r = repo("team/app");
    s.create_repository(&r, "local").await.unwrap();
    let id = s.start_upload(&r).await.unwrap();
    s.append_upload(&r, &id, None, body(b"hello".to_vec())).await.unwrap();
    let digest = Digest::sha256(b"hello");
    s.finish_upload(&r, &id, &digest).await.unwrap();
    let keys = keys(&bucket).await;
    assert!(keys.iter().all(|k| k.starts_with("reg/one/")), "{keys:?}");
    assert!(keys.contains(&"reg/one/catalog/team/app".to_string()), "{keys:?}");
    assert!(keys.contains(&format!("reg/one/blobs/sha256/{}", digest.hex())), "{keys:?}");
    assert!(keys.contains(&format!("reg/one/repositories/team/app/_layers/sha256/{}", digest.hex())), "{keys:?}");
    // A finished session leaves nothing behind.
    assert!(!keys.iter().any(|k| k.contains("/uploads/")), "{keys:?}");
}

#[tokio::test]
async fn small_chunks_wait_in_a_tail_until_they_fill_a_part() {
    let bucket = Arc::new(InMemory::new());
    let s = storage(&bucket);
    let r = repo("app");
    let id = s.start_upload(&r).await.unwrap();
    let content: Vec<u8> = (0..(2 * PART_SIZE + 1234)).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    for chunk in content.chunks(PART_SIZE / 3 + 7) {
        let range = Some((sent as u64, (sent + chunk.len() - 1) as u64));
        sent = s.append_upload(&r, &id, range, body(chunk.to_vec())).await.unwrap() as usize;
    }
    let (session, _) = s.session(&r, &id).await.unwrap();
    assert_eq!(session.size, content.len() as u64);
    let tails: Vec<String> = keys(&bucket).await.into_iter().filter(|k| k.contains("/tail/")).collect();
    assert_eq!(tails.len(), 1, "only the current tail is kept: {tails:?}");
    let digest = Digest::sha256(&content);
    assert_eq!(s.finish_upload(&r, &id, &digest).await.unwrap(), content.len() as u64);
    let read = s.read_blob(&r, &digest, None).await.unwrap();
    let got: Vec<Bytes> = read.body.try_collect().await.unwrap();
    assert_eq!(got.concat(), content);
}

#[tokio::test]
async fn a_second_append_while_one_streams_is_refused_and_the_first_completes() {
    let bucket = Arc::new(InMemory::new());
    let s = Arc::new(storage(&bucket));
    let r = repo("app");
    let id = s.start_upload(&r).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let slow: ByteStream =
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }));
    let first = tokio::spawn({
        let (s, r, id) = (s.clone(), r.clone(), id.clone());
        async move { s.append_upload(&r, &id, None, slow).await }
    });
    tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
    // Wait (bounded) until the first request holds the session.
    for _ in 0..200 {
        if s.session(&r, &id).await.unwrap().0.lease_held() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let second = s.append_upload(&r, &id, None, body(b"xyz".to_vec())).await;
    assert!(matches!(second, Err(Error::TooManyRequests { .. })), "{second:?}");
    drop(tx);
    assert_eq!(first.await.unwrap().unwrap(), 3);
    assert_eq!(s.append_upload(&r, &id, Some((3, 5)), body(b"xyz".to_vec())).await.unwrap(), 6);
}

#[tokio::test]
async fn another_instance_finishes_by_reading_the_parts_back() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (storage(&bucket), storage(&bucket));
    let r = repo("app");
    let id = a.start_upload(&r).await.unwrap();
    let content: Vec<u8> = (0..(PART_SIZE + 10)).map(|i| (i % 7) as u8).collect();
    a.append_upload(&r, &id, None, body(content.clone())).await.unwrap();
    assert!(b.take_hash(&id).is_none(), "b never saw this session");
    let digest = Digest::sha256(&content);
    assert_eq!(b.finish_upload(&r, &id, &digest).await.unwrap(), content.len() as u64);
    assert_eq!(a.blob_size(&r, &digest).await.unwrap(), Some(content.len() as u64));
}

#[tokio::test]
async fn a_wrong_digest_leaves_no_blob_and_no_session() {
    let bucket = Arc::new(InMemory::new());
    let s = storage(&bucket);
    let r = repo("app");
    let id = s.start_upload(&r).await.unwrap();
    s.append_upload(&r, &id, None, body(vec![1u8; PART_SIZE + 1])).await.unwrap();
    let claimed = Digest::sha256(b"something else");
    let err = s.finish_upload(&r, &id, &claimed).await.unwrap_err();
    assert!(matches!(err, Error::DigestInvalid { .. }), "{err:?}");
    let keys = keys(&bucket).await;
    assert!(!keys.iter().any(|k| k.contains("/blobs/") || k.contains("/uploads/")), "{keys:?}");
}

#[tokio::test]
async fn hostile_upload_ids_never_become_keys() {
    let bucket = Arc::new(InMemory::new());
    let s = storage(&bucket);
    let r = repo("app");
    for id in ["../x", "", &"a".repeat(200), "abc/def", "ABC DEF"] {
        assert!(matches!(s.upload_size(&r, id).await, Err(Error::NotFound { .. })), "{id:?}");
        assert!(s.keys.upload(id).is_err(), "{id:?}");
    }
}
