//! The regbridge registry inside an existing axum app: the app's own route beside the OCI API on one
//! listener (127.0.0.1, a free port), one request to each, then exit.
//!
//! `cargo run -p regbridge-proxy --example embedded_proxy`

use std::net::SocketAddr;

use axum::routing::get;
use regbridge_proxy::{ServeConfig, Server};

#[tokio::main]
async fn main() -> regbridge::Result<()> {
    let dir = tempfile::tempdir().map_err(|e| regbridge::Error::internal("temp dir", e))?;
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().expect("an address");
    config.data_dir = dir.path().join("data");
    // With `public_url` unset, token realms come from each request's Host header.
    let server = Server::bind_async(config, Some(regbridge::Secret::new("example-admin-password"))).await?;
    let addr = server.local_addr();
    let (registry, listener) = server.into_parts();

    // The host app: its own routes, plus the registry's `/v2/...`, `/token` and the rest.
    let app = axum::Router::new().route("/hello", get(|| async { "hello from the host app" })).merge(registry);
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| regbridge::Error::internal("listener", e))?;
    let serving =
        tokio::spawn(
            async move { axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await },
        );

    let http = reqwest::Client::new();
    let hello = http
        .get(format!("http://{addr}/hello"))
        .send()
        .await
        .map_err(|e| regbridge::Error::internal("GET /hello", e))?;
    println!("GET /hello -> {} {:?}", hello.status(), hello.text().await.unwrap_or_default());
    // The OCI API answers an anonymous client with a challenge naming the token endpoint.
    let v2 =
        http.get(format!("http://{addr}/v2/")).send().await.map_err(|e| regbridge::Error::internal("GET /v2/", e))?;
    let challenge = v2.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    println!("GET /v2/ -> {} ({challenge})", v2.status());
    assert_eq!(v2.status(), 401);
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    serving.abort();
    Ok(())
}
