//! Blob downloads through the proxy when the upstream keeps blobs in object storage: Debian's
//! docker-registry on S3 (moto's server) answers blob GETs with a 307 to a presigned S3 URL. The proxy passes
//! that redirect to the client unchanged (and without credentials), or, on a route with
//! `redirect_blobs = false`, follows it and streams the bytes.

mod common;

use std::time::{Duration, Instant};

use common::moto::start_moto;
use common::sha256;
use common::upstream::ReferenceRegistry;
use regbridge::Secret;
use regbridge_proxy::config_file::RouteConfig;
use regbridge_proxy::{ServeConfig, Server};

const ADMIN_PASSWORD: &str = "s3-admin-pw";
const UPSTREAM_USER: &str = "robot";
const UPSTREAM_PASSWORD: &str = "s3-upstream-pw";
const BUCKET: &str = "regbridge-test";

#[tokio::test]
async fn blob_redirects_pass_through_or_are_followed() {
    let (_moto, s3) = start_moto().await;
    let client = common::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // moto accepts unsigned requests; create the bucket docker-registry stores in.
        if let Ok(r) = client.put(format!("{s3}/{BUCKET}")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "could not create the bucket at {s3}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let storage = format!(
        "  s3:\n    accesskey: test\n    secretkey: test\n    region: us-east-1\n    regionendpoint: {s3}\n    \
         bucket: {BUCKET}\n    forcepathstyle: true\n    secure: false\n    v4auth: true\n  redirect:\n    disable: false\n"
    );
    let upstream = ReferenceRegistry::start_with_storage(UPSTREAM_USER, UPSTREAM_PASSWORD, Some(&storage));
    let dir = tempfile::tempdir().unwrap();
    let route = |prefix: &str, redirect: bool| RouteConfig {
        prefix: prefix.into(),
        provider: "generic".into(),
        registry: Some(upstream.addr.clone()),
        username: Some(UPSTREAM_USER.into()),
        password: Some(Secret::new(UPSTREAM_PASSWORD)),
        redirect_blobs: Some(redirect),
        ..RouteConfig::local()
    };
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("data"),
        routes: vec![route("up", true), route("st", false)],
        ..ServeConfig::new()
    };
    let server = Server::bind(config, Some(Secret::new(ADMIN_PASSWORD))).unwrap();
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run());
    let client = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // Push a blob through the proxy (POST, then PUT with the bytes).
    let blob = b"stored in S3, served by redirect".repeat(4096);
    let digest = sha256(&blob);
    let r = client
        .post(format!("{base}/v2/up/app/blobs/uploads/"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = client
        .put(format!("{location}&digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    // Redirect route: the client is sent to S3 itself, with nothing of ours or the upstream's attached.
    let r = client
        .get(format!("{base}/v2/up/app/blobs/{digest}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let target = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(target.starts_with(&format!("{s3}/{BUCKET}/")), "{target}");
    assert!(!target.contains(UPSTREAM_PASSWORD) && !target.contains(ADMIN_PASSWORD));
    let fetched = client.get(&target).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), blob.as_slice(), "the presigned URL serves the blob");

    // Streaming route: the proxy follows the redirect and the client gets the bytes.
    let r = client
        .get(format!("{base}/v2/st/app/blobs/{digest}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), blob.as_slice());
}
