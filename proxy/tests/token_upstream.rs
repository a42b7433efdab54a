//! A generic route to an upstream that authenticates with the Docker token flow (docker-registry behind
//! the test token service): the proxy answers the upstream's Bearer challenge with the route's
//! credentials, and a login the token service refuses reaches the client as a 502 naming the route's
//! credentials, not as a challenge.

mod common;

use common::sha256;
use common::token_registry::TokenRegistry;
use regbridge::Secret;
use regbridge_proxy::config_file::RouteConfig;

const ADMIN_PASSWORD: &str = "token-upstream-admin";

async fn proxy_to(upstream: &TokenRegistry, password: &str) -> (String, tempfile::TempDir) {
    let route = RouteConfig {
        prefix: "tok".into(),
        provider: "generic".into(),
        registry: Some(upstream.addr.clone()),
        username: Some("robot".into()),
        password: Some(Secret::new(password)),
        ..RouteConfig::local()
    };
    common::start_proxy(vec![route], ADMIN_PASSWORD).await
}

#[tokio::test]
async fn the_token_flow_upstream_takes_pushes_and_serves_pulls() {
    let upstream = TokenRegistry::start().await;
    upstream.allow("robot", "token-pw");
    let (base, _dir) = proxy_to(&upstream, "token-pw").await;
    let client = common::client();
    let blob = b"layer bytes through a token-auth upstream".to_vec();
    let digest = sha256(&blob);
    let r = client.post(format!("{base}/v2/tok/app/blobs/uploads/")).basic_auth("admin", Some(ADMIN_PASSWORD));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{location}{sep}digest={digest}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .header("content-type", "application/octet-stream")
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = client.get(format!("{base}/v2/tok/app/blobs/{digest}")).basic_auth("admin", Some(ADMIN_PASSWORD));
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("www-authenticate").is_none());
    assert_eq!(r.bytes().await.unwrap().to_vec(), blob);
    assert!(upstream.issued.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn a_refused_login_is_the_routes_failure() {
    let upstream = TokenRegistry::start().await;
    let (base, _dir) = proxy_to(&upstream, "not-allowed").await;
    let r = common::client()
        .get(format!("{base}/v2/tok/app/manifests/latest"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_server_error() || r.status() == 401, "{}", r.status());
    assert!(r.headers().get("www-authenticate").is_none_or(|v| !v.to_str().unwrap().contains(&upstream.realm)));
    let body = r.text().await.unwrap();
    assert!(!body.contains("not-allowed"), "{body}");
}
