//! The embedded registry on object storage (S3 on moto's server): pushes and pulls through the real HTTP
//! API, blob GETs answered by a `307` to a presigned URL on the bucket, and two replicas on one bucket with
//! one signing key serving the same repositories and continuing each other's upload sessions.

mod common;

use std::time::Duration;

use base64::Engine;
use common::moto::emulators;
use common::{ADMIN, PASSWORD, TestServer, sha256};
use regbridge::Secret;
use regbridge_proxy::ServeConfig;
use regbridge_proxy::keys::SigningKey;
use regbridge_proxy::storage_config::{StorageConfig, StorageSection};
use reqwest::{Client, Method, StatusCode};

/// `[storage]` for `bucket` on moto at `endpoint`.
fn s3_storage(endpoint: &str, bucket: &str) -> StorageConfig {
    let section: StorageSection = toml::from_str(&common::moto::s3_storage_keys(endpoint, bucket)).expect("[storage]");
    StorageConfig::resolve_with(section, |_| None).expect("storage config")
}

/// A server (a replica) on `storage` with the signing key every replica of a test shares.
async fn replica(storage: &StorageConfig) -> TestServer {
    let storage = storage.clone();
    let key = SigningKey::Value(Secret::new(base64::engine::general_purpose::STANDARD.encode([7u8; 48])));
    TestServer::start_configured(move |c| ServeConfig { storage, signing_key: key, ..c }).await
}

fn no_redirects() -> Client {
    Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn pushes_pull_back_and_blob_gets_redirect_to_the_bucket() {
    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let server = replica(&s3_storage(&moto.endpoint, &bucket)).await;
    let image = server.push_image("team/app", "v1").await;

    let manifest = server.admin(Method::GET, "/v2/team/app/manifests/v1").send().await.unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.bytes().await.unwrap().as_ref(), &image.bytes[..]);
    let tags: serde_json::Value =
        server.admin(Method::GET, "/v2/team/app/tags/list").send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));

    let layer = sha256(&image.layer);
    let client = no_redirects();
    let get = client
        .get(server.url(&format!("/v2/team/app/blobs/{layer}")))
        .basic_auth(ADMIN, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = get.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&moto.endpoint), "the blob is served by the bucket: {location}");
    assert!(!location.contains(PASSWORD), "{location}");
    let fetched = client.get(&location).send().await.unwrap();
    assert_eq!(fetched.status(), 200, "the presigned URL needs no credentials of ours");
    assert_eq!(sha256(&fetched.bytes().await.unwrap()), layer);

    let head = server.admin(Method::HEAD, &format!("/v2/team/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(head.status(), 200, "HEAD answers from metadata");
    assert!(head.headers().get("location").is_none());
    let other = client
        .get(server.url(&format!("/v2/team/other/blobs/{layer}")))
        .basic_auth(ADMIN, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "a repository without the blob gets no URL for it");
}

/// Starts an upload on one replica and sends its chunks to alternating replicas (what a round-robin load
/// balancer does), finishing on the other; the blob and a manifest naming it are then seen by both.
#[tokio::test]
async fn a_chunked_upload_alternating_between_replicas_completes() {
    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let storage = s3_storage(&moto.endpoint, &bucket);
    let (a, b) = (replica(&storage).await, replica(&storage).await);
    let replicas = [&a, &b];

    let blob: Vec<u8> = (0..(13 << 20) + 12345).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let digest = sha256(&blob);
    let started = a.admin(Method::POST, "/v2/team/app/blobs/uploads/").send().await.unwrap();
    assert_eq!(started.status(), 202);
    let mut location = started.headers()["location"].to_str().unwrap().to_owned();
    let mut offset = 0usize;
    // Chunks smaller and larger than S3's 5 MiB part, each to the other replica.
    for (i, len) in [3 << 20, 7 << 20, 1 << 20, blob.len() - (11 << 20)].into_iter().enumerate() {
        let end = offset + len;
        let patched = replicas[(i + 1) % 2]
            .admin(Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", format!("{offset}-{}", end - 1))
            .body(blob[offset..end].to_vec())
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 202, "chunk {i}: {}", patched.text().await.unwrap_or_default());
        location = patched.headers()["location"].to_str().unwrap().to_owned();
        offset = end;
    }
    let separator = if location.contains('?') { '&' } else { '?' };
    let finished = a.admin(Method::PUT, &format!("{location}{separator}digest={digest}")).send().await.unwrap();
    assert_eq!(finished.status(), 201, "{}", finished.text().await.unwrap_or_default());

    for replica in replicas {
        let head = replica.admin(Method::HEAD, &format!("/v2/team/app/blobs/{digest}")).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["content-length"].to_str().unwrap(), blob.len().to_string());
    }
    let image = b.push_image("team/app", "v2").await;
    let pulled = a.admin(Method::GET, "/v2/team/app/manifests/v2").send().await.unwrap();
    assert_eq!(pulled.status(), 200, "a manifest pushed to one replica is served by the other");
    assert_eq!(pulled.bytes().await.unwrap().as_ref(), &image.bytes[..]);
}

/// A blob whose bytes do not hash to the digest given never becomes visible, on either replica.
#[tokio::test]
async fn a_wrong_digest_leaves_nothing_on_the_bucket() {
    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let storage = s3_storage(&moto.endpoint, &bucket);
    let (a, b) = (replica(&storage).await, replica(&storage).await);
    let claimed = sha256(b"what the client says");
    let pushed = a
        .admin(Method::POST, &format!("/v2/team/app/blobs/uploads/?digest={claimed}"))
        .header("Content-Type", "application/octet-stream")
        .body(b"something else".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 400);
    for replica in [&a, &b] {
        let head = replica.admin(Method::HEAD, &format!("/v2/team/app/blobs/{claimed}")).send().await.unwrap();
        assert_eq!(head.status(), 404);
    }
}

/// A client that retries a refused token as it is (oras-py) reaches the other replica behind a round-robin
/// load balancer: the replicas share their refusals through the bucket, so the repeat is a 403 there (which
/// makes oras-py ask for a new token), as on one server; another token's refusal is a first one.
#[tokio::test]
async fn a_repeated_insufficient_scope_refusal_is_a_403_on_the_other_replica() {
    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let storage = s3_storage(&moto.endpoint, &bucket);
    let (a, b) = (replica(&storage).await, replica(&storage).await);
    let pull_token = |repo: &str| {
        let request = a.admin(Method::GET, "/token").query(&[("service", "regbridge")]);
        let request = request.query(&[("scope", format!("repository:{repo}:pull"))]);
        async move {
            let body: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            body["token"].as_str().expect("token").to_owned()
        }
    };
    let post = |server: &TestServer, token: &str| {
        server.anon(Method::POST, "/v2/team/app/blobs/uploads/").bearer_auth(token).send()
    };
    let token = pull_token("team/app").await;
    assert_eq!(post(&a, &token).await.unwrap().status(), 401, "the first refusal");
    let again = post(&b, &token).await.unwrap();
    assert_eq!(again.status(), 403, "the repeat, on the other replica");
    assert!(again.headers()["www-authenticate"].to_str().unwrap().contains("error=\"insufficient_scope\""));

    let other = pull_token("team/other").await;
    assert_eq!(post(&b, &other).await.unwrap().status(), 401, "another token's first refusal");
    assert_eq!(post(&a, &other).await.unwrap().status(), 403);
}

/// `regbridge gc` on the bucket `serve` uses (the same `[storage]`), while the server runs: the orphan goes,
/// the image stays; a live lease of another collector makes `gc` and `POST /admin/v1/gc` refuse, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_collects_the_bucket_one_collector_at_a_time() {
    use object_store::ObjectStoreExt;

    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let server = replica(&s3_storage(&moto.endpoint, &bucket)).await;
    let image = server.push_image("gc/app", "v1").await;
    let orphan = server.push_blob("gc/app", b"an orphan on the bucket").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\nurl = \"s3://{bucket}/registry\"\nendpoint = \"{}\"\nallow_http = true\nregion = \
             \"us-east-1\"\naccess_key_id = \"testing\"\nsecret_access_key = \"testing\"\n",
            moto.endpoint
        ),
    )
    .unwrap();
    let gc = |extra: &[&str]| {
        let mut args = vec!["gc", "--config", config.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()];
        args.extend_from_slice(extra);
        common::cli::run(&mut common::cli::command(&args), "")
    };

    let report = common::cli::ok_json(&gc(&["--grace", "0s"]));
    assert_eq!(report["deleted"], serde_json::json!([orphan]), "{report}");
    let r = server.admin(Method::HEAD, &format!("/v2/gc/app/blobs/{orphan}")).send().await.unwrap();
    assert_eq!(r.status(), 404, "the orphan is gone, link included");
    let r = server.admin(Method::GET, "/v2/gc/app/manifests/v1").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), image.bytes, "the image is intact");
    let layer = sha256(&image.layer);
    let r = server.admin(Method::HEAD, &format!("/v2/gc/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(r.status(), 200, "its layer too");

    // Another replica's collection holds the lease: a second collector refuses and says who and until when.
    let store = emulators::s3_builder(&moto, &bucket).build().unwrap();
    let lease = serde_json::json!({"holder": "collection on replica-b", "until": "2099-01-01T00:00:00Z"});
    store.put(&object_store::path::Path::from("registry/gc/lease"), lease.to_string().into()).await.unwrap();
    let refused = gc(&["--grace", "0s"]);
    let err = common::cli::stderr(&refused);
    assert_ne!(common::cli::code(&refused), 0, "{err}");
    assert!(err.contains("collection on replica-b holds the gc lease until 2099-01-01T00:00:00Z"), "{err}");
    let r = server.admin(Method::POST, "/admin/v1/gc").body(r#"{"grace":"0s"}"#).send().await.unwrap();
    assert_eq!(r.status(), 409, "the server's own collection refuses too");
    assert!(r.text().await.unwrap().contains("replica-b"));
    // A dry run deletes nothing and needs no lease.
    let dry = common::cli::ok_json(&gc(&["--dry-run"]));
    assert_eq!(dry["dryRun"], true, "{dry}");
}
