//! A GAR route end to end: Artifact Registry's and IAM Credentials' APIs are wiremock (generateAccessToken
//! answers a fixed token), the registry's `/v2/` API a Debian docker-registry in token-auth mode whose token
//! service accepts `oauth2accesstoken` / that token, as GAR's does. skopeo pushes and pulls through
//! regbridge with regbridge credentials; the proxy mints GAR credentials per repository.
//!
//! The server's own Google credentials are Application Default Credentials, as in production: an
//! `authorized_user` file whose `token_uri` is the wiremock server, so nothing reaches Google.
#![cfg(feature = "gar")]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::sha256;
use common::token_registry::TokenRegistry;
use common::upstream::require;
use regbridge_proxy::cloud::gar::Settings;
use regbridge_proxy::config_file::RouteConfig;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ADMIN_PASSWORD: &str = "gar-proxy-admin";
const CALLER_TOKEN: &str = "caller-adc-token";
const SA_TOKEN: &str = "ya29.gar-proxy-test-token";
const PULL_SA: &str = "regbridge-pull@test-project.iam.gserviceaccount.com";
const PUSH_SA: &str = "regbridge-push@test-project.iam.gserviceaccount.com";
const REPO_PATH: &str = "/v1/projects/test-project/locations/europe-west1/repositories/images";

/// Artifact Registry, IAM Credentials and the OAuth token endpoint of the ADC file, on one wiremock server.
async fn control_plane() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": CALLER_TOKEN, "expires_in": 3600, "token_type": "Bearer"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(REPO_PATH))
        .and(header("authorization", format!("Bearer {CALLER_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"name": "projects/test-project/locations/europe-west1/repositories/images", "format": "DOCKER"}),
        ))
        .mount(&server)
        .await;
    for sa in [PULL_SA, PUSH_SA] {
        Mock::given(method("POST"))
            .and(path(format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")))
            .and(header("authorization", format!("Bearer {CALLER_TOKEN}").as_str()))
            .and(body_partial_json(json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"]})))
            .respond_with(move |_: &wiremock::Request| {
                let expire = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
                ResponseTemplate::new(200).set_body_json(json!({"accessToken": SA_TOKEN, "expireTime": expire}))
            })
            .mount(&server)
            .await;
    }
    server
}

/// Held by each test while it uses the environment: Application Default Credentials are read from it.
static ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Points Application Default Credentials at an `authorized_user` file whose token endpoint is `server`.
fn adc_file(dir: &Path, server: &MockServer) {
    let file = dir.join("adc.json");
    let adc = json!({"type": "authorized_user", "client_id": "test-client", "client_secret": "test-secret",
        "refresh_token": "test-refresh", "token_uri": format!("{}/token", server.uri())});
    std::fs::write(&file, adc.to_string()).unwrap();
    // SAFETY: callers hold ENV, so no other test of this binary reads the environment meanwhile.
    unsafe { std::env::set_var("GOOGLE_APPLICATION_CREDENTIALS", &file) };
}

fn gar_route(api: &str, registry: &str) -> RouteConfig {
    RouteConfig {
        prefix: "gcp".into(),
        provider: "gar".into(),
        gar: Some(Settings {
            project: Some("test-project".into()),
            location: Some("europe-west1".into()),
            repository: Some("images".into()),
            pull_service_account: Some(PULL_SA.into()),
            push_service_account: Some(PUSH_SA.into()),
            api_endpoint: Some(api.into()),
            iam_credentials_endpoint: Some(api.into()),
            registry_endpoint: Some(registry.into()),
            operation_timeout_secs: None,
        }),
        ..RouteConfig::local()
    }
}

async fn start_proxy(dir: &Path, route: RouteConfig) -> String {
    common::serve_routes(dir.join("data"), vec![RouteConfig::local(), route], ADMIN_PASSWORD).await
}

/// An OCI image layout in `dir` holding one image (a fresh tar layer) tagged `v1`.
fn oci_layout(dir: &Path) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        json!({"digest": digest, "size": bytes.len()})
    };
    let content = dir.join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::fs::write(content.join("hello.txt"), format!("pushed through a GAR route {}", uuid::Uuid::new_v4())).unwrap();
    let tar = Command::new("tar").arg("-cf").arg(dir.join("layer.tar")).arg("-C").arg(&content).arg(".").output();
    assert!(tar.is_ok_and(|o| o.status.success()), "tar failed");
    let layer = std::fs::read(dir.join("layer.tar")).unwrap();
    let layer_desc = put(&layer);
    let config = json!({"architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}});
    let config_desc = put(config.to_string().as_bytes());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_desc["digest"], "size": config_desc["size"]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_desc["digest"], "size": layer_desc["size"]}]});
    let manifest_desc = put(manifest.to_string().as_bytes());
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_desc["digest"], "size": manifest_desc["size"],
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// Runs skopeo with an empty credential store and its scratch files in `home`; panics with its output on
/// failure, answers its stdout. Asynchronously: the proxy it talks to runs on the test's runtime.
async fn skopeo(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = tokio::process::Command::new("skopeo")
        .args(args)
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env_remove("XDG_RUNTIME_DIR")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run skopeo");
    let shown: Vec<String> = args.iter().map(|a| a.replace(ADMIN_PASSWORD, "***")).collect();
    assert!(out.status.success(), "skopeo {} failed: {}", shown.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[tokio::test]
async fn push_and_pull_with_skopeo_through_a_gar_route() {
    require("skopeo");
    require("tar");
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let control = control_plane().await;
    adc_file(dir.path(), &control);
    let registry = TokenRegistry::start().await;
    registry.allow("oauth2accesstoken", SA_TOKEN);
    let proxy = start_proxy(dir.path(), gar_route(&control.uri(), &format!("http://{}", registry.addr))).await;

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("auth.json"), "{}").unwrap();
    let layout = dir.path().join("layout");
    oci_layout(&layout);
    let creds = format!("admin:{ADMIN_PASSWORD}");
    let image = format!("docker://{proxy}/gcp/team/app:v1");
    skopeo(
        &home,
        &["copy", "--dest-tls-verify=false", "--dest-creds", &creds, &format!("oci:{}:v1", layout.display()), &image],
    )
    .await;
    let pulled = dir.path().join("pulled");
    skopeo(
        &home,
        &["copy", "--src-tls-verify=false", "--src-creds", &creds, &image, &format!("oci:{}:v1", pulled.display())],
    )
    .await;
    let through_proxy = skopeo(&home, &["inspect", "--raw", "--tls-verify=false", "--creds", &creds, &image]).await;

    // The image is upstream as test-project/images/team/app, readable with GAR's token.
    let upstream = registry.get_manifest("oauth2accesstoken", SA_TOKEN, "test-project/images/team/app", "v1").await;
    assert_eq!(upstream.status(), 200);
    assert_eq!(upstream.bytes().await.unwrap().as_ref(), through_proxy.as_slice(), "same manifest bytes");
    let index: Value = serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], sha256(&through_proxy), "skopeo pulled what was pushed");

    // The proxy minted with the push account for the push and the pull account for the pull, an hour each.
    let minted: Vec<(String, Value)> = control
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().ends_with(":generateAccessToken"))
        .map(|r| (r.url.path().to_owned(), r.body_json().unwrap()))
        .collect();
    assert!(minted.iter().any(|(p, _)| p.contains(PUSH_SA)), "{minted:?}");
    assert!(minted.iter().any(|(p, _)| p.contains(PULL_SA)), "{minted:?}");
    assert!(minted.iter().all(|(_, body)| body["lifetime"] == "3600s"), "{minted:?}");
}

/// GAR answers upload sessions with a `Location` under `/artifacts-uploads/`, outside `/v2/`: the client gets
/// a proxy URL signed for its repository, never GAR's.
#[tokio::test]
async fn upload_locations_outside_v2_are_signed() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let control = control_plane().await;
    adc_file(dir.path(), &control);
    let data = MockServer::start().await;
    let session = "/artifacts-uploads/namespaces/test-project/repositories/images/uploads/AOkZ1?upload=1";
    Mock::given(method("POST"))
        .and(path("/v2/test-project/images/app/blobs/uploads/"))
        .respond_with(ResponseTemplate::new(202).insert_header("Location", session).insert_header("Range", "0-0"))
        .mount(&data)
        .await;
    let proxy = start_proxy(dir.path(), gar_route(&control.uri(), &data.uri())).await;
    let r = common::client()
        .post(format!("http://{proxy}/v2/gcp/app/blobs/uploads/"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let prefix = format!("http://{proxy}/v2/gcp/app/blobs/uploads/");
    let rest = location.strip_prefix(&prefix).unwrap_or_else(|| panic!("not a proxy upload URL: {location}"));
    let (id, query) = rest.split_once('?').unwrap();
    assert!(query.contains("rbsig="), "signed: {location}");
    let target = String::from_utf8(URL_SAFE_NO_PAD.decode(id).unwrap()).unwrap();
    assert_eq!(target, session, "the session's upstream path and query are carried in the id");
    assert!(!location.contains("artifacts-uploads"), "GAR's URL is not shown");

    // The client finishes the upload on the signed URL, without Authorization: it reaches GAR's session path
    // with the client's digest appended to GAR's own query.
    let blob = b"gar session bytes".to_vec();
    let digest = common::sha256(&blob);
    Mock::given(method("PUT"))
        .and(path("/artifacts-uploads/namespaces/test-project/repositories/images/uploads/AOkZ1"))
        .and(wiremock::matchers::query_param("upload", "1"))
        .and(wiremock::matchers::query_param("digest", digest.as_str()))
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("Location", format!("/v2/test-project/images/app/blobs/{digest}").as_str())
                .insert_header("Docker-Content-Digest", digest.as_str()),
        )
        .expect(1)
        .mount(&data)
        .await;
    let r = common::client().put(common::with_digest(&location, &digest)).body(blob).send().await.unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let forged = location.replace(id, &URL_SAFE_NO_PAD.encode("/v2/test-project/images/other/manifests/x"));
    let r = common::client().put(common::with_digest(&forged, &digest)).body("x").send().await.unwrap();
    assert!(r.status().is_client_error(), "a forged id is refused: {}", r.status());
}

/// Real GAR's `/v2/` API (`{location}-docker.pkg.dev`) answers `401` with `WWW-Authenticate: Bearer
/// realm="https://{host}/v2/token",service="{host}",scope="repository:...:pull"`, and its token endpoint takes
/// Basic `oauth2accesstoken` / the service account's access token. A pull through the proxy goes that way:
/// the token endpoint stub only answers for the minted token and the scope the challenge named.
#[tokio::test]
async fn pulls_follow_gars_bearer_challenge() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let control = control_plane().await;
    adc_file(dir.path(), &control);
    let data = MockServer::start().await;
    let host = data.address().to_string();
    let scope = "repository:test-project/images/team/app:pull";
    let challenge = format!("Bearer realm=\"{}/v2/token\",service=\"{host}\",scope=\"{scope}\"", data.uri());
    let registry_token = "gar-registry-token";
    let basic = format!("Basic {}", STANDARD.encode(format!("oauth2accesstoken:{SA_TOKEN}")));
    Mock::given(method("GET"))
        .and(path("/v2/token"))
        .and(query_param("service", host.as_str()))
        .and(query_param("scope", scope))
        .and(header("authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": registry_token, "expires_in": 3600})))
        .mount(&data)
        .await;
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []})
    .to_string();
    Mock::given(method("GET"))
        .and(path("/v2/test-project/images/team/app/manifests/v1"))
        .and(header("authorization", format!("Bearer {registry_token}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Docker-Content-Digest", sha256(manifest.as_bytes()).as_str())
                .set_body_raw(manifest.clone(), "application/vnd.oci.image.manifest.v1+json"),
        )
        .mount(&data)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/v2/test-project/"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("WWW-Authenticate", challenge.as_str())
                .set_body_json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})),
        )
        .with_priority(10)
        .mount(&data)
        .await;
    let proxy = start_proxy(dir.path(), gar_route(&control.uri(), &data.uri())).await;

    let r = common::client()
        .get(format!("http://{proxy}/v2/gcp/team/app/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let challenge_shown = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge_shown.is_none(), "GAR's challenge does not reach the client: {challenge_shown:?}");
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_bytes());
    let sent = data.received_requests().await.unwrap();
    let exchanges: Vec<&wiremock::Request> = sent.iter().filter(|r| r.url.path() == "/v2/token").collect();
    assert_eq!(exchanges.len(), 1, "one registry token, fetched with the minted access token");
    let minted = control.received_requests().await.unwrap();
    assert!(minted.iter().any(|r| r.url.path().contains(PULL_SA)), "the pull account's token was exchanged");
}

/// `regbridge check` on a GAR route reaches the control plane (a token minted for the pull account) and
/// the registry (`/v2/` with that token); with the token service refusing the login, the route fails with
/// what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_the_control_plane_and_the_registry() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let control = control_plane().await;
    adc_file(dir.path(), &control);
    let registry = TokenRegistry::start().await;
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprefix = \"gcp\"\nprovider = \"gar\"\n\n[routes.gar]\nproject = \"test-project\"\n\
             location = \"europe-west1\"\nrepository = \"images\"\npull_service_account = \"{PULL_SA}\"\n\
             push_service_account = \"{PUSH_SA}\"\napi_endpoint = \"{api}\"\niam_credentials_endpoint = \"{api}\"\n\
             registry_endpoint = \"http://{addr}\"\n",
            api = control.uri(),
            addr = registry.addr
        ),
    )
    .unwrap();
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_regbridge"))
            .args(["check", "--timeout", "15", "--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .env("GOOGLE_APPLICATION_CREDENTIALS", dir.path().join("adc.json"))
            .output()
            .unwrap()
    };
    let refused = check();
    let text = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED") && text.contains("credentials"), "{text}");
    assert!(!text.contains(SA_TOKEN), "{text}");

    registry.allow("oauth2accesstoken", SA_TOKEN);
    let ok = check();
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert!(ok.status.success(), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.contains("gar") && text.contains(": ok"), "{text}");
    let minted = control.received_requests().await.unwrap();
    assert!(minted.iter().any(|r| r.url.path().contains(PULL_SA)), "the check minted a pull token");
}

/// `packages.list` of the GAR repository: two recorded pages, the second behind the first's token.
async fn mount_package_pages(control: &MockServer) {
    let fixture = |name: &str| {
        let path = format!("{}/../fixtures/gar/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let packages = format!("{REPO_PATH}/packages");
    Mock::given(method("GET"))
        .and(path(&packages))
        .and(query_param("pageToken", "CiN0ZWFtJTJGd29ya2VyEhBpbWFnZXMtZXVyb3BlLXdlc3Qx"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("packages-page2.json")))
        .mount(control)
        .await;
    Mock::given(method("GET"))
        .and(path(&packages))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("packages-page1.json")))
        .with_priority(10)
        .mount(control)
        .await;
}

#[tokio::test]
async fn repo_list_pages_through_the_gar_route_by_client_visible_name() {
    let _env = ENV.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let control = control_plane().await;
    adc_file(dir.path(), &control);
    mount_package_pages(&control).await;
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[[routes]]\nprefix = \"gcp\"\nprovider = \"gar\"\n\n[routes.gar]\nproject = \"test-project\"\n\
             location = \"europe-west1\"\nrepository = \"images\"\npull_service_account = \"{PULL_SA}\"\n\
             api_endpoint = \"{api}\"\niam_credentials_endpoint = \"{api}\"\n",
            api = control.uri(),
        ),
    )
    .unwrap();
    let list = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_regbridge"))
            .args(["repo", "list", "--config"])
            .arg(&config)
            .args(args)
            .env("GOOGLE_APPLICATION_CREDENTIALS", dir.path().join("adc.json"))
            .env("XDG_CONFIG_HOME", dir.path().join("xdg"))
            .env_remove("REGBRIDGE_SERVER")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("cannot list"), "the GAR route is listed, not skipped: {stderr}");
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        listed.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(list(&[]), ["gcp/team/app", "gcp/team/worker", "gcp/tools/lint"], "both pages");
    assert_eq!(list(&["--limit", "2"]), ["gcp/team/app", "gcp/team/worker"]);
    assert_eq!(list(&["--prefix", "gcp/tools/"]), ["gcp/tools/lint"]);
    assert!(list(&["--prefix", "gcpx/"]).is_empty());

    // The management API pages with the same cursor, route by route.
    let proxy = start_proxy(dir.path(), gar_route(&control.uri(), "http://127.0.0.1:9")).await;
    let client = common::client();
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut request = client
            .get(format!("http://{proxy}/admin/v1/repositories"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .query(&[("limit", "2"), ("prefix", "gcp/")]);
        if let Some(after) = &after {
            request = request.query(&[("after", after)]);
        }
        let page: Value = request.send().await.unwrap().json().await.unwrap();
        let repositories = page["repositories"].as_array().unwrap_or_else(|| panic!("{page}"));
        assert!(repositories.len() <= 2, "{page}");
        names.extend(repositories.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names, ["gcp/team/app", "gcp/team/worker", "gcp/tools/lint"]);
}
