//! Two replicas of the real binary behind a real load balancer: `regbridge serve` twice on one S3 bucket
//! (moto's server) with one signing key and the same admin password, HAProxy in front balancing every
//! request round-robin. The real clients pass through it, a chunked upload whose PATCHes alternate between
//! the replicas completes, and SIGKILLing one replica in the middle of 20 concurrent pushes loses no
//! acknowledged push while the clients' retries through the other replica succeed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::haproxy::{Haproxy, SERVED_BY};
use common::moto::{Moto, emulators, s3_storage_keys};
use common::serve::{ServeProcess, check_tags_and_blobs, free_port, pseudo_random, run_client_script};
use common::{ADMIN, OCI_CONFIG, OCI_LAYER, PASSWORD, client, descriptor, header, image_manifest, sha256, with_digest};
use regbridge::oci::media_types::OCI_MANIFEST;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tempfile::TempDir;

const MIB: usize = 1024 * 1024;

/// moto, two replicas on one bucket and HAProxy in front of them; everything is killed on drop.
struct Cluster {
    /// `r0` and `r1`, as HAProxy names them.
    replicas: Vec<ServeProcess>,
    lb: Haproxy,
    _moto: Moto,
    _dir: TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let moto = emulators::start_moto().await;
        let bucket = emulators::s3_bucket(&moto).await;
        let dir = tempfile::tempdir().expect("tempdir");
        // One signing key for both, as an operator would give them (a file from `openssl rand -base64 48`).
        let key_file = dir.path().join("signing-key");
        let key = base64::engine::general_purpose::STANDARD.encode(pseudo_random(0x5157, 48));
        std::fs::write(&key_file, key).expect("write the signing key");
        let config = dir.path().join("regbridge.toml");
        let text = format!(
            "[storage]\n{}\n[keys]\nsigning_key_file = {:?}\n",
            s3_storage_keys(&moto.endpoint, &bucket),
            key_file.display().to_string()
        );
        std::fs::write(&config, text).expect("write the configuration");
        let http = client();
        let mut replicas = Vec::new();
        for i in 0..2 {
            let log = dir.path().join(format!("r{i}.log"));
            let mut replica = ServeProcess::start(&dir.path().join(format!("data{i}")), free_port(), log, |c| {
                c.arg("--config").arg(&config).args(["--log-format", "json"]).env("REGBRIDGE_LOG", "info");
            });
            replica.wait_ready(&http).await;
            replicas.push(replica);
        }
        let addrs: Vec<&str> = replicas.iter().map(|r| r.addr.as_str()).collect();
        let lb = Haproxy::start(dir.path(), &addrs).await;
        Self { replicas, lb, _moto: moto, _dir: dir }
    }

    /// `http://` + HAProxy's address.
    fn base(&self) -> String {
        format!("http://{}", self.lb.addr)
    }

    /// Per replica, the access lines (method, path) of requests other than `GET /v2/` (HAProxy's health
    /// checks, and clients' version checks).
    fn requests(&self) -> Vec<Vec<(String, String)>> {
        self.replicas.iter().map(|r| access_lines(&r.log())).collect()
    }
}

/// The `(method, path)` of every access line in a JSON log but `GET /v2/`.
fn access_lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "regbridge::access")
        .map(|line| (line["method"].as_str().unwrap_or("").to_owned(), line["path"].as_str().unwrap_or("").to_owned()))
        .filter(|(method, path)| !(method == "GET" && path == "/v2/"))
        .collect()
}

fn admin(client: &Client, method: Method, url: &str) -> RequestBuilder {
    client.request(method, url).basic_auth(ADMIN, Some(PASSWORD)).timeout(Duration::from_secs(60))
}

fn served_by(r: &Response) -> String {
    header(r, SERVED_BY).unwrap_or_else(|| panic!("no {SERVED_BY} on {}", r.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_pass_through_the_load_balancer() {
    let cluster = Cluster::start().await;
    let addr = cluster.lb.addr.clone();
    tokio::task::spawn_blocking(move || run_client_script(&addr, PASSWORD)).await.unwrap();

    // Both replicas served the run, in about equal shares: HAProxy balanced requests, not connections.
    let requests = cluster.requests();
    let counts: Vec<usize> = requests.iter().map(Vec::len).collect();
    let stats = cluster.lb.servers().await;
    eprintln!("real clients through haproxy: requests per replica (access logs) {counts:?}, haproxy {stats:?}");
    let total: usize = counts.iter().sum();
    for (i, count) in counts.iter().enumerate() {
        assert!(*count * 3 >= total, "replica r{i} served {count} of {total} requests: {counts:?}");
    }
    for (i, lines) in requests.iter().enumerate() {
        let pushes = lines.iter().filter(|(m, p)| m == "PUT" && p.contains("/manifests/")).count();
        assert!(pushes > 0, "replica r{i} stored no manifest: {lines:?}");
    }
}

/// Starts an upload through HAProxy and sends its chunks through it too, each answered by the other replica
/// than the one before (as the `X-Regbridge-Replica` header HAProxy adds and the access logs show); the blob
/// is then pulled from each replica directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_whose_patches_alternate_between_replicas_completes() {
    let cluster = Cluster::start().await;
    let (base, http) = (cluster.base(), client());
    let blob = pseudo_random(77, (13 << 20) + 12_345);
    let digest = sha256(&blob);

    let started = admin(&http, Method::POST, &format!("{base}/v2/lb/chunked/blobs/uploads/")).send().await.unwrap();
    assert_eq!(started.status(), 202);
    let mut trail = vec![served_by(&started)];
    let mut location = header(&started, "location").expect("Location");
    let mut offset = 0;
    // Chunks smaller and larger than S3's 5 MiB part.
    for len in [3 * MIB, 7 * MIB, MIB, 512 * 1024, blob.len() - 11 * MIB - 512 * 1024] {
        let end = offset + len;
        let patched = admin(&http, Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", end - 1))
            .body(blob[offset..end].to_vec())
            .send()
            .await
            .unwrap();
        trail.push(served_by(&patched));
        assert_eq!(patched.status(), 202, "PATCH {offset}-{end} on {trail:?}");
        assert_eq!(header(&patched, "range"), Some(format!("0-{}", end - 1)));
        location = header(&patched, "location").unwrap_or(location);
        offset = end;
    }
    let finished = admin(&http, Method::PUT, &with_digest(&location, &digest)).send().await.unwrap();
    trail.push(served_by(&finished));
    assert_eq!(finished.status(), 201, "{}", finished.text().await.unwrap_or_default());
    assert!(trail.windows(2).all(|w| w[0] != w[1]), "the requests did not alternate: {trail:?}");

    // The access logs agree: each replica logged every other PATCH of the upload.
    let patches: Vec<usize> = cluster
        .requests()
        .iter()
        .map(|lines| lines.iter().filter(|(m, p)| m == "PATCH" && p.starts_with("/v2/lb/chunked/")).count())
        .collect();
    assert_eq!(patches.iter().sum::<usize>(), 5, "{patches:?}");
    assert!(patches.iter().all(|&n| n >= 2), "PATCHes per replica: {patches:?}");
    eprintln!("chunked upload through haproxy: replicas {trail:?}, PATCHes per replica (access logs) {patches:?}");

    for replica in &cluster.replicas {
        let url = format!("{}/v2/lb/chunked/blobs/{digest}", replica.base());
        let pulled = admin(&http, Method::GET, &url).send().await.unwrap();
        assert_eq!(pulled.status(), 200, "GET {url}");
        assert_eq!(sha256(&pulled.bytes().await.unwrap()), digest, "GET {url}");
    }
}

/// How many times one request (or one blob's upload) is tried before the push is given up.
const ATTEMPTS: usize = 6;
const PUSHES: usize = 20;

/// One image to push: a small config, a layer of 2–3 MiB sent in 512 KiB chunks, and the manifest.
struct Push {
    repo: String,
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Push {
    fn new(i: usize) -> Self {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","push":{i}}}"#).into_bytes();
        let layer = pseudo_random(1000 + i as u64, 2 * MIB + (i * 48_271) % MIB);
        let manifest = image_manifest(&descriptor(OCI_CONFIG, &config), &[descriptor(OCI_LAYER, &layer)]);
        Self { repo: format!("lb/push{i}"), config, layer, manifest: serde_json::to_vec(&manifest).expect("json") }
    }
}

/// What the pushing clients did, shared by all of them.
#[derive(Default)]
struct Tally {
    /// Requests answered (any status), to time the kill.
    answered: AtomicUsize,
    /// Pushes whose manifest PUT was answered 201.
    acked: AtomicUsize,
    /// Why requests were retried: transport errors and statuses, counted.
    retries: std::sync::Mutex<BTreeMap<String, usize>>,
    /// Uploads started again because the registry no longer knew their session.
    restarts: AtomicUsize,
    /// Uploads started again because their session was held by a request of the killed replica.
    busy: AtomicUsize,
}

impl Tally {
    fn retry(&self, why: String) {
        *self.retries.lock().unwrap().entry(why).or_default() += 1;
    }
}

/// Why a step of a push failed.
enum Failure {
    /// A connection error or a 5xx: try again (the load balancer sends it to a live replica).
    Retry(String),
    /// The upload session is unknown (404 `BLOB_UPLOAD_UNKNOWN`): start the upload again.
    Restart,
    /// The upload session is held by another request (429 `TOOMANYREQUESTS`): the killed replica's, whose
    /// lease runs out only after a minute, so the upload is started again too (as registry clients do with
    /// a failed blob).
    Busy,
    /// Anything else is a bug.
    Fatal(String),
}

/// Sends `request`, expecting `expected`; sorts what else happened into a [`Failure`].
async fn send(tally: &Tally, request: RequestBuilder, expected: u16, what: &str) -> Result<Response, Failure> {
    let r = request.send().await;
    let r = r.map_err(|e| Failure::Retry(format!("{what}: transport ({})", error_kind(&e))))?;
    tally.answered.fetch_add(1, Ordering::Relaxed);
    let status = r.status().as_u16();
    if status == expected {
        return Ok(r);
    }
    if status >= 500 {
        return Err(Failure::Retry(format!("{what}: {status}")));
    }
    let body = r.text().await.unwrap_or_default();
    if status == 404 && body.contains("BLOB_UPLOAD_UNKNOWN") {
        return Err(Failure::Restart);
    }
    if status == 429 && body.contains("TOOMANYREQUESTS") {
        return Err(Failure::Busy);
    }
    Err(Failure::Fatal(format!("{what}: expected {expected}, got {status}: {body}")))
}

fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "connection"
    }
}

/// How many bytes the registry has of the upload at `location`. `Range: 0-0` says 0 or 1 (distribution's
/// answer for an empty upload), so that upload is started again rather than guessed at.
async fn upload_offset(tally: &Tally, http: &Client, location: &str) -> Result<usize, Failure> {
    let r = send(tally, admin(http, Method::GET, location), 204, "upload status").await?;
    let range = header(&r, "range").ok_or_else(|| Failure::Fatal("upload status without Range".into()))?;
    let end: usize = range.strip_prefix("0-").and_then(|e| e.parse().ok()).ok_or(Failure::Fatal(range))?;
    if end == 0 {
        return Err(Failure::Restart);
    }
    Ok(end + 1)
}

/// One try at the rest of an upload: a new session when `session` is `None`, else from where the registry
/// says it stands. `session` keeps the latest `Location` for the next try.
async fn try_upload(
    tally: &Tally,
    http: &Client,
    base: &str,
    repo: &str,
    data: &[u8],
    session: &mut Option<String>,
) -> Result<(), Failure> {
    let mut offset = match session.clone() {
        Some(location) => upload_offset(tally, http, &location).await?,
        None => {
            let r = send(tally, admin(http, Method::POST, &format!("{base}/v2/{repo}/blobs/uploads/")), 202, "POST")
                .await?;
            *session = Some(header(&r, "location").ok_or_else(|| Failure::Fatal("POST without Location".into()))?);
            0
        }
    };
    while offset < data.len() {
        let end = (offset + 512 * 1024).min(data.len());
        let location = session.clone().expect("session");
        let request = admin(http, Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", end - 1))
            .body(data[offset..end].to_vec());
        let r = send(tally, request, 202, "PATCH").await?;
        *session = Some(header(&r, "location").unwrap_or(location));
        offset = end;
    }
    let location = session.clone().expect("session");
    send(tally, admin(http, Method::PUT, &with_digest(&location, &sha256(data))), 201, "PUT upload").await.map(drop)
}

/// Uploads `data` to `repo` in chunks, retrying through the load balancer: on a connection error or a 5xx
/// it asks the registry where the upload stands and goes on from there, and starts over when the session
/// is unknown or held by another request. A blob that is already there (a PUT that succeeded but whose answer was lost) is done.
async fn upload(tally: &Tally, http: &Client, base: &str, repo: &str, data: &[u8]) -> Result<(), String> {
    let digest = sha256(data);
    let mut session = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            let head = admin(http, Method::HEAD, &format!("{base}/v2/{repo}/blobs/{digest}")).send().await;
            if head.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
        }
        match try_upload(tally, http, base, repo, data, &mut session).await {
            Ok(()) => return Ok(()),
            Err(Failure::Retry(why)) => tally.retry(why),
            Err(Failure::Restart) => {
                tally.restarts.fetch_add(1, Ordering::Relaxed);
                session = None;
            }
            Err(Failure::Busy) => {
                tally.busy.fetch_add(1, Ordering::Relaxed);
                session = None;
            }
            Err(Failure::Fatal(why)) => return Err(format!("{repo}: {why}")),
        }
        tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
    }
    Err(format!("{repo}: upload of {digest} failed {ATTEMPTS} times"))
}

/// Sends one idempotent request until it is answered `expected`, retrying connection errors and 5xx.
async fn with_retries(
    tally: &Tally,
    what: &str,
    expected: u16,
    request: impl Fn() -> RequestBuilder,
) -> Result<Response, String> {
    for attempt in 0..ATTEMPTS {
        match send(tally, request(), expected, what).await {
            Ok(r) => return Ok(r),
            Err(Failure::Retry(why)) => tally.retry(why),
            Err(Failure::Restart | Failure::Busy) => return Err(format!("{what}: an upload's answer")),
            Err(Failure::Fatal(why)) => return Err(why),
        }
        tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
    }
    Err(format!("{what}: failed {ATTEMPTS} times"))
}

/// Pushes `push` through the load balancer: the config in one request, the layer in chunks, the manifest by
/// tag `v1`. Returns the manifest's digest once it was answered 201.
async fn push_image(tally: &Tally, http: &Client, base: &str, push: &Push) -> Result<String, String> {
    let (repo, config_digest) = (&push.repo, sha256(&push.config));
    let url = format!("{base}/v2/{repo}/blobs/uploads/?digest={config_digest}");
    with_retries(tally, "monolithic POST", 201, || admin(http, Method::POST, &url).body(push.config.clone())).await?;
    upload(tally, http, base, repo, &push.layer).await?;
    let url = format!("{base}/v2/{repo}/manifests/v1");
    let request = || admin(http, Method::PUT, &url).header("Content-Type", OCI_MANIFEST).body(push.manifest.clone());
    let r = with_retries(tally, "PUT manifest", 201, request).await?;
    let digest = sha256(&push.manifest);
    if header(&r, "docker-content-digest").as_deref() != Some(digest.as_str()) {
        return Err(format!("{repo}: manifest digest {:?}", header(&r, "docker-content-digest")));
    }
    tally.acked.fetch_add(1, Ordering::Relaxed);
    Ok(digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_replica_during_20_pushes_loses_no_acknowledged_push() {
    let mut cluster = Cluster::start().await;
    let (base, http) = (cluster.base(), client());
    let pushes: Vec<Arc<Push>> =
        tokio::task::spawn_blocking(|| (0..PUSHES).map(|i| Arc::new(Push::new(i))).collect()).await.unwrap();
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let workers: Vec<_> = pushes
        .iter()
        .map(|push| {
            let (tally, http, base, push) = (tally.clone(), http.clone(), base.clone(), push.clone());
            tokio::spawn(async move { push_image(&tally, &http, &base, &push).await })
        })
        .collect();

    // The kill lands in the middle: once the first push was acknowledged, while the others are uploading.
    let deadline = Instant::now() + Duration::from_secs(120);
    while tally.acked.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the pushes made no progress in 120 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before = tally.acked.load(Ordering::Relaxed);
    let answered_before = tally.answered.load(Ordering::Relaxed);
    cluster.replicas[1].kill();
    let killed = Instant::now();
    cluster.lb.wait_status("r1", "DOWN").await;
    let noticed = killed.elapsed();

    let mut digests = Vec::new();
    for (push, worker) in pushes.iter().zip(workers) {
        let result = tokio::time::timeout(Duration::from_secs(300), worker).await.expect("push ends in time").unwrap();
        digests.push(result.unwrap_or_else(|e| panic!("push to {} failed: {e}\n{}", push.repo, cluster.lb.log())));
    }
    let elapsed = started.elapsed();
    assert!(acked_before < PUSHES, "the kill came after every push had been acknowledged");
    let retries = tally.retries.lock().unwrap().clone();
    let retried: usize = retries.values().sum();
    assert!(retried > 0, "no request was in flight on the killed replica (the kill did not interrupt anything)");

    // Every push is complete on the bucket, seen through the surviving replica: the manifest by tag hashes
    // to the digest acknowledged, and every blob it names (followed to the bucket) to its own.
    let survivor = cluster.replicas[0].base();
    for (push, digest) in pushes.iter().zip(&digests) {
        let url = format!("{survivor}/v2/{}/manifests/v1", push.repo);
        let r = admin(&http, Method::GET, &url).header("Accept", OCI_MANIFEST).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {url}");
        assert_eq!(header(&r, "docker-content-digest").as_deref(), Some(digest.as_str()), "GET {url}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), &push.manifest[..], "GET {url}");
        for blob in [&push.config, &push.layer] {
            let url = format!("{survivor}/v2/{}/blobs/{}", push.repo, sha256(blob));
            let r = admin(&http, Method::GET, &url).send().await.unwrap();
            assert_eq!(r.status(), 200, "GET {url}");
            assert_eq!(sha256(&r.bytes().await.unwrap()), sha256(blob), "GET {url}");
        }
    }
    let tags = check_tags_and_blobs(&http, &survivor).await;
    assert_eq!(tags, PUSHES, "tags on the bucket");
    eprintln!(
        "sigkill behind haproxy: {PUSHES} pushes in {elapsed:.1?}; r1 killed after {answered_before} answers with \
         {acked_before} pushes acknowledged; haproxy marked it down {noticed:.1?} later; {retried} retries \
         {retries:?}; uploads restarted: {} unknown, {} held by the killed replica; all {PUSHES} acknowledged \
         and verified through r0 ({tags} tags)",
        tally.restarts.load(Ordering::Relaxed),
        tally.busy.load(Ordering::Relaxed)
    );
}
