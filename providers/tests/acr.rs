//! The ACR provider against wiremock on 127.0.0.1: one server for Azure Resource Manager, one for the
//! registry's data plane (token exchange, `/acr/v1/` metadata, `/v2/`). Responses are the recorded bodies in
//! `fixtures/acr/`; the conformance run uses a stateful fake of both ([`FakeAcr`]) that enforces what ACR
//! enforces (scope-map actions, token passwords, role assignment conflicts). The Entra ID credential is a
//! fake: nothing here reaches a metadata server or the internet.
#![cfg(feature = "acr")]

mod support {
    pub mod acr_first_push;
}

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use base64::Engine;
use chrono::{DateTime, Utc};
use regbridge::conformance::{self, Capabilities, PushProbe};
use regbridge::oci::{Digest, Reference};
use regbridge::{
    ArtifactRegistry, AuthMethod, Credentials, CrossAccountAccess, CrossAccountPermissions, Error, Permissions,
    Resource, Result,
};
use regbridge_providers::acr::roles::{
    ACR_PULL_ROLE, ACR_PUSH_ROLE, REPOSITORY_READER_ROLE, REPOSITORY_WRITER_ROLE, assignment_name,
    repository_assignment_name,
};
use regbridge_providers::acr::{
    ACR_API_VERSION, AUTHZ_API_VERSION, AcrRegistry, AcrRegistryBuilder, CleanupReport, DATA_PLANE_SCOPE, MAX_TTL,
    MIN_TTL, NULL_GUID_USER, resource_name,
};
use regbridge_providers::http::{Backoff, ClientOptions};
use serde_json::{Value, json};
use support::acr_first_push::{FirstPush, Pusher};
use wiremock::matchers::{any, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SUB: &str = "00000000-0000-0000-0000-0000000000aa";
const RG: &str = "regbridge-rg";
const REGISTRY: &str = "regbridgetest";
/// The Entra ID token the fake credential gives for the ARM scope.
const AAD_TOKEN: &str = "AADTOKENVALUE";
/// The Entra ID token the fake credential gives for the registry's own audience, the only one the fake
/// `/oauth2/exchange` accepts (a registry whose policy disables ARM-audience tokens).
const ACR_AUDIENCE_TOKEN: &str = "ACRAUDIENCETOKENVALUE";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn registry_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}")
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/acr/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An Entra ID credential that hands out a fixed token per scope (ARM's, the registry's) and records the
/// scopes it was asked for.
#[derive(Debug, Default)]
struct FakeCredential {
    scopes: Mutex<Vec<String>>,
}

#[async_trait]
impl TokenCredential for FakeCredential {
    async fn get_token(&self, scopes: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        self.scopes.lock().unwrap().extend(scopes.iter().map(|s| s.to_string()));
        let expires = azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        let token = if scopes.contains(&DATA_PLANE_SCOPE) { ACR_AUDIENCE_TOKEN } else { AAD_TOKEN };
        Ok(AccessToken::new(token, expires))
    }
}

fn builder(arm: &str, registry: &str) -> AcrRegistryBuilder {
    AcrRegistry::builder()
        .with_subscription_id(SUB)
        .with_resource_group(RG)
        .with_registry(REGISTRY)
        .with_arm_url(arm)
        .with_registry_endpoint(registry)
        .with_credential(Arc::new(FakeCredential::default()))
        .with_client_options(ClientOptions { max_attempts: 3, ..ClientOptions::default() })
        .with_backoff(Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
            retry_after_cap: Duration::from_secs(5),
        })
        .with_polling(Duration::from_millis(10), Duration::from_secs(5))
        .with_principal_wait(Duration::from_secs(2))
}

fn form(request: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&request.body).into_owned().collect()
}

fn query(request: &Request, key: &str) -> Option<String> {
    request.url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn json_body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

fn bearer(request: &Request) -> Option<String> {
    let value = request.headers.get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

fn basic(request: &Request) -> Option<(String, String)> {
    let value = request.headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
    let (user, password) = String::from_utf8(decoded).ok()?.split_once(':').map(|(u, p)| (u.into(), p.into()))?;
    Some((user, password))
}

fn azure_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": {"code": code, "message": message}}))
}

// ---------------------------------------------------------------------------------------------------------
// A stateful fake of ARM and the registry, for the conformance run.
// ---------------------------------------------------------------------------------------------------------

#[derive(Default)]
struct Token {
    scope_map: String,
    created: DateTime<Utc>,
    /// slot -> (value, creation time, expiry)
    passwords: BTreeMap<String, (String, DateTime<Utc>, DateTime<Utc>)>,
}

impl Token {
    /// The token as ARM describes it (the passwords' metadata, not their values), from the recorded body.
    fn resource(&self, name: &str) -> Value {
        let passwords: Vec<Value> = self
            .passwords
            .iter()
            .map(|(slot, (_, created, expiry))| {
                json!({"name": slot, "creationTime": created.to_rfc3339(), "expiry": expiry.to_rfc3339()})
            })
            .collect();
        let mut answer = fixture("token.json");
        answer["id"] = json!(format!("{}/tokens/{name}", registry_id()));
        answer["name"] = json!(name);
        answer["properties"]["creationDate"] = json!(self.created.to_rfc3339());
        answer["properties"]["scopeMapId"] = json!(self.scope_map);
        answer["properties"]["credentials"]["passwords"] = json!(passwords);
        answer
    }
}

/// One role assignment as the fake keeps it.
#[derive(Clone, PartialEq)]
struct Assignment {
    principal: String,
    principal_type: String,
    role: String,
    condition: Option<String>,
}

/// Two pages when a listing has more than one item, to exercise `nextLink`: the first item, then the rest
/// (page two is asked with `$skipToken=1`).
fn paged(arm: &str, request: &Request, all: Vec<Value>) -> ResponseTemplate {
    let skip = query(request, "$skipToken").is_some();
    let (page, next) = match (all.len() > 1, skip) {
        (true, false) => (
            all[..1].to_vec(),
            Some(format!("{arm}{}?{}&$skipToken=1", request.url.path(), request.url.query().unwrap_or_default())),
        ),
        (true, true) => (all[1..].to_vec(), None),
        (false, _) => (all, None),
    };
    let mut body = json!({ "value": page });
    if let Some(next) = next {
        body["nextLink"] = json!(next);
    }
    ResponseTemplate::new(200).set_body_json(body)
}

#[derive(Default)]
struct State {
    /// Repositories (created by a push) -> tag -> manifest bytes.
    repos: BTreeMap<String, HashMap<String, Vec<u8>>>,
    scope_maps: BTreeMap<String, Vec<String>>,
    tokens: BTreeMap<String, Token>,
    /// At most this many tokens (the SKU quota), when set.
    token_quota: Option<usize>,
    /// The registry's `roleAssignmentMode` is `AbacRepositoryPermissions`.
    abac: bool,
    /// Entra ID principal types (a principal not listed is a `User`); every principal is taken to be new,
    /// so ARM finds none of them without `principalType`.
    principal_types: HashMap<String, String>,
    /// This many more role assignment `PUT`s are answered `PrincipalNotFound` whatever they carry (Entra ID
    /// replication of a principal made moments ago).
    replicating: u32,
    assignments: BTreeMap<String, Assignment>,
    /// issued access token -> (repository, actions)
    issued: HashMap<String, (String, BTreeSet<String>)>,
    counter: usize,
}

#[derive(Clone)]
struct FakeAcr {
    state: Arc<Mutex<State>>,
    arm: String,
    registry: String,
}

impl FakeAcr {
    /// A repository with `tag` pointing at a small manifest, as a push would leave it.
    fn push(&self, repository: &str, tag: &str) -> Vec<u8> {
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::sha256(b"{}").to_string(), "size": 2},
            "layers": [],
            "annotations": {"repository": repository}
        }))
        .unwrap();
        self.state.lock().unwrap().repos.entry(repository.into()).or_default().insert(tag.into(), manifest.clone());
        manifest
    }

    fn host(&self) -> String {
        self.registry.trim_start_matches("http://").to_owned()
    }

    fn issue(&self, state: &mut State, repository: &str, actions: BTreeSet<String>) -> String {
        state.counter += 1;
        let token = format!("at-{}", state.counter);
        state.issued.insert(token.clone(), (repository.to_owned(), actions));
        token
    }

    fn allowed(&self, state: &State, request: &Request, repository: &str, action: &str) -> bool {
        bearer(request)
            .and_then(|t| state.issued.get(&t).cloned())
            .is_some_and(|(repo, actions)| repo == repository && actions.contains(action))
    }

    fn arm_respond(&self, request: &Request) -> ResponseTemplate {
        if bearer(request).as_deref() != Some(AAD_TOKEN) {
            return azure_error(401, "InvalidAuthenticationToken", "no token");
        }
        let p = request.url.path().to_owned();
        let m = request.method.as_str();
        if p == "/operations/done" {
            return ResponseTemplate::new(200).set_body_json(fixture("operation-succeeded.json"));
        }
        let Some(rest) = p.strip_prefix(&registry_id()) else { return azure_error(404, "ResourceNotFound", &p) };
        let authz = rest.starts_with("/providers/Microsoft.Authorization/");
        let want = if authz { AUTHZ_API_VERSION } else { ACR_API_VERSION };
        if query(request, "api-version").as_deref() != Some(want) {
            return azure_error(400, "InvalidApiVersionParameter", "wrong api-version");
        }
        let mut state = self.state.lock().unwrap();
        if rest.is_empty() && m == "GET" {
            return ResponseTemplate::new(200).set_body_json(fixture(if state.abac {
                "registry-abac.json"
            } else {
                "registry.json"
            }));
        }
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match (m, parts.as_slice()) {
            ("PUT", ["scopeMaps", name]) => {
                let body = json_body(request);
                let actions: Vec<String> = serde_json::from_value(body["properties"]["actions"].clone()).unwrap();
                state.scope_maps.insert(name.to_string(), actions);
                let mut answer = fixture("scope-map.json");
                answer["name"] = json!(name);
                answer["properties"]["actions"] = body["properties"]["actions"].clone();
                ResponseTemplate::new(201)
                    .insert_header("Azure-AsyncOperation", format!("{}/operations/done?api-version=x", self.arm))
                    .insert_header("Retry-After", "0")
                    .set_body_json(answer)
            }
            ("GET", ["scopeMaps", name]) => match state.scope_maps.get(*name) {
                Some(actions) => ResponseTemplate::new(200).set_body_json(
                    json!({"name": name, "properties": {"actions": actions, "provisioningState": "Succeeded"}}),
                ),
                None => azure_error(404, "ResourceNotFound", "no such scope map"),
            },
            ("GET", ["tokens", name]) => match state.tokens.get(*name) {
                Some(token) => ResponseTemplate::new(200).set_body_json(token.resource(name)),
                None => azure_error(404, "ResourceNotFound", "no such token"),
            },
            ("GET", ["tokens"]) => {
                // As the documented listing: the tokens without their credentials.
                let all = state
                    .tokens
                    .iter()
                    .map(|(name, t)| {
                        let mut r = t.resource(name);
                        r["properties"].as_object_mut().unwrap().remove("credentials");
                        r
                    })
                    .collect();
                paged(&self.arm, request, all)
            }
            ("DELETE", ["scopeMaps", name]) => {
                if state.tokens.values().any(|t| t.scope_map.ends_with(&format!("/scopeMaps/{name}"))) {
                    return azure_error(409, "ScopeMapInUse", "the scope map is used by a token");
                }
                match state.scope_maps.remove(*name) {
                    Some(_) => ResponseTemplate::new(200),
                    None => ResponseTemplate::new(204),
                }
            }
            ("PUT", ["tokens", name]) => {
                let scope_map = json_body(request)["properties"]["scopeMapId"].as_str().unwrap_or_default().to_owned();
                let Some(map) = scope_map.rsplit('/').next().filter(|m| state.scope_maps.contains_key(*m)) else {
                    return azure_error(400, "ScopeMapNotFound", "no such scope map");
                };
                assert_eq!(scope_map, format!("{}/scopeMaps/{map}", registry_id()));
                let full = state.token_quota.is_some_and(|q| state.tokens.len() >= q);
                if full && !state.tokens.contains_key(*name) {
                    return ResponseTemplate::new(409).set_body_json(fixture("error-quota-exceeded.json"));
                }
                let token = state
                    .tokens
                    .entry(name.to_string())
                    .or_insert_with(|| Token { created: Utc::now(), ..Token::default() });
                token.scope_map = scope_map.clone();
                ResponseTemplate::new(200).set_body_json(token.resource(name))
            }
            ("DELETE", ["tokens", name]) => match state.tokens.remove(*name) {
                Some(_) => ResponseTemplate::new(200),
                None => ResponseTemplate::new(204),
            },
            ("POST", ["generateCredentials"]) => {
                let body = json_body(request);
                let token_id = body["tokenId"].as_str().unwrap_or_default();
                let name = token_id.rsplit('/').next().unwrap_or_default().to_owned();
                let slot = body["name"].as_str().unwrap_or("password1").to_owned();
                let expiry = body["expiry"].as_str().unwrap_or_default().to_owned();
                let expires: DateTime<Utc> = expiry.parse().unwrap();
                state.counter += 1;
                let value = format!("pw{}-{}", state.counter, name);
                let Some(token) = state.tokens.get_mut(&name) else {
                    return azure_error(404, "TokenNotFound", "no such token");
                };
                token.passwords.insert(slot.clone(), (value.clone(), Utc::now(), expires));
                ResponseTemplate::new(200).set_body_json(json!({
                    "username": name,
                    "passwords": [{"name": slot, "value": value, "expiry": expiry, "creationTime": Utc::now().to_rfc3339()}]
                }))
            }
            ("PUT", ["providers", "Microsoft.Authorization", "roleAssignments", name]) => {
                let body = json_body(request);
                let text = |k: &str| body["properties"][k].as_str().map(str::to_owned);
                let principal = text("principalId").unwrap_or_default();
                if state.replicating > 0 {
                    state.replicating -= 1;
                    return ResponseTemplate::new(400).set_body_json(fixture("error-principal-not-found.json"));
                }
                // ARM looks a principal up unless principalType says what it is: new ones are not found.
                let Some(principal_type) = text("principalType") else {
                    return ResponseTemplate::new(400).set_body_json(fixture("error-principal-not-found.json"));
                };
                let actual = state.principal_types.get(&principal).cloned().unwrap_or_else(|| "User".into());
                if principal_type != actual {
                    let message = format!(
                        "The PrincipalId '{}' has type '{actual}' , which is different from specified PrincipalType '{principal_type}'.",
                        principal.replace('-', "")
                    );
                    return azure_error(400, "UnmatchedPrincipalType", &message);
                }
                if text("condition").is_some() != (text("conditionVersion").as_deref() == Some("2.0")) {
                    return azure_error(400, "InvalidConditionVersion", "a condition needs conditionVersion 2.0");
                }
                let assignment = Assignment {
                    principal,
                    principal_type,
                    role: text("roleDefinitionId").unwrap_or_default(),
                    condition: text("condition"),
                };
                if state.assignments.iter().any(|(n, a)| n != name && *a == assignment) {
                    return ResponseTemplate::new(409).set_body_json(fixture("error-role-assignment-exists.json"));
                }
                state.assignments.insert(name.to_string(), assignment);
                ResponseTemplate::new(201).set_body_json(fixture("role-assignment.json"))
            }
            ("DELETE", ["providers", "Microsoft.Authorization", "roleAssignments", name]) => {
                match state.assignments.remove(*name) {
                    Some(_) => ResponseTemplate::new(200).set_body_json(fixture("role-assignment.json")),
                    None => ResponseTemplate::new(204),
                }
            }
            ("GET", ["providers", "Microsoft.Authorization", "roleAssignments"]) => {
                assert_eq!(query(request, "$filter").as_deref(), Some("atScope()"));
                let all: Vec<Value> = state
                    .assignments
                    .iter()
                    .map(|(name, a)| {
                        json!({"name": name, "type": "Microsoft.Authorization/roleAssignments", "properties": {
                            "scope": registry_id(), "principalId": a.principal, "principalType": a.principal_type,
                            "roleDefinitionId": a.role, "condition": a.condition,
                            "conditionVersion": a.condition.as_ref().map(|_| "2.0"),
                        }})
                    })
                    .collect();
                paged(&self.arm, request, all)
            }
            _ => azure_error(404, "NotFound", &format!("{m} {p}")),
        }
    }

    fn registry_respond(&self, request: &Request) -> ResponseTemplate {
        let p = request.url.path().to_owned();
        let m = request.method.as_str();
        let mut state = self.state.lock().unwrap();
        if m == "POST" && p == "/oauth2/exchange" {
            let f = form(request);
            let ok = f.get("grant_type").map(String::as_str) == Some("access_token")
                && f.get("access_token").map(String::as_str) == Some(ACR_AUDIENCE_TOKEN)
                && f.get("service") == Some(&self.host());
            return if ok {
                ResponseTemplate::new(200).set_body_json(fixture("exchange.json"))
            } else {
                ResponseTemplate::new(401).set_body_json(json!({"errors": [{"code": "UNAUTHORIZED"}]}))
            };
        }
        if p == "/oauth2/token" {
            let (scope, caller) = if m == "POST" {
                let f = form(request);
                let ok = f.get("grant_type").map(String::as_str) == Some("refresh_token")
                    && f.get("refresh_token").map(String::as_str) == Some("ACRREFRESHTOKENVALUE")
                    && f.get("service") == Some(&self.host());
                (f.get("scope").cloned().unwrap_or_default(), ok.then_some(None))
            } else {
                let login = basic(request);
                let caller = match login {
                    Some((user, pw)) if user == NULL_GUID_USER && pw == "ACRREFRESHTOKENVALUE" => Some(None),
                    Some((user, pw)) => state.tokens.get(&user).and_then(|t| {
                        t.passwords.values().any(|(v, _, _)| *v == pw).then(|| {
                            let map = t.scope_map.rsplit('/').next().unwrap_or_default();
                            Some(state.scope_maps.get(map).cloned().unwrap_or_default())
                        })
                    }),
                    None => None,
                };
                (query(request, "scope").unwrap_or_default(), caller)
            };
            let Some(limit) = caller else {
                return ResponseTemplate::new(401).set_body_json(json!({"errors": [{"code": "UNAUTHORIZED"}]}));
            };
            let mut parts = scope.splitn(3, ':');
            let (_, repo, wanted) = (parts.next(), parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let mut actions: BTreeSet<String> = wanted.split(',').map(str::to_owned).collect();
            if let Some(scope_map) = limit {
                // A scope-map token gets only what its actions allow.
                let has = |verb: &str| scope_map.contains(&format!("repositories/{repo}/{verb}"));
                actions.retain(|a| match a.as_str() {
                    "pull" => has("content/read"),
                    "push" => has("content/write"),
                    _ => false,
                });
            }
            let token = self.issue(&mut state, repo, actions);
            return ResponseTemplate::new(200).set_body_json(json!({"access_token": token}));
        }
        if let Some(name) = p.strip_prefix("/acr/v1/") {
            let action = if m == "DELETE" { "delete" } else { "metadata_read" };
            if !self.allowed(&state, request, name, action) {
                return ResponseTemplate::new(401).set_body_json(json!({"errors": [{"code": "UNAUTHORIZED"}]}));
            }
            if !state.repos.contains_key(name) {
                return ResponseTemplate::new(404).set_body_json(fixture("error-name-unknown.json"));
            }
            if m == "DELETE" {
                state.repos.remove(name);
                return ResponseTemplate::new(202).set_body_json(json!({"manifestsDeleted": [], "tagsDeleted": []}));
            }
            let mut answer = fixture("repository.json");
            answer["imageName"] = json!(name);
            return ResponseTemplate::new(200).set_body_json(answer);
        }
        if let Some(rest) = p.strip_prefix("/v2/")
            && let Some((name, reference)) = rest.split_once("/manifests/")
        {
            let action = if m == "PUT" { "push" } else { "pull" };
            if !self.allowed(&state, request, name, action) {
                let challenge = format!(
                    "Bearer realm=\"{}/oauth2/token\",service=\"{}\",scope=\"repository:{name}:{action}\"",
                    self.registry,
                    self.host()
                );
                return ResponseTemplate::new(401)
                    .insert_header("WWW-Authenticate", challenge)
                    .set_body_json(json!({"errors": [{"code": "UNAUTHORIZED"}]}));
            }
            if m == "PUT" {
                state.repos.entry(name.into()).or_default().insert(reference.into(), request.body.clone());
                return ResponseTemplate::new(201)
                    .insert_header("Docker-Content-Digest", Digest::sha256(&request.body).to_string());
            }
            let found = state.repos.get(name).and_then(|r| {
                r.get(reference).or_else(|| r.values().find(|b| Digest::sha256(b).to_string() == reference))
            });
            return match found {
                Some(bytes) => ResponseTemplate::new(200)
                    .insert_header("Content-Type", OCI_MANIFEST)
                    .insert_header("Docker-Content-Digest", Digest::sha256(bytes).to_string())
                    .set_body_raw(bytes.clone(), OCI_MANIFEST),
                None => ResponseTemplate::new(404)
                    .set_body_json(json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})),
            };
        }
        ResponseTemplate::new(404)
    }
}

struct ArmSide(FakeAcr);
struct RegistrySide(FakeAcr);

impl Respond for ArmSide {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.arm_respond(request)
    }
}

impl Respond for RegistrySide {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.registry_respond(request)
    }
}

async fn fake() -> (FakeAcr, MockServer, MockServer) {
    let arm = MockServer::start().await;
    let registry = MockServer::start().await;
    let fake = FakeAcr { state: Arc::default(), arm: arm.uri(), registry: registry.uri() };
    Mock::given(any()).respond_with(ArmSide(fake.clone())).mount(&arm).await;
    Mock::given(any()).respond_with(RegistrySide(fake.clone())).mount(&registry).await;
    (fake, arm, registry)
}

/// The fake's first push: the repository with a `first` tag.
#[async_trait]
impl Pusher for FakeAcr {
    async fn push(&self, _: &AcrRegistry, repository: &str) -> Result<()> {
        FakeAcr::push(self, repository, "first");
        Ok(())
    }
}

/// Pushes a manifest through the fake's `/v2/` API with the docker token flow, as a client would.
struct ManifestPush {
    registry: String,
    service: String,
}

#[async_trait]
impl PushProbe for ManifestPush {
    async fn can_push(&self, repository: &str, credentials: &Credentials) -> std::result::Result<bool, String> {
        let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        let token: Value = client
            .get(format!("{}/oauth2/token", self.registry))
            .query(&[("service", self.service.as_str()), ("scope", &format!("repository:{repository}:pull,push"))])
            .basic_auth(&credentials.username, Some(credentials.password.expose()))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let token = token["access_token"].as_str().ok_or("no token")?;
        let status = client
            .put(format!("{}/v2/{repository}/manifests/probe", self.registry))
            .bearer_auth(token)
            .header("Content-Type", OCI_MANIFEST)
            .body(r#"{"schemaVersion":2}"#)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        Ok(status.is_success())
    }
}

/// A grant of `permissions` to one principal (no compute service types).
fn azure_grant(principal: &str, permissions: Permissions) -> CrossAccountPermissions {
    CrossAccountPermissions { access: azure(&[principal]), permissions }
}

/// The role assignment (and other) `PUT`s ARM received.
async fn puts(arm: &MockServer) -> Vec<Request> {
    arm.received_requests().await.unwrap().into_iter().filter(|r| r.method.as_str() == "PUT").collect()
}

fn azure(ids: &[&str]) -> CrossAccountAccess {
    CrossAccountAccess::Azure {
        principal_ids: ids.iter().map(|s| s.to_string()).collect(),
        tenant_id: None,
        allowed_service_types: BTreeSet::new(),
    }
}

const PRINCIPAL_A: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const PRINCIPAL_B: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

/// The conformance suite against the stateful fake, the registry in ABAC mode when `abac`; then what it
/// left behind: cleanup removed the tokens and scope maps of the repositories it minted for and then
/// cleaned up, every role assignment was removed, nothing else was touched.
async fn conformance_against_the_fake(abac: bool, prefix: &str) {
    let (fake, arm, registry) = fake().await;
    fake.state.lock().unwrap().abac = abac;
    let inner = builder(&arm.uri(), &registry.uri()).with_prefix("team").build().unwrap();
    fake.push("team/existing", "v1");
    let reg = FirstPush::new(inner, fake.clone());
    let mut caps = Capabilities::new(prefix);
    caps.ttl_bounds = (MIN_TTL, MAX_TTL);
    caps.grants = Some((azure_grant(PRINCIPAL_A, Permissions::Pull), azure_grant(PRINCIPAL_B, Permissions::Pull)));
    caps.push_probe = Some(Arc::new(ManifestPush { registry: registry.uri(), service: fake.host() }));
    caps.existing_manifest = Some(("team/existing".into(), Reference::parse("v1").unwrap()));
    conformance::run_all(&reg, &caps).await.unwrap();
    let state = fake.state.lock().unwrap();
    assert!(state.assignments.is_empty(), "every role assignment was removed");
    assert!(state.scope_maps.keys().chain(state.tokens.keys()).all(|n| n.starts_with("regbridge-")));
}

#[tokio::test]
async fn conformance_against_a_stateful_fake() {
    conformance_against_the_fake(false, "conf-").await;
}

#[tokio::test]
async fn conformance_against_an_abac_registry() {
    conformance_against_the_fake(true, "abac-").await;
}

#[tokio::test]
async fn create_validates_before_any_call_and_reports_existing_repositories() {
    let (fake, arm, registry) = fake().await;
    let reg = builder(&arm.uri(), &registry.uri()).with_prefix("team").build().unwrap();
    for bad in ["../x", "UPPER", "a//b"] {
        let err = reg.create_repository(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
    assert!(registry.received_requests().await.unwrap().is_empty(), "no call for invalid names");

    // Not pushed yet: the routable name and URI, no creation time; get is NotFound and says why.
    let repo = reg.create_repository("app").await.unwrap();
    assert_eq!(repo.name, "team/app");
    assert_eq!(repo.uri, format!("{}/team/app", fake.host()));
    assert_eq!(repo.created_at, None);
    let err = reg.get_repository("team/app").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");
    assert!(err.to_string().contains("first image is pushed"), "{err}");

    // Once pushed: create and get agree and carry ACR's creation time.
    fake.push("team/app", "v1");
    let again = reg.create_repository("app").await.unwrap();
    let got = reg.get_repository("team/app").await.unwrap();
    assert_eq!(again, got);
    assert_eq!(got.created_at.unwrap().to_rfc3339(), "2026-11-20T10:11:12.123456700+00:00");
}

/// The documented data-plane flow, request by request, with the recorded bodies.
#[tokio::test]
async fn metadata_reads_use_the_documented_token_exchange() {
    let arm = MockServer::start().await;
    let registry = MockServer::start().await;
    // Only the registry-audience Entra ID token is exchanged (ARM-audience tokens are refused by policy).
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .and(wiremock::matchers::body_string_contains(format!("access_token={ACR_AUDIENCE_TOKEN}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("exchange.json")))
        .expect(1)
        .mount(&registry)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .respond_with(ResponseTemplate::new(401).set_body_json(fixture("error-unauthorized.json")))
        .with_priority(10)
        .mount(&registry)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("access-token.json")))
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/team/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("repository.json")))
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/team/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-name-unknown.json")))
        .mount(&registry)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/acr/v1/team/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-name-unknown.json")))
        .mount(&registry)
        .await;
    let credential = Arc::new(FakeCredential::default());
    let reg = builder(&arm.uri(), &registry.uri()).with_credential(credential.clone()).build().unwrap();

    let repo = reg.get_repository("team/app").await.unwrap();
    assert_eq!(repo.uri, format!("{}/team/app", registry.address()));
    let err = reg.get_repository("team/missing").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");
    let err = reg.delete_repository("team/missing").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { resource: Resource::Repository, .. }), "{err:?}");
    // The data plane asked for the registry's audience, never for ARM's.
    assert_eq!(*credential.scopes.lock().unwrap(), [DATA_PLANE_SCOPE]);

    let requests = registry.received_requests().await.unwrap();
    let service = registry.address().to_string();
    let exchange = requests.iter().find(|r| r.url.path() == "/oauth2/exchange").unwrap();
    let f = form(exchange);
    assert_eq!(f["grant_type"], "access_token");
    assert_eq!(f["access_token"], ACR_AUDIENCE_TOKEN);
    assert_eq!(f["service"], service);
    let scopes: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path() == "/oauth2/token")
        .map(|r| {
            let f = form(r);
            assert_eq!(f["grant_type"], "refresh_token");
            assert_eq!(f["refresh_token"], "ACRREFRESHTOKENVALUE");
            assert_eq!(f["service"], service);
            f["scope"].clone()
        })
        .collect();
    assert_eq!(
        scopes,
        [
            "repository:team/app:metadata_read",
            "repository:team/missing:metadata_read",
            "repository:team/missing:delete"
        ]
    );
    for r in requests.iter().filter(|r| r.url.path().starts_with("/acr/v1/")) {
        assert_eq!(bearer(r).as_deref(), Some("ACRACCESSTOKENVALUE"));
    }
}

#[tokio::test]
async fn a_refused_entra_token_says_which_role_is_missing() {
    let registry = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"errors": [{"code": "UNAUTHORIZED"}]})))
        .mount(&registry)
        .await;
    let reg = builder("http://127.0.0.1:9", &registry.uri()).build().unwrap();
    let err = reg.get_repository("team/app").await.unwrap_err();
    assert!(matches!(err, Error::Unauthenticated { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("AcrPull") && !text.contains(AAD_TOKEN), "{text}");
}

/// Mounts the scope map (201 + Azure-AsyncOperation, polled InProgress then Succeeded), token and
/// generateCredentials answers, all from the recorded bodies.
async fn mount_credential_flow(arm: &MockServer) {
    let op = format!("{}/operations/scopemap-op", arm.uri());
    Mock::given(method("PUT"))
        .and(path_regex_scope_maps())
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("Azure-AsyncOperation", format!("{op}?api-version={ACR_API_VERSION}"))
                .set_body_json(fixture("scope-map.json")),
        )
        .mount(arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/scopemap-op"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-in-progress.json")))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/scopemap-op"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-succeeded.json")))
        .with_priority(2)
        .mount(arm)
        .await;
    Mock::given(method("PUT"))
        .and(wiremock::matchers::path_regex(r"/tokens/regbridge-(pull|push)-[0-9a-f]{24}$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("token.json")))
        .mount(arm)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{}/generateCredentials", registry_id())))
        .and(query_param("api-version", ACR_API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("generate-credentials.json")))
        .mount(arm)
        .await;
}

fn path_regex_scope_maps() -> wiremock::matchers::PathRegexMatcher {
    wiremock::matchers::path_regex(r"/scopeMaps/regbridge-(pull|push)-[0-9a-f]{24}$")
}

#[tokio::test]
async fn credentials_are_a_scoped_token_with_an_expiring_password() {
    let arm = MockServer::start().await;
    mount_credential_flow(&arm).await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let ttl = Duration::from_secs(1800);
    let before = Utc::now();
    let creds = reg.generate_credentials("team/app", Permissions::Pull, ttl).await.unwrap();
    assert_eq!(creds.auth_method, AuthMethod::Basic);
    assert_eq!(creds.username, "regbridge-pull-SCOPEMAPNAME");
    assert_eq!(creds.password.expose(), "GENERATEDPASSWORDVALUE+abc/123=");
    assert!(!format!("{creds:?}").contains("GENERATEDPASSWORDVALUE"));
    // The expiry sent (now + TTL), which is earlier than the recorded answer's.
    let lifetime = (creds.expires_at - before).num_seconds();
    assert!((1795..=1801).contains(&lifetime), "{lifetime}");

    let requests = arm.received_requests().await.unwrap();
    let name = resource_name("team/app", Permissions::Pull);
    let reg_id = registry_id();
    let put = |r: &&Request| r.method.as_str() == "PUT";
    let put_map = requests.iter().filter(put).find(|r| r.url.path().contains("/scopeMaps/")).unwrap();
    assert_eq!(put_map.url.path(), format!("{reg_id}/scopeMaps/{name}"));
    assert_eq!(query(put_map, "api-version").as_deref(), Some(ACR_API_VERSION));
    assert_eq!(bearer(put_map).as_deref(), Some(AAD_TOKEN));
    assert_eq!(
        json_body(put_map)["properties"]["actions"],
        json!(["repositories/team/app/content/read", "repositories/team/app/metadata/read"]),
        "pull reads only"
    );
    let polls = requests.iter().filter(|r| r.url.path() == "/operations/scopemap-op").count();
    assert_eq!(polls, 3, "polled through InProgress to Succeeded");
    let put_token = requests.iter().filter(put).find(|r| r.url.path().contains("/tokens/")).unwrap();
    assert_eq!(put_token.url.path(), format!("{reg_id}/tokens/{name}"));
    assert_eq!(json_body(put_token)["properties"]["scopeMapId"], json!(format!("{reg_id}/scopeMaps/{name}")));
    let generate = requests.iter().find(|r| r.url.path().ends_with("/generateCredentials")).unwrap();
    let body = json_body(generate);
    assert_eq!(body["tokenId"], json!(format!("{reg_id}/tokens/{name}")));
    assert_eq!(body["name"], "password2", "the recorded token already has password1, so the other slot is used");
    let expiry: DateTime<Utc> = body["expiry"].as_str().unwrap().parse().unwrap();
    let asked = (expiry - before).num_seconds();
    assert!((1799..=1801).contains(&asked), "expiry is now + TTL, got {asked} s");

    // Push adds the write actions; TTLs outside the bounds are clamped.
    let before = Utc::now();
    let push = reg.generate_credentials("team/app", Permissions::PushPull, Duration::from_secs(1)).await.unwrap();
    assert!((push.expires_at - before).num_seconds() >= MIN_TTL.as_secs() as i64 - 1);
    let requests = arm.received_requests().await.unwrap();
    let push_name = resource_name("team/app", Permissions::PushPull);
    let put_map = requests.iter().filter(put).rfind(|r| r.url.path().contains("/scopeMaps/")).unwrap();
    assert!(put_map.url.path().ends_with(&push_name));
    assert_eq!(
        json_body(put_map)["properties"]["actions"],
        json!([
            "repositories/team/app/content/read",
            "repositories/team/app/metadata/read",
            "repositories/team/app/content/write",
            "repositories/team/app/metadata/write",
            "repositories/team/app/content/delete"
        ])
    );
}

/// Whether the fake's token endpoint accepts `creds` (as a client logging in would find out).
async fn accepted(registry: &MockServer, creds: &Credentials) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(format!("{}/oauth2/token", registry.uri()))
        .query(&[("scope", "repository:team/app:pull")])
        .basic_auth(&creds.username, Some(creds.password.expose()))
        .send()
        .await
        .unwrap();
    r.status().is_success()
}

#[tokio::test]
async fn minting_again_reuses_the_token_and_keeps_the_last_two_passwords() {
    let (_fake, arm, registry) = fake().await;
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let ttl = Duration::from_secs(900);
    let first = reg.generate_credentials("team/app", Permissions::Pull, ttl).await.unwrap();
    let writes = |requests: &[Request]| requests.iter().filter(|r| r.method.as_str() == "PUT").count();
    assert_eq!(writes(&arm.received_requests().await.unwrap()), 2, "scope map and token made once");
    let second = reg.generate_credentials("team/app", Permissions::Pull, ttl).await.unwrap();
    let requests = arm.received_requests().await.unwrap();
    assert_eq!(writes(&requests), 2, "an unchanged scope map and token are only read");
    let slots: Vec<String> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("/generateCredentials"))
        .map(|r| json_body(r)["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slots, ["password1", "password2"]);
    assert_eq!(first.username, second.username);
    assert!(accepted(&registry, &first).await && accepted(&registry, &second).await, "both stay valid");
    // A third mint regenerates the older slot: the first credentials stop working, the second do not.
    let third = reg.generate_credentials("team/app", Permissions::Pull, ttl).await.unwrap();
    assert!(!accepted(&registry, &first).await);
    assert!(accepted(&registry, &second).await && accepted(&registry, &third).await);
}

#[tokio::test]
async fn a_failed_long_running_operation_says_what_arm_reported() {
    let arm = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex_scope_maps())
        .respond_with(
            ResponseTemplate::new(201)
                .insert_header("Azure-AsyncOperation", format!("{}/operations/failing", arm.uri()))
                .set_body_json(fixture("scope-map.json")),
        )
        .mount(&arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/failing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-in-progress.json")))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/failing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-failed.json")))
        .with_priority(2)
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let err = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Upstream { .. }), "{err:?}");
    // The recorded failure is the scope-map quota: said plainly, with the SKU's limit.
    assert!(text.contains("quota of scopeMaps") && text.contains("Premium SKU allows 50000"), "{text}");
    let tokens = arm.received_requests().await.unwrap().iter().filter(|r| r.url.path().contains("/tokens/")).count();
    assert_eq!(tokens, 0, "no token is made when its scope map failed");

    // An operation that never finishes is given up after the timeout.
    let arm = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path_regex_scope_maps())
        .respond_with(
            ResponseTemplate::new(201).insert_header("Azure-AsyncOperation", format!("{}/operations/slow", arm.uri())),
        )
        .mount(&arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/slow"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-in-progress.json")))
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9")
        .with_polling(Duration::from_millis(20), Duration::from_millis(200))
        .build()
        .unwrap();
    let err = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap_err();
    assert!(err.to_string().contains("did not finish"), "{err}");
}

#[tokio::test]
async fn arm_throttling_is_retried_after_retry_after() {
    let arm = MockServer::start().await;
    mount_credential_flow(&arm).await;
    Mock::given(method("PUT"))
        .and(wiremock::matchers::path_regex(r"/tokens/"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(fixture("error-throttled.json")),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let started = Instant::now();
    reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited for Retry-After");
    let requests = arm.received_requests().await.unwrap();
    let tokens = requests.iter().filter(|r| r.method.as_str() == "PUT" && r.url.path().contains("/tokens/")).count();
    assert_eq!(tokens, 2);

    // Throttled on every attempt: TooManyRequests with ARM's wait and message.
    let arm = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(429).insert_header("Retry-After", "0").set_body_json(fixture("error-throttled.json")),
        )
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let err = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap_err();
    match &err {
        Error::TooManyRequests { message, retry_after } => {
            assert_eq!(*retry_after, Some(Duration::ZERO));
            assert!(message.contains("throttled") && message.contains("retry after"), "{message}");
        }
        other => panic!("expected TooManyRequests, got {other:?}"),
    }
    assert_eq!(arm.received_requests().await.unwrap().len(), 3, "max_attempts");
}

#[tokio::test]
async fn forbidden_and_missing_registries_say_what_to_fix() {
    let arm = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error-authorization-failed.json")))
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let err = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    assert!(text.contains("AuthorizationFailed") && text.contains("Contributor"), "{text}");
    assert!(!text.contains(AAD_TOKEN));

    let arm = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-resource-not-found.json")))
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    let err = reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("resource group"), "{err}");
}

#[tokio::test]
async fn cleanup_deletes_only_what_minting_made() {
    let arm = MockServer::start().await;
    let (pull, push) = (resource_name("team/app", Permissions::Pull), resource_name("team/app", Permissions::PushPull));
    let reg_id = registry_id();
    // The first token delete is long-running (202 + Azure-AsyncOperation); the push ones are already gone.
    Mock::given(method("DELETE"))
        .and(path(format!("{reg_id}/tokens/{pull}")))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Azure-AsyncOperation", format!("{}/operations/delete-token", arm.uri())),
        )
        .mount(&arm)
        .await;
    Mock::given(method("GET"))
        .and(path("/operations/delete-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("operation-succeeded.json")))
        .expect(1)
        .mount(&arm)
        .await;
    Mock::given(method("DELETE"))
        .and(path(format!("{reg_id}/scopeMaps/{pull}")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&arm)
        .await;
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(404).set_body_json(fixture("error-resource-not-found.json")))
        .mount(&arm)
        .await;
    let reg = builder(&arm.uri(), "http://127.0.0.1:9").build().unwrap();
    reg.cleanup_credentials("team/app").await.unwrap();
    let requests = arm.received_requests().await.unwrap();
    let deleted: Vec<String> =
        requests.iter().filter(|r| r.method.as_str() == "DELETE").map(|r| r.url.path().to_owned()).collect();
    assert_eq!(
        deleted,
        [
            format!("{reg_id}/tokens/{pull}"),
            format!("{reg_id}/scopeMaps/{pull}"),
            format!("{reg_id}/tokens/{push}"),
            format!("{reg_id}/scopeMaps/{push}"),
        ],
        "tokens before their scope maps, nothing else"
    );
}

#[tokio::test]
async fn role_assignments_are_idempotent_and_per_registry() {
    let (fake, arm, registry) = fake().await;
    fake.push("team/app", "v1");
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let pull = azure_grant(PRINCIPAL_A, Permissions::Pull);
    let push = azure_grant(PRINCIPAL_B, Permissions::PushPull);
    reg.add_cross_account_access("team/app", &pull).await.unwrap();
    reg.add_cross_account_access("team/app", &pull).await.unwrap();
    reg.add_cross_account_access("team/app", &push).await.unwrap();

    let puts = puts(&arm).await;
    assert_eq!(puts.len(), 3);
    assert_eq!(puts[0].url.path(), puts[1].url.path(), "the same deterministic name");
    let expected = assignment_name(&registry_id(), ACR_PULL_ROLE, PRINCIPAL_A);
    assert_eq!(
        puts[0].url.path(),
        format!("{}/providers/Microsoft.Authorization/roleAssignments/{expected}", registry_id())
    );
    assert_eq!(query(&puts[0], "api-version").as_deref(), Some(AUTHZ_API_VERSION));
    let role = |r: &Request| json_body(r)["properties"]["roleDefinitionId"].as_str().unwrap().to_owned();
    assert!(role(&puts[0]).ends_with(&format!("/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE}")));
    assert!(role(&puts[2]).ends_with(ACR_PUSH_ROLE));
    assert_eq!(json_body(&puts[2])["properties"]["principalId"], PRINCIPAL_B);
    for put in &puts {
        assert_eq!(json_body(put)["properties"]["principalType"], "User", "the documented default");
        assert!(json_body(put)["properties"].get("condition").is_none(), "legacy grants are registry-wide");
    }

    // Per registry: another repository reports the same grants.
    fake.push("other/repo", "v1");
    let here = reg.get_cross_account_access("team/app").await.unwrap();
    let there = reg.get_cross_account_access("other/repo").await.unwrap();
    assert_eq!(here, there);
    assert_eq!(here.len(), 2);

    // An assignment of the same role to the same principal under another name: 409 RoleAssignmentExists,
    // which is success.
    let other_name = "aaaaaaaa-0000-5000-8000-000000000000".to_owned();
    {
        let mut state = fake.state.lock().unwrap();
        let role_id = format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE}");
        let principal = "3f2504e0-4f89-41d3-9a0c-0305e82c3301".to_owned();
        let assignment = Assignment { principal, principal_type: "User".into(), role: role_id, condition: None };
        state.assignments.insert(other_name.clone(), assignment);
    }
    let taken = CrossAccountPermissions {
        access: azure(&["3f2504e0-4f89-41d3-9a0c-0305e82c3301"]),
        permissions: Permissions::Pull,
    };
    reg.add_cross_account_access("team/app", &taken).await.unwrap();
    // Removing it deletes only regbridge's name (absent: success); the other assignment stays.
    reg.remove_cross_account_access("team/app", &taken).await.unwrap();
    assert!(fake.state.lock().unwrap().assignments.contains_key(&other_name));

    // Bad input before any call.
    let bad = CrossAccountPermissions { access: azure(&["not-a-guid"]), permissions: Permissions::Pull };
    assert!(matches!(reg.add_cross_account_access("team/app", &bad).await, Err(Error::InvalidInput { .. })));
    let aws = CrossAccountPermissions {
        access: CrossAccountAccess::Aws {
            account_ids: BTreeSet::new(),
            regions: BTreeSet::new(),
            allowed_service_types: BTreeSet::new(),
            role_arns: BTreeSet::new(),
        },
        permissions: Permissions::Pull,
    };
    assert!(matches!(reg.add_cross_account_access("team/app", &aws).await, Err(Error::InvalidInput { .. })));
}

#[tokio::test]
async fn role_assignment_listing_follows_next_link_and_keeps_only_the_registry_scope() {
    let (fake, _arm, registry) = fake().await;
    fake.push("team/app", "v1");
    // A recorded listing over two pages: AcrPull and AcrPush at the registry, then Contributor inherited
    // from the resource group.
    let listing = MockServer::start().await;
    let list_path = format!("{}/providers/Microsoft.Authorization/roleAssignments", registry_id());
    let mut first = fixture("role-assignments-page1.json");
    first["nextLink"] = json!(format!(
        "{}{list_path}?api-version={AUTHZ_API_VERSION}&$filter=atScope()&$skipToken=page2",
        listing.uri()
    ));
    Mock::given(method("GET"))
        .and(path(list_path.clone()))
        .and(query_param("$skipToken", "page2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("role-assignments-page2.json")))
        .expect(1)
        .with_priority(1)
        .mount(&listing)
        .await;
    Mock::given(method("GET"))
        .and(path(list_path))
        .and(query_param("$filter", "atScope()"))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .expect(1)
        .with_priority(2)
        .mount(&listing)
        .await;
    Mock::given(method("GET"))
        .and(path(registry_id()))
        .and(query_param("api-version", ACR_API_VERSION))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("registry.json")))
        .mount(&listing)
        .await;
    let reg = builder(&listing.uri(), &registry.uri()).build().unwrap();
    let grants = reg.get_cross_account_access("team/app").await.unwrap();
    assert_eq!(
        grants,
        vec![azure_grant(PRINCIPAL_A, Permissions::Pull), azure_grant(PRINCIPAL_B, Permissions::PushPull),]
    );
}

/// Registries in `AbacRepositoryPermissions` mode ignore AcrPull/AcrPush: grants are the repository roles
/// with a condition on the repository, so they are per repository.
#[tokio::test]
async fn abac_registries_get_repository_roles_with_a_condition_per_repository() {
    let (fake, arm, registry) = fake().await;
    fake.state.lock().unwrap().abac = true;
    fake.push("team/app", "v1");
    fake.push("team/other", "v1");
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let pull = azure_grant(PRINCIPAL_A, Permissions::Pull);
    let push = azure_grant(PRINCIPAL_B, Permissions::PushPull);
    reg.add_cross_account_access("team/app", &pull).await.unwrap();
    reg.add_cross_account_access("team/other", &push).await.unwrap();
    reg.add_cross_account_access("team/other", &pull).await.unwrap();

    let requests = arm.received_requests().await.unwrap();
    let puts = puts(&arm).await;
    assert_eq!(puts.len(), 3);
    let name = repository_assignment_name(&registry_id(), REPOSITORY_READER_ROLE, PRINCIPAL_A, "team/app");
    assert!(puts[0].url.path().ends_with(&format!("/roleAssignments/{name}")), "{}", puts[0].url.path());
    let props = |r: &Request| json_body(r)["properties"].clone();
    assert!(props(&puts[0])["roleDefinitionId"].as_str().unwrap().ends_with(REPOSITORY_READER_ROLE));
    assert!(props(&puts[1])["roleDefinitionId"].as_str().unwrap().ends_with(REPOSITORY_WRITER_ROLE));
    let condition = props(&puts[0])["condition"].as_str().unwrap().to_owned();
    assert!(
        condition.contains(
            "@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase 'team/app'"
        ),
        "{condition}"
    );
    assert!(condition.contains("ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/content/read'}"));
    assert_eq!(props(&puts[0])["conditionVersion"], "2.0");
    assert!(props(&puts[1])["condition"].as_str().unwrap().contains("repositories/content/write"));
    assert_ne!(puts[0].url.path(), puts[2].url.path(), "the same principal and role, another repository");
    // The mode was read once, from the registry resource, and kept.
    let mode_reads = requests.iter().filter(|r| r.method.as_str() == "GET" && r.url.path() == registry_id()).count();
    assert_eq!(mode_reads, 1);

    // A legacy grant left over from before the switch to ABAC: ineffective, so not reported.
    let legacy = Assignment {
        principal: "3f2504e0-4f89-41d3-9a0c-0305e82c3301".into(),
        principal_type: "User".into(),
        role: format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ACR_PULL_ROLE}"),
        condition: None,
    };
    fake.state.lock().unwrap().assignments.insert("legacy".into(), legacy);
    let app = reg.get_cross_account_access("team/app").await.unwrap();
    assert_eq!(app, vec![pull.clone()]);
    let other = reg.get_cross_account_access("team/other").await.unwrap();
    assert_eq!(other, vec![pull.clone(), push.clone()]);

    // Removing from one repository leaves the other repository's grant of the same principal.
    reg.remove_cross_account_access("team/other", &pull).await.unwrap();
    assert_eq!(reg.get_cross_account_access("team/app").await.unwrap(), vec![pull.clone()]);
    assert_eq!(reg.get_cross_account_access("team/other").await.unwrap(), vec![push]);
}

/// `principalType` goes with every assignment; `PrincipalNotFound` (a principal Entra ID has not
/// replicated yet) is retried with backoff for a bounded time; a wrong guess of the type is corrected
/// with the type ARM names.
#[tokio::test]
async fn role_assignments_carry_the_principal_type_and_wait_for_new_principals() {
    let (fake, arm, registry) = fake().await;
    fake.push("team/app", "v1");
    {
        let mut state = fake.state.lock().unwrap();
        state.principal_types.insert(PRINCIPAL_A.into(), "ServicePrincipal".into());
        state.principal_types.insert(PRINCIPAL_B.into(), "Group".into());
        state.replicating = 2;
    }
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let kubelet = CrossAccountPermissions {
        access: CrossAccountAccess::Azure {
            principal_ids: [PRINCIPAL_A.to_owned()].into(),
            tenant_id: None,
            allowed_service_types: [regbridge::ComputeServiceType::Kubernetes].into(),
        },
        permissions: Permissions::Pull,
    };
    reg.add_cross_account_access("team/app", &kubelet).await.unwrap();
    let puts = |requests: Vec<Request>| -> Vec<Value> {
        requests.iter().filter(|r| r.method.as_str() == "PUT").map(|r| json_body(r)["properties"].clone()).collect()
    };
    let sent = puts(arm.received_requests().await.unwrap());
    assert_eq!(sent.len(), 3, "two PrincipalNotFound answers, then the assignment");
    assert!(sent.iter().all(|p| p["principalType"] == "ServicePrincipal"), "{sent:?}");

    // A grant that does not say what its principal is: the documented default (User), then the type ARM
    // names in UnmatchedPrincipalType.
    let group = azure_grant(PRINCIPAL_B, Permissions::PushPull);
    reg.add_cross_account_access("team/app", &group).await.unwrap();
    let sent = puts(arm.received_requests().await.unwrap());
    let types: Vec<&str> = sent[3..].iter().map(|p| p["principalType"].as_str().unwrap()).collect();
    assert_eq!(types, ["User", "Group"]);
    assert_eq!(fake.state.lock().unwrap().assignments.len(), 2);

    // A principal that never appears: given up after the configured wait, naming the principal.
    fake.state.lock().unwrap().replicating = u32::MAX;
    let reg = builder(&arm.uri(), &registry.uri()).with_principal_wait(Duration::from_millis(200)).build().unwrap();
    let ghost = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    let grant = azure_grant(ghost, Permissions::Pull);
    let started = Instant::now();
    let err = reg.add_cross_account_access("team/app", &grant).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("PrincipalNotFound") && text.contains(ghost), "{text}");
}

/// The SKU's token quota: ARM's `QuotaExceeded` becomes a server-side error naming the quota, the limit
/// and the fix.
#[tokio::test]
async fn a_full_token_quota_names_the_limit_and_the_fix() {
    let (fake, arm, registry) = fake().await;
    fake.state.lock().unwrap().token_quota = Some(1);
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    reg.generate_credentials("team/app", Permissions::Pull, Duration::from_secs(600)).await.unwrap();
    let err = reg.generate_credentials("team/app", Permissions::PushPull, Duration::from_secs(600)).await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: Some(409), .. }), "{err:?}");
    assert_eq!(err.status(), 502, "a full registry is not the client's mistake");
    let text = err.to_string();
    for part in ["quota of tokens", "Basic SKU allows 100 tokens", "cleanup_expired_tokens", "higher SKU"] {
        assert!(text.contains(part), "{part}: {text}");
    }
}

/// Cleanup deletes regbridge's tokens whose passwords have all expired, and their scope maps when no other
/// token uses them; everything else stays.
#[tokio::test]
async fn cleanup_deletes_only_expired_regbridge_tokens() {
    let (fake, arm, registry) = fake().await;
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let ttl = Duration::from_secs(600);
    for repo in ["team/old", "team/shared", "team/live"] {
        reg.generate_credentials(repo, Permissions::Pull, ttl).await.unwrap();
    }
    let (old, shared, live) = (
        resource_name("team/old", Permissions::Pull),
        resource_name("team/shared", Permissions::Pull),
        resource_name("team/live", Permissions::Pull),
    );
    let past = Utc::now() - chrono::TimeDelta::hours(2);
    {
        let mut state = fake.state.lock().unwrap();
        for name in [&old, &shared] {
            for password in state.tokens.get_mut(name).unwrap().passwords.values_mut() {
                password.2 = past;
            }
        }
        // Someone else's token, expired, and another one on regbridge's scope map of team/shared.
        let expired = |map: &str| Token {
            scope_map: format!("{}/scopeMaps/{map}", registry_id()),
            created: past,
            passwords: [("password1".to_owned(), ("x".to_owned(), past, past))].into(),
        };
        state.scope_maps.insert("ci-map".into(), vec![]);
        state.tokens.insert("ci-token".into(), expired("ci-map"));
        state.tokens.insert("borrower".into(), Token { passwords: BTreeMap::new(), ..expired(&shared) });
    }
    let report = reg.cleanup_expired_tokens().await.unwrap();
    let mut deleted = report.tokens_deleted.clone();
    deleted.sort();
    let mut want = vec![old.clone(), shared.clone()];
    want.sort();
    assert_eq!(
        (deleted, report.scope_maps_deleted.clone(), report.scope_maps_kept.clone(), report.tokens_kept),
        (want, vec![old.clone()], vec![shared.clone()], 1),
        "{report:?}"
    );
    {
        let state = fake.state.lock().unwrap();
        assert!(state.tokens.contains_key(&live) && state.tokens.contains_key("ci-token"));
        assert!(state.scope_maps.contains_key(&shared) && state.scope_maps.contains_key("ci-map"));
        assert!(!state.scope_maps.contains_key(&old));
    }
    // The listing spanned two pages.
    let requests = arm.received_requests().await.unwrap();
    let pages = requests.iter().filter(|r| r.url.path() == format!("{}/tokens", registry_id())).count();
    assert_eq!(pages, 2);
    assert_eq!(
        reg.cleanup_expired_tokens().await.unwrap(),
        CleanupReport { tokens_kept: 1, ..CleanupReport::default() }
    );
}

#[tokio::test]
async fn manifests_are_read_through_the_bearer_challenge() {
    let (fake, arm, registry) = fake().await;
    let manifest = fake.push("team/app", "v1");
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();
    let got = reg.get_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap();
    assert_eq!(got.bytes, manifest);
    assert_eq!(got.media_type, OCI_MANIFEST);
    let head = reg.head_manifest("team/app", &Reference::parse("v1").unwrap()).await.unwrap().unwrap();
    assert_eq!(head.digest, got.digest);
    assert!(reg.head_manifest("team/app", &Reference::parse("nope").unwrap()).await.unwrap().is_none());
    assert_eq!(reg.generate_blob_download_url("team/app", &got.digest, Duration::from_secs(60)).await.unwrap(), None);
    // The /v2/ token came from the challenge's realm with the caller's refresh token (Basic, null GUID).
    let requests = registry.received_requests().await.unwrap();
    let token_get = requests.iter().find(|r| r.url.path() == "/oauth2/token" && r.method.as_str() == "GET").unwrap();
    assert_eq!(basic(token_get).unwrap(), (NULL_GUID_USER.to_owned(), "ACRREFRESHTOKENVALUE".to_owned()));
    assert_eq!(query(token_get, "scope").as_deref(), Some("repository:team/app:pull"));
}

#[test]
fn secrets_never_print() {
    let reg = builder("http://127.0.0.1:9", "http://127.0.0.1:9").build().unwrap();
    let text = format!("{reg:?} {reg}");
    assert!(!text.contains(AAD_TOKEN), "{text}");
    assert_eq!(reg.to_string(), "Acr(regbridgetest)");
}

/// The token exchange of the data plane, answered with the recorded bodies.
async fn mount_data_plane_tokens(registry: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/oauth2/exchange"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("exchange.json")))
        .mount(registry)
        .await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("access-token.json")))
        .mount(registry)
        .await;
}

#[tokio::test]
async fn repositories_are_listed_from_the_catalog_following_its_link_header() {
    let arm = MockServer::start().await;
    let registry = MockServer::start().await;
    mount_data_plane_tokens(&registry).await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/_catalog"))
        .and(query_param("last", "team/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("catalog-page2.json")))
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/_catalog"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("catalog-page1.json"))
                .insert_header("Link", r#"</acr/v1/_catalog?last=team%2Fapp&n=2&orderby=>; rel="next""#),
        )
        .with_priority(10)
        .mount(&registry)
        .await;
    let reg = builder(&arm.uri(), &registry.uri()).build().unwrap();

    let mut names = Vec::new();
    let mut page = regbridge::Page::first(Some(2));
    for pages in 1.. {
        let found = reg.list_repositories(None, page.clone()).await.unwrap();
        assert!(found.repositories.iter().all(|r| r.uri == format!("{}/{}", registry.address(), r.name)));
        names.extend(found.repositories.into_iter().map(|r| r.name));
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
        assert!(pages < 5, "pagination does not end");
    }
    assert_eq!(names, ["other/x", "team/app", "team/worker", "tools/lint"]);
    let requests = registry.received_requests().await.unwrap();
    let catalog: Vec<&Request> = requests.iter().filter(|r| r.url.path() == "/acr/v1/_catalog").collect();
    assert_eq!(catalog.len(), 2);
    assert_eq!((query(catalog[0], "n"), query(catalog[0], "last")), (Some("2".into()), None));
    assert_eq!((query(catalog[1], "n"), query(catalog[1], "last")), (Some("2".into()), Some("team/app".into())));
    assert!(catalog.iter().all(|r| bearer(r).as_deref() == Some("ACRACCESSTOKENVALUE")));
    let scopes: Vec<String> =
        requests.iter().filter(|r| r.url.path() == "/oauth2/token").map(|r| form(r)["scope"].clone()).collect();
    assert!(scopes.iter().all(|s| s == "registry:catalog:*"), "{scopes:?}");
    assert!(arm.received_requests().await.unwrap().is_empty(), "the catalog is the data plane's, not ARM's");

    // A prefix filters each page; a registry prefix keeps the rest of the registry out.
    let team = reg.list_repositories(Some("team/"), regbridge::Page::first(Some(2))).await.unwrap();
    assert_eq!(team.repositories.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["team/app"]);
    assert_eq!(team.next.as_deref(), Some("team/app"), "the next page may hold more of team/");
    let prefixed = builder(&arm.uri(), &registry.uri()).with_prefix("team").build().unwrap();
    let mut names = Vec::new();
    let mut page = regbridge::Page::default();
    for _ in 0..5 {
        let found = prefixed.list_repositories(None, page.clone()).await.unwrap();
        names.extend(found.repositories.into_iter().map(|r| r.name));
        match found.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    assert_eq!(names, ["team/app", "team/worker"]);
}

#[tokio::test]
async fn an_empty_or_refused_catalog_says_so() {
    let arm = MockServer::start().await;
    let empty = MockServer::start().await;
    mount_data_plane_tokens(&empty).await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/_catalog"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("catalog-empty.json")))
        .mount(&empty)
        .await;
    let reg = builder(&arm.uri(), &empty.uri()).build().unwrap();
    let page = reg.list_repositories(None, regbridge::Page::default()).await.unwrap();
    assert!(page.repositories.is_empty() && page.next.is_none(), "{page:?}");
    let asked = empty.received_requests().await.unwrap();
    let catalog = asked.iter().find(|r| r.url.path() == "/acr/v1/_catalog").unwrap();
    assert_eq!(query(catalog, "n").as_deref(), Some("1000"), "the page size is bounded");

    let refused = MockServer::start().await;
    mount_data_plane_tokens(&refused).await;
    Mock::given(method("GET"))
        .and(path("/acr/v1/_catalog"))
        .respond_with(ResponseTemplate::new(403).set_body_json(fixture("error-catalog-denied.json")))
        .mount(&refused)
        .await;
    let reg = builder(&arm.uri(), &refused.uri()).build().unwrap();
    let err = reg.list_repositories(None, regbridge::Page::default()).await.unwrap_err();
    assert!(matches!(err, Error::Denied { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("Catalog Lister") && !text.contains("ACRACCESSTOKENVALUE"), "{text}");
}
