//! An ECR route end to end: ECR's control plane is moto, its data plane a Debian docker-registry whose
//! htpasswd user is `AWS` with the password moto's GetAuthorizationToken returns. Clients push and pull
//! through regbridge with regbridge credentials; the proxy mints ECR credentials per repository, and blob
//! GETs are sent to ECR's presigned layer URL (GetDownloadUrlForLayer, which moto lacks, is answered by a
//! small stand-in in front of moto).
#![cfg(feature = "ecr")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::moto::start_moto;
use common::sha256;
use common::upstream::ReferenceRegistry;
use regbridge::{ArtifactRegistry, Permissions, Secret};
use regbridge_providers::ecr::EcrRegistryBuilder;
use regbridge_proxy::config_file::RouteConfig;

const ADMIN_PASSWORD: &str = "ecr-proxy-admin";
/// The presigned URL the stubbed GetDownloadUrlForLayer hands out (never fetched by the test).
const PRESIGNED: &str = "http://127.0.0.1:9/presigned/layer?X-Amz-Signature=stub";
const ACCOUNT: &str = "123456789012";

/// moto with GetDownloadUrlForLayer added: that one ECR call (which moto lacks) is answered here, every
/// other request is passed to moto. Returns the endpoint and a counter of presign calls.
async fn moto_with_presign(moto: String) -> (String, Arc<AtomicUsize>) {
    use axum::body::Body;
    use axum::http::Request;
    let presigns = Arc::new(AtomicUsize::new(0));
    let counter = presigns.clone();
    let client = common::client();
    let app = axum::Router::new().fallback(move |request: Request<Body>| {
        let (client, moto, counter) = (client.clone(), moto.clone(), counter.clone());
        async move {
            let (parts, body) = request.into_parts();
            let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if target.ends_with("GetDownloadUrlForLayer") {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({"downloadUrl": PRESIGNED, "layerDigest": "sha256:stub"}).to_string();
                return axum::http::Response::builder()
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(Body::from(body))
                    .unwrap();
            }
            let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap();
            let mut forward = client.request(parts.method.clone(), format!("{moto}{}", parts.uri));
            for (name, value) in &parts.headers {
                if name != "host" && name != "content-length" {
                    forward = forward.header(name, value);
                }
            }
            let answer = forward.body(bytes).send().await.unwrap();
            let mut out = axum::http::Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out = out.header(name, value);
                }
            }
            out.body(Body::from(answer.bytes().await.unwrap())).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (endpoint, presigns)
}

#[tokio::test]
async fn push_and_pull_through_an_ecr_route() {
    let (_moto, moto) = start_moto().await;
    let (moto, presigns) = moto_with_presign(moto).await;
    let provider = EcrRegistryBuilder::new()
        .with_region("us-east-1")
        .with_account(ACCOUNT)
        .with_prefix("team")
        .with_endpoint(&moto)
        .with_credentials("test", "test")
        .build()
        .await
        .unwrap();
    let repo = provider.create_repository("app").await.unwrap();
    assert_eq!(repo.name, "team/app");
    // The data plane accepts exactly what ECR's token decodes to.
    let login = provider
        .generate_credentials(&repo.name, Permissions::PushPull, std::time::Duration::from_secs(900))
        .await
        .unwrap();
    let registry = ReferenceRegistry::start(&login.username, login.password.expose());

    let dir = tempfile::tempdir().unwrap();
    let route = RouteConfig {
        prefix: "ecr".into(),
        provider: "ecr".into(),
        region: Some("us-east-1".into()),
        account: Some(ACCOUNT.into()),
        endpoint: Some(moto.clone()),
        registry: Some(format!("http://{}", registry.addr)),
        username: Some("test".into()),
        password: Some(Secret::new("test")),
        upstream_prefix: "team".into(),
        ..RouteConfig::local()
    };
    let host = common::serve_routes(dir.path().join("data"), vec![RouteConfig::local(), route], ADMIN_PASSWORD).await;
    let base = format!("http://{host}");
    let client = common::client();
    let admin = |req: reqwest::RequestBuilder| req.basic_auth("admin", Some(ADMIN_PASSWORD));

    // Push a blob and a manifest to ecr/app; they land in team/app upstream.
    let layer = b"pushed through an ECR route".repeat(100);
    let digest = sha256(&layer);
    let r = admin(client.post(format!("{base}/v2/ecr/app/blobs/uploads/"))).send().await.unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = admin(client.put(format!("{location}&digest={digest}"))).body(layer.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    let config_blob = b"{}";
    let r = admin(client.post(format!("{base}/v2/ecr/app/blobs/uploads/"))).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let r = admin(client.put(format!("{location}&digest={}", sha256(config_blob))))
        .body(config_blob.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(config_blob), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": layer.len()}]
    }))
    .unwrap();
    let r = admin(client.put(format!("{base}/v2/ecr/app/manifests/v1")))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    // Pull back through the proxy: the manifest is forwarded; blob GETs answer 307 to the presigned URL,
    // asked of ECR once and then reused; HEAD still goes to the registry.
    let r = admin(client.get(format!("{base}/v2/ecr/app/manifests/v1"))).send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice());
    let no_redirects =
        reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for _ in 0..3 {
        let r = admin(no_redirects.get(format!("{base}/v2/ecr/app/blobs/{digest}"))).send().await.unwrap();
        assert_eq!(r.status(), 307);
        assert_eq!(r.headers()["location"], PRESIGNED);
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), digest);
    }
    assert_eq!(presigns.load(Ordering::SeqCst), 1, "the presigned URL is cached");
    let r = admin(client.head(format!("{base}/v2/ecr/app/blobs/{digest}"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), layer.len().to_string());
    let direct = client
        .head(format!("http://{}/v2/team/app/blobs/{digest}", registry.addr))
        .basic_auth(&login.username, Some(login.password.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "the blob is upstream as team/app");

    // A name with no ECR repository: minting fails, and the client gets an OCI error, not a hang.
    let r = admin(client.get(format!("{base}/v2/ecr/missing/manifests/v1"))).send().await.unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap_or_default());
}
