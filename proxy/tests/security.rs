//! A hostile client against `regbridge serve`: a generic route in front of Debian's docker-registry (with
//! its own password) and the local registry. Each test tries to escape a grant — another repository,
//! another route, a longer lifetime, more actions, the upstream's own credentials — and must fail.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::upstream::ReferenceRegistry;
use common::{RawBody, raw_request, sha256, unique};
use regbridge::{ArtifactRegistry, Permissions};
use reqwest::Method;
use serde_json::Value;

const ADMIN_PASSWORD: &str = "security-admin-pw";
const UPSTREAM_USER: &str = "robot";
const UPSTREAM_PASSWORD: &str = "upstream-Secret-security-9c1";

struct Proxy {
    base: String,
    registry: regbridge_providers::local::LocalRegistry,
    _dir: tempfile::TempDir,
}

/// regbridge with `hub/...` forwarded to `upstream` as `mirror/...`.
async fn start(upstream: &ReferenceRegistry) -> Proxy {
    let (base, registry, dir) =
        common::upstream::start_hub_proxy(upstream, UPSTREAM_USER, UPSTREAM_PASSWORD, ADMIN_PASSWORD);
    Proxy { base, registry, _dir: dir }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn admin() -> String {
    basic("admin", ADMIN_PASSWORD)
}

/// Credentials of the proxy for `repo` (what `creds mint` hands out on a generic route).
fn proxy_creds(p: &Proxy, repo: &str, permissions: Permissions) -> String {
    let c = p.registry.proxy_credentials(&repo.parse().unwrap(), permissions, Duration::from_secs(600)).unwrap();
    basic(&c.username, c.password.expose())
}

/// Pushes `bytes` as a blob of `repo` (POST then PUT on the signed location) as `auth`.
async fn push_blob(p: &Proxy, repo: &str, bytes: &[u8], auth: &str) -> String {
    let client = common::client();
    let r =
        client.post(format!("{}/v2/{repo}/blobs/uploads/", p.base)).header("Authorization", auth).send().await.unwrap();
    assert_eq!(r.status(), 202, "{:?}", r.text().await);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let digest = sha256(bytes);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = client
        .put(format!("{location}{sep}digest={digest}"))
        .header("Authorization", auth)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    digest
}

/// The upstream's own view (with its password): whether `path` exists there.
async fn upstream_status(upstream: &ReferenceRegistry, method: Method, path: &str) -> u16 {
    common::client()
        .request(method, format!("http://{}{path}", upstream.addr))
        .basic_auth(UPSTREAM_USER, Some(UPSTREAM_PASSWORD))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn assert_never_forwarded(r: &common::RawResponse, what: &str) {
    assert!(matches!(r.status, 400 | 404), "{what}: {} {}", r.status, r.body);
    let code: Value = serde_json::from_str(&r.body).unwrap_or_default();
    let code = code["errors"][0]["code"].as_str().unwrap_or_default().to_owned();
    assert!(
        ["BLOB_UPLOAD_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "TAG_INVALID", "DIGEST_INVALID", "UNSUPPORTED"]
            .contains(&code.as_str()),
        "{what}: {code} {}",
        r.body
    );
    assert!(!r.body.contains("repositories") && !r.body.contains(UPSTREAM_PASSWORD), "{what}: {}", r.body);
}

#[tokio::test]
async fn no_client_text_chooses_an_upstream_url() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let p = start(&upstream).await;
    let victim = unique("victim");
    push_blob(&p, &format!("hub/{victim}"), b"someone else's layer", &admin()).await;
    let mine = proxy_creds(&p, "hub/mine", Permissions::PushPull);
    let escapes = [
        "/v2/mirror/victim/tags/list".to_owned(),
        "/v2/_catalog".to_owned(),
        "/v2/mirror/../../".to_owned(),
        "/".to_owned(),
        format!("/v2/mirror/mine/blobs/uploads/../../../{victim}/tags/list"),
        "/v2/mirror/mine/blobs/uploads/x/../../../../_catalog?n=100".to_owned(),
        format!("/v2/mirror/mine/blobs/uploads/%2e%2e/%2e%2e/%2e%2e/{victim}/tags/list"),
    ];
    for target in &escapes {
        // An unsigned upload id naming any upstream path is unknown, whatever it says.
        let id = URL_SAFE_NO_PAD.encode(target);
        for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
            let path = format!("/v2/hub/mine/blobs/uploads/{id}?digest={}", sha256(b"x"));
            let r = raw_request(&p.base, method.clone(), &path, &[("Authorization", &mine)], RawBody::None).await;
            assert_never_forwarded(&r, &format!("{method} upload id for {target}"));
        }
    }
    // Dot segments and percent-encoding in the path itself.
    for path in [
        format!("/v2/hub/mine/../{victim}/tags/list"),
        format!("/v2/hub/mine%2F..%2F{victim}/tags/list"),
        format!("/v2/hub/mine/%2e%2e/{victim}/tags/list"),
        format!("/v2/hub/mine/manifests/%2e%2e%2f%2e%2e%2f{victim}"),
        "/v2/hub/mine/blobs/uploads/..%2F..%2F_catalog".to_owned(),
        format!("/v2/hub/mine/tags/list?last=../../{victim}"),
    ] {
        let r = raw_request(&p.base, Method::GET, &path, &[("Authorization", &mine)], RawBody::None).await;
        assert_never_forwarded(&r, &path);
    }
    // A signed location is bound to its repository: another repository's name does not carry it over.
    let r = common::client()
        .post(format!("{}/v2/hub/mine/blobs/uploads/", p.base))
        .header("Authorization", &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let moved = location.replace("/v2/hub/mine/", &format!("/v2/hub/{victim}/"));
    let r = common::client().get(&moved).header("Authorization", &mine).send().await.unwrap();
    assert_eq!(r.status(), 404, "a location moved to another repository is unknown");
    // Unknown query parameters never reach the upstream, and n/last are typed.
    let r = common::client()
        .get(format!("{}/v2/hub/mine/tags/list?n=abc", p.base))
        .header("Authorization", &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The victim's blob is untouched and the upstream saw nothing else.
    assert_eq!(upstream_status(&upstream, Method::GET, &format!("/v2/mirror/{victim}/tags/list")).await, 404);
    let _ = upstream_status(&upstream, Method::GET, "/v2/").await;
}

#[tokio::test]
async fn a_mount_needs_pull_on_its_source() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let p = start(&upstream).await;
    let secret = b"a layer only hub/private may read".to_vec();
    let digest = push_blob(&p, "hub/private", &secret, &admin()).await;
    let outsider = proxy_creds(&p, "hub/outsider", Permissions::PushPull);
    let r = common::client()
        .post(format!("{}/v2/hub/outsider/blobs/uploads/?mount={digest}&from=hub/private", p.base))
        .header("Authorization", &outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "no mount without pull on the source: a plain upload session instead");
    let r = common::client()
        .get(format!("{}/v2/hub/outsider/blobs/{digest}", p.base))
        .header("Authorization", &outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the blob did not become readable");
    // The same on the local registry.
    let local = unique("local-private");
    let digest = push_blob(&p, &local, b"a local secret layer", &admin()).await;
    p.registry.create_repository("local-outsider").await.unwrap();
    let c = p.registry.generate_credentials("local-outsider", Permissions::PushPull, Duration::from_secs(600)).await;
    let c = c.unwrap();
    let auth = basic(&c.username, c.password.expose());
    let r = common::client()
        .post(format!("{}/v2/local-outsider/blobs/uploads/?mount={digest}&from={local}", p.base))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // With pull on the source (the admin), the mount happens.
    let r = common::client()
        .post(format!("{}/v2/hub/other/blobs/uploads/?mount={}&from=hub/private", p.base, sha256(&secret)))
        .header("Authorization", admin())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// The claims of a JWT, unverified (the test only reads what the server put there).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn token(base: &str, auth: &str, scopes: &[&str]) -> (u16, Value) {
    let query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", *s)).collect();
    let r = common::client()
        .get(format!("{base}/token"))
        .query(&[("service", "regbridge")])
        .query(&query)
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn tokens_carry_exactly_what_was_asked_and_never_outlive_their_source() {
    let s = common::TestServer::start().await;
    let repo = unique("scoped");
    let (status, body) = token(&s.base, &basic("admin", common::PASSWORD), &[&format!("repository:{repo}:pull")]).await;
    assert_eq!(status, 200);
    let access = &claims(body["token"].as_str().unwrap())["access"];
    assert_eq!(access.as_array().unwrap().len(), 1, "{access}");
    assert_eq!(access[0]["actions"], serde_json::json!(["pull"]), "an admin asking for pull gets pull only");
    let (_, body) =
        token(&s.base, &basic("admin", common::PASSWORD), &[&format!("repository:{repo}:pull,push,delete,frobnicate")])
            .await;
    assert_eq!(
        claims(body["token"].as_str().unwrap())["access"][0]["actions"],
        serde_json::json!(["pull", "push", "delete"])
    );

    // A pull credential asking for push gets pull only.
    s.registry.create_repository(&repo).await.unwrap();
    let c = s.registry.generate_credentials(&repo, Permissions::Pull, Duration::from_secs(2)).await.unwrap();
    let cred = basic(&c.username, c.password.expose());
    let (status, body) = token(&s.base, &cred, &[&format!("repository:{repo}:pull,push")]).await;
    assert_eq!(status, 200);
    let session = body["token"].as_str().unwrap().to_owned();
    let session_claims = claims(&session);
    assert_eq!(session_claims["access"][0]["actions"], serde_json::json!(["pull"]));
    assert!(session_claims["exp"].as_i64().unwrap() <= c.expires_at.timestamp(), "not past the credential");
    assert!(body["expires_in"].as_i64().unwrap() <= 2);
    // Renewing with the session token itself cannot extend it.
    let (status, body) = token(&s.base, &format!("Bearer {session}"), &[&format!("repository:{repo}:pull")]).await;
    assert_eq!(status, 200);
    assert!(claims(body["token"].as_str().unwrap())["exp"].as_i64().unwrap() <= c.expires_at.timestamp());
    // After the credential's expiry, neither it nor anything derived from it buys a new token.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(token(&s.base, &format!("Bearer {session}"), &[&format!("repository:{repo}:pull")]).await.0, 401);
    assert_eq!(token(&s.base, &cred, &[&format!("repository:{repo}:pull")]).await.0, 401);
}

#[tokio::test]
async fn a_token_without_the_scope_is_challenged_with_insufficient_scope() {
    let s = common::TestServer::start().await;
    let repo = unique("narrow");
    let (_, body) = token(&s.base, &basic("admin", common::PASSWORD), &[&format!("repository:{repo}:pull")]).await;
    let bearer = format!("Bearer {}", body["token"].as_str().unwrap());
    let post = || {
        common::client().post(format!("{}/v2/{repo}/blobs/uploads/", s.base)).header("Authorization", &bearer).send()
    };
    let r = post().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains(&format!("scope=\"repository:{repo}:pull,push\"")), "{challenge}");
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    // A client that retries with the same token (oras-py) is told 403, with the same challenge.
    let r = post().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains("insufficient_scope"));
    // A token asked for with the challenge's scope works.
    let (_, body) = token(&s.base, &basic("admin", common::PASSWORD), &[&format!("repository:{repo}:pull,push")]).await;
    let r = common::client()
        .post(format!("{}/v2/{repo}/blobs/uploads/", s.base))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn the_host_header_is_never_written_unchecked() {
    let s = common::TestServer::start().await;
    for host in ["evil.example\",service=\"x", "a b", "user@evil.example", "evil.example/path"] {
        for path in ["/v2/", "/v2/app/manifests/v1", "/token"] {
            let r = raw_request(&s.base, Method::GET, path, &[("Host", host)], RawBody::None).await;
            assert_eq!(r.status, 400, "Host {host:?} on {path}: {}", r.body);
            assert!(r.headers.iter().all(|(n, _)| n != "www-authenticate"), "{host:?}");
        }
    }
    let r = raw_request(&s.base, Method::GET, "/v2/", &[("Host", "registry.example:5000")], RawBody::None).await;
    assert_eq!(r.status, 401);
    let challenge = &r.headers.iter().find(|(n, _)| n == "www-authenticate").unwrap().1;
    assert!(challenge.starts_with("Bearer realm=\"http://registry.example:5000/token\""), "{challenge}");
}
