//! The GAR provider against wiremock: recorded Artifact Registry and IAM Credentials responses
//! (`fixtures/gar/`) for what the provider sends and how it reads answers and errors, and a stateful fake
//! of the APIs and of the registry's `/v2/` API (one `wiremock::Respond` over shared state) for the
//! conformance suite. The caller's Google credentials are a fake provider: nothing reaches a metadata
//! server or the internet.
#![cfg(feature = "gar")]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use google_cloud_auth::credentials::{
    CacheableResource, Credentials as GoogleCredentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use http::{Extensions, HeaderMap, HeaderValue};
use regbridge::conformance::{self, Capabilities, PushProbe};
use regbridge::oci::{Digest, Reference};
use regbridge::{
    ArtifactRegistry, AuthMethod, ComputeServiceType, Credentials, CrossAccountAccess, CrossAccountPermissions, Error,
    Permissions, Resource,
};
use regbridge_providers::gar::{GarRegistry, GarRegistryBuilder, MAX_POLICY_ATTEMPTS};
use regbridge_providers::http::Backoff;
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PROJECT: &str = "test-project";
const LOCATION: &str = "europe-west1";
const REPO: &str = "images";
const PULL_SA: &str = "regbridge-pull@test-project.iam.gserviceaccount.com";
const PUSH_SA: &str = "regbridge-push@test-project.iam.gserviceaccount.com";
const CALLER_TOKEN: &str = "caller-adc-token";
const REPO_PATH: &str = "/v1/projects/test-project/locations/europe-west1/repositories/images";
const OPERATION_PATH: &str =
    "/v1/projects/test-project/locations/europe-west1/operations/6a1c2f0e-3b7d-4c1e-9f55-2f8d1c0e7a11";

/// The caller's credentials: a fixed bearer token, as ADC would produce.
#[derive(Debug)]
struct FakeCaller;

impl CredentialsProvider for FakeCaller {
    async fn headers(&self, _: Extensions) -> Result<CacheableResource<HeaderMap>, CredentialsError> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static("Bearer caller-adc-token"));
        headers.insert("x-goog-user-project", HeaderValue::from_static("billing-project"));
        Ok(CacheableResource::New { entity_tag: EntityTag::new(), data: headers })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/gar").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn google(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(name), "application/json; charset=UTF-8")
}

fn builder(server: &MockServer) -> GarRegistryBuilder {
    GarRegistry::builder()
        .with_project(PROJECT)
        .with_location(LOCATION)
        .with_repository(REPO)
        .with_api_endpoint(server.uri())
        .with_iam_credentials_endpoint(server.uri())
        .with_credentials(GoogleCredentials::from(FakeCaller))
        .with_pull_service_account(PULL_SA)
        .with_push_service_account(PUSH_SA)
        .with_backoff(Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(10),
            retry_after_cap: Duration::from_secs(2),
        })
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn gcp(numbers: &[&str], emails: &[&str]) -> CrossAccountPermissions {
    CrossAccountPermissions {
        access: CrossAccountAccess::Gcp {
            project_numbers: set(numbers),
            allowed_service_types: if numbers.is_empty() {
                BTreeSet::new()
            } else {
                [ComputeServiceType::Serverless].into()
            },
            service_account_emails: set(emails),
        },
        permissions: Permissions::Pull,
    }
}

/// `packages.get` of the image `app` finds it.
async fn image_app_exists(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}/packages/app")))
        .respond_with(google(200, "package.json"))
        .mount(server)
        .await;
}

/// `getIamPolicy` of the GAR repository answers `status` with the fixture `name`.
async fn policy_read_answers(server: &MockServer, status: u16, name: &str) {
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}:getIamPolicy")))
        .respond_with(google(status, name))
        .mount(server)
        .await;
}

/// `POST p` answers 503 `UNAVAILABLE` once, before the mocks mounted after it.
async fn unavailable_once(server: &MockServer, p: &str) {
    Mock::given(method("POST"))
        .and(path(p))
        .respond_with(google(503, "error-unavailable.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(server)
        .await;
}

/// `setIamPolicy` of the GAR repository applies what it is sent and answers it.
async fn policy_write_echoes(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(format!("{REPO_PATH}:setIamPolicy")))
        .respond_with(|r: &Request| {
            ResponseTemplate::new(200).set_body_json(&r.body_json::<Value>().unwrap()["policy"])
        })
        .mount(server)
        .await;
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

/// The policies `setIamPolicy` was sent, in order.
fn written_policies(requests: &[Request]) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.url.path().ends_with(":setIamPolicy"))
        .map(|r| r.body_json::<Value>().unwrap()["policy"].clone())
        .collect()
}

fn sent(requests: &[Request]) -> Vec<String> {
    requests.iter().map(|r| format!("{} {}", r.method, r.url.path())).collect()
}

// ------------------------------------------------------------------------------------------------------
// A stateful fake of Artifact Registry, IAM Credentials and the registry's /v2/ API, for the conformance
// suite.

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Default)]
struct State {
    repository_exists: bool,
    /// Package id (image path) to its createTime.
    packages: BTreeMap<String, String>,
    /// Operations to their remaining polls before they are done.
    operations: HashMap<String, u32>,
    policy: Value,
    etag: u64,
    /// Minted token to the service account it belongs to.
    tokens: HashMap<String, String>,
    /// Manifests by (image path, reference).
    manifests: HashMap<(String, String), Vec<u8>>,
}

#[derive(Clone, Default)]
struct FakeGar(Arc<Mutex<State>>);

fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"code": status, "message": message, "status": code}}))
}

fn oci_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"errors": [{"code": code, "message": code.to_lowercase()}]}))
}

impl FakeGar {
    fn new() -> Self {
        let fake = Self::default();
        {
            let mut s = fake.0.lock().unwrap();
            // Someone else's bindings, which regbridge must keep.
            s.policy = json!({"version": 3, "bindings": [
                {"role": "roles/artifactregistry.writer", "members": ["group:release-engineering@example.com"]},
                {"role": "roles/artifactregistry.reader", "members": ["user:auditor@example.com"],
                 "condition": {"title": "t", "expression": "request.time < timestamp(\"2027-01-01T00:00:00Z\")"}}
            ]});
        }
        fake
    }

    fn control(&self, s: &mut State, request: &Request) -> ResponseTemplate {
        let path = request.url.path().to_owned();
        let m = request.method.as_str();
        if request.headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer caller-adc-token") {
            return error(401, "UNAUTHENTICATED", "missing caller token");
        }
        let packages = format!("{REPO_PATH}/packages/");
        if let Some(email) =
            path.strip_prefix("/v1/projects/-/serviceAccounts/").and_then(|p| p.strip_suffix(":generateAccessToken"))
        {
            let body: Value = request.body_json().unwrap();
            let secs: i64 = body["lifetime"].as_str().unwrap().trim_end_matches('s').parse().unwrap();
            let token = format!("token-{}-{}", s.tokens.len(), email.split('@').next().unwrap());
            s.tokens.insert(token.clone(), email.to_owned());
            let expire = (Utc::now() + chrono::Duration::seconds(secs)).to_rfc3339();
            return ResponseTemplate::new(200).set_body_json(json!({"accessToken": token, "expireTime": expire}));
        }
        match (m, path.as_str()) {
            ("GET", REPO_PATH) if s.repository_exists => {
                ResponseTemplate::new(200).set_body_raw(fixture("repository.json"), "application/json")
            }
            ("GET", REPO_PATH) => error(404, "NOT_FOUND", "Requested entity was not found."),
            ("POST", "/v1/projects/test-project/locations/europe-west1/repositories") => {
                if s.repository_exists {
                    return error(409, "ALREADY_EXISTS", "the repository already exists");
                }
                s.operations.insert(OPERATION_PATH.into(), 1);
                ResponseTemplate::new(200).set_body_raw(fixture("operation-pending.json"), "application/json")
            }
            ("GET", OPERATION_PATH) => {
                let left = s.operations.get_mut(OPERATION_PATH).unwrap();
                if *left > 0 {
                    *left -= 1;
                    return ResponseTemplate::new(200)
                        .set_body_raw(fixture("operation-pending.json"), "application/json");
                }
                s.repository_exists = true;
                ResponseTemplate::new(200).set_body_raw(fixture("operation-done.json"), "application/json")
            }
            ("GET", p) if p.ends_with(":getIamPolicy") => {
                let mut policy = s.policy.clone();
                policy["etag"] = json!(format!("etag-{}", s.etag));
                ResponseTemplate::new(200).set_body_json(policy)
            }
            ("POST", p) if p.ends_with(":setIamPolicy") => {
                let body: Value = request.body_json().unwrap();
                if body["policy"]["etag"] != json!(format!("etag-{}", s.etag)) {
                    return error(409, "ABORTED", "There were concurrent policy changes.");
                }
                s.etag += 1;
                s.policy = body["policy"].clone();
                ResponseTemplate::new(200).set_body_json(&s.policy)
            }
            (m, p) if p.starts_with(&packages) => {
                let id = p[packages.len()..].replace("%2F", "/");
                match (m, s.packages.contains_key(&id)) {
                    ("GET", true) => {
                        ResponseTemplate::new(200).set_body_json(json!({"name": p, "createTime": s.packages[&id]}))
                    }
                    ("DELETE", true) => {
                        s.packages.remove(&id);
                        s.manifests.retain(|(image, _), _| *image != id);
                        let op = "projects/test-project/locations/europe-west1/operations/delete-1";
                        let mut done = fixture_json("operation-deleted.json");
                        done["name"] = json!(op);
                        ResponseTemplate::new(200).set_body_json(done)
                    }
                    _ => error(404, "NOT_FOUND", "Requested entity was not found."),
                }
            }
            _ => error(400, "INVALID_ARGUMENT", &format!("the fake does not know {m} {path}")),
        }
    }

    /// The registry: Basic `oauth2accesstoken` with a token the fake minted; push needs the push account.
    fn registry(&self, s: &mut State, request: &Request) -> ResponseTemplate {
        let login = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let email = login
            .as_deref()
            .and_then(|l| l.strip_prefix("oauth2accesstoken:"))
            .and_then(|token| s.tokens.get(token).cloned());
        let Some(email) = email else {
            return oci_error(401, "UNAUTHORIZED").insert_header("WWW-Authenticate", "Basic realm=\"fake-gar\"");
        };
        let rest = request.url.path().strip_prefix(&format!("/v2/{PROJECT}/{REPO}/")).unwrap_or_default().to_owned();
        if let Some(image) = rest.strip_suffix("/blobs/uploads/") {
            if email != PUSH_SA {
                return oci_error(403, "DENIED");
            }
            s.packages.entry(image.to_owned()).or_insert_with(|| Utc::now().to_rfc3339());
            return ResponseTemplate::new(202).insert_header("Location", "/v2/upload/1");
        }
        if let Some((image, reference)) = rest.split_once("/manifests/") {
            return match s.manifests.get(&(image.to_owned(), reference.to_owned())) {
                Some(bytes) => ResponseTemplate::new(200)
                    .insert_header("Content-Type", MANIFEST_TYPE)
                    .insert_header("Docker-Content-Digest", Digest::sha256(bytes).to_string().as_str())
                    .set_body_raw(bytes.clone(), MANIFEST_TYPE),
                None => oci_error(404, "MANIFEST_UNKNOWN"),
            };
        }
        oci_error(404, "BLOB_UNKNOWN")
    }
}

impl Respond for FakeGar {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.0.lock().unwrap();
        if request.url.path().starts_with("/v2/") {
            self.registry(&mut s, request)
        } else {
            self.control(&mut s, request)
        }
    }
}

/// Pushes by starting an upload through the fake registry with the credentials.
struct UploadProbe(String);

#[async_trait]
impl PushProbe for UploadProbe {
    async fn can_push(&self, repository: &str, credentials: &Credentials) -> Result<bool, String> {
        let r = reqwest::Client::new()
            .post(format!("{}/v2/{repository}/blobs/uploads/", self.0))
            .basic_auth(&credentials.username, Some(credentials.password.expose()))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(r.status() == 202)
    }
}

#[tokio::test]
async fn conformance_against_a_stateful_fake() {
    let fake = FakeGar::new();
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any()).respond_with(fake.clone()).mount(&server).await;
    let reg = builder(&server).with_registry_endpoint(server.uri()).build().unwrap();
    let repo = reg.create_repository("conf-image").await.unwrap();
    let manifest = json!({"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        "layers": []})
    .to_string();
    {
        let mut s = fake.0.lock().unwrap();
        s.packages.insert("conf-image".into(), "2026-11-20T09:20:41Z".into());
        s.manifests.insert(("conf-image".into(), "v1".into()), manifest.into_bytes());
    }

    let mut caps = Capabilities::new("conf-");
    caps.ttl_bounds = (Duration::from_secs(1), Duration::from_secs(3600));
    caps.grants = Some((
        gcp(&["111111111111"], &[]),
        gcp(&["222222222222"], &["partner-puller@partner-project.iam.gserviceaccount.com"]),
    ));
    caps.push_probe = Some(Arc::new(UploadProbe(server.uri())));
    caps.existing_manifest = Some((repo.name.clone(), Reference::parse("v1").unwrap()));
    conformance::run_all(&reg, &caps).await.unwrap();

    // Someone else's bindings went through every read-modify-write untouched.
    let policy = fake.0.lock().unwrap().policy.clone();
    let bindings = policy["bindings"].as_array().unwrap();
    assert!(bindings.iter().any(|b| b["role"] == "roles/artifactregistry.writer"), "{policy}");
    assert!(bindings.iter().any(|b| b.get("condition").is_some()), "{policy}");
}

// ------------------------------------------------------------------------------------------------------
// Recorded responses: what the provider sends.

#[tokio::test]
async fn create_polls_the_operation_and_names_the_image() {
    let server = MockServer::start().await;
    // Missing at first; there once the operation is done.
    Mock::given(method("GET"))
        .and(path(REPO_PATH))
        .respond_with(google(404, "error-not-found.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(REPO_PATH)).respond_with(google(200, "repository.json")).mount(&server).await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/test-project/locations/europe-west1/repositories"))
        .and(query_param("repositoryId", REPO))
        .and(body_json(json!({"format": "DOCKER", "description": "Docker images managed by regbridge"})))
        .and(header("authorization", "Bearer caller-adc-token"))
        .and(header("x-goog-user-project", "billing-project"))
        .respond_with(google(200, "operation-pending.json"))
        .mount(&server)
        .await;
    // The operation is still running at the first poll.
    Mock::given(method("GET"))
        .and(path(OPERATION_PATH))
        .respond_with(google(200, "operation-pending.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OPERATION_PATH))
        .respond_with(google(200, "operation-done.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}/packages/team%2Fapp")))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;

    let reg = builder(&server).build().unwrap();
    assert_eq!(reg.to_string(), "Gar(test-project/europe-west1/images)");
    assert_eq!(reg.registry_endpoint(), "https://europe-west1-docker.pkg.dev");
    assert_eq!(reg.upstream_repository_prefix(), "test-project/images");
    let repo = reg.create_repository("team/app").await.unwrap();
    assert_eq!(repo.name, "test-project/images/team/app");
    assert_eq!(repo.uri, "europe-west1-docker.pkg.dev/test-project/images/team/app");
    assert_eq!(
        sent(&requests(&server).await),
        vec![
            format!("GET {REPO_PATH}"),
            "POST /v1/projects/test-project/locations/europe-west1/repositories".into(),
            format!("GET {OPERATION_PATH}"),
            format!("GET {OPERATION_PATH}"),
            format!("GET {REPO_PATH}/packages/team%2Fapp"),
        ]
    );
    // Created, not pushed yet: this instance finds it.
    assert_eq!(reg.get_repository("test-project/images/team/app").await.unwrap().name, repo.name);
}

#[tokio::test]
async fn get_and_delete_act_on_the_package() {
    let server = MockServer::start().await;
    let package = format!("{REPO_PATH}/packages/team%2Fapp");
    Mock::given(method("GET")).and(path(&package)).respond_with(google(200, "package.json")).mount(&server).await;
    Mock::given(method("DELETE"))
        .and(path(&package))
        .respond_with(google(200, "operation-pending.json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(&package))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OPERATION_PATH))
        .respond_with(google(200, "operation-deleted.json"))
        .mount(&server)
        .await;

    let reg = builder(&server).build().unwrap();
    let repo = reg.get_repository("test-project/images/team/app").await.unwrap();
    assert_eq!(repo.uri, "europe-west1-docker.pkg.dev/test-project/images/team/app");
    let created: DateTime<Utc> = "2026-11-20T09:20:41.118206Z".parse().unwrap();
    assert_eq!(repo.created_at, Some(created));
    reg.delete_repository("test-project/images/team/app").await.unwrap();
    assert!(requests(&server).await.iter().any(|r| r.method.as_str() == "GET" && r.url.path() == OPERATION_PATH));
    let err = reg.delete_repository("test-project/images/team/app").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");

    // Names outside this GAR repository, or invalid, are refused before any call.
    let before = requests(&server).await.len();
    for bad in ["other-project/images/app", "test-project/imagesx/app", "test-project/images/UPPER"] {
        let err = reg.get_repository(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
    assert!(matches!(reg.create_repository("../x").await, Err(Error::InvalidInput { .. })));
    assert_eq!(requests(&server).await.len(), before, "nothing was sent");
}

#[tokio::test]
async fn a_failed_or_endless_operation_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(REPO_PATH))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/projects/test-project/locations/europe-west1/repositories"))
        .respond_with(google(200, "operation-pending.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OPERATION_PATH))
        .respond_with(google(200, "operation-failed.json"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(OPERATION_PATH))
        .respond_with(google(200, "operation-pending.json"))
        .mount(&server)
        .await;

    let reg = builder(&server).with_operation_timeout(Duration::from_secs(1)).build().unwrap();
    // done: true with an error (FAILED_PRECONDITION): the operation's own message says what to fix. An
    // organisation policy is the project's setup, not the client's request: a server error.
    let err = reg.create_repository("app").await.unwrap_err();
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    assert_eq!(err.status(), 502);
    assert!(err.to_string().contains("constraints/gcp.resourceLocations"), "{err}");
    assert!(err.to_string().contains("operations/6a1c2f0e"), "the operation is named: {err}");

    // An operation that never finishes: bounded by the timeout.
    let started = Instant::now();
    let err = reg.create_repository("app").await.unwrap_err();
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    assert!(err.to_string().contains("did not finish within 1 s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A configured GAR repository that is not a Docker one is the server's setup: a server error naming it.
#[tokio::test]
async fn a_repository_of_another_format_is_a_server_error() {
    let server = MockServer::start().await;
    let mut maven = fixture_json("repository.json");
    maven["format"] = json!("MAVEN");
    Mock::given(method("GET"))
        .and(path(REPO_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(maven))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg.create_repository("app").await.unwrap_err();
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    assert!(err.to_string().contains("format MAVEN") && err.to_string().contains("DOCKER"), "{err}");
    let sent = sent(&requests(&server).await);
    assert_eq!(sent, vec![format!("GET {REPO_PATH}")], "nothing is created");
}

#[tokio::test]
async fn access_merges_into_the_reader_binding_with_the_etag() {
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}:getIamPolicy")))
        .and(query_param("options.requestedPolicyVersion", "3"))
        .respond_with(google(200, "get-iam-policy.json"))
        .mount(&server)
        .await;
    policy_write_echoes(&server).await;

    let reg = builder(&server).build().unwrap();
    let grant = gcp(&["123456789012"], &["ci@partner-project.iam.gserviceaccount.com"]);
    reg.add_cross_account_access("test-project/images/app", &grant).await.unwrap();

    let all = requests(&server).await;
    let write = all.iter().find(|r| r.url.path().ends_with(":setIamPolicy")).expect("a write");
    let policy = &write.body_json::<Value>().unwrap()["policy"];
    let read = fixture_json("get-iam-policy.json");
    assert_eq!(policy["etag"], read["etag"], "the write carries the etag it read");
    assert_eq!(policy["version"], 3);
    let bindings = policy["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 3, "{policy}");
    assert_eq!(bindings[0], read["bindings"][0], "the writer binding is kept");
    assert_eq!(bindings[1], read["bindings"][1], "the conditional binding is kept with its condition");
    assert_eq!(
        bindings[2],
        json!({"role": "roles/artifactregistry.reader", "members": [
            "serviceAccount:ci@partner-project.iam.gserviceaccount.com",
            "serviceAccount:existing-puller@partner-project.iam.gserviceaccount.com",
            "serviceAccount:service-123456789012@serverless-robot-prod.iam.gserviceaccount.com",
        ]})
    );

    // What is granted reads back from the unconditional reader binding (users in conditions are not ours).
    let got = reg.get_cross_account_access("test-project/images/app").await.unwrap();
    assert_eq!(got, vec![gcp(&[], &["existing-puller@partner-project.iam.gserviceaccount.com"])]);

    // Removing what is not there writes nothing; PushPull and foreign platforms are refused.
    server.reset().await;
    image_app_exists(&server).await;
    policy_read_answers(&server, 200, "get-iam-policy.json").await;
    reg.remove_cross_account_access("test-project/images/app", &grant).await.unwrap();
    assert!(!sent(&requests(&server).await).iter().any(|r| r.ends_with(":setIamPolicy")));
    let push = CrossAccountPermissions { permissions: Permissions::PushPull, ..grant };
    assert!(matches!(
        reg.add_cross_account_access("test-project/images/app", &push).await,
        Err(Error::InvalidInput { .. })
    ));
    let aws = CrossAccountPermissions {
        access: CrossAccountAccess::Local { account_ids: set(&["a"]) },
        permissions: Permissions::Pull,
    };
    assert!(matches!(
        reg.add_cross_account_access("test-project/images/app", &aws).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// getIamPolicy answers `etag-N` with N the number of reads so far; after the first read someone else adds
/// a binding. setIamPolicy refuses (409 ABORTED) while `conflicts` is not used up.
#[derive(Clone)]
struct Racing {
    reads: Arc<Mutex<u32>>,
    conflicts: u32,
    writes: Arc<Mutex<u32>>,
}

impl Respond for Racing {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path().ends_with(":getIamPolicy") {
            let mut reads = self.reads.lock().unwrap();
            *reads += 1;
            let mut policy = fixture_json("get-iam-policy.json");
            policy["etag"] = json!(format!("etag-{reads}"));
            if *reads > 1 {
                policy["bindings"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"role": "roles/artifactregistry.repoAdmin", "members": ["user:late@example.com"]}));
            }
            return ResponseTemplate::new(200).set_body_json(policy);
        }
        let mut writes = self.writes.lock().unwrap();
        *writes += 1;
        if *writes <= self.conflicts {
            return google(409, "error-aborted.json");
        }
        ResponseTemplate::new(200).set_body_json(&request.body_json::<Value>().unwrap()["policy"])
    }
}

async fn racing_server(conflicts: u32) -> MockServer {
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    let racing = Racing { reads: Arc::default(), conflicts, writes: Arc::default() };
    Mock::given(wiremock::matchers::path_regex(":(get|set)IamPolicy$")).respond_with(racing).mount(&server).await;
    server
}

#[tokio::test]
async fn an_etag_conflict_rereads_and_retries() {
    let server = racing_server(1).await;
    let reg = builder(&server).build().unwrap();
    reg.add_cross_account_access("test-project/images/app", &gcp(&[], &["ci@partner-project.iam.gserviceaccount.com"]))
        .await
        .unwrap();
    let all = requests(&server).await;
    let writes = written_policies(&all);
    assert_eq!(writes.len(), 2, "one refused write, one after reading again");
    assert_eq!(writes[0]["etag"], "etag-1");
    assert_eq!(writes[1]["etag"], "etag-2", "the retry carries the etag of the second read");
    assert!(
        writes[1]["bindings"].as_array().unwrap().iter().any(|b| b["role"] == "roles/artifactregistry.repoAdmin"),
        "the binding added meanwhile is kept: {}",
        writes[1]
    );

    // A policy that keeps changing: bounded attempts, then an error that says so.
    let server = racing_server(u32::MAX).await;
    let reg = builder(&server).build().unwrap();
    let err = reg
        .add_cross_account_access("test-project/images/app", &gcp(&[], &["ci@partner-project.iam.gserviceaccount.com"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(409), .. }), "{err:?}");
    assert!(err.to_string().contains("etag conflict"), "{err}");
    let writes = sent(&requests(&server).await).iter().filter(|r| r.ends_with(":setIamPolicy")).count();
    assert_eq!(writes, MAX_POLICY_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_failed_policy_read_writes_nothing() {
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    policy_read_answers(&server, 403, "error-iam-policy-denied.json").await;
    let reg = builder(&server).build().unwrap();
    let err = reg.add_cross_account_access("test-project/images/app", &gcp(&["1"], &[])).await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(403), .. }), "the server's setup: {err:?}");
    let text = err.to_string();
    assert!(text.contains("artifactregistry.repositories.getIamPolicy"), "Google's message is kept: {text}");
    assert!(text.contains("grant roles/artifactregistry.admin"), "the role that has the permission: {text}");
    assert!(!sent(&requests(&server).await).iter().any(|r| r.ends_with(":setIamPolicy")));
    let read = reg.get_cross_account_access("test-project/images/app").await;
    assert!(matches!(read, Err(Error::Upstream { status: Some(403), .. })), "{read:?}");
}

/// The documented predefined roles: only `roles/artifactregistry.admin` carries
/// `repositories.getIamPolicy` and `setIamPolicy`; `repoAdmin` manages artifacts, not access.
#[tokio::test]
async fn a_denied_policy_write_names_the_role_that_has_set_iam_policy() {
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    policy_read_answers(&server, 200, "get-iam-policy.json").await;
    Mock::given(method("POST"))
        .and(path(format!("{REPO_PATH}:setIamPolicy")))
        .respond_with(google(403, "error-set-iam-policy-denied.json"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg.add_cross_account_access("test-project/images/app", &gcp(&["1"], &[])).await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(403), .. }), "the server's setup: {err:?}");
    let text = err.to_string();
    assert!(text.contains("artifactregistry.repositories.setIamPolicy"), "Google's message is kept: {text}");
    assert!(text.contains("grant roles/artifactregistry.admin"), "the role that has the permission: {text}");
    assert!(text.contains("repoAdmin lacks them"), "the role people reach for first is ruled out: {text}");
    assert_eq!(regbridge_providers::gar::POLICY_ADMIN_ROLE, "roles/artifactregistry.admin");
    let writes = sent(&requests(&server).await).iter().filter(|r| r.ends_with(":setIamPolicy")).count();
    assert_eq!(writes, 1, "a refusal is not retried");
}

/// setIamPolicy over a policy kept in memory: the first write is applied and then answered 503 (the
/// answer is lost, as when a connection breaks after the service acted); later writes check the etag.
#[derive(Clone, Default)]
struct LostAnswer {
    policy: Arc<Mutex<Option<(Value, u32)>>>,
    writes: Arc<Mutex<u32>>,
}

impl Respond for LostAnswer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut stored = self.policy.lock().unwrap();
        let (policy, etag) = stored.get_or_insert_with(|| (fixture_json("get-iam-policy.json"), 1));
        if request.url.path().ends_with(":getIamPolicy") {
            let mut answer = policy.clone();
            answer["etag"] = json!(format!("etag-{etag}"));
            return ResponseTemplate::new(200).set_body_json(answer);
        }
        let mut writes = self.writes.lock().unwrap();
        *writes += 1;
        let written = request.body_json::<Value>().unwrap()["policy"].clone();
        if written["etag"] != json!(format!("etag-{etag}")) {
            return google(409, "error-aborted.json");
        }
        *policy = written;
        *etag += 1;
        if *writes == 1 {
            return google(503, "error-unavailable.json");
        }
        ResponseTemplate::new(200).set_body_json(&*policy)
    }
}

#[tokio::test]
async fn set_iam_policy_is_retried_after_503() {
    // Not applied: the 503 came first, the repeat applies it.
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    policy_read_answers(&server, 200, "get-iam-policy.json").await;
    unavailable_once(&server, &format!("{REPO_PATH}:setIamPolicy")).await;
    policy_write_echoes(&server).await;
    let reg = builder(&server).build().unwrap();
    let grant = gcp(&[], &["ci@partner-project.iam.gserviceaccount.com"]);
    reg.add_cross_account_access("test-project/images/app", &grant).await.unwrap();
    let all = requests(&server).await;
    let writes = written_policies(&all);
    assert_eq!(writes.len(), 2, "the 503 was retried");
    assert_eq!(writes[0], writes[1], "the same write, with the same etag");
    let reads = sent(&all).iter().filter(|r| r.ends_with(":getIamPolicy")).count();
    assert_eq!(reads, 1, "a 503 is retried by the client, not by re-reading");

    // Applied, answer lost: the repeat meets an etag conflict, the policy is read again, the grant is
    // found there, and nothing more is written.
    let server = MockServer::start().await;
    image_app_exists(&server).await;
    let lost = LostAnswer::default();
    Mock::given(wiremock::matchers::path_regex(":(get|set)IamPolicy$")).respond_with(lost.clone()).mount(&server).await;
    let reg = builder(&server).build().unwrap();
    reg.add_cross_account_access("test-project/images/app", &grant).await.unwrap();
    assert_eq!(*lost.writes.lock().unwrap(), 2, "the applied write and its repeat, refused by the etag");
    let sent = sent(&requests(&server).await);
    assert_eq!(sent.iter().filter(|r| r.ends_with(":getIamPolicy")).count(), 2, "{sent:?}");
    let policy = lost.policy.lock().unwrap().clone().unwrap().0;
    let readers: Vec<&Value> =
        policy["bindings"].as_array().unwrap().iter().filter(|b| b.get("condition").is_none()).collect();
    assert!(
        readers.iter().any(|b| b["members"]
            .as_array()
            .unwrap()
            .contains(&json!("serviceAccount:ci@partner-project.iam.gserviceaccount.com"))),
        "{policy}"
    );
}

#[tokio::test]
async fn generate_access_token_is_retried_after_503() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path(REPO_PATH)).respond_with(google(200, "repository.json")).mount(&server).await;
    let mint = format!("/v1/projects/-/serviceAccounts/{PULL_SA}:generateAccessToken");
    unavailable_once(&server, &mint).await;
    Mock::given(method("POST"))
        .and(path(&mint))
        .respond_with(google(200, "generate-access-token.json"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let creds =
        reg.generate_credentials("test-project/images/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap();
    assert_eq!(creds.password.expose(), fixture_json("generate-access-token.json")["accessToken"].as_str().unwrap());
    let minted = sent(&requests(&server).await).iter().filter(|r| r.ends_with(":generateAccessToken")).count();
    assert_eq!(minted, 2, "the 503 was retried");
}

#[tokio::test]
async fn credentials_come_from_generate_access_token() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path(REPO_PATH)).respond_with(google(200, "repository.json")).mount(&server).await;
    for sa in [PULL_SA, PUSH_SA] {
        Mock::given(method("POST"))
            .and(path(format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken")))
            .and(header("authorization", "Bearer caller-adc-token"))
            .respond_with(google(200, "generate-access-token.json"))
            .mount(&server)
            .await;
    }
    let reg = builder(&server).build().unwrap();
    let push = reg
        .generate_credentials("test-project/images/team/app", Permissions::PushPull, Duration::from_secs(7200))
        .await
        .unwrap();
    let pull = reg
        .generate_credentials("test-project/images/team/app", Permissions::Pull, Duration::from_secs(900))
        .await
        .unwrap();
    let token = fixture_json("generate-access-token.json");
    for c in [&push, &pull] {
        assert_eq!(c.auth_method, AuthMethod::Basic);
        assert_eq!(c.username, "oauth2accesstoken");
        assert_eq!(c.password.expose(), token["accessToken"].as_str().unwrap());
        assert_eq!(c.expires_at, token["expireTime"].as_str().unwrap().parse::<DateTime<Utc>>().unwrap());
        assert!(!format!("{c:?} {reg:?}").contains("fakeToken"), "no token in Debug");
    }
    let minted: Vec<(String, Value)> = requests(&server)
        .await
        .iter()
        .filter(|r| r.url.path().ends_with(":generateAccessToken"))
        .map(|r| (r.url.path().to_owned(), r.body_json().unwrap()))
        .collect();
    assert_eq!(minted.len(), 2);
    assert_eq!(minted[0].0, format!("/v1/projects/-/serviceAccounts/{PUSH_SA}:generateAccessToken"));
    assert_eq!(
        minted[0].1,
        json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"}),
        "a 2 h TTL is clamped to 1 h"
    );
    assert_eq!(minted[1].0, format!("/v1/projects/-/serviceAccounts/{PULL_SA}:generateAccessToken"));
    assert_eq!(minted[1].1["lifetime"], "900s");

    // Without a push service account, PushPull is refused before any call, naming the setting: a server
    // error, since the server was set up without it.
    let server2 = MockServer::start().await;
    let reg = GarRegistry::builder()
        .with_project(PROJECT)
        .with_location(LOCATION)
        .with_repository(REPO)
        .with_api_endpoint(server2.uri())
        .with_credentials(GoogleCredentials::from(FakeCaller))
        .with_pull_service_account(PULL_SA)
        .build()
        .unwrap();
    let err = reg
        .generate_credentials("test-project/images/app", Permissions::PushPull, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("push service account") && err.to_string().contains("push_service_account"));
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    assert!(requests(&server2).await.is_empty());
}

#[tokio::test]
async fn refusals_and_missing_things_say_what_to_fix() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).and(path(REPO_PATH)).respond_with(google(200, "repository.json")).mount(&server).await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/projects/-/serviceAccounts/{PULL_SA}:generateAccessToken")))
        .respond_with(google(403, "error-permission-denied.json"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg
        .generate_credentials("test-project/images/app", Permissions::Pull, Duration::from_secs(60))
        .await
        .unwrap_err();
    // The server's identity lacks a role: a server error (a client would read 403 DENIED as its own refusal).
    assert!(matches!(err, Error::Upstream { status: Some(403), .. }), "{err:?}");
    assert_eq!(err.status(), 502);
    let text = err.to_string();
    assert!(text.contains("iam.serviceAccounts.getAccessToken"), "{text}");
    assert!(text.contains("roles/iam.serviceAccountTokenCreator") && text.contains(PULL_SA), "{text}");
    assert!(!text.contains(CALLER_TOKEN), "{text}");
    // A service account that does not exist is the configuration's fault, not a missing repository.
    Mock::given(method("POST"))
        .and(path(format!("/v1/projects/-/serviceAccounts/{PUSH_SA}:generateAccessToken")))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;
    let err = reg
        .generate_credentials("test-project/images/app", Permissions::PushPull, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(404), .. }), "{err:?}");
    assert!(err.to_string().contains("service account does not exist") && err.to_string().contains(PUSH_SA), "{err}");

    // A missing GAR repository: NotFound for minting and for images.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(REPO_PATH))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}/packages/app")))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg
        .generate_credentials("test-project/images/app", Permissions::Pull, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");
    assert!(err.to_string().contains("create_repository creates it"), "{err}");
    let err = reg.get_repository("test-project/images/app").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");

    // The server's own token refused: its credentials, not the client's, so a server error.
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(google(401, "error-unauthenticated.json")).mount(&server).await;
    let reg = builder(&server).build().unwrap();
    let err = reg.get_repository("test-project/images/app").await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(401), .. }), "{err:?}");
    assert!(!err.to_string().contains(CALLER_TOKEN));
}

#[tokio::test]
async fn throttling_is_retried_then_too_many_requests() {
    let server = MockServer::start().await;
    let package = format!("{REPO_PATH}/packages/app");
    Mock::given(method("GET"))
        .and(path(&package))
        .respond_with(google(429, "error-resource-exhausted.json").insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET")).and(path(&package)).respond_with(google(200, "package.json")).mount(&server).await;
    let reg = builder(&server).build().unwrap();
    let started = Instant::now();
    reg.get_repository("test-project/images/app").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900), "Retry-After was honoured");
    assert_eq!(requests(&server).await.len(), 2);

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(google(429, "error-resource-exhausted.json").insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg.get_repository("test-project/images/app").await.unwrap_err();
    assert!(matches!(err, Error::TooManyRequests { retry_after: Some(d), .. } if d == Duration::ZERO), "{err:?}");
    assert!(err.to_string().contains("Quota exceeded"), "{err}");
    assert_eq!(requests(&server).await.len(), 3, "bounded attempts");
}

/// How the registry stub authenticates its `/v2/` API.
#[derive(Clone, Copy, PartialEq)]
enum RegistryAuth {
    /// A `Basic` challenge; the service account token is sent as Basic `oauth2accesstoken` / token.
    Basic,
    /// Real GAR (`{location}-docker.pkg.dev`): `Bearer realm="https://{host}/v2/token",service="{host}",
    /// scope="repository:...:pull"`; the token endpoint takes Basic `oauth2accesstoken` / access token for
    /// that scope and answers a registry token, which the reads then carry.
    Bearer,
}

const REGISTRY_TOKEN: &str = "gar-registry-token-for-team-app";

/// Mounts `auth`'s challenge (and for Bearer, the token endpoint) on `server`; answers the `Authorization`
/// the registry accepts.
async fn registry_auth(server: &MockServer, auth: RegistryAuth, image: &str, sa_token: &str) -> String {
    let basic = format!("Basic {}", STANDARD.encode(format!("oauth2accesstoken:{sa_token}")));
    let host = server.address().to_string();
    let challenge = match auth {
        RegistryAuth::Basic => "Basic realm=\"gar\"".to_owned(),
        RegistryAuth::Bearer => {
            format!("Bearer realm=\"{}/v2/token\",service=\"{host}\",scope=\"repository:{image}:pull\"", server.uri())
        }
    };
    for m in ["GET", "HEAD"] {
        Mock::given(method(m))
            .and(wiremock::matchers::path_regex("^/v2/"))
            .respond_with(
                ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", challenge.as_str())
                    .set_body_json(json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})),
            )
            .with_priority(10)
            .mount(server)
            .await;
    }
    if auth == RegistryAuth::Basic {
        return basic;
    }
    // Only the service account's token, for the scope the challenge named, gets a registry token.
    Mock::given(method("GET"))
        .and(path("/v2/token"))
        .and(query_param("service", host.as_str()))
        .and(query_param("scope", format!("repository:{image}:pull").as_str()))
        .and(header("authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"token": REGISTRY_TOKEN, "expires_in": 3600})))
        .with_priority(1)
        .mount(server)
        .await;
    format!("Bearer {REGISTRY_TOKEN}")
}

/// Reads a manifest and a blob of `team/app` through a registry that authenticates as `auth` does.
async fn reads_with_a_service_account_token(auth: RegistryAuth) {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1/projects/-/serviceAccounts/{PULL_SA}:generateAccessToken")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"accessToken": "pull-sa-token",
                "expireTime": (Utc::now() + chrono::Duration::hours(1)).to_rfc3339()})))
        .mount(&server)
        .await;
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    let digest = Digest::sha256(manifest);
    let accepted = registry_auth(&server, auth, "test-project/images/team/app", "pull-sa-token").await;
    let image = "/v2/test-project/images/team/app";
    for m in ["GET", "HEAD"] {
        Mock::given(method(m))
            .and(path(format!("{image}/manifests/v1")))
            .and(header("authorization", accepted.as_str()))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("Docker-Content-Digest", digest.to_string().as_str())
                    .insert_header("Content-Length", manifest.len().to_string().as_str())
                    .set_body_raw(manifest.to_vec(), MANIFEST_TYPE),
            )
            .mount(&server)
            .await;
    }
    let blob = Digest::sha256(b"layer");
    Mock::given(method("HEAD"))
        .and(path(format!("{image}/blobs/{blob}")))
        .and(header("authorization", accepted.as_str()))
        .respond_with(ResponseTemplate::new(200).insert_header("Content-Length", "5"))
        .mount(&server)
        .await;

    let reg = builder(&server).with_registry_endpoint(server.uri()).build().unwrap();
    let id = "test-project/images/team/app";
    let got = reg.get_manifest(id, &Reference::parse("v1").unwrap()).await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(got.digest, digest);
    assert_eq!(got.media_type, MANIFEST_TYPE);
    let head = reg.head_manifest(id, &Reference::parse("v1").unwrap()).await.unwrap().unwrap();
    assert_eq!((head.digest, head.size), (digest.clone(), manifest.len() as u64));
    assert_eq!(reg.head_blob(id, &blob).await.unwrap(), Some(5));
    assert_eq!(reg.generate_blob_download_url(id, &blob, Duration::from_secs(60)).await.unwrap(), None);
    let sent = sent(&requests(&server).await);
    let minted = sent.iter().filter(|r| r.ends_with(":generateAccessToken")).count();
    assert_eq!(minted, 1, "the read token is cached");
    if auth == RegistryAuth::Bearer {
        let exchanged = sent.iter().filter(|r| r.as_str() == "GET /v2/token").count();
        assert_eq!(exchanged, 1, "the registry token is fetched once and cached: {sent:?}");
    }
}

#[tokio::test]
async fn manifests_and_blobs_are_read_with_a_service_account_token() {
    reads_with_a_service_account_token(RegistryAuth::Basic).await;
}

#[tokio::test]
async fn manifests_and_blobs_are_read_through_gars_bearer_challenge() {
    reads_with_a_service_account_token(RegistryAuth::Bearer).await;
}

#[tokio::test]
async fn images_are_listed_in_pages_of_packages_list() {
    let server = MockServer::start().await;
    let packages = format!("{REPO_PATH}/packages");
    Mock::given(method("GET"))
        .and(path(&packages))
        .and(query_param("pageToken", "CiN0ZWFtJTJGd29ya2VyEhBpbWFnZXMtZXVyb3BlLXdlc3Qx"))
        .respond_with(google(200, "packages-page2.json"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(&packages))
        .respond_with(google(200, "packages-page1.json"))
        .with_priority(10)
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();

    let mut names = Vec::new();
    let mut page = regbridge::Page::first(Some(2));
    for pages in 1.. {
        let found = reg.list_repositories(None, page.clone()).await.unwrap();
        assert!(found.repositories.iter().all(|r| r.uri == format!("europe-west1-docker.pkg.dev/{}", r.name)));
        names.extend(found.repositories.into_iter().map(|r| (r.name, r.created_at)));
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
        assert!(pages < 5, "pagination does not end");
    }
    let created: DateTime<Utc> = "2026-11-20T09:20:41.118206Z".parse().unwrap();
    assert_eq!(names[0], ("test-project/images/team/app".to_owned(), Some(created)));
    let names: Vec<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["test-project/images/team/app", "test-project/images/team/worker", "test-project/images/tools/lint"]
    );
    let sent = requests(&server).await;
    let asked: Vec<(Option<String>, Option<String>)> = sent
        .iter()
        .map(|r| {
            let q = |k: &str| r.url.query_pairs().find(|(key, _)| key == k).map(|(_, v)| v.into_owned());
            (q("pageSize"), q("pageToken"))
        })
        .collect();
    assert_eq!(
        asked,
        [(Some("2".into()), None), (Some("2".into()), Some("CiN0ZWFtJTJGd29ya2VyEhBpbWFnZXMtZXVyb3BlLXdlc3Qx".into()))]
    );
    assert!(sent.iter().all(|r| r.headers["authorization"] == format!("Bearer {CALLER_TOKEN}").as_str()));

    // A prefix keeps the images under it; one outside this GAR repository asks GAR nothing.
    let team = reg.list_repositories(Some("test-project/images/team/"), regbridge::Page::default()).await.unwrap();
    let team: Vec<String> = team.repositories.into_iter().map(|r| r.name).collect();
    assert_eq!(team, ["test-project/images/team/app", "test-project/images/team/worker"]);
    let before = requests(&server).await.len();
    for outside in ["other-project/", "test-project/imagesx/"] {
        let none = reg.list_repositories(Some(outside), regbridge::Page::default()).await.unwrap();
        assert!(none.repositories.is_empty() && none.next.is_none(), "{outside}: {none:?}");
    }
    assert_eq!(requests(&server).await.len(), before, "nothing was sent");
    // GAR's page size is at most 1000, whatever is asked.
    reg.list_repositories(None, regbridge::Page::first(Some(5000))).await.unwrap();
    let last = requests(&server).await.pop().unwrap();
    assert!(last.url.query().unwrap().contains("pageSize=1000"), "{}", last.url);
}

#[tokio::test]
async fn a_refused_or_missing_listing_says_so() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}/packages")))
        .respond_with(google(403, "error-packages-list-denied.json"))
        .mount(&server)
        .await;
    let reg = builder(&server).build().unwrap();
    let err = reg.list_repositories(None, regbridge::Page::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("artifactregistry.packages.list") && text.contains("roles/artifactregistry.reader"),
        "{text}"
    );
    assert!(!text.contains(CALLER_TOKEN), "{text}");

    // A GAR repository that does not exist (yet) has no images.
    let missing = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("{REPO_PATH}/packages")))
        .respond_with(google(404, "error-not-found.json"))
        .mount(&missing)
        .await;
    let reg = builder(&missing).build().unwrap();
    let page = reg.list_repositories(None, regbridge::Page::default()).await.unwrap();
    assert!(page.repositories.is_empty() && page.next.is_none(), "{page:?}");
}
