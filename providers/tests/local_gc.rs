//! Garbage collection of the local storage while pushes run: an acknowledged manifest never loses
//! anything it references, even with no grace period at all.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use regbridge::OciErrorCode;
use regbridge::oci::media_types::{OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST};
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge_providers::local::gc::{GcOptions, collect};
use regbridge_providers::local::{FsStorage, Storage, store_manifest};

const WORKERS: usize = 4;
const ROUNDS: usize = 25;
/// Blobs shared by the workers' images, so that a blob one push uploaded is one another push finds
/// already there (HEAD says yes) and skips.
const POOL: usize = 6;

fn pool_blob(i: usize) -> Bytes {
    Bytes::from(format!("shared blob {i} ").repeat(64 + i))
}

fn one_chunk(bytes: Bytes) -> regbridge_providers::local::storage::ByteStream {
    Box::pin(futures_util::stream::iter([Ok(bytes)]))
}

async fn upload(storage: &FsStorage, repo: &RepositoryName, bytes: &Bytes) {
    let id = storage.start_upload(repo).await.expect("start upload");
    storage.append_upload(repo, &id, None, one_chunk(bytes.clone())).await.expect("append");
    storage.finish_upload(repo, &id, &Digest::sha256(bytes)).await.expect("finish upload");
}

fn manifest(config: &Bytes, layers: &[&Bytes], note: &str) -> Bytes {
    let desc = |media_type: &str, b: &Bytes| serde_json::json!({"mediaType": media_type, "digest": Digest::sha256(b).to_string(), "size": b.len()});
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(OCI_CONFIG, config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER_GZIP, l)).collect::<Vec<_>>(),
        "annotations": {"note": note},
    });
    Bytes::from(serde_json::to_vec(&value).expect("manifest json"))
}

/// What an acknowledged manifest must still give: its bytes, and every blob it references.
async fn readable(storage: &FsStorage, repo: &RepositoryName, digest: &Digest, blobs: &[Bytes]) -> Result<(), String> {
    match storage.get_manifest(repo, &Reference::Digest(digest.clone())).await {
        Ok(Some(_)) => {}
        other => return Err(format!("manifest {digest}: {:?}", other.map(|m| m.is_some()))),
    }
    for blob in blobs {
        let d = Digest::sha256(blob);
        let read = storage.read_blob(repo, &d, None).await.map_err(|e| format!("blob {d} of {digest}: {e}"))?;
        let bytes: Vec<u8> = read.body.map(|c| c.expect("blob bytes").to_vec()).concat().await;
        if Digest::sha256(&bytes) != d {
            return Err(format!("blob {d} of {digest} has other bytes"));
        }
    }
    Ok(())
}

/// One client: push an image made of pool blobs (HEAD each, upload only the missing ones, as docker and
/// every other client do), check it once a collection has run since, delete it again (so its blobs are
/// unreferenced for the next push to find), repeat. Returns (acknowledged pushes, violations).
async fn client(
    storage: Arc<FsStorage>,
    repo: RepositoryName,
    worker: usize,
    gc_runs: Arc<AtomicUsize>,
) -> (usize, Vec<String>) {
    let (mut acked, mut lost) = (0, Vec::new());
    for round in 0..ROUNDS {
        let parts: Vec<Bytes> = (0..3).map(|k| pool_blob((worker + round + k) % POOL)).collect();
        let bytes = manifest(&parts[0], &[&parts[1], &parts[2]], &format!("{worker}/{round}"));
        let tag = Tag::parse(&format!("w{worker}")).expect("tag");
        let mut stored = None;
        for _attempt in 0..10 {
            for part in &parts {
                if storage.blob_size(&repo, &Digest::sha256(part)).await.expect("HEAD blob").is_none() {
                    upload(&storage, &repo, part).await;
                }
            }
            match store_manifest(&*storage, &repo, &Reference::Tag(tag.clone()), Some(OCI_MANIFEST), bytes.clone())
                .await
            {
                Ok((digest, _)) => {
                    stored = Some(digest);
                    break;
                }
                // A collection removed a blob between the HEAD and the PUT: the PUT says so, and the
                // client uploads it again.
                Err(e) if e.code() == OciErrorCode::ManifestBlobUnknown => continue,
                Err(e) => panic!("manifest PUT: {e}"),
            }
        }
        let Some(digest) = stored else { continue };
        acked += 1;
        // Let a collection that may have marked before this PUT finish its sweep (bounded: 5 s).
        let seen = gc_runs.load(Ordering::SeqCst);
        for _ in 0..500 {
            if gc_runs.load(Ordering::SeqCst) >= seen + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Err(e) = readable(&storage, &repo, &digest, &parts).await {
            lost.push(e);
        }
        storage.delete_manifest(&repo, &Reference::Digest(digest)).await.expect("delete manifest");
    }
    (acked, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_repushes_survive_concurrent_gc_with_no_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("storage");
    let storage = Arc::new(FsStorage::open(&root).expect("open storage"));
    let repo = RepositoryName::parse("race/app").expect("name");
    storage.create_repository(&repo, "local").await.expect("create repository");
    // Unrelated images make each mark take a while, as on a real registry: the window between the mark
    // and the sweep is where a PUT used to slip through.
    let filler = RepositoryName::parse("filler").expect("name");
    storage.create_repository(&filler, "local").await.expect("create repository");
    for i in 0..40 {
        let config = Bytes::from(format!("filler config {i}"));
        upload(&storage, &filler, &config).await;
        let bytes = manifest(&config, &[], "filler");
        let reference = Reference::Tag(Tag::parse(&format!("f{i}")).expect("tag"));
        store_manifest(&*storage, &filler, &reference, Some(OCI_MANIFEST), bytes).await.expect("filler manifest");
    }

    let done = Arc::new(AtomicBool::new(false));
    let gc_runs = Arc::new(AtomicUsize::new(0));
    let gc = {
        let (done, gc_runs, storage) = (done.clone(), gc_runs.clone(), storage.clone());
        tokio::spawn(async move {
            let options = GcOptions { grace: Duration::ZERO, ..GcOptions::default() };
            let mut deleted = 0;
            // Bounded: the clients finish in well under a minute; the collector stops with them.
            for _ in 0..200_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                deleted += collect(&*storage, &options, |_, _| {}).await.expect("gc").deleted.len();
                gc_runs.fetch_add(1, Ordering::SeqCst);
            }
            deleted
        })
    };
    let clients: Vec<_> =
        (0..WORKERS).map(|w| tokio::spawn(client(storage.clone(), repo.clone(), w, gc_runs.clone()))).collect();
    let (mut acked, mut lost) = (0, Vec::new());
    for c in clients {
        let (a, l) = c.await.expect("client task");
        acked += a;
        lost.extend(l);
    }
    done.store(true, Ordering::SeqCst);
    let deleted = gc.await.expect("gc task");
    let runs = gc_runs.load(Ordering::SeqCst);
    eprintln!("{acked} acknowledged pushes, {runs} collections, {deleted} blobs deleted, {} lost", lost.len());
    assert!(lost.is_empty(), "{} of {acked} acknowledged pushes lost content:\n{}", lost.len(), lost.join("\n"));
    // With no grace period a blob may go between its upload and the PUT (which then fails and is
    // retried): many pushes still get through, and the collections did delete, so there was a race.
    assert!(acked >= WORKERS * ROUNDS / 5, "too few pushes were acknowledged: {acked}");
    assert!(deleted > 0, "the collections never deleted anything, so they raced with nothing");
}
