//! The ACR provider against a real Azure container registry: the trait's conformance suite with the
//! standard Azure credentials (a service principal from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
//! `AZURE_CLIENT_SECRET` when they are set, else `az login` / `azd auth login`).
//!
//! Runs when `REGBRIDGE_LIVE_ACR=subscription/resource_group/registry` is set (`cargo test -p
//! regbridge-providers --features live --test live_acr`), and prints why it was skipped otherwise. The
//! caller needs `Contributor` on the registry (scope maps, tokens, `generateCredentials`, reading the
//! registry's role-assignment mode) and the data-plane roles of the registry's mode for the metadata API
//! (legacy: `AcrPull` and `AcrDelete`; ABAC: "Container Registry Repository Reader" and "... Contributor").
//! With `REGBRIDGE_LIVE_ACR_PRINCIPALS=objectid1,objectid2` (two Entra ID object ids in the registry's
//! tenant) it also grants and revokes cross-account access, which needs `Role Based Access Control
//! Administrator` or `Owner` on the registry.
//!
//! ACR has no call to create an empty repository, so each repository the suite creates gets a tiny image
//! pushed (an empty config and manifest) with credentials minted for it. What it creates it removes: the
//! repositories (with their images), the tokens and scope maps minted for them, and the role assignments.
#![cfg(feature = "live")]

// tests/support/live.rs, shared by the live suites (no support/mod.rs: each suite names what it uses).
mod support {
    pub mod acr_first_push;
    pub mod live;
}

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use regbridge::conformance::{self, Capabilities, PushProbe};
use regbridge::oci::Digest;
use regbridge::{ArtifactRegistry, Credentials, CrossAccountAccess, CrossAccountPermissions, Permissions, Result};
use regbridge_providers::acr::{AcrRegistry, AzureIdentity, MAX_TTL, MIN_TTL};
use regbridge_providers::http::{ClientOptions, StaticCredentials, UpstreamClient};
use support::acr_first_push::{FirstPush, Pusher};
use support::live;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const EMPTY_CONFIG: &[u8] = b"{}";

/// A `/v2/` client of the registry logged in with `credentials`.
fn client(endpoint: &str, credentials: &Credentials) -> std::result::Result<UpstreamClient, String> {
    let login = StaticCredentials::new(credentials.username.clone(), credentials.password.clone());
    let url = url::Url::parse(endpoint).map_err(|e| e.to_string())?;
    UpstreamClient::new(url, "live-acr", Arc::new(login), ClientOptions::default()).map_err(|e| e.to_string())
}

fn scopes(repository: &str) -> Vec<regbridge::auth::Scope> {
    regbridge::auth::Scope::parse_list([format!("repository:{repository}:pull,push").as_str()])
}

/// Pushes the empty config blob and a manifest naming it as `repository:first`: the push that makes ACR
/// create the repository.
async fn push_first_image(
    endpoint: &str,
    repository: &str,
    credentials: &Credentials,
) -> std::result::Result<(), String> {
    let v2 = client(endpoint, credentials)?;
    let scopes = scopes(repository);
    let digest = Digest::sha256(EMPTY_CONFIG);
    let started = v2
        .send(Method::POST, &format!("/v2/{repository}/blobs/uploads/"), HeaderMap::new(), None, &scopes)
        .await
        .map_err(|e| e.to_string())?;
    let location = started
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| format!("starting an upload answered {} without Location", started.status()))?
        .to_owned();
    let separator = if location.contains('?') { '&' } else { '?' };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let put = v2
        .send_session(
            Method::PUT,
            &format!("{location}{separator}digest={digest}"),
            headers,
            Some(reqwest::Body::from(EMPTY_CONFIG)),
            &scopes,
        )
        .await
        .map_err(|e| e.to_string())?;
    if put.status() != StatusCode::CREATED {
        return Err(format!("committing the config blob answered {}", put.status()));
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.to_string(), "size": 2},
        "layers": [],
    });
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCI_MANIFEST));
    let body = reqwest::Body::from(serde_json::to_vec(&manifest).map_err(|e| e.to_string())?);
    let put = v2
        .send(Method::PUT, &format!("/v2/{repository}/manifests/first"), headers, Some(body), &scopes)
        .await
        .map_err(|e| e.to_string())?;
    match put.status() {
        StatusCode::CREATED => Ok(()),
        s => Err(format!("pushing the first manifest to {repository} answered {s}")),
    }
}

/// Tries a push by starting a blob upload with the credentials; the session is never committed.
struct UploadProbe(String);

#[async_trait]
impl PushProbe for UploadProbe {
    async fn can_push(&self, repository: &str, credentials: &Credentials) -> std::result::Result<bool, String> {
        let v2 = client(&self.0, credentials)?;
        let path = format!("/v2/{repository}/blobs/uploads/");
        match v2.send(Method::POST, &path, HeaderMap::new(), None, &scopes(repository)).await {
            Ok(r) if r.status() == StatusCode::ACCEPTED => Ok(true),
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Ok(false),
            Ok(r) => Err(format!("starting an upload to {repository} answered {}", r.status())),
            Err(regbridge::Error::Denied { .. } | regbridge::Error::Unauthenticated { .. }) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The live first push: an empty image, with push credentials minted for the repository.
struct MintAndPush;

#[async_trait]
impl Pusher for MintAndPush {
    async fn push(&self, registry: &AcrRegistry, repository: &str) -> Result<()> {
        let creds = registry.generate_credentials(repository, Permissions::PushPull, MIN_TTL).await?;
        push_first_image(&registry.registry_endpoint(), repository, &creds)
            .await
            .map_err(|e| regbridge::Error::bad_input(format!("first push to {repository}: {e}")))
    }
}

fn grant(principal: &str) -> CrossAccountPermissions {
    CrossAccountPermissions {
        access: CrossAccountAccess::Azure {
            principal_ids: [principal.to_owned()].into(),
            tenant_id: None,
            allowed_service_types: Default::default(),
        },
        permissions: Permissions::Pull,
    }
}

#[tokio::test]
async fn conformance_against_real_acr() {
    let Some(settings) = live::settings(
        "conformance_against_real_acr",
        "REGBRIDGE_LIVE_ACR",
        &["subscription", "resource_group", "registry"],
    ) else {
        return;
    };
    let principals: Vec<String> = live::optional("REGBRIDGE_LIVE_ACR_PRINCIPALS")
        .map(|p| p.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let identity = match live::optional("AZURE_CLIENT_SECRET") {
        Some(_) => AzureIdentity::Auto,
        None => AzureIdentity::DeveloperTools,
    };
    let inner = AcrRegistry::builder()
        .with_subscription_id(&settings[0])
        .with_resource_group(&settings[1])
        .with_registry(&settings[2])
        .with_identity(identity)
        .build()
        .expect("ACR settings");
    let endpoint = inner.registry_endpoint();
    let reg = FirstPush::new(inner, MintAndPush);

    let prefix = format!("{}-", live::run_prefix());
    let mut caps = Capabilities::new(&prefix);
    caps.ttl_bounds = (MIN_TTL, MAX_TTL);
    caps.push_probe = Some(Arc::new(UploadProbe(endpoint)));
    if let [a, b, ..] = principals.as_slice() {
        caps.grants = Some((grant(a), grant(b)));
    } else {
        eprintln!("live: cross-account checks skipped: REGBRIDGE_LIVE_ACR_PRINCIPALS names fewer than two object ids");
    }
    let outcome = conformance::run_all(&reg, &caps).await;

    // Clean up whatever the run left, even after a failure: grants, tokens and scope maps, repositories.
    let touched = reg.touched.lock().unwrap().clone();
    for repository in &touched {
        for principal in &principals {
            for permissions in [Permissions::Pull, Permissions::PushPull] {
                let g = CrossAccountPermissions { permissions, ..grant(principal) };
                if let Err(e) = reg.inner.remove_cross_account_access(repository, &g).await {
                    eprintln!("live: cleanup: revoking {principal} on {repository}: {e}");
                }
            }
        }
        if let Err(e) = reg.inner.cleanup_credentials(repository).await {
            eprintln!("live: cleanup: credentials of {repository}: {e}");
        }
        match reg.inner.delete_repository(repository).await {
            Ok(()) | Err(regbridge::Error::NotFound { .. }) => {}
            Err(e) => eprintln!("live: cleanup: deleting {repository}: {e}"),
        }
    }
    outcome.expect("conformance against a real ACR");
}
