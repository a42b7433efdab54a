//! `UpstreamClient` against wiremock registries on 127.0.0.1: authentication flows, token caching,
//! retries, redirects, query strings, error mapping and redaction; and which control-plane requests
//! `RestClient` sends again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, Method};
use regbridge::oci::{Digest, Reference};
use regbridge::{Error, Secret};
use regbridge_providers::http::{
    Backoff, ClientOptions, CredentialSource, RestClient, RestMethod, StaticCredentials, UpstreamClient,
    parse_challenge,
};
use url::Url;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Match, Mock, MockServer, Request, ResponseTemplate};

const USER: &str = "robot";
const PASSWORD: &str = "s3cret-Pa55word";
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn client_with(server: &MockServer, credentials: StaticCredentials) -> UpstreamClient {
    let source: Arc<dyn CredentialSource> = Arc::new(credentials);
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        max_attempts: 3,
    };
    UpstreamClient::new(Url::parse(&server.uri()).unwrap(), "test-registry", source, options).unwrap().with_backoff(
        Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
            retry_after_cap: Duration::from_secs(2),
        },
    )
}

fn client(server: &MockServer) -> UpstreamClient {
    client_with(server, StaticCredentials::new(USER, Secret::new(PASSWORD)))
}

fn basic_value() -> String {
    format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")))
}

/// Scopes from their text.
fn sc(text: &str) -> Vec<regbridge::auth::Scope> {
    regbridge::auth::Scope::parse_list([text])
}

fn bearer_challenge(server: &MockServer, scope: &str) -> String {
    format!(r#"Bearer realm="{}/token",service="reg.test",scope="{scope}""#, server.uri())
}

fn manifest_ok() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("docker-content-digest", Digest::sha256(MANIFEST.as_bytes()).to_string().as_str())
        .set_body_raw(MANIFEST, OCI_MANIFEST)
}

fn oci_error(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"errors": [{"code": code, "message": message}]})
}

/// Matches requests without an `Authorization` header.
struct NoAuth;

impl Match for NoAuth {
    fn matches(&self, request: &Request) -> bool {
        !request.headers.contains_key("authorization")
    }
}

/// Matches the raw query string, byte for byte.
struct RawQuery(&'static str);

impl Match for RawQuery {
    fn matches(&self, request: &Request) -> bool {
        request.url.query() == Some(self.0)
    }
}

/// Asserts that neither the `Display` nor the `Debug` of `err` shows a credential, a token or the
/// upstream's challenge.
fn assert_redacted(err: &Error, server: &MockServer) {
    let encoded = STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for text in [format!("{err}"), format!("{err:?}")] {
        for secret in [PASSWORD, encoded.as_str(), "tok-", "realm", &format!("{}/token", server.uri())] {
            assert!(!text.contains(secret), "{secret:?} leaked into {text}");
        }
    }
}

async fn get(client: &UpstreamClient, path_and_query: &str) -> reqwest::Response {
    client.send(Method::GET, path_and_query, HeaderMap::new(), None, &sc("repository:app:pull")).await.unwrap()
}

async fn requests_to(server: &MockServer, p: &str) -> usize {
    server.received_requests().await.unwrap().iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn bearer_challenge_fetches_a_token_once_and_caches_it() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/v1"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(manifest_ok())
        .with_priority(1)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull")),
        )
        .with_priority(10)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(query_param("service", "reg.test"))
        .and(query_param("scope", "repository:app:pull"))
        .and(header("authorization", basic_value().as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "tok-1", "expires_in": 300})),
        )
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server);
    for _ in 0..2 {
        let response = get(&client, "/v2/app/manifests/v1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), MANIFEST);
    }
    // Clones share the cache: no new token request, no new 401.
    assert_eq!(get(&client.clone(), "/v2/app/manifests/v1").await.status(), 200);
    server.verify().await;
}

#[tokio::test]
async fn an_expired_token_is_fetched_again() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/app/tags/list"))
        .and(header("authorization", "Bearer tok-short"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"name":"app","tags":[]}"#))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/app/tags/list"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull")),
        )
        .with_priority(10)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "tok-short", "expires_in": 1})),
        )
        .expect(2)
        .mount(&server)
        .await;

    let client = client(&server);
    assert_eq!(get(&client, "/v2/app/tags/list").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The scheme is known, so the new token is fetched before the request: no second 401.
    assert_eq!(get(&client, "/v2/app/tags/list").await.status(), 200);
    server.verify().await;
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let server = MockServer::start().await;
    let tokens = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = tokens.clone();
    Mock::given(path("/token"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": format!("tok-{n}")}))
        })
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/manifests/v1"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(manifest_ok())
        .with_priority(1)
        .mount(&server)
        .await;
    // tok-0 is "revoked": the registry refuses it although it is still fresh in the cache.
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull")),
        )
        .with_priority(10)
        .mount(&server)
        .await;

    let client = client(&server);
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 401, "tok-0 is refused after the one retry");
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 200, "tok-0 was dropped, tok-1 fetched");
    assert_eq!(tokens.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn basic_challenge_is_answered_with_basic_credentials() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .and(header("authorization", basic_value().as_str()))
        .respond_with(manifest_ok())
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", r#"Basic realm="Registry Realm""#))
        .with_priority(10)
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server);
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 200);
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 200, "Basic is sent up front once learnt");
    server.verify().await;
}

#[tokio::test]
async fn anonymous_token_flow_sends_no_credentials() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/library/alpine/manifests/3"))
        .and(header("authorization", "Bearer anon-token"))
        .respond_with(manifest_ok())
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/library/alpine/manifests/3"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:library/alpine:pull")),
        )
        .with_priority(10)
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .and(NoAuth)
        .and(query_param("scope", "repository:library/alpine:pull"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "anon-token"})))
        .expect(1)
        .mount(&server)
        .await;

    let client = client_with(&server, StaticCredentials::anonymous());
    let m = client.get_manifest("library/alpine", &Reference::parse("3").unwrap()).await.unwrap().unwrap();
    assert_eq!(m.bytes, MANIFEST.as_bytes());
    assert_eq!(m.media_type, OCI_MANIFEST);
    server.verify().await;
}

#[tokio::test]
async fn the_challenge_scope_wins_and_is_remembered_for_the_callers_scope() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/blobs/uploads/"))
        .and(header("authorization", "Bearer push-token"))
        .respond_with(ResponseTemplate::new(202).insert_header("location", "/v2/app/blobs/uploads/u1"))
        .with_priority(1)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/blobs/uploads/"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:push,pull")),
        )
        .with_priority(10)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .and(query_param("scope", "repository:app:push,pull"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "push-token"})))
        .expect(1)
        .mount(&server)
        .await;

    let client = client(&server);
    for _ in 0..2 {
        let response = client
            .send(Method::POST, "/v2/app/blobs/uploads/", HeaderMap::new(), None, &sc("repository:app:pull,push"))
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    server.verify().await;
}

#[tokio::test]
async fn unauthorized_after_the_retry_is_returned_and_mapped_without_the_challenge() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull"))
                .set_body_json(oci_error("UNAUTHORIZED", "access to the requested resource is not authorized")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"token": "tok-x"})))
        .mount(&server)
        .await;

    let client = client(&server);
    let response = get(&client, "/v2/app/manifests/v1").await;
    assert_eq!(response.status(), 401, "send hands the 401 back for the proxy to decide");
    assert_eq!(requests_to(&server, "/v2/app/manifests/v1").await, 2, "one authentication retry, no more");

    let err = client.get_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    assert!(err.to_string().contains("not authorized"), "the upstream's OCI message is kept: {err}");
    assert_redacted(&err, &server);
}

#[tokio::test]
async fn token_endpoint_failures_are_errors_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/token"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"Basic realm="tokens""#)
                .set_body_json(oci_error("UNAUTHORIZED", "bad password")),
        )
        .mount(&server)
        .await;

    let client = client(&server);
    let err = client.send(Method::GET, "/v2/app/manifests/v1", HeaderMap::new(), None, &[]).await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    assert!(err.to_string().contains("bad password"), "{err}");
    assert_redacted(&err, &server);

    // A token endpoint that answers without a token.
    server.reset().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", bearer_challenge(&server, "repository:app:pull")),
        )
        .mount(&server)
        .await;
    Mock::given(path("/token")).respond_with(ResponseTemplate::new(200).set_body_string("{}")).mount(&server).await;
    let err = get_err(&client).await;
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    assert_redacted(&err, &server);
}

async fn get_err(client: &UpstreamClient) -> Error {
    client
        .send(Method::GET, "/v2/app/manifests/v1", HeaderMap::new(), None, &sc("repository:app:pull"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn get_is_retried_after_503() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/manifests/v1")).respond_with(manifest_ok()).with_priority(5).mount(&server).await;

    let client = client(&server);
    let m = client.get_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap().unwrap();
    assert_eq!(m.digest, Digest::sha256(MANIFEST.as_bytes()));
    assert_eq!(requests_to(&server, "/v2/app/manifests/v1").await, 2);
}

#[tokio::test]
async fn get_gives_up_after_max_attempts_and_maps_the_oci_message() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(ResponseTemplate::new(500).set_body_json(oci_error("UNKNOWN", "disk on fire")))
        .mount(&server)
        .await;
    let client = client(&server);
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 500, "send returns the last 5xx");
    assert_eq!(requests_to(&server, "/v2/app/manifests/v1").await, 3);
    let err = client.get_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap_err();
    match &err {
        Error::Upstream { status: Some(500), message, .. } => assert!(message.contains("disk on fire"), "{message}"),
        other => panic!("expected Upstream 500, got {other:?}"),
    }
    assert_redacted(&err, &server);
}

#[tokio::test]
async fn put_with_a_body_is_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("PUT")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let client = client(&server);
    let response = client
        .send(
            Method::PUT,
            "/v2/app/manifests/v1",
            HeaderMap::new(),
            Some(reqwest::Body::from(MANIFEST.as_bytes().to_vec())),
            &sc("repository:app:pull,push"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);

    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"chunk"))]);
    let response = client
        .send(
            Method::PATCH,
            "/v2/app/blobs/uploads/u1",
            HeaderMap::new(),
            Some(reqwest::Body::wrap_stream(stream)),
            &sc("repository:app:pull,push"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "no mock for PATCH: the one attempt's answer is returned");
}

#[tokio::test]
async fn a_streaming_body_is_sent_once_after_settling_authentication() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/"))
        .and(NoAuth)
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", r#"Basic realm="r""#))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v2/app/blobs/uploads/u1"))
        .and(header("authorization", basic_value().as_str()))
        .respond_with(ResponseTemplate::new(201))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", r#"Basic realm="r""#))
        .with_priority(10)
        .expect(0)
        .mount(&server)
        .await;

    let client = client(&server);
    let chunks = ["first ", "second"].map(|c| Ok::<_, std::io::Error>(bytes::Bytes::from_static(c.as_bytes())));
    let response = client
        .send(
            Method::PUT,
            "/v2/app/blobs/uploads/u1?digest=sha256:abc",
            HeaderMap::new(),
            Some(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))),
            &sc("repository:app:pull,push"),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let put = server.received_requests().await.unwrap().into_iter().find(|r| r.method == Method::PUT).unwrap();
    assert_eq!(put.body, b"first second");
    server.verify().await;
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .with_priority(1)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(path("/v2/app/manifests/v1")).respond_with(manifest_ok()).with_priority(5).mount(&server).await;
    let client = client(&server);
    let started = Instant::now();
    assert_eq!(get(&client, "/v2/app/manifests/v1").await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(950), "waited {:?}", started.elapsed());

    // A wait longer than the cap is not sat out: the 429 comes back, and maps with its Retry-After.
    let server = MockServer::start().await;
    Mock::given(path("/v2/app/manifests/v1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "3600"))
        .mount(&server)
        .await;
    let client = self::client(&server);
    let started = Instant::now();
    let err = client.get_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    match err {
        Error::TooManyRequests { retry_after, .. } => assert_eq!(retry_after, Some(Duration::from_secs(3600))),
        other => panic!("expected TooManyRequests, got {other:?}"),
    }
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let storage = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "5"))
        .mount(&storage)
        .await;
    let server = MockServer::start().await;
    let digest = Digest::sha256(b"layer");
    let blob_path = format!("/v2/app/blobs/{digest}");
    let target = format!("{}/bucket/blob?X-Amz-Signature=abc", storage.uri());
    Mock::given(path(blob_path.as_str()))
        .and(header("authorization", basic_value().as_str()))
        .respond_with(ResponseTemplate::new(307).insert_header("location", target.as_str()))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", r#"Basic realm="r""#))
        .with_priority(10)
        .mount(&server)
        .await;

    let client = client(&server);
    let response = get(&client, &blob_path).await;
    assert_eq!(response.status(), 307);
    assert_eq!(response.headers()["location"], target.as_str());
    assert!(storage.received_requests().await.unwrap().is_empty(), "send does not follow redirects");

    // head_blob asks the storage URL itself, once, and never with the registry's credentials.
    assert_eq!(client.head_blob("app", &digest).await.unwrap(), Some(5));
    let asked = storage.received_requests().await.unwrap();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].method, Method::HEAD);
    assert!(NoAuth.matches(&asked[0]), "credentials were sent to storage");
}

#[tokio::test]
async fn query_strings_pass_byte_for_byte() {
    let server = MockServer::start().await;
    Mock::given(path("/v2/_catalog"))
        .and(RawQuery("n=10&last=a%2Fb&n=2"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"repositories":[]}"#))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let response = client
        .send(Method::GET, "/v2/_catalog?n=10&last=a%2Fb&n=2", HeaderMap::new(), None, &sc("registry:catalog:*"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.verify().await;
}

#[tokio::test]
async fn paths_outside_v2_are_refused() {
    let server = MockServer::start().await;
    let client = client(&server);
    for bad in ["/v1/x", "v2/x", "/v2/../admin", "http://elsewhere/v2/"] {
        let err = client.send(Method::GET, bad, HeaderMap::new(), None, &[]).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn connection_failures_are_retried_then_reported_without_secrets() {
    // A port nobody listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = MockServer::start().await;
    let client = UpstreamClient::new(
        Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        "test-registry",
        Arc::new(StaticCredentials::new(USER, Secret::new(PASSWORD))),
        ClientOptions { max_attempts: 2, ..ClientOptions::default() },
    )
    .unwrap()
    .with_backoff(Backoff { base: Duration::from_millis(5), ..Backoff::default() });
    let err = client.get_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap_err();
    match &err {
        Error::Upstream { status: None, message, .. } => assert!(message.contains("could not connect"), "{message}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_redacted(&err, &server);
}

#[tokio::test]
async fn manifests_and_blobs_missing_forbidden_and_mismatched() {
    let server = MockServer::start().await;
    let not_found = ResponseTemplate::new(404).set_body_json(oci_error("MANIFEST_UNKNOWN", "manifest unknown"));
    Mock::given(path("/v2/app/manifests/missing")).respond_with(not_found).mount(&server).await;
    Mock::given(path(format!("/v2/app/blobs/sha256:{}", "0".repeat(64))))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(path("/v2/secret/manifests/v1"))
        .respond_with(ResponseTemplate::new(403).set_body_json(oci_error("DENIED", "requested access is denied")))
        .mount(&server)
        .await;
    let wrong = Digest::sha256(b"something else");
    Mock::given(path(format!("/v2/app/manifests/{wrong}"))).respond_with(manifest_ok()).mount(&server).await;
    Mock::given(method("HEAD")).and(path("/v2/app/manifests/v1")).respond_with(manifest_ok()).mount(&server).await;
    Mock::given(method("HEAD"))
        .and(path("/v2/app/blobs/sha256:1111"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "1234"))
        .mount(&server)
        .await;

    let client = client(&server);
    let missing = Reference::parse("missing").unwrap();
    assert!(client.get_manifest("app", &missing).await.unwrap().is_none());
    assert!(client.head_manifest("app", &missing).await.unwrap().is_none());
    let zeros = Digest::parse(&format!("sha256:{}", "0".repeat(64))).unwrap();
    assert_eq!(client.head_blob("app", &zeros).await.unwrap(), None);

    let err = client.get_manifest("secret", &Reference::parse("v1").unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    let err = client.get_manifest("app", &Reference::Digest(wrong)).await.unwrap_err();
    assert!(matches!(err, Error::DigestInvalid { .. }), "{err:?}");

    let head = client.head_manifest("app", &Reference::parse("v1").unwrap()).await.unwrap().unwrap();
    assert_eq!(head.digest, Digest::sha256(MANIFEST.as_bytes()));
    assert_eq!(head.size, MANIFEST.len() as u64);
    assert_eq!(head.media_type, OCI_MANIFEST);
}

#[tokio::test]
async fn head_blob_reports_the_size_and_none_when_missing() {
    let server = MockServer::start().await;
    let present = Digest::sha256(b"layer");
    let absent = Digest::sha256(b"nothing");
    Mock::given(method("HEAD"))
        .and(path(format!("/v2/team/app/blobs/{present}")))
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "5"))
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path(format!("/v2/team/app/blobs/{absent}")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    let client = client(&server);
    assert_eq!(client.head_blob("team/app", &present).await.unwrap(), Some(5));
    assert_eq!(client.head_blob("team/app", &absent).await.unwrap(), None);
}

#[test]
fn parse_challenge_cases() {
    let c = parse_challenge(
        r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
    )
    .unwrap();
    assert!(c.is("bearer"));
    assert_eq!(c.scheme, "Bearer");
    assert_eq!(c.param("realm"), Some("https://auth.example/token"));
    assert_eq!(c.param("service"), Some("registry.example"));
    assert_eq!(c.param("scope"), Some("repository:a/b:pull,push"), "the comma inside quotes is kept");

    let c =
        parse_challenge(r#"Bearer realm="a \"quoted\" realm, with comma", Service=svc , error="insufficient_scope""#)
            .unwrap();
    assert_eq!(c.param("realm"), Some(r#"a "quoted" realm, with comma"#));
    assert_eq!(c.param("service"), Some("svc"), "parameter names are case-insensitive");
    assert_eq!(c.param("error"), Some("insufficient_scope"));

    let c = parse_challenge("Bearer").unwrap();
    assert!(c.is("Bearer") && c.params.is_empty(), "missing params");
    let c = parse_challenge(r#"Bearer realm="https://t/token""#).unwrap();
    assert_eq!(c.param("service"), None);
    assert_eq!(c.param("scope"), None);

    let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
    assert!(c.is("Basic"));
    assert_eq!(c.param("realm"), Some("Registry Realm"));

    let c = parse_challenge("Bearer realm=https://t/token,service=reg").unwrap();
    assert_eq!(c.param("realm"), Some("https://t/token"), "unquoted URLs as some registries send them");
    assert_eq!(c.param("service"), Some("reg"));

    assert_eq!(parse_challenge(""), None);
    assert_eq!(parse_challenge("   "), None);
    assert_eq!(parse_challenge(r#"Bearer realm="never closed"#), None);
}

// ------------------------------------------------------------------------------------------------------
// RestClient: which control-plane requests are sent again after a 5xx.

fn rest_client() -> RestClient {
    RestClient::new("test-cloud", &ClientOptions::default()).unwrap().with_backoff(Backoff {
        base: Duration::from_millis(1),
        max: Duration::from_millis(10),
        retry_after_cap: Duration::from_secs(1),
    })
}

/// `POST p` answers 503 once, then `then`.
async fn unavailable_once(server: &MockServer, p: &str, then: ResponseTemplate) {
    let unavailable = serde_json::json!({"error": {"code": 503, "message": "The service is currently unavailable.",
        "status": "UNAVAILABLE"}});
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(ResponseTemplate::new(503).set_body_json(unavailable))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST")).and(path(p)).respond_with(then).with_priority(5).mount(server).await;
}

#[tokio::test]
async fn post_form_is_retried_after_503() {
    // Token endpoints (ACR's /oauth2/exchange and /oauth2/token) mint a new token per delivery.
    let server = MockServer::start().await;
    let token = ResponseTemplate::new(200).set_body_json(serde_json::json!({"refresh_token": "r"}));
    unavailable_once(&server, "/oauth2/exchange", token).await;
    let url = Url::parse(&format!("{}/oauth2/exchange", server.uri())).unwrap();
    let form = [("grant_type", "access_token"), ("service", "myreg.azurecr.io")];
    let response = rest_client().post_form(&url, &form, "token exchange").await.unwrap();
    assert_eq!(response.status(), 200);
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent.len(), 2, "the 503 was retried");
    assert_eq!(sent[0].body, sent[1].body, "the same form both times");
    assert_eq!(sent[1].body, b"grant_type=access_token&service=myreg.azurecr.io");
}

#[tokio::test]
async fn a_plain_post_is_sent_once_and_a_repeatable_one_again() {
    let server = MockServer::start().await;
    // Like ACR generateCredentials, which rotates a password: a second delivery would rotate it again.
    unavailable_once(&server, "/generateCredentials", ResponseTemplate::new(200)).await;
    let rest = rest_client();
    let url = Url::parse(&format!("{}/generateCredentials", server.uri())).unwrap();
    let token = Secret::new("arm-token");
    let body = serde_json::json!({"name": "password1"});
    let err =
        rest.send(Method::POST, &url, &token, HeaderMap::new(), Some(&body), "generate credentials").await.unwrap_err();
    assert_eq!(err.status.map(|s| s.as_u16()), Some(503));
    assert!(matches!(err.error, Error::Upstream { status: Some(503), .. }), "{:?}", err.error);
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "a plain POST is not sent twice");

    // The same POST stated safe to repeat is sent again, and so is a plain one refused with 429 (the
    // request was not processed).
    let server = MockServer::start().await;
    unavailable_once(&server, "/v1/resource:setIamPolicy", ResponseTemplate::new(200)).await;
    let url = Url::parse(&format!("{}/v1/resource:setIamPolicy", server.uri())).unwrap();
    let repeatable = RestMethod::safe_to_repeat(Method::POST);
    assert!(repeatable.is_safe_to_repeat() && !RestMethod::from(Method::POST).is_safe_to_repeat());
    rest.send(repeatable, &url, &token, HeaderMap::new(), Some(&body), "write a policy").await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200)).with_priority(5).mount(&server).await;
    let url = Url::parse(&format!("{}/generateCredentials", server.uri())).unwrap();
    rest.send(Method::POST, &url, &token, HeaderMap::new(), Some(&body), "generate credentials").await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
