//! `regbridge migrate` (the real binary): a registry on local disk, with two repositories sharing a
//! layer, an index, a referrer and a grant, copied into S3 (moto), then served from the bucket with every
//! digest verified; a second run copies nothing; a corrupted source blob and a bad `--to` fail, naming
//! what is wrong.

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::{code, command, ok_json, run, stderr};
use common::moto::emulators;
use common::{
    OCI_CONFIG, OCI_LAYER, TestServer, artifact, descriptor, image_manifest, oci_index, sha256, with_platform,
};
use regbridge::Permissions;
use regbridge::oci::media_types::{OCI_INDEX, OCI_MANIFEST};
use regbridge::oci::{Digest, RepositoryName};
use regbridge_proxy::ServeConfig;
use regbridge_proxy::storage_config::{StorageConfig, StorageSection};
use reqwest::Method;
use serde_json::Value;

/// A server on `bucket` under `prefix`.
async fn on_bucket(endpoint: &str, bucket: &str, prefix: &str) -> TestServer {
    let keys = common::moto::s3_storage_keys(endpoint, bucket).replace("/registry\"", &format!("/{prefix}\""));
    let section: StorageSection = toml::from_str(&keys).expect("[storage]");
    let storage = StorageConfig::resolve_with(section, |_| None).expect("storage config");
    TestServer::start_configured(move |c| ServeConfig { storage, ..c }).await
}

/// `regbridge migrate --data-dir DATA --to URL` onto moto, with moto's dummy credentials from the
/// standard AWS variables, in `cwd` (no configuration file found there).
fn migrate(cwd: &Path, data_dir: &Path, endpoint: &str, to: &str) -> Output {
    let data_dir = data_dir.to_str().unwrap();
    let args =
        ["migrate", "--data-dir", data_dir, "--to", to, "--to-endpoint", endpoint, "--to-allow-http", "--to-region"];
    let mut command = command(&[&args[..], &["us-east-1"]].concat());
    command
        .current_dir(cwd)
        .env("XDG_CONFIG_HOME", cwd)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    run(&mut command, "")
}

/// What was pushed: `(repository, reference, manifest bytes)` and `(repository, blob bytes)`.
struct Pushed {
    manifests: Vec<(String, String, Vec<u8>)>,
    blobs: Vec<(String, Vec<u8>)>,
    layer: Vec<u8>,
}

/// Pushes into `server`: `team/app:v1` and `:v1-arm` under an index `:multi`, a signature referring to
/// `v1`, and `team/web:v1` sharing `v1`'s layer; grants pull on `team/app` to account `partner`.
async fn push_everything(server: &TestServer) -> Pushed {
    let app = server.push_image("team/app", "v1").await;
    let arm_config = br#"{"architecture":"arm64","os":"linux"}"#.to_vec();
    let arm_layer = b"the arm64 layer".repeat(40);
    server.push_blob("team/app", &arm_config).await;
    server.push_blob("team/app", &arm_layer).await;
    let arm =
        serde_json::to_vec(&image_manifest(&descriptor(OCI_CONFIG, &arm_config), &[descriptor(OCI_LAYER, &arm_layer)]))
            .unwrap();
    let arm_digest = server.push_manifest("team/app", "v1-arm", OCI_MANIFEST, &arm).await;
    let arm_descriptor = serde_json::json!({"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": arm.len()});
    let index = serde_json::to_vec(&oci_index(&[
        with_platform(app.descriptor(), "amd64"),
        with_platform(arm_descriptor, "arm64"),
    ]))
    .unwrap();
    let index_digest = server.push_manifest("team/app", "multi", OCI_INDEX, &index).await;

    let signature = b"a signature of v1".to_vec();
    server.push_blob("team/app", common::EMPTY_JSON).await;
    server.push_blob("team/app", &signature).await;
    let referrer = serde_json::to_vec(&artifact(
        "application/vnd.example.signature",
        &[descriptor("application/octet-stream", &signature)],
        Some(&app.descriptor()),
    ))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    server.push_manifest("team/app", &referrer_digest, OCI_MANIFEST, &referrer).await;

    let web_config = br#"{"architecture":"amd64","os":"linux","web":true}"#.to_vec();
    server.push_blob("team/web", &web_config).await;
    server.push_blob("team/web", &app.layer).await;
    let web =
        serde_json::to_vec(&image_manifest(&descriptor(OCI_CONFIG, &web_config), &[descriptor(OCI_LAYER, &app.layer)]))
            .unwrap();
    server.push_manifest("team/web", "v1", OCI_MANIFEST, &web).await;

    let repo = RepositoryName::parse("team/app").unwrap();
    server
        .registry
        .storage()
        .update_repository(
            &repo,
            Box::new(|m| {
                m.grants.entry(Permissions::Pull).or_default().insert("partner".into());
            }),
        )
        .await
        .unwrap();

    let app_repo = |reference: &str, bytes: &[u8]| ("team/app".to_owned(), reference.to_owned(), bytes.to_vec());
    Pushed {
        manifests: vec![
            app_repo("v1", &app.bytes),
            app_repo(&app.digest, &app.bytes),
            app_repo("v1-arm", &arm),
            app_repo("multi", &index),
            app_repo(&index_digest, &index),
            app_repo(&referrer_digest, &referrer),
            ("team/web".into(), "v1".into(), web.clone()),
        ],
        blobs: vec![
            ("team/app".into(), app.config.clone()),
            ("team/app".into(), app.layer.clone()),
            ("team/app".into(), arm_config),
            ("team/app".into(), arm_layer),
            ("team/app".into(), signature),
            ("team/app".into(), common::EMPTY_JSON.to_vec()),
            ("team/web".into(), web_config),
            ("team/web".into(), app.layer.clone()),
        ],
        layer: app.layer,
    }
}

/// A count of the report: `report[kind][what]`.
fn count(report: &Value, kind: &str, what: &str) -> u64 {
    report[kind][what].as_u64().unwrap_or_else(|| panic!("{kind}.{what} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_registry_moves_to_s3_and_is_served_from_there() {
    let moto = emulators::start_moto().await;
    let bucket = emulators::s3_bucket(&moto).await;
    let mut source = TestServer::start().await;
    let pushed = push_everything(&source).await;
    let data_dir = source.data_dir.clone();
    let dir = source.dir.take().expect("the source's directory");
    drop(source);
    let cwd = tempfile::tempdir().unwrap();
    let to = format!("s3://{bucket}/registry");

    let out = migrate(cwd.path(), &data_dir, &moto.endpoint, &to);
    let report = ok_json(&out);
    assert_eq!(report["to"], format!("s3://{bucket}/registry"), "{report}");
    assert_eq!(count(&report, "repositories", "copied"), 2, "{report}");
    assert_eq!(count(&report, "blobs", "copied"), 7, "the shared layer is uploaded once: {report}");
    assert_eq!(count(&report, "blobs", "mounted"), 1, "and mounted into the other repository: {report}");
    assert_eq!(count(&report, "manifests", "copied"), 5, "{report}");
    assert_eq!(count(&report, "tags", "copied"), 4, "{report}");
    let blob_bytes: usize = pushed.blobs.iter().map(|(_, b)| b.len()).sum();
    let copied = count(&report, "bytes", "copied") + count(&report, "bytes", "skipped");
    assert_eq!(copied, blob_bytes as u64, "{report}");
    assert!(!stderr(&out).contains("testing"), "no credential is printed: {}", stderr(&out));

    let server = on_bucket(&moto.endpoint, &bucket, "registry").await;
    for (repo, reference, bytes) in &pushed.manifests {
        let got = server.admin(Method::GET, &format!("/v2/{repo}/manifests/{reference}")).send().await.unwrap();
        assert_eq!(got.status(), 200, "{repo}:{reference}");
        let digest = got.headers()["docker-content-digest"].to_str().unwrap().to_owned();
        let body = got.bytes().await.unwrap();
        assert_eq!(body.as_ref(), &bytes[..], "{repo}:{reference}");
        assert_eq!(digest, sha256(&body), "{repo}:{reference}");
    }
    for (repo, bytes) in &pushed.blobs {
        let digest = sha256(bytes);
        let got = server.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(got.status(), 200, "{repo}@{digest}");
        assert_eq!(sha256(&got.bytes().await.unwrap()), digest, "{repo}@{digest}");
    }
    let app = &pushed.manifests[1];
    let referrers: Value = server
        .admin(Method::GET, &format!("/v2/team/app/referrers/{}", app.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(referrers["manifests"][0]["digest"], pushed.manifests[5].1, "the referrer is kept: {referrers}");
    assert_eq!(referrers["manifests"][0]["artifactType"], "application/vnd.example.signature");
    let tags: Value = server.admin(Method::GET, "/v2/team/app/tags/list").send().await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["multi", "v1", "v1-arm"]));
    let meta = server.registry.storage().repository(&RepositoryName::parse("team/app").unwrap()).await.unwrap();
    let grants = meta.expect("team/app on the bucket").grants;
    assert!(grants[&Permissions::Pull].contains("partner"), "the grant is kept: {grants:?}");
    drop(server);

    let again = ok_json(&migrate(cwd.path(), &data_dir, &moto.endpoint, &to));
    for kind in ["repositories", "manifests", "tags"] {
        assert_eq!(count(&again, kind, "copied"), 0, "{kind}: {again}");
    }
    assert_eq!(count(&again, "repositories", "skipped"), 2, "{again}");
    assert_eq!(count(&again, "manifests", "skipped"), 5, "{again}");
    assert_eq!(count(&again, "tags", "skipped"), 4, "{again}");
    assert_eq!((count(&again, "blobs", "copied"), count(&again, "blobs", "mounted")), (0, 0), "{again}");
    assert_eq!(count(&again, "blobs", "skipped"), 8, "{again}");
    assert_eq!(count(&again, "bytes", "copied"), 0, "{again}");

    // The source changes (a new image, tag v1 moved to it): the next run copies just that.
    let restarted = TestServer::start_configured({
        let data_dir = data_dir.clone();
        move |c| ServeConfig { data_dir, ..c }
    })
    .await;
    let moved = restarted.push_image("team/app", "v1").await;
    drop(restarted);
    let changed = ok_json(&migrate(cwd.path(), &data_dir, &moto.endpoint, &to));
    assert_eq!(count(&changed, "blobs", "copied"), 2, "{changed}");
    assert_eq!(count(&changed, "blobs", "skipped"), 8, "{changed}");
    assert_eq!(count(&changed, "manifests", "copied"), 1, "{changed}");
    assert_eq!((count(&changed, "tags", "copied"), count(&changed, "tags", "skipped")), (1, 3), "{changed}");
    let server = on_bucket(&moto.endpoint, &bucket, "registry").await;
    let v1 = server.admin(Method::GET, "/v2/team/app/manifests/v1").send().await.unwrap();
    assert_eq!(v1.bytes().await.unwrap().as_ref(), &moved.bytes[..], "v1 moved on the bucket too");
    drop(server);

    // The shared layer corrupted on disk: a migration to a new prefix stops at it, naming it, and the
    // bucket has nothing under its digest.
    let layer = Digest::sha256(&pushed.layer);
    let path = data_dir.join("storage/blobs/sha256").join(&layer.hex()[..2]).join(layer.hex());
    let mut corrupt = std::fs::read(&path).expect("the layer on disk");
    corrupt[0] ^= 0xff;
    std::fs::write(&path, &corrupt).unwrap();
    let fresh = format!("s3://{bucket}/fresh");
    let failed = migrate(cwd.path(), &data_dir, &moto.endpoint, &fresh);
    assert_ne!(code(&failed), 0, "{}", stderr(&failed));
    let message = stderr(&failed);
    assert!(message.contains("team/app") && message.contains(&layer.to_string()), "{message}");
    assert!(message.contains("corrupted"), "{message}");
    let fresh_server = on_bucket(&moto.endpoint, &bucket, "fresh").await;
    let head = fresh_server.admin(Method::HEAD, &format!("/v2/team/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(head.status(), 404, "nothing is stored under the corrupted blob's digest");
    drop(fresh_server);

    // Repaired, the interrupted migration resumes: what the first attempt copied is skipped.
    corrupt[0] ^= 0xff;
    std::fs::write(&path, &corrupt).unwrap();
    let resumed = ok_json(&migrate(cwd.path(), &data_dir, &moto.endpoint, &fresh));
    assert!(count(&resumed, "repositories", "skipped") >= 1, "team/app was created before the failure: {resumed}");
    let links: u64 = ["copied", "mounted", "skipped"].iter().map(|w| count(&resumed, "blobs", w)).sum();
    assert_eq!(links, 10, "{resumed}");
    assert_eq!(count(&resumed, "manifests", "copied"), 6, "{resumed}");
    let fresh_server = on_bucket(&moto.endpoint, &bucket, "fresh").await;
    let got = fresh_server.admin(Method::GET, &format!("/v2/team/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(sha256(&got.bytes().await.unwrap()), layer.to_string());
    drop(dir);
}

#[test]
fn a_bad_destination_is_refused_naming_the_flag() {
    let cwd = tempfile::tempdir().unwrap();
    let data_dir = cwd.path().join("data");
    std::fs::create_dir_all(data_dir.join("storage")).unwrap();
    let out = migrate(cwd.path(), &data_dir, "http://127.0.0.1:9", "s4://bucket");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--to \"s4://bucket\"") && stderr(&out).contains("unknown scheme"),
        "{}",
        stderr(&out)
    );
    let out = migrate(cwd.path(), &data_dir, "http://127.0.0.1:9", "s3://user:secret@bucket");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!stderr(&out).contains("secret"), "{}", stderr(&out));
}

#[test]
fn a_missing_source_is_refused() {
    let cwd = tempfile::tempdir().unwrap();
    let out = migrate(cwd.path(), &cwd.path().join("nothing"), "http://127.0.0.1:9", "s3://bucket/x");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("no local storage"), "{}", stderr(&out));
}
