//! Users and robot accounts (`/admin/v1/users`, `/admin/v1/robots`) against a running server: every
//! endpoint's answers, members and robots limited to their rules on the OCI API and the token endpoint,
//! expiry, rotation and deletion, login limits, and no secret or hash in any listing or log line.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{ADMIN, TestServer, assert_error, json_body, sha256};
use regbridge::oci::media_types::OCI_MANIFEST;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

/// Every log line the servers of this binary wrote, to check none shows a secret.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,hyper=info,h2=info,reqwest=info")
            .with_writer(move || writer.clone())
            .try_init();
        buffer
    })
    .clone()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn start() -> TestServer {
    logs();
    TestServer::start().await
}

fn as_user(server: &TestServer, method: Method, path: &str, user: &str, password: &str) -> RequestBuilder {
    server.anon(method, path).basic_auth(user, Some(password))
}

/// An admin request with an optional JSON body: the status and the body.
async fn admin(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!(!text.contains("argon2"), "a hash in {text}");
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

/// Creates a member user with `rules`; returns its password.
async fn member(server: &TestServer, name: &str, rules: Value) -> String {
    let (status, body) =
        admin(server, Method::POST, "/admin/v1/users", Some(json!({ "name": name, "rules": rules }))).await;
    assert_eq!(status, 201, "{body}");
    body["password"].as_str().unwrap().to_owned()
}

/// Creates a robot; returns its full name and secret.
async fn robot(server: &TestServer, name: &str, rules: Value, expires: &str) -> (String, String) {
    let body = json!({ "name": name, "rules": rules, "expires": expires });
    let (status, body) = admin(server, Method::POST, "/admin/v1/robots", Some(body)).await;
    assert_eq!(status, 201, "{body}");
    (body["name"].as_str().unwrap().to_owned(), body["secret"].as_str().unwrap().to_owned())
}

/// Pushes a one-layer image to `repo:tag` as `user`; returns the status of the first refused step, or 201.
async fn push_as(server: &TestServer, repo: &str, user: &str, password: &str) -> u16 {
    let layer = format!("layer of {repo} by {user}").into_bytes();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    for blob in [&layer, &config] {
        let digest = sha256(blob);
        let r = as_user(server, Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), user, password)
            .header("Content-Type", "application/octet-stream")
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        if r.status().as_u16() != 201 {
            return r.status().as_u16();
        }
    }
    let manifest = common::image_manifest(
        &common::descriptor("application/vnd.oci.image.config.v1+json", &config),
        &[common::descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
    );
    let r = as_user(server, Method::PUT, &format!("/v2/{repo}/manifests/v1"), user, password)
        .header("Content-Type", OCI_MANIFEST)
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

async fn status_of(request: RequestBuilder) -> u16 {
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_account_endpoint_answers_as_documented() {
    let server = start().await;
    // Without credentials, with wrong ones.
    assert_error(server.anon(Method::GET, "/admin/v1/users").send().await.unwrap(), 401, "UNAUTHORIZED").await;
    let wrong = as_user(&server, Method::GET, "/admin/v1/robots", ADMIN, "wrong").send().await.unwrap();
    assert_error(wrong, 401, "UNAUTHORIZED").await;

    // Users.
    let (status, created) = admin(&server, Method::POST, "/admin/v1/users", Some(json!({ "name": "alice" }))).await;
    assert_eq!(status, 201, "{created}");
    let password = created["password"].as_str().expect("a generated password").to_owned();
    assert_eq!(created["role"], "member");
    let given = json!({ "name": "bob", "role": "admin", "password": "bob-password-1" });
    let (status, bob) = admin(&server, Method::POST, "/admin/v1/users", Some(given.clone())).await;
    assert_eq!(status, 201);
    assert!(bob.get("password").is_none(), "a given password is not echoed: {bob}");
    assert_eq!(admin(&server, Method::POST, "/admin/v1/users", Some(given)).await.0, 409);
    let (status, body) = admin(&server, Method::POST, "/admin/v1/users", Some(json!({ "name": ADMIN }))).await;
    assert_eq!((status, body["errors"][0]["code"].as_str()), (409, Some("CONFLICT")));
    let bad = json!({ "name": "Bad Name", "rules": [{ "repositories": "team/**/x", "actions": ["fly"] }] });
    let (status, body) = admin(&server, Method::POST, "/admin/v1/users", Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().unwrap().iter().filter_map(|e| e["detail"]["field"].as_str()).collect();
    assert_eq!(fields, ["name"], "{body}");
    let (status, body) =
        admin(&server, Method::POST, "/admin/v1/users", Some(json!({ "name": "carol", "password": 12345678 }))).await;
    assert_eq!(status, 400);
    assert!(!body.to_string().contains("12345678"), "a bad value is not echoed: {body}");

    let (status, list) = admin(&server, Method::GET, "/admin/v1/users", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list["users"].as_array().unwrap().iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert_eq!(names, [ADMIN, "alice", "bob"]);
    assert!(!list.to_string().contains(&password) && !list.to_string().contains("bob-password-1"));
    assert_eq!(admin(&server, Method::GET, "/admin/v1/users/alice", None).await.0, 200);
    assert_eq!(admin(&server, Method::GET, "/admin/v1/users/nobody", None).await.0, 404);
    let patch = json!({ "rules": [{ "repositories": "team/*", "actions": ["pull"] }] });
    let (status, alice) = admin(&server, Method::PATCH, "/admin/v1/users/alice", Some(patch)).await;
    assert_eq!((status, alice["rules"][0]["repositories"].as_str()), (200, Some("team/*")));
    assert_eq!(admin(&server, Method::PATCH, "/admin/v1/users/nobody", Some(json!({}))).await.0, 404);
    assert_eq!(admin(&server, Method::PATCH, "/admin/v1/users/admin", Some(json!({ "role": "member" }))).await.0, 409);
    assert_eq!(admin(&server, Method::PATCH, "/admin/v1/users/alice", Some(json!({ "role": "root" }))).await.0, 400);
    // bob is an admin too: the admin API lets any admin in.
    assert_eq!(status_of(as_user(&server, Method::GET, "/admin/v1/registries", "bob", "bob-password-1")).await, 200);
    assert_eq!(admin(&server, Method::DELETE, "/admin/v1/users/bob", None).await.0, 204);
    assert_eq!(admin(&server, Method::DELETE, "/admin/v1/users/bob", None).await.0, 404);
    assert_eq!(status_of(as_user(&server, Method::GET, "/v2/", "bob", "bob-password-1")).await, 401);

    // Robots.
    let (name, secret) = robot(&server, "ci", json!([{ "repositories": "ci/*", "actions": ["push"] }]), "30d").await;
    assert_eq!(name, "robot$ci");
    let (status, body) =
        admin(&server, Method::POST, "/admin/v1/robots", Some(json!({ "name": "x", "rules": [] }))).await;
    assert_eq!(status, 400, "the expiry is required: {body}");
    let past = json!({ "name": "x", "rules": [], "expires": "2001-01-01T00:00:00Z" });
    let (status, body) = admin(&server, Method::POST, "/admin/v1/robots", Some(past)).await;
    assert_eq!((status, body["errors"][0]["detail"]["field"].as_str()), (400, Some("expires")), "{body}");
    let dup = json!({ "name": "robot$ci", "rules": [], "expires": "never" });
    assert_eq!(admin(&server, Method::POST, "/admin/v1/robots", Some(dup)).await.0, 409);
    let (status, list) = admin(&server, Method::GET, "/admin/v1/robots", None).await;
    assert_eq!((status, list["robots"][0]["name"].as_str()), (200, Some("robot$ci")));
    assert!(!list.to_string().contains(&secret) && list["robots"][0].get("secret").is_none(), "{list}");
    assert_eq!(admin(&server, Method::GET, "/admin/v1/robots/ci", None).await.0, 200);
    assert_eq!(admin(&server, Method::GET, "/admin/v1/robots/robot$ci", None).await.0, 200);
    assert_eq!(admin(&server, Method::GET, "/admin/v1/robots/nobody", None).await.0, 404);
    let (status, rotated) = admin(&server, Method::POST, "/admin/v1/robots/ci/rotate", None).await;
    assert_eq!(status, 200);
    assert_ne!(rotated["secret"].as_str().unwrap(), secret);
    assert_eq!(admin(&server, Method::POST, "/admin/v1/robots/nobody/rotate", None).await.0, 404);
    assert_eq!(admin(&server, Method::DELETE, "/admin/v1/robots/ci", None).await.0, 204);
    assert_eq!(admin(&server, Method::DELETE, "/admin/v1/robots/ci", None).await.0, 404);

    // Nothing this test was shown once appears in a log line.
    let logs = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    for shown in [password.as_str(), secret.as_str(), rotated["secret"].as_str().unwrap(), "bob-password-1", "argon2"] {
        assert!(!logs.contains(shown), "{shown:?} is in the logs");
    }
    assert!(logs.contains("robot account created"), "the logs were captured");
}

#[tokio::test]
async fn a_member_pulls_only_what_its_rules_allow() {
    let server = start().await;
    for repo in ["team/a", "other/x", "teamx/a"] {
        server.push_image(repo, "v1").await;
    }
    let password = member(&server, "alice", json!([{ "repositories": "team/*", "actions": ["pull"] }])).await;
    let alice = |method, path: &str| as_user(&server, method, path, "alice", &password);
    assert_eq!(status_of(alice(Method::GET, "/v2/team/a/manifests/v1")).await, 200);
    assert_eq!(status_of(alice(Method::GET, "/v2/team/a/tags/list")).await, 200);
    assert_error(alice(Method::GET, "/v2/other/x/manifests/v1").send().await.unwrap(), 403, "DENIED").await;
    assert_error(alice(Method::GET, "/v2/teamx/a/manifests/v1").send().await.unwrap(), 403, "DENIED").await;
    assert_eq!(push_as(&server, "team/a", "alice", &password).await, 403);
    assert_eq!(status_of(alice(Method::DELETE, "/v2/team/a/manifests/v1")).await, 403);
    let catalog = json_body(alice(Method::GET, "/v2/_catalog").send().await.unwrap()).await;
    assert_eq!(catalog["repositories"], json!(["team/a"]));
    assert_error(alice(Method::GET, "/admin/v1/users").send().await.unwrap(), 403, "DENIED").await;
    assert_error(alice(Method::GET, "/admin/v1/registries").send().await.unwrap(), 403, "DENIED").await;

    // The token endpoint grants the intersection only, and its token lists only team/a.
    let scopes = "scope=repository:team/a:pull,push,delete&scope=repository:other/x:pull&scope=registry:catalog:*";
    let token =
        json_body(alice(Method::GET, &format!("/token?service=regbridge&{scopes}")).send().await.unwrap()).await;
    let token = token["token"].as_str().unwrap().to_owned();
    let bearer = |method, path: &str| server.anon(method, path).bearer_auth(&token);
    assert_eq!(status_of(bearer(Method::GET, "/v2/team/a/manifests/v1")).await, 200);
    assert_eq!(status_of(bearer(Method::GET, "/v2/other/x/manifests/v1")).await, 401);
    assert_eq!(status_of(bearer(Method::POST, "/v2/team/a/blobs/uploads/")).await, 401);
    let catalog = json_body(bearer(Method::GET, "/v2/_catalog").send().await.unwrap()).await;
    assert_eq!(catalog["repositories"], json!(["team/a"]));
}

#[tokio::test]
async fn a_robot_pushes_where_its_rules_allow_and_nothing_else() {
    let server = start().await;
    server.push_image("other/app", "v1").await;
    let rules = json!([{ "repositories": "ci/**", "actions": ["pull", "push"] }]);
    let (name, secret) = robot(&server, "builder", rules, "1h").await;
    assert_eq!(push_as(&server, "ci/app", &name, &secret).await, 201);
    assert_eq!(push_as(&server, "ci/team/app", &name, &secret).await, 201);
    assert_eq!(push_as(&server, "other/app", &name, &secret).await, 403);
    assert_eq!(push_as(&server, "cix/app", &name, &secret).await, 403);
    let robot = |method, path: &str| as_user(&server, method, path, &name, &secret);
    assert_eq!(status_of(robot(Method::GET, "/v2/ci/app/manifests/v1")).await, 200);
    assert_eq!(status_of(robot(Method::GET, "/v2/other/app/manifests/v1")).await, 403);
    assert_eq!(status_of(robot(Method::DELETE, "/v2/ci/app/manifests/v1")).await, 403);
    // Robots never manage accounts.
    assert_error(robot(Method::GET, "/admin/v1/users").send().await.unwrap(), 403, "DENIED").await;
    let new_robot = json!({ "name": "more", "rules": [], "expires": "never" });
    assert_error(robot(Method::POST, "/admin/v1/robots").json(&new_robot).send().await.unwrap(), 403, "DENIED").await;
    // A session token does not outlive the robot (1 h).
    let token = json_body(robot(Method::GET, "/token?scope=repository:ci/app:pull").send().await.unwrap()).await;
    assert!(token["expires_in"].as_i64().unwrap() <= 300, "{token}");
}

#[tokio::test]
async fn a_session_token_never_outlives_the_robot() {
    let server = start().await;
    let (name, secret) = robot(&server, "short", json!([{ "repositories": "ci/*", "actions": ["pull"] }]), "2m").await;
    let r = as_user(&server, Method::GET, "/token?scope=repository:ci/a:pull", &name, &secret).send().await.unwrap();
    let token = json_body(r).await;
    let lifetime = token["expires_in"].as_i64().unwrap();
    assert!(lifetime <= 300, "{token}");
    // Shorter than the session lifetime: the token ends with the robot.
    let store = regbridge_proxy::accounts::AccountStore::open(&server.data_dir).unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::seconds(30);
    let rules = vec![regbridge_proxy::accounts::Rule::parse_flag("ci/*=pull").unwrap()];
    let (_, brief) = store.create_robot("brief", &rules, Some(soon)).unwrap();
    let r = as_user(&server, Method::GET, "/token?scope=repository:ci/a:pull", "robot$brief", brief.expose())
        .send()
        .await
        .unwrap();
    let token = json_body(r).await;
    assert!(token["expires_in"].as_i64().unwrap() <= 30, "{token}");
}

#[tokio::test]
async fn an_expired_robot_is_refused_with_a_clear_message() {
    let server = start().await;
    // Created in the past through the store (the API refuses past expiries).
    let store = regbridge_proxy::accounts::AccountStore::open(&server.data_dir).unwrap();
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    let rules = vec![regbridge_proxy::accounts::Rule::parse_flag("ci/*=pull,push").unwrap()];
    let (_, secret) = store.create_robot("old", &rules, Some(past)).unwrap();
    let r = as_user(&server, Method::GET, "/v2/", "robot$old", secret.expose()).send().await.unwrap();
    let body = assert_error(r, 401, "UNAUTHORIZED").await;
    assert!(body.to_string().contains("expired"), "{body}");
    let r = as_user(&server, Method::GET, "/token?scope=repository:ci/a:pull", "robot$old", secret.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(push_as(&server, "ci/a", "robot$old", secret.expose()).await, 401);
}

#[tokio::test]
async fn rotation_and_deletion_stop_old_secrets_and_their_tokens() {
    let server = start().await;
    let (name, secret) = robot(&server, "rot", json!([{ "repositories": "ci/*", "actions": ["pull"] }]), "never").await;
    assert_eq!(status_of(as_user(&server, Method::GET, "/v2/", &name, &secret)).await, 200);
    let r = as_user(&server, Method::GET, "/token?scope=repository:ci/a:pull", &name, &secret).send().await.unwrap();
    let token = json_body(r).await["token"].as_str().unwrap().to_owned();
    assert_eq!(status_of(server.anon(Method::GET, "/v2/").bearer_auth(&token)).await, 200);
    // Token times are whole seconds: rotate in a later one than the token's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, rotated) = admin(&server, Method::POST, "/admin/v1/robots/rot/rotate", None).await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    // The old secret was verified (and cached) a moment ago; it fails at once all the same.
    assert_eq!(status_of(as_user(&server, Method::GET, "/v2/", &name, &secret)).await, 401);
    assert_eq!(status_of(server.anon(Method::GET, "/v2/").bearer_auth(&token)).await, 401);
    assert_eq!(status_of(as_user(&server, Method::GET, "/v2/", &name, &new_secret)).await, 200);
    let r =
        as_user(&server, Method::GET, "/token?scope=repository:ci/a:pull", &name, &new_secret).send().await.unwrap();
    let token = json_body(r).await["token"].as_str().unwrap().to_owned();
    assert_eq!(admin(&server, Method::DELETE, "/admin/v1/robots/rot", None).await.0, 204);
    assert_eq!(status_of(as_user(&server, Method::GET, "/v2/", &name, &new_secret)).await, 401);
    assert_eq!(status_of(server.anon(Method::GET, "/v2/").bearer_auth(&token)).await, 401);
}

#[tokio::test]
async fn wrong_robot_secrets_count_against_the_login_limits() {
    let server = start().await;
    let (name, _) = robot(&server, "guessed", json!([]), "never").await;
    // At once, as a guessing client sends them (sequential debug-build argon2 runs would let the budget refill).
    let mut guesses = tokio::task::JoinSet::new();
    for i in 0..40 {
        let request = as_user(&server, Method::GET, "/v2/", &name, &format!("guess-{i}"));
        guesses.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    let statuses: Vec<u16> = guesses.join_all().await;
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
}

/// A member who may see only some repositories gets full catalog pages of those: storage is read on, past
/// the names it may not see, until the page is full; the `Link` names only what it may see.
#[tokio::test]
async fn a_filtered_catalog_reads_on_until_the_page_is_full() {
    let server = start().await;
    let mut visible = Vec::new();
    for i in 0..30 {
        let name = format!("f/r{i:02}");
        server.push_image(&name, "v1").await;
        if i % 7 == 3 {
            visible.push(name);
        }
    }
    let rules: Vec<Value> = visible.iter().map(|r| json!({ "repositories": r, "actions": ["pull"] })).collect();
    let password = member(&server, "pager", json!(rules)).await;
    let mut seen: Vec<String> = Vec::new();
    let mut path = Some("/v2/_catalog?n=2".to_owned());
    for _ in 0..10 {
        let Some(p) = path.take() else { break };
        let r = as_user(&server, Method::GET, &p, "pager", &password).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        path = common::header(&r, "link").map(|l| {
            let target = l.strip_prefix('<').and_then(|l| l.split_once('>')).expect("a Link target").0;
            target.to_owned()
        });
        let page: Vec<String> = serde_json::from_value(json_body(r).await["repositories"].clone()).unwrap();
        assert!(page.len() == 2 || path.is_none(), "only the last page is short: {page:?}");
        seen.extend(page);
    }
    assert!(path.is_none(), "pagination did not end");
    assert_eq!(seen, visible);
}
