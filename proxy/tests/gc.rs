//! Garbage collection while clients push through the API: what a manifest PUT acknowledged stays
//! readable, with collections running back to back and no grace period.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{OCI_CONFIG, OCI_LAYER, TestServer, descriptor, header, image_manifest, sha256};
use regbridge::oci::media_types::OCI_MANIFEST;
use regbridge_providers::local::gc::{GcOptions, collect};
use reqwest::Method;

const WORKERS: usize = 3;
const ROUNDS: usize = 12;
const POOL: usize = 5;

fn pool_blob(i: usize) -> Vec<u8> {
    format!("shared layer {i} ").repeat(50 + i).into_bytes()
}

/// A client pushing as docker does: HEAD each blob, upload only the missing ones, PUT the manifest;
/// after a 201, wait for a collection to have run, check everything is readable, delete the manifest
/// (so the next push finds its blobs unreferenced). Returns (acknowledged pushes, what was lost).
async fn client(s: Arc<TestServer>, repo: String, worker: usize, runs: Arc<AtomicUsize>) -> (usize, Vec<String>) {
    let (mut acked, mut lost) = (0, Vec::new());
    for round in 0..ROUNDS {
        let config = format!(r#"{{"os":"linux","worker":{worker},"round":{round}}}"#).into_bytes();
        let layers: Vec<Vec<u8>> = (0..2).map(|k| pool_blob((worker + round + k) % POOL)).collect();
        let manifest = image_manifest(
            &descriptor(OCI_CONFIG, &config),
            &layers.iter().map(|l| descriptor(OCI_LAYER, l)).collect::<Vec<_>>(),
        );
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let blobs: Vec<&Vec<u8>> = std::iter::once(&config).chain(&layers).collect();
        let mut digest = None;
        for _attempt in 0..30 {
            for blob in &blobs {
                let head = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{}", sha256(blob))).send().await;
                if head.expect("HEAD blob").status().as_u16() == 404 {
                    let url = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob));
                    let r = s.admin(Method::POST, &url).body(blob.to_vec()).send().await.expect("upload");
                    assert_eq!(r.status().as_u16(), 201, "upload");
                }
            }
            let r = s.put_manifest(&repo, &format!("w{worker}"), OCI_MANIFEST, &bytes).await;
            match r.status().as_u16() {
                201 => {
                    digest = header(&r, "docker-content-digest");
                    break;
                }
                // A collection removed a blob between the HEAD and the PUT: upload it again.
                400 => assert!(r.text().await.unwrap_or_default().contains("MANIFEST_BLOB_UNKNOWN")),
                other => panic!("manifest PUT: {other} {}", r.text().await.unwrap_or_default()),
            }
        }
        let Some(digest) = digest else { continue };
        acked += 1;
        let seen = runs.load(Ordering::SeqCst);
        for _ in 0..500 {
            if runs.load(Ordering::SeqCst) >= seen + 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{digest}")).send().await.expect("GET manifest");
        if r.status().as_u16() != 200 {
            lost.push(format!("manifest {digest}: {}", r.status()));
        }
        for blob in &blobs {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(blob))).send().await.expect("GET");
            let status = r.status().as_u16();
            if status != 200 || r.bytes().await.expect("blob bytes").as_ref() != blob.as_slice() {
                lost.push(format!("blob {} of {digest}: {status}", sha256(blob)));
            }
        }
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/{digest}")).send().await.expect("DELETE");
        assert_eq!(r.status().as_u16(), 202, "delete manifest");
    }
    (acked, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_repushes_through_the_api_survive_gc_with_no_grace() {
    let s = Arc::new(TestServer::start().await);
    let root = s.data_dir.join("storage");
    // Unrelated images make each mark take a while, as on a real registry: the window between the mark
    // and the sweep is where a PUT used to slip through.
    for i in 0..40 {
        s.push_image("gc/filler", &format!("f{i}")).await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let gc = {
        let (done, runs) = (done.clone(), runs.clone());
        // A collector of its own on the server's storage directory, as `regbridge gc` on the host is.
        let storage = regbridge_providers::local::FsStorage::open(&root).expect("open storage");
        tokio::spawn(async move {
            let options = GcOptions { grace: Duration::ZERO, ..GcOptions::default() };
            let mut deleted = 0;
            for _ in 0..200_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                deleted += collect(&storage, &options, |_, _| {}).await.expect("gc").deleted.len();
                runs.fetch_add(1, Ordering::SeqCst);
                // With no grace, a collection between an upload and its PUT makes the client upload again:
                // bursts of collections overlap many PUTs (the code before the fence lost content in each
                // of 3 runs), and the pauses between let pushes through.
                tokio::time::sleep(Duration::from_millis([1, 1, 1, 1, 20][runs.load(Ordering::SeqCst) % 5])).await;
            }
            deleted
        })
    };
    let clients: Vec<_> =
        (0..WORKERS).map(|w| tokio::spawn(client(s.clone(), "gc/race".into(), w, runs.clone()))).collect();
    let (mut acked, mut lost) = (0, Vec::new());
    for c in clients {
        let (a, l) = c.await.expect("client");
        acked += a;
        lost.extend(l);
    }
    done.store(true, Ordering::SeqCst);
    let deleted = gc.await.expect("gc");
    eprintln!("{acked} acknowledged pushes, {} collections, {deleted} blobs deleted", runs.load(Ordering::SeqCst));
    assert!(lost.is_empty(), "acknowledged pushes lost content:\n{}", lost.join("\n"));
    assert!(acked >= WORKERS, "too few pushes were acknowledged: {acked}");
    assert!(deleted > 0, "the collections never deleted anything, so they raced with nothing");
}
