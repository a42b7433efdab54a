//! Registry connections through the admin API (`/admin/v1/registries`): creating, conflicts, field
//! validation, updates and deletes, secrets never shown nor stored in clear, validation against Debian's
//! docker-registry, and a `generic` route to a connection created while the server runs.

mod common;

use common::upstream::ReferenceRegistry;
use common::{sha256, unique};
use regbridge::Secret;
use regbridge_proxy::config_file::RouteConfig;
use regbridge_proxy::{ServeConfig, Server};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

const ADMIN_PASSWORD: &str = "connections-admin-pw";
const UPSTREAM_USER: &str = "robot";
const UPSTREAM_PASSWORD: &str = "upstream-Secret-9c1e";
/// The connection the `conn/` route uses; it does not exist when the server starts.
const CONNECTION: &str = "upstream";

struct Proxy {
    base: String,
    client: reqwest::Client,
    data_dir: std::path::PathBuf,
    /// Every response body seen, to check none shows a secret.
    bodies: Vec<String>,
    _dir: tempfile::TempDir,
}

/// regbridge with the local registry as default route and `conn/...` served through the connection
/// [`CONNECTION`] as `mirror/...`.
async fn start() -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let route = RouteConfig {
        prefix: "conn".into(),
        provider: "generic".into(),
        connection: Some(CONNECTION.into()),
        upstream_prefix: "mirror".into(),
        ..RouteConfig::local()
    };
    let data_dir = dir.path().join("data");
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.clone(),
        routes: vec![RouteConfig::local(), route],
        ..ServeConfig::new()
    };
    let server = Server::bind(config, Some(Secret::new(ADMIN_PASSWORD))).unwrap();
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run());
    Proxy { base, client: common::client(), data_dir, bodies: Vec::new(), _dir: dir }
}

impl Proxy {
    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") { path_or_url.to_owned() } else { format!("{}{path_or_url}", self.base) }
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path)).basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    /// Sends an admin request with an optional JSON body; returns the status and the body (kept).
    async fn call(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.admin(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.read(request.send().await.unwrap()).await
    }

    async fn read(&mut self, response: Response) -> (u16, Value) {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.bodies.push(text.clone());
        let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, value)
    }
}

fn field_errors(body: &Value) -> Vec<(String, String)> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["detail"]["field"].as_str().unwrap_or_default().to_owned(), e["message"].as_str().unwrap().into()))
        .collect()
}

#[tokio::test]
async fn connection_api_rules() {
    let mut proxy = start().await;
    let hub_password = "hub-Password-31415";
    let ghcr_token = "ghp_tokenTOKENtoken2718";

    // Create: 201, a Location, the normalised registry, and no secret.
    let hub = json!({"name": "hub", "registry": "Registry-1.Docker.io", "username": "robot", "password": hub_password});
    let r = proxy.admin(Method::POST, "/admin/v1/registries").json(&hub).send().await.unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (status, created) = proxy.read(r).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/v1/registries/{id}"));
    assert_eq!(created["registry"], "registry-1.docker.io");
    assert_eq!((created["hasSecret"].as_bool(), created["active"].as_bool()), (Some(true), Some(true)));
    assert!(created.get("password").is_none() && created.get("token").is_none(), "{created}");

    // Duplicate name, duplicate registry (another spelling): 409 naming the existing connection.
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(hub.clone())).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["code"], "CONFLICT");
    assert_eq!(body["errors"][0]["detail"]["field"], "name");
    assert_eq!(body["errors"][0]["detail"]["existing"]["id"], id.as_str());
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("\"hub\"") && message.contains(&id), "{message}");
    let same_registry =
        json!({"name": "hub2", "registry": "registry-1.docker.io:443", "username": "u", "password": "p"});
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(same_registry)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["errors"][0]["detail"]["field"], "registry");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("registry-1.docker.io") && message.contains("\"hub\""), "{message}");

    // Bad input: 400 with one error per field, each saying what to write.
    let bad = json!({"name": "", "registry": "https://myregistry.azurecr.io/", "username": "u", "password": "p"});
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    let errors = field_errors(&body);
    assert_eq!(errors.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["name", "registry"], "{body}");
    assert!(errors[0].1.contains("the name is empty: write"), "{}", errors[0].1);
    assert!(errors[1].1.contains("write the registry as myregistry.azurecr.io"), "{}", errors[1].1);
    assert_eq!(body["errors"][0]["code"], "INVALID");
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(json!({"name": "x"}))).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (400, "registry"), "{body}");
    let both = json!({"name": "x", "registry": "quay.io", "username": "u", "password": "p", "token": "t"});
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(both)).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (400, "token"), "{body}");
    let r = proxy.admin(Method::POST, "/admin/v1/registries").body("{not json").send().await.unwrap();
    let (status, body) = proxy.read(r).await;
    assert_eq!(status, 400, "{body}");
    let wrong_type = json!({"name": "x", "registry": "quay.io", "username": "u", "password": 1234567});
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(wrong_type)).await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("1234567"), "a mistyped secret is not echoed: {body}");

    // A second connection, with a token.
    let ghcr = json!({"name": "ghcr", "registry": "ghcr.io", "username": "robot", "token": ghcr_token});
    let (status, body) = proxy.call(Method::POST, "/admin/v1/registries", Some(ghcr)).await;
    assert_eq!(status, 201, "{body}");

    // List and get show no secret.
    let (status, list) = proxy.call(Method::GET, "/admin/v1/registries", None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = list["registries"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(names, [json!("ghcr"), json!("hub")]);
    let (status, got) = proxy.call(Method::GET, &format!("/admin/v1/registries/{id}"), None).await;
    assert_eq!((status, &got), (200, &created));

    // Unknown ids: 404.
    let (status, body) = proxy.call(Method::GET, "/admin/v1/registries/no-such-id", None).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    for method in [Method::PATCH, Method::PUT] {
        let (status, _) = proxy.call(method, "/admin/v1/registries/no-such-id", Some(json!({"active": false}))).await;
        assert_eq!(status, 404);
    }
    let (status, _) = proxy.call(Method::POST, "/admin/v1/registries/no-such-id/validate", None).await;
    assert_eq!(status, 404);

    // Only the admin, with the right password.
    for request in [
        proxy.client.get(proxy.url("/admin/v1/registries")),
        proxy.client.get(proxy.url("/admin/v1/registries")).basic_auth("admin", Some("wrong")),
        proxy.client.get(proxy.url("/admin/v1/registries")).basic_auth("someone", Some(ADMIN_PASSWORD)),
        proxy.client.post(proxy.url("/admin/v1/registries")).bearer_auth("token").json(&hub),
    ] {
        let r = request.send().await.unwrap();
        let challenge = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = proxy.read(r).await;
        assert_eq!((status, body["errors"][0]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
        assert!(challenge.is_some_and(|c| c.starts_with("Basic ")));
    }

    // Update: changed fields only; the secret stays hidden; conflicts and bad fields as on create.
    let (status, updated) =
        proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(json!({"active": false}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["active"].as_bool(), updated["name"].as_str()), (Some(false), Some("hub")));
    assert_ne!(updated["updatedAt"], created["updatedAt"]);
    let rename = json!({"name": "renamed", "password": "hub-Password-2"});
    let (status, updated) = proxy.call(Method::PUT, &format!("/admin/v1/registries/{id}"), Some(rename)).await;
    assert_eq!((status, updated["name"].as_str()), (200, Some("renamed")), "{updated}");
    let (status, body) =
        proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(json!({"name": "ghcr"}))).await;
    assert_eq!((status, body["errors"][0]["detail"]["existing"]["name"].as_str()), (409, Some("ghcr")), "{body}");
    let (status, body) =
        proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(json!({"registry": "a/b/"}))).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (400, "registry"), "{body}");

    // A route to a connection that does not exist says which one to create.
    let r = proxy.admin(Method::GET, "/v2/conn/app/tags/list").send().await.unwrap();
    let (status, body) = proxy.read(r).await;
    assert_eq!(status, 404, "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(CONNECTION) && message.contains("create it"), "{message}");

    // Delete: 204, then 404.
    let (status, body) = proxy.call(Method::DELETE, &format!("/admin/v1/registries/{id}"), None).await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _) = proxy.call(Method::GET, &format!("/admin/v1/registries/{id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = proxy.call(Method::DELETE, &format!("/admin/v1/registries/{id}"), None).await;
    assert_eq!(status, 404);

    // No response showed a secret, and the database does not hold one in clear.
    for body in &proxy.bodies {
        for secret in [hub_password, "hub-Password-2", ghcr_token] {
            assert!(!body.contains(secret), "a response shows a secret: {body}");
        }
    }
    let mut on_disk = Vec::new();
    for file in ["connections.db", "connections.db-wal"] {
        on_disk.extend(std::fs::read(proxy.data_dir.join(file)).unwrap_or_default());
    }
    assert!(on_disk.len() > 1000, "the database was written");
    for secret in [hub_password, "hub-Password-2", ghcr_token] {
        assert!(!on_disk.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is stored in clear");
    }
}

/// Pushes a blob through the proxy with POST then PUT (docker-registry answers a monolithic POST with a
/// session); returns the PUT's status.
async fn push_blob(proxy: &Proxy, repo: &str, bytes: &[u8]) -> u16 {
    let r = proxy.admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    if r.status() != 202 {
        return r.status().as_u16();
    }
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = proxy
        .admin(Method::PUT, &format!("{location}{sep}digest={}", sha256(bytes)))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn validates_against_docker_registry_and_serves_a_route_without_restart() {
    let upstream = ReferenceRegistry::start(UPSTREAM_USER, UPSTREAM_PASSWORD);
    let mut proxy = start().await;
    let repo = format!("conn/{}", unique("app"));

    // The right password: the registry accepts the login.
    let create = json!({
        "name": CONNECTION, "registry": upstream.addr, "username": UPSTREAM_USER, "password": UPSTREAM_PASSWORD,
    });
    let (status, created) = proxy.call(Method::POST, "/admin/v1/registries", Some(create)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, outcome) = proxy.call(Method::POST, &format!("/admin/v1/registries/{id}/validate"), None).await;
    assert_eq!((status, outcome), (200, json!({"ok": true})));

    // The route, configured before the connection existed, works now: push a blob and read it back.
    let layer = b"through a registry connection".repeat(100);
    assert_eq!(push_blob(&proxy, &repo, &layer).await, 201);
    let r = proxy.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(&layer))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice());

    // A wrong password: validate reports the registry's refusal, and the route stops working at once.
    let wrong = json!({"password": "not-the-password"});
    let (status, _) = proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(wrong)).await;
    assert_eq!(status, 200);
    let (status, outcome) = proxy.call(Method::POST, &format!("/admin/v1/registries/{id}/validate"), None).await;
    assert_eq!((status, outcome["ok"].as_bool()), (200, Some(false)), "{outcome}");
    let error = outcome["error"].as_str().unwrap();
    assert!(error.contains("refused the upstream credentials") && error.contains("UNAUTHORIZED"), "{error}");
    assert!(!error.contains("not-the-password") && !error.contains(UPSTREAM_PASSWORD), "{error}");
    let r = proxy.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(&layer))).send().await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());

    // Inactive: the route says to activate it. Fixed and active again: it works without a restart.
    let fix = json!({"password": UPSTREAM_PASSWORD, "active": false});
    let (status, _) = proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(fix)).await;
    assert_eq!(status, 200);
    let r = proxy.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(&layer))).send().await.unwrap();
    let (status, body) = proxy.read(r).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("inactive"), "{body}");
    let (status, _) =
        proxy.call(Method::PATCH, &format!("/admin/v1/registries/{id}"), Some(json!({"active": true}))).await;
    assert_eq!(status, 200);
    let r = proxy.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(&layer))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), layer.as_slice());
    for body in &proxy.bodies {
        assert!(!body.contains(UPSTREAM_PASSWORD), "a response shows the upstream password: {body}");
    }
}

#[test]
fn a_connection_route_gives_no_registry_or_credentials_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let bind = |route: RouteConfig| {
        let config = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            routes: vec![route],
            ..ServeConfig::new()
        };
        Server::bind(config, Some(Secret::new(ADMIN_PASSWORD))).err().map(|e| e.to_string()).unwrap_or_default()
    };
    let route = |provider: &str| RouteConfig {
        provider: provider.into(),
        connection: Some(CONNECTION.into()),
        ..RouteConfig::local()
    };
    let err = bind(RouteConfig { registry: Some("ghcr.io".into()), ..route("generic") });
    assert!(err.contains("remove registry, username, password"), "{err}");
    let err = bind(route("local"));
    assert!(err.contains("for generic routes only"), "{err}");
    let err = bind(RouteConfig { connection: Some("Not Valid".into()), ..route("generic") });
    assert!(err.contains("lower-case letters"), "{err}");
}

/// Creates a connection to `registry` with `token`, validates it, deletes it; returns the validation.
async fn validate_new(proxy: &mut Proxy, registry: &str, name: &str, token: &str) -> Value {
    let body = json!({"name": name, "registry": registry, "username": "robot", "token": token});
    let (status, created) = proxy.call(Method::POST, "/admin/v1/registries", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, outcome) = proxy.call(Method::POST, &format!("/admin/v1/registries/{id}/validate"), None).await;
    proxy.call(Method::DELETE, &format!("/admin/v1/registries/{id}"), None).await;
    outcome
}

#[tokio::test]
async fn validates_with_the_bearer_token_flow() {
    let upstream = common::token_registry::TokenRegistry::start().await;
    upstream.allow("robot", "token-flow-pw");
    let mut proxy = start().await;
    assert_eq!(validate_new(&mut proxy, &upstream.addr, "right", "token-flow-pw").await, json!({"ok": true}));
    assert!(upstream.issued.load(std::sync::atomic::Ordering::SeqCst) >= 1, "a token was fetched");
    let refused = validate_new(&mut proxy, &upstream.addr, "wrong", "not-the-token").await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(!refused["error"].as_str().unwrap().contains("not-the-token"), "{refused}");
}
