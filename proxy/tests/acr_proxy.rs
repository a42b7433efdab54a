//! An ACR route end to end: ACR's control plane (ARM) is wiremock answering the recorded scope map, token
//! and `generateCredentials` bodies with a fixed password; its data plane is a Debian docker-registry in
//! token-auth mode behind the test token service, which accepts exactly the token name and that password.
//! skopeo pushes and pulls through regbridge with regbridge credentials; the proxy mints ACR credentials
//! per repository with the route's (static) Entra ID token.
#![cfg(feature = "acr")]

mod common;

use std::process::Command;

use common::token_registry::TokenRegistry;
use regbridge::{Permissions, Secret};
use regbridge_providers::acr::{ACR_API_VERSION, resource_name};
use regbridge_proxy::cloud::acr::{Identity, Settings};
use regbridge_proxy::config_file::RouteConfig;
use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ADMIN_PASSWORD: &str = "acr-proxy-admin";
const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const ARM_TOKEN: &str = "arm-access-token-for-the-proxy";
/// What the stubbed generateCredentials hands out, and the token service accepts.
const ACR_PASSWORD: &str = "acr-generated-password-1";

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/acr/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// ARM for registry `regbridgetest`: scope maps and tokens are accepted as they are, generateCredentials
/// answers the token's name and [`ACR_PASSWORD`] with the expiry asked for.
async fn arm() -> MockServer {
    let arm = MockServer::start().await;
    let registry = "/providers/Microsoft.ContainerRegistry/registries/regbridgetest";
    Mock::given(method("PUT"))
        .and(path_regex(format!("{registry}/scopeMaps/regbridge-[a-z]+-[0-9a-f]+$")))
        .and(query_param("api-version", ACR_API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("scope-map.json")))
        .mount(&arm)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex(format!("{registry}/tokens/regbridge-[a-z]+-[0-9a-f]+$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("token.json")))
        .mount(&arm)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(format!("{registry}/generateCredentials$")))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let token = body["tokenId"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
            ResponseTemplate::new(200).set_body_json(json!({
                "username": token,
                "passwords": [{"name": body["name"], "value": ACR_PASSWORD, "expiry": body["expiry"]}]
            }))
        })
        .mount(&arm)
        .await;
    arm
}

fn skopeo(args: &[&str], tmp: &std::path::Path) {
    let out = Command::new("skopeo").args(args).env("TMPDIR", tmp).output().expect("skopeo runs");
    assert!(out.status.success(), "skopeo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test]
async fn push_and_pull_through_an_acr_route() {
    common::upstream::require("skopeo");
    let registry = TokenRegistry::start().await;
    for permissions in [Permissions::Pull, Permissions::PushPull] {
        registry.allow(&resource_name("team/app", permissions), ACR_PASSWORD);
    }
    let arm = arm().await;

    let dir = tempfile::tempdir().unwrap();
    let route = RouteConfig {
        prefix: "azure".into(),
        provider: "acr".into(),
        upstream_prefix: "team".into(),
        acr: Some(Settings {
            subscription_id: Some(SUB.into()),
            resource_group: Some("regbridge-rg".into()),
            registry_name: Some("regbridgetest".into()),
            arm_url: Some(arm.uri()),
            registry_endpoint: Some(format!("http://{}", registry.addr)),
            identity: Identity::AccessToken,
            access_token: Some(Secret::new(ARM_TOKEN)),
            ..Settings::default()
        }),
        ..RouteConfig::local()
    };
    let host = common::serve_routes(dir.path().join("data"), vec![RouteConfig::local(), route], ADMIN_PASSWORD).await;

    // A small OCI image layout, pushed and pulled back with skopeo through the route.
    let image = dir.path().join("image");
    let made = Command::new("python3")
        .arg(format!("{}/../tests/clients/make-image.py", env!("CARGO_MANIFEST_DIR")))
        .arg(&image)
        .args(["--layers", "2", "--layer-kib", "64", "--seed", "7"])
        .output()
        .unwrap();
    assert!(made.status.success(), "make-image.py: {}", String::from_utf8_lossy(&made.stderr));
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(image.join("expected.json")).unwrap()).unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let target = format!("docker://{host}/azure/app:v1");
    let (src, pulled) =
        (format!("oci:{}:v1", image.display()), format!("oci:{}:v1", dir.path().join("pulled").display()));
    let tasks = {
        let tmp = tmp.clone();
        let (creds, target, src, pulled) = (creds.clone(), target.clone(), src.clone(), pulled.clone());
        tokio::task::spawn_blocking(move || {
            skopeo(
                &["copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", &creds, &src, &target],
                &tmp,
            );
            skopeo(&["copy", "--src-tls-verify=false", "--src-creds", &creds, &target, &pulled], &tmp);
        })
    };
    tasks.await.unwrap();
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("pulled/index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], expected["manifest"], "the pulled manifest is the pushed one");

    // Upstream it is team/app, readable with the minted ACR credentials (the token service's login).
    let manifest =
        registry.get_manifest(&resource_name("team/app", Permissions::Pull), ACR_PASSWORD, "team/app", "v1").await;
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["docker-content-digest"].to_str().unwrap(), expected["manifest"]);

    // ARM saw the documented calls, with the route's token: a push scope map with write actions, a token
    // bound to it, and generateCredentials for it.
    let requests = arm.received_requests().await.unwrap();
    assert!(requests.iter().all(|r| r.headers["authorization"] == format!("Bearer {ARM_TOKEN}").as_str()));
    let push = resource_name("team/app", Permissions::PushPull);
    let map = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT" && r.url.path().ends_with(&format!("/scopeMaps/{push}")))
        .expect("a push scope map was made");
    let actions: Value = serde_json::from_slice::<Value>(&map.body).unwrap()["properties"]["actions"].clone();
    assert!(actions.as_array().unwrap().contains(&json!("repositories/team/app/content/write")), "{actions}");
    assert!(requests.iter().any(|r| r.url.path().ends_with("/generateCredentials")));
    assert!(registry.issued.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

/// `regbridge gc --cloud` with an ACR route: the expired regbridge token and its scope map are deleted
/// (the listing spans two pages), a valid one and someone else's expired one stay; the report is JSON.
#[tokio::test]
async fn gc_cloud_deletes_expired_acr_tokens() {
    let arm = MockServer::start().await;
    let registry = format!(
        "/subscriptions/{SUB}/resourceGroups/regbridge-rg/providers/Microsoft.ContainerRegistry/registries/regbridgetest"
    );
    let token = |name: &str, expiry: &str| {
        let mut t = fixture("token.json");
        t["name"] = json!(name);
        t["properties"]["scopeMapId"] = json!(format!("{registry}/scopeMaps/{name}"));
        t["properties"]["credentials"]["passwords"] = json!([{"name": "password1", "expiry": expiry}]);
        t
    };
    let (expired, valid) = (resource_name("team/old", Permissions::Pull), resource_name("team/new", Permissions::Pull));
    let tokens = [
        token(&expired, "2020-01-01T00:00:00Z"),
        token(&valid, "2999-01-01T00:00:00Z"),
        token("ci-token", "2020-01-01T00:00:00Z"),
    ];
    let next = format!("{}{registry}/tokens?api-version={ACR_API_VERSION}&$skipToken=2", arm.uri());
    Mock::given(method("GET"))
        .and(path_regex(format!("{registry}/tokens$")))
        .and(query_param("$skipToken", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [tokens[2].clone()]})))
        .with_priority(1)
        .mount(&arm)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(format!("{registry}/tokens$")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": tokens[..2], "nextLink": next})))
        .with_priority(2)
        .mount(&arm)
        .await;
    for t in &tokens {
        let name = t["name"].as_str().unwrap();
        Mock::given(method("GET"))
            .and(path_regex(format!("{registry}/tokens/{name}$")))
            .respond_with(ResponseTemplate::new(200).set_body_json(t.clone()))
            .mount(&arm)
            .await;
    }
    for kind in ["tokens", "scopeMaps"] {
        Mock::given(method("DELETE"))
            .and(path_regex(format!("{registry}/{kind}/{expired}$")))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&arm)
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprefix = \"azure\"\nprovider = \"acr\"\nupstream_prefix = \"team\"\n\n[routes.acr]\n\
             subscription_id = \"{SUB}\"\nresource_group = \"regbridge-rg\"\nregistry_name = \"regbridgetest\"\n\
             identity = \"access_token\"\naccess_token = \"{ARM_TOKEN}\"\narm_url = \"{}\"\n",
            arm.uri()
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .args(["gc", "--cloud", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reports: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["route"], "azure");
    assert_eq!(reports[0]["report"]["tokens_deleted"], json!([expired]));
    assert_eq!(reports[0]["report"]["scope_maps_deleted"], json!([expired]));
    assert_eq!(reports[0]["report"]["tokens_kept"], 1);
    let deletes = arm.received_requests().await.unwrap().iter().filter(|r| r.method.as_str() == "DELETE").count();
    assert_eq!(deletes, 2, "only the expired regbridge token and its scope map");
}

#[tokio::test]
async fn repo_list_pages_through_the_acr_catalog_by_client_visible_name() {
    // The data plane: the token exchange and two recorded catalog pages linked by `Link: rel="next"`.
    let data = MockServer::start().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/oauth2/exchange"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("exchange.json")))
        .mount(&data)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("access-token.json")))
        .mount(&data)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/acr/v1/_catalog"))
        .and(query_param("last", "team/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("catalog-page2.json")))
        .mount(&data)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/acr/v1/_catalog"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("catalog-page1.json"))
                .insert_header("Link", r#"</acr/v1/_catalog?last=team%2Fapp&n=2>; rel="next""#),
        )
        .with_priority(10)
        .mount(&data)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let route = RouteConfig {
        prefix: "azure".into(),
        provider: "acr".into(),
        upstream_prefix: "team".into(),
        acr: Some(Settings {
            subscription_id: Some(SUB.into()),
            resource_group: Some("regbridge-rg".into()),
            registry_name: Some("regbridgetest".into()),
            arm_url: Some("http://127.0.0.1:9".into()),
            registry_endpoint: Some(data.uri()),
            identity: Identity::AccessToken,
            access_token: Some(Secret::new(ARM_TOKEN)),
            ..Settings::default()
        }),
        ..RouteConfig::local()
    };
    let host = common::serve_routes(dir.path().join("data"), vec![RouteConfig::local(), route], ADMIN_PASSWORD).await;

    let client = common::client();
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut request = client
            .get(format!("http://{host}/admin/v1/repositories"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .query(&[("limit", "1"), ("prefix", "azure/")]);
        if let Some(after) = &after {
            request = request.query(&[("after", after)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        let repositories = page["repositories"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(repositories.len() <= 1, "{page}");
        for r in repositories {
            assert_eq!(
                r["uri"],
                format!("{}/{}", data.address(), r["name"].as_str().unwrap().replacen("azure", "team", 1))
            );
            names.push(r["name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    // Only the route's prefix `team` of the registry, mapped to the client-visible `azure`.
    assert_eq!(names, ["azure/app", "azure/worker"]);
}
