//! Crash safety of the real binary: `regbridge serve` is killed with SIGKILL while eight clients push
//! blobs (chunked and monolithic, 1–4 MiB) and manifests, then restarted on the same data directory.
//! Afterwards every stored blob file hashes to its name, every tag resolves to a manifest whose bytes hash
//! to its digest and whose blobs are all readable, everything acknowledged before the kill is there, and an
//! upload begun before the kill can be resumed and finished.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::serve::{ServeProcess, check_tags_and_blobs, free_port, pseudo_random};
use common::{ADMIN, OCI_CONFIG, OCI_LAYER, PASSWORD, client, descriptor, header, image_manifest, sha256, with_digest};
use regbridge::oci::media_types::OCI_MANIFEST;
use regbridge::oci::{Algorithm, Digest};
use reqwest::{Client, Method, RequestBuilder};

const WORKERS: usize = 8;
const IMAGES_PER_WORKER: usize = 4;
const MIB: usize = 1024 * 1024;

/// A blob of 1–4 MiB and its digest, made on a blocking thread.
async fn big_blob(seed: u64) -> (Vec<u8>, String) {
    tokio::task::spawn_blocking(move || {
        let len = MIB + (seed.wrapping_mul(7919) as usize % (3 * MIB));
        let data = pseudo_random(seed, len);
        let digest = sha256(&data);
        (data, digest)
    })
    .await
    .expect("blob generator")
}

/// Why a worker stopped.
#[derive(Debug)]
enum Stop {
    /// The connection failed: expected once the server is killed, and only then.
    Transport(String, Instant),
    /// The server answered something unexpected: a bug, whenever it happens.
    Answer(String),
    /// Every image was pushed before the kill.
    Finished,
}

fn admin(client: &Client, method: Method, url: &str) -> RequestBuilder {
    client.request(method, url).basic_auth(ADMIN, Some(PASSWORD))
}

async fn send(request: RequestBuilder, expected: u16, what: &str) -> Result<reqwest::Response, Stop> {
    let r = request.send().await.map_err(|e| Stop::Transport(format!("{what}: {e}"), Instant::now()))?;
    if r.status().as_u16() != expected {
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        return Err(Stop::Answer(format!("{what}: expected {expected}, got {status}: {body}")));
    }
    Ok(r)
}

async fn push_monolithic(client: &Client, base: &str, repo: &str, data: Vec<u8>, digest: &str) -> Result<(), Stop> {
    let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={digest}");
    send(admin(client, Method::POST, &url).body(data), 201, "monolithic POST").await.map(drop)
}

async fn push_chunked(client: &Client, base: &str, repo: &str, data: &[u8], digest: &str) -> Result<(), Stop> {
    let r = send(admin(client, Method::POST, &format!("{base}/v2/{repo}/blobs/uploads/")), 202, "POST").await?;
    let mut location = header(&r, "location").ok_or_else(|| Stop::Answer("no Location".into()))?;
    let mut offset = 0;
    for chunk in data.chunks(768 * 1024) {
        let range = format!("{offset}-{}", offset + chunk.len() - 1);
        let request = admin(client, Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", &range)
            .body(chunk.to_vec());
        let r = send(request, 202, "PATCH").await?;
        if header(&r, "range").as_deref() != Some(format!("0-{}", offset + chunk.len() - 1).as_str()) {
            return Err(Stop::Answer(format!("PATCH {range}: Range {:?}", header(&r, "range"))));
        }
        location = header(&r, "location").unwrap_or(location);
        offset += chunk.len();
    }
    send(admin(client, Method::PUT, &with_digest(&location, digest)), 201, "PUT").await.map(drop)
}

/// A tag whose push was acknowledged (201) before the kill.
#[derive(Debug, Clone)]
struct Acked {
    repo: String,
    tag: String,
    digest: String,
}

/// One image to push: a small config, two layers of 1–4 MiB, and the manifest, with their digests.
struct ImageData {
    config: Vec<u8>,
    chunked: (Vec<u8>, String),
    whole: (Vec<u8>, String),
    manifest: Vec<u8>,
}

/// Image `image` of worker `worker`, generated and hashed on a blocking thread (hashing in a debug build
/// runs at some 30 MB/s, so the data of the first images is made before the server is put under load).
async fn image_data(worker: usize, image: usize) -> ImageData {
    let seed = (worker * 100 + image) as u64;
    let config = format!(r#"{{"architecture":"amd64","os":"linux","worker":{worker},"image":{image}}}"#).into_bytes();
    let (chunked, whole) = tokio::join!(big_blob(seed * 2 + 1), big_blob(seed * 2 + 2));
    let manifest = image_manifest(
        &descriptor(OCI_CONFIG, &config),
        &[descriptor(OCI_LAYER, &chunked.0), descriptor(OCI_LAYER, &whole.0)],
    );
    let manifest = serde_json::to_vec_pretty(&manifest).expect("json");
    ImageData { config, chunked, whole, manifest }
}

/// Pushes an image: the config in one request, the first layer in chunks, the second in one request, then
/// the manifest under `tag`.
async fn push_image(client: &Client, base: &str, repo: &str, tag: &str, data: ImageData) -> Result<Acked, Stop> {
    let config_digest = sha256(&data.config);
    push_monolithic(client, base, repo, data.config, &config_digest).await?;
    push_chunked(client, base, repo, &data.chunked.0, &data.chunked.1).await?;
    push_monolithic(client, base, repo, data.whole.0, &data.whole.1).await?;
    let request = admin(client, Method::PUT, &format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(data.manifest.clone());
    let r = send(request, 201, "PUT manifest").await?;
    let digest = sha256(&data.manifest);
    if header(&r, "docker-content-digest").as_deref() != Some(digest.as_str()) {
        return Err(Stop::Answer(format!("manifest digest {:?}", header(&r, "docker-content-digest"))));
    }
    Ok(Acked { repo: repo.to_owned(), tag: tag.to_owned(), digest })
}

/// Pushes images to `crash/w<worker>` (the first one's data made beforehand) until one fails.
async fn worker(client: Client, base: String, worker: usize, first: ImageData, acked: Arc<Mutex<Vec<Acked>>>) -> Stop {
    let repo = format!("crash/w{worker}");
    let mut next = Some(first);
    for image in 0..IMAGES_PER_WORKER {
        let data = match next.take() {
            Some(d) => d,
            None => image_data(worker, image).await,
        };
        match push_image(&client, &base, &repo, &format!("v{image}"), data).await {
            Ok(a) => acked.lock().expect("acked").push(a),
            Err(stop) => return stop,
        }
    }
    Stop::Finished
}

/// Every file under `blobs/<alg>/<xx>/<hex>` is named by the digest of its content. Returns how many.
fn check_blob_files(blobs: &Path) -> usize {
    let mut checked = 0;
    for alg in std::fs::read_dir(blobs).expect("blobs directory") {
        let alg = alg.expect("entry");
        let alg_name = alg.file_name().to_string_lossy().into_owned();
        let algorithm = match alg_name.as_str() {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => panic!("unexpected entry blobs/{other}"),
        };
        for prefix in std::fs::read_dir(alg.path()).expect("algorithm directory") {
            let prefix = prefix.expect("entry");
            let prefix_name = prefix.file_name().to_string_lossy().into_owned();
            assert_eq!(prefix_name.len(), 2, "blobs/{alg_name}/{prefix_name}");
            for file in std::fs::read_dir(prefix.path()).expect("prefix directory") {
                let file = file.expect("entry");
                let hex = file.file_name().to_string_lossy().into_owned();
                let what = format!("blobs/{alg_name}/{prefix_name}/{hex}");
                assert!(hex.starts_with(&prefix_name), "{what} is in the wrong directory");
                let named = Digest::parse(&format!("{alg_name}:{hex}")).unwrap_or_else(|e| panic!("{what}: {e}"));
                let bytes = std::fs::read(file.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
                let actual = Digest::of(algorithm, &bytes);
                assert_eq!(actual, named, "{what} ({} bytes) does not hash to its name", bytes.len());
                checked += 1;
            }
        }
    }
    checked
}

/// The uploads the workers had open at the kill are still there: each answers its status with the size
/// on disk. Returns how many answered, and how many were caught between storing their blob and removing
/// their directory (no `data` left; see `upload_whose_data_was_already_stored_is_unknown`).
async fn check_interrupted_uploads(client: &Client, base: &str, uploads: &Path) -> (usize, usize) {
    let (mut checked, mut finishing) = (0, 0);
    for entry in std::fs::read_dir(uploads).expect("uploads directory") {
        let dir = entry.expect("entry").path();
        let id = dir.file_name().expect("name").to_string_lossy().into_owned();
        // An upload whose owner file was never written is not visible, by design.
        let Ok(repo) = std::fs::read_to_string(dir.join("repo")) else { continue };
        let Ok(data) = std::fs::metadata(dir.join("data")) else {
            // Killed inside finish_upload after the data became a blob: the server answers 500 for these
            // (a known bug, reproduced deterministically below), so they are counted, not asserted.
            finishing += 1;
            continue;
        };
        let url = format!("{base}/v2/{repo}/blobs/uploads/{id}");
        let r = admin(client, Method::GET, &url).send().await.expect("upload status");
        assert_eq!(r.status().as_u16(), 204, "GET {url}");
        assert_eq!(header(&r, "range"), Some(format!("0-{}", data.len().saturating_sub(1))), "GET {url}");
        checked += 1;
    }
    (checked, finishing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pushes_leaves_consistent_storage_and_resumable_uploads() {
    let root = tempfile::tempdir().expect("tempdir");
    let data_dir = root.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = client();
    let mut server = ServeProcess::start(&data_dir, port, root.path().join("first.log"), |_| {});
    server.wait_ready(&client).await;

    // An upload begun before the kill: 1 MiB of 3 MiB sent.
    let (resumable, resumable_digest) = tokio::task::spawn_blocking(|| {
        let data = pseudo_random(424_242, 3 * MIB);
        let digest = sha256(&data);
        (data, digest)
    })
    .await
    .unwrap();
    let r = admin(&client, Method::POST, &format!("{base}/v2/crash/resume/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = header(&r, "location").expect("Location");
    let r = admin(&client, Method::PATCH, &location)
        .header("Content-Range", format!("0-{}", MIB - 1))
        .body(resumable[..MIB].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);

    // A baseline image acknowledged well before the kill, and the first image of every worker made ready.
    let baseline = push_image(&client, &base, "crash/base", "v0", image_data(99, 0).await).await.expect("baseline");
    let acked = Arc::new(Mutex::new(vec![baseline]));
    let mut firsts = Vec::new();
    for w in 0..WORKERS {
        firsts.push(tokio::spawn(image_data(w, 0)));
    }
    let mut workers = Vec::new();
    for (w, first) in firsts.into_iter().enumerate() {
        let first = first.await.expect("image data");
        workers.push(tokio::spawn(worker(client.clone(), base.clone(), w, first, acked.clone())));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill_started = Instant::now();
    server.kill();

    let mut stops = Vec::new();
    for w in workers {
        let stop = tokio::time::timeout(Duration::from_secs(120), w).await.expect("worker ends").expect("worker");
        stops.push(stop);
    }
    let wrong: Vec<&Stop> = stops
        .iter()
        .filter(|s| match s {
            Stop::Answer(_) => true,
            Stop::Transport(_, at) => *at < kill_started,
            Stop::Finished => false,
        })
        .collect();
    assert!(wrong.is_empty(), "requests failed before the kill: {wrong:#?}");
    let acked = acked.lock().expect("acked").clone();
    let finished = stops.iter().filter(|s| matches!(s, Stop::Finished)).count();
    assert!(finished < WORKERS, "the kill came after every push had finished: {stops:?}");

    // Same port, so the upload's Location stays valid; the kill freed it (std listeners use SO_REUSEADDR).
    let mut server = ServeProcess::start(&data_dir, port, root.path().join("second.log"), |_| {});
    server.wait_ready(&client).await;

    let blob_files = check_blob_files(&data_dir.join("storage").join("blobs"));
    let tags = check_tags_and_blobs(&client, &base).await;
    for a in &acked {
        let url = format!("{base}/v2/{}/manifests/{}", a.repo, a.tag);
        let r = admin(&client, Method::HEAD, &url).header("Accept", OCI_MANIFEST).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "acknowledged {}:{} is gone", a.repo, a.tag);
        assert_eq!(header(&r, "docker-content-digest"), Some(a.digest.clone()), "{}:{}", a.repo, a.tag);
    }

    // The upload begun before the kill goes on where it stopped.
    let r = admin(&client, Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204, "upload status after the restart");
    assert_eq!(header(&r, "range"), Some(format!("0-{}", MIB - 1)));
    let r = admin(&client, Method::PATCH, &location)
        .header("Content-Range", format!("{MIB}-{}", resumable.len() - 1))
        .body(resumable[MIB..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(header(&r, "range"), Some(format!("0-{}", resumable.len() - 1)));
    let r = admin(&client, Method::PUT, &with_digest(&location, &resumable_digest)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "finishing the resumed upload");
    let r = admin(&client, Method::GET, &format!("{base}/v2/crash/resume/blobs/{resumable_digest}")).send().await;
    let r = r.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sha256(&r.bytes().await.unwrap()), resumable_digest);

    let storage = data_dir.join("storage");
    let (interrupted, finishing) = check_interrupted_uploads(&client, &base, &storage.join("uploads")).await;
    let staged = std::fs::read_dir(storage.join("tmp")).map(Iterator::count).unwrap_or(0);
    let stopped: Vec<&str> = stops
        .iter()
        .map(|s| match s {
            Stop::Transport(m, _) => m.split(':').next().unwrap_or(m),
            Stop::Answer(m) => m,
            Stop::Finished => "finished",
        })
        .collect();
    eprintln!(
        "crash test: {} images acknowledged before the kill (baseline included); after the restart {blob_files} \
         blob files and {tags} tags verified, {interrupted} interrupted uploads answer their status, {finishing} \
         were killed while finishing, {staged} staging files left in tmp/; workers stopped in: {stopped:?}",
        acked.len(),
    );
}

/// The state a kill inside `finish_upload` leaves when it lands after the upload's data was renamed into
/// `blobs/` and before the upload's directory was removed: `uploads/<id>/repo` without `data`. Made here
/// deterministically on an in-process server by removing `data` by hand.
#[tokio::test]
async fn upload_whose_data_was_already_stored_is_unknown() {
    let s = common::TestServer::start().await;
    let r = s.admin(Method::POST, "/v2/finishing/blobs/uploads/").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let location = header(&r, "location").expect("Location");
    let r = s.admin(Method::PATCH, &location).body(vec![7u8; 1000]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = location.rsplit('/').next().expect("upload id");
    std::fs::remove_file(s.data_dir.join("storage").join("uploads").join(id).join("data")).expect("remove data");

    let r = s.admin(Method::GET, &location).send().await.unwrap();
    common::assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.admin(Method::PATCH, &location).body(vec![7u8; 10]).send().await.unwrap();
    common::assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let r = s.admin(Method::PUT, &with_digest(&location, &sha256(&[7u8; 1000]))).send().await.unwrap();
    common::assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
}
