//! The proxy in front of an upstream registry (Debian's docker-registry with its own password): clients
//! use regbridge credentials only, names map through the route, upload locations are rewritten and signed,
//! and nothing of the upstream (host, password, challenge) reaches the client.

mod common;

use common::upstream::ReferenceRegistry;
use common::{sha256, unique};
use reqwest::{Client, StatusCode};

const ADMIN_PASSWORD: &str = "proxy-admin-pw";
const UPSTREAM_USER: &str = "robot";
const UPSTREAM_PASSWORD: &str = "upstream-Secret-7f3a";

struct Proxy {
    base: String,
    client: Client,
    _dir: tempfile::TempDir,
}

/// regbridge with `hub/...` forwarded to `upstream` as `mirror/...`.
async fn start_proxy(upstream: &ReferenceRegistry) -> Proxy {
    let (base, _, dir) = common::upstream::start_hub_proxy(upstream, UPSTREAM_USER, UPSTREAM_PASSWORD, ADMIN_PASSWORD);
    Proxy { base, client: common::client(), _dir: dir }
}

impl Proxy {
    fn req(&self, method: reqwest::Method, path_or_url: &str) -> reqwest::RequestBuilder {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.base)
        };
        self.client.request(method, url)
    }
    fn admin(&self, method: reqwest::Method, path_or_url: &str) -> reqwest::RequestBuilder {
        self.req(method, path_or_url).basic_auth("admin", Some(ADMIN_PASSWORD))
    }
}

/// Pushes a blob with POST then PUT (docker-registry 2.8 answers a monolithic `POST ?digest=` with a
/// session instead of storing the blob).
async fn push_blob(proxy: &Proxy, repo: &str, bytes: &[u8]) {
    let r = proxy.admin(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = proxy
        .admin(reqwest::Method::PUT, &format!("{location}{sep}digest={}", sha256(bytes)))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "PUT {location}");
}

/// Asserts no header or body of `r` mentions the upstream, and returns the body.
async fn clean(
    r: reqwest::Response,
    upstream: &ReferenceRegistry,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let (status, headers) = (r.status(), r.headers().clone());
    let body = r.bytes().await.unwrap().to_vec();
    let port = upstream.addr.rsplit(':').next().unwrap();
    for (name, value) in &headers {
        let v = value.to_str().unwrap_or_default();
        assert!(!v.contains(&upstream.addr) && !v.contains(&format!(":{port}/")), "{name}: {v} names the upstream");
        assert!(!v.contains(UPSTREAM_PASSWORD), "{name} carries the upstream password");
        assert!(!v.contains("realm=\"upstream\""), "{name} carries the upstream's challenge");
    }
    let text = String::from_utf8_lossy(&body);
    assert!(!text.contains(UPSTREAM_PASSWORD) && !text.contains(&upstream.addr), "the body names the upstream: {text}");
    (status, headers, body)
}

#[tokio::test]
async fn pushes_and_pulls_through_the_route_with_signed_locations() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let proxy = start_proxy(&upstream).await;
    let repo = format!("hub/{}", unique("app"));
    let layer = b"layer bytes through the proxy".repeat(1000);
    let digest = sha256(&layer);

    // Start an upload: the location is ours, signed, and names the client's repository.
    let r = proxy.admin(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    let (status, headers, _) = clean(r, &upstream).await;
    assert_eq!(status, 202);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/v2/{repo}/blobs/uploads/", proxy.base)), "{location}");
    assert!(location.contains("rbsig="), "{location}");

    // A tampered signature is an unknown upload, with or without credentials; the real one works without
    // Authorization.
    let tampered = location.replace("rbsig=", "rbsig=x");
    let r = proxy.req(reqwest::Method::PATCH, &tampered).body(layer[..10].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = proxy.admin(reqwest::Method::PATCH, &tampered).body(layer[..10].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = proxy
        .req(reqwest::Method::PATCH, &location)
        .header("Content-Type", "application/octet-stream")
        .body(layer[..1000].to_vec())
        .send()
        .await
        .unwrap();
    let (status, headers, _) = clean(r, &upstream).await;
    assert_eq!(status, 202);
    let location = headers["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = proxy
        .req(reqwest::Method::PUT, &format!("{location}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(layer[1000..].to_vec())
        .send()
        .await
        .unwrap();
    let (status, headers, _) = clean(r, &upstream).await;
    assert_eq!(status, 201);
    assert_eq!(headers["location"].to_str().unwrap(), format!("{}/v2/{repo}/blobs/{digest}", proxy.base));

    // The blob reads back through the proxy, and is upstream under the mapped name.
    let r = proxy.admin(reqwest::Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
    let (status, _, body) = clean(r, &upstream).await;
    assert_eq!((status.as_u16(), body == layer), (200, true));
    let upstream_name = repo.replacen("hub/", "mirror/", 1);
    let direct = common::client()
        .head(format!("http://{}/v2/{upstream_name}/blobs/{digest}", upstream.addr))
        .basic_auth(UPSTREAM_USER, Some(UPSTREAM_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "the upstream has the blob as {upstream_name}");

    // A manifest, tags with pagination links in client names, and the catalog across routes.
    let config = b"{}";
    let config_digest = sha256(config);
    push_blob(&proxy, &repo, config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": layer.len()}]
    }))
    .unwrap();
    for tag in ["v1", "v2", "v3"] {
        let r = proxy
            .admin(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        let (status, headers, _) = clean(r, &upstream).await;
        assert_eq!(status, 201);
        assert_eq!(headers["docker-content-digest"].to_str().unwrap(), sha256(&manifest));
    }
    let r = proxy.admin(reqwest::Method::GET, &format!("/v2/{repo}/manifests/v2")).send().await.unwrap();
    let (status, headers, body) = clean(r, &upstream).await;
    assert_eq!((status.as_u16(), body), (200, manifest.clone()));
    assert_eq!(headers["content-type"], "application/vnd.oci.image.manifest.v1+json");
    let r = proxy.admin(reqwest::Method::GET, &format!("/v2/{repo}/tags/list?n=2")).send().await.unwrap();
    let (_, headers, body) = clean(r, &upstream).await;
    let tags: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(tags["name"], repo.as_str(), "the client's name, not the upstream's");
    // distribution 2.8 ignores `n` on tag lists; where an upstream paginates, its Link names our path.
    if let Some(link) = headers.get("link") {
        let link = link.to_str().unwrap();
        assert!(link.starts_with(&format!("</v2/{repo}/tags/list?")), "{link}");
    } else {
        assert_eq!(tags["tags"], serde_json::json!(["v1", "v2", "v3"]));
    }

    let local = unique("local");
    push_blob(&proxy, &local, config).await;
    let r = proxy.admin(reqwest::Method::PUT, &format!("/v2/{local}/manifests/v1")).header("Content-Type", "application/vnd.oci.image.manifest.v1+json").body(
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config_digest, "size": 2}, "layers": []})).unwrap(),
    ).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = proxy.admin(reqwest::Method::GET, "/v2/_catalog").send().await.unwrap();
    let (_, _, body) = clean(r, &upstream).await;
    let catalog: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let names: Vec<&str> = catalog["repositories"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(names.contains(&repo.as_str()) && names.contains(&local.as_str()), "{names:?}");
    // Pages of one merge local and upstream names in the same order, each once.
    let mut paged: Vec<String> = Vec::new();
    let mut path = Some("/v2/_catalog?n=1".to_owned());
    for _ in 0..names.len() + 2 {
        let Some(p) = path.take() else { break };
        let r = proxy.admin(reqwest::Method::GET, &p).send().await.unwrap();
        path = r.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            l.strip_prefix('<').and_then(|l| l.split_once('>')).expect("a Link target").0.to_owned()
        });
        let page: serde_json::Value = r.json().await.unwrap();
        paged.extend(page["repositories"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()));
    }
    assert!(path.is_none(), "pagination did not end");
    assert_eq!(paged, names);

    // Anonymous clients get our challenge, never the upstream's.
    let r = proxy.req(reqwest::Method::GET, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
    let (status, headers, _) = clean(r, &upstream).await;
    assert_eq!(status, 401);
    assert!(headers["www-authenticate"].to_str().unwrap().contains(&format!("realm=\"{}/token\"", proxy.base)));
}

#[tokio::test]
async fn real_clients_through_the_proxy() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let proxy = start_proxy(&upstream).await;
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/run.sh");
    let out = tokio::process::Command::new("bash")
        .arg(script)
        .args([&addr, "admin", ADMIN_PASSWORD])
        .env("REGBRIDGE_TEST_NS_PREFIX", "hub/")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(!stdout.contains(UPSTREAM_PASSWORD), "the upstream password reached a client");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        out.status.success() && summary.contains(" 0 failed"),
        "{summary}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
