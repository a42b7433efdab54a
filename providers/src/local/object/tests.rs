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
use reversed::Reversed;

mod reversed;
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

#[tokio::test]
async fn catalog_and_tag_pages_seek_from_an_offset() {
    use crate::local::storage::{References, StoredManifest};
    use regbridge::oci::{Reference, Tag};
    let bucket = Arc::new(InMemory::new());
    let s = storage(&bucket);
    let names = ["a", "a/b", "a-b", "a/b/c", "b", "c0", "c1"];
    for n in names {
        s.create_repository(&repo(n), "owner").await.unwrap();
    }
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = s.repositories_after(after.as_deref(), 2).await.unwrap();
        assert!(page.len() <= 2);
        after = page.last().cloned();
        pages.push(page);
        if !more {
            break;
        }
    }
    assert_eq!(pages, [vec!["a", "a-b"], vec!["a/b", "a/b/c"], vec!["b", "c0"], vec!["c1"]]);
    // A page after a name that is not a repository starts at the next one.
    assert_eq!(s.repositories_after(Some("a/a"), 1).await.unwrap(), (vec!["a/b".to_string()], true));
    assert_eq!(s.repositories_after(Some("c1"), 5).await.unwrap(), (vec![], false));
    // Hostile offsets (escaped in keys, or with empty segments) still mean "names after this text".
    assert_eq!(s.repositories_after(Some("a/"), 1).await.unwrap(), (vec!["a/b".to_string()], true));
    assert_eq!(s.repositories_after(Some("a~"), 1).await.unwrap(), (vec!["b".to_string()], true));
    assert_eq!(s.repositories_after(Some("../../x"), 1).await.unwrap(), (vec!["a".to_string()], true));
    assert_eq!(s.repositories_after(None, 0).await.unwrap(), (vec![], true));

    // Tags: deleted ones (tombstones) are skipped, and a nested repository's tags are not this one's.
    let r = repo("a");
    let m = |text: &str| {
        let bytes = Bytes::from(text.to_owned());
        StoredManifest { media_type: "application/json".into(), digest: Digest::sha256(&bytes), bytes, subject: None }
    };
    let (one, two) = (m("{\"one\":1}"), m("{\"two\":2}"));
    for (t, man) in [("t1", &one), ("t2", &two), ("t3", &one), ("t4", &two)] {
        s.put_manifest(&r, man, &References::default(), None, Some(&Tag::parse(t).unwrap())).await.unwrap();
    }
    s.put_manifest(&repo("a/b"), &one, &References::default(), None, Some(&Tag::parse("nested").unwrap()))
        .await
        .unwrap();
    s.delete_manifest(&r, &Reference::Digest(one.digest.clone())).await.unwrap();
    assert_eq!(s.tags_after(&r, None, 1).await.unwrap(), (vec!["t2".to_string()], true));
    assert_eq!(s.tags_after(&r, Some("t2"), 5).await.unwrap(), (vec!["t4".to_string()], false));
    // The tombstone is an empty object: a later push of the tag brings it back.
    s.put_manifest(&r, &one, &References::default(), None, Some(&Tag::parse("t1").unwrap())).await.unwrap();
    assert_eq!(s.list_tags(&r).await.unwrap(), ["t1", "t2", "t4"]);
}

#[tokio::test]
async fn untagging_by_digest_does_not_undo_a_retag_by_another_writer() {
    use crate::local::storage::{References, StoredManifest};
    use regbridge::oci::{Reference, Tag};
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (storage(&bucket), storage(&bucket));
    let r = repo("app");
    let m = |text: &str| {
        let bytes = Bytes::from(text.to_owned());
        StoredManifest { media_type: "application/json".into(), digest: Digest::sha256(&bytes), bytes, subject: None }
    };
    let (old, new) = (m("{\"old\":1}"), m("{\"new\":1}"));
    let latest = Tag::parse("latest").unwrap();
    a.put_manifest(&r, &old, &References::default(), None, Some(&latest)).await.unwrap();
    // `b` re-points the tag after `a` read it: `a`'s swap loses and the new tag stands.
    let key = a.keys.tag(&r, "latest");
    let read = a.get_versioned(&key).await.unwrap().unwrap();
    b.put_manifest(&r, &new, &References::default(), None, Some(&latest)).await.unwrap();
    assert!(!a.put_conditional(&key, Bytes::new(), Some(read.version)).await.unwrap());
    a.delete_manifest(&r, &Reference::Digest(old.digest.clone())).await.unwrap();
    assert_eq!(a.get_manifest(&r, &Reference::Tag(latest)).await.unwrap().map(|m| m.digest), Some(new.digest));
}

#[tokio::test]
async fn a_stalled_request_loses_its_session_to_another_and_cannot_win_it_back() {
    let bucket = Arc::new(InMemory::new());
    let lease = std::time::Duration::from_millis(300);
    let (mut a, mut b) = (storage(&bucket), storage(&bucket));
    (a.lease, b.lease) = (lease, lease);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let r = repo("app");
    let id = a.start_upload(&r).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let stalled: ByteStream =
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }));
    let first = tokio::spawn({
        let (a, r, id) = (a.clone(), r.clone(), id.clone());
        async move { a.append_upload(&r, &id, None, stalled).await }
    });
    tx.send(Ok(Bytes::from_static(b"stale"))).await.unwrap();
    tokio::time::sleep(lease * 2).await;
    // The lease ran out: another request (here on another instance) takes the session.
    assert_eq!(b.append_upload(&r, &id, Some((0, 4)), body(b"fresh".to_vec())).await.unwrap(), 5);
    drop(tx);
    let late = first.await.unwrap();
    assert!(matches!(late, Err(Error::TooManyRequests { .. })), "{late:?}");
    let digest = Digest::sha256(b"fresh");
    assert_eq!(a.finish_upload(&r, &id, &digest).await.unwrap(), 5);
}

#[tokio::test]
async fn a_store_listing_out_of_order_still_gives_sorted_pages() {
    let s = ObjectStorage::new(Arc::new(Reversed(InMemory::new())), "");
    for n in ["b", "a/b", "a", "a-b", "c"] {
        s.create_repository(&repo(n), "owner").await.unwrap();
    }
    assert_eq!(s.repositories_after(None, 2).await.unwrap(), (vec!["a".to_string(), "a-b".to_string()], true));
    assert_eq!(s.repositories_after(Some("a-b"), 2).await.unwrap(), (vec!["a/b".to_string(), "b".to_string()], true));
    assert_eq!(s.list_repositories().await.unwrap(), ["a", "a-b", "a/b", "b", "c"]);
}

#[tokio::test]
async fn a_request_dropped_midway_gives_its_session_back() {
    let bucket = Arc::new(InMemory::new());
    let s = Arc::new(storage(&bucket));
    let r = repo("app");
    let id = s.start_upload(&r).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let stalled: ByteStream =
        Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) }));
    let request = tokio::spawn({
        let (s, r, id) = (s.clone(), r.clone(), id.clone());
        async move { s.append_upload(&r, &id, None, stalled).await }
    });
    tx.send(Ok(Bytes::from_static(b"partial"))).await.unwrap();
    for _ in 0..200 {
        if s.session(&r, &id).await.unwrap().0.lease_held() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The client goes away: the server drops the request's future.
    request.abort();
    let _ = request.await;
    let mut appended = None;
    for _ in 0..200 {
        match s.append_upload(&r, &id, Some((0, 2)), body(b"abc".to_vec())).await {
            Ok(size) => {
                appended = Some(size);
                break;
            }
            Err(Error::TooManyRequests { .. }) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(appended, Some(3), "the lease came back long before it would have run out");
}

/// Two instances on one bucket share what they have seen, for the window only, in a bounded set of slot
/// objects; a name that is not 64 hex digits never becomes a key.
#[tokio::test]
async fn events_seen_by_one_instance_are_seen_by_another_within_the_window() {
    let bucket = Arc::new(InMemory::new());
    let (a, b) = (storage(&bucket), storage(&bucket));
    let minute = std::time::Duration::from_secs(60);
    let name = "ab".repeat(32);
    assert!(!a.seen_recently(&name, minute).await.unwrap(), "first sight");
    assert!(b.seen_recently(&name, minute).await.unwrap(), "seen by the other instance");
    let other = format!("ab{}", "cd".repeat(31));
    assert!(!b.seen_recently(&other, minute).await.unwrap(), "another name in the same slot");
    // Past the window it is a first sight again, and the expired entry is pruned from its slot.
    assert!(!a.seen_recently(&name, std::time::Duration::ZERO).await.unwrap());
    let slots: Vec<String> = keys(&bucket).await.into_iter().filter(|k| k.contains("/seen/")).collect();
    assert_eq!(slots, ["reg/one/seen/ab"], "one slot per first two digits");
    let stored = object_store::ObjectStoreExt::get(&*bucket, &"reg/one/seen/ab".into()).await.unwrap();
    let slot: serde_json::Value = serde_json::from_slice(&stored.bytes().await.unwrap()).unwrap();
    assert_eq!(slot.as_object().unwrap().len(), 1, "only the name just recorded is left: {slot}");

    for bad in ["", "../../catalog/x", &"AB".repeat(32), &"ab".repeat(33), &format!("{}/x", "a".repeat(62))] {
        let err = a.seen_recently(bad, minute).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!(keys(&bucket).await.into_iter().filter(|k| k.contains("/seen/")).count(), 1);
}
