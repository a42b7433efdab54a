//! The GAR provider against a real Artifact Registry: the trait's conformance suite with the caller's
//! Application Default Credentials (`gcloud auth application-default login`, or
//! `GOOGLE_APPLICATION_CREDENTIALS`).
//!
//! Runs when `REGBRIDGE_LIVE_GAR=project/location/repository` is set (`cargo test -p regbridge-providers
//! --features live --test live_gar`), and prints why it was skipped otherwise. With
//! `REGBRIDGE_LIVE_GAR_PULL_SA` and `REGBRIDGE_LIVE_GAR_PUSH_SA` (service account e-mails the caller holds
//! `roles/iam.serviceAccountTokenCreator` on; the pull account with `roles/artifactregistry.reader` on the
//! repository, the push account with `roles/artifactregistry.writer`) it also mints credentials, checks that
//! a pull token cannot start an upload and a push token can, and grants and revokes cross-account access to
//! those two accounts. Cross-account grants need `roles/artifactregistry.admin` (get/setIamPolicy).
//!
//! What it creates it removes: images are never pushed (GAR has none until a push), upload sessions it
//! starts are never committed, grants are revoked, and a GAR repository that did not exist before the run
//! is deleted after it.
#![cfg(feature = "live")]

// tests/support/live.rs, shared by the live suites (no support/mod.rs: each suite names what it uses).
mod support {
    pub mod live;
}

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use google_cloud_auth::credentials::{Builder, CacheableResource};
use http::{Extensions, HeaderMap, Method, StatusCode};
use regbridge::conformance::{self, Capabilities, PushProbe};
use regbridge::{ArtifactRegistry, Credentials, CrossAccountAccess, CrossAccountPermissions, Permissions};
use regbridge_providers::gar::{DEFAULT_API_ENDPOINT, GarRegistry};
use regbridge_providers::http::{ClientOptions, StaticCredentials, UpstreamClient};
use support::live;

/// Tries a push by starting a blob upload (`POST /v2/<name>/blobs/uploads/`) with the credentials,
/// through the registry's own challenge (GAR answers with a Bearer token flow). The session is never
/// committed: nothing is stored.
struct UploadProbe(url::Url);

#[async_trait]
impl PushProbe for UploadProbe {
    async fn can_push(&self, repository: &str, credentials: &Credentials) -> Result<bool, String> {
        let login = StaticCredentials::new(credentials.username.clone(), credentials.password.clone());
        let client = UpstreamClient::new(self.0.clone(), "live-gar-probe", Arc::new(login), ClientOptions::default())
            .map_err(|e| e.to_string())?;
        let scopes = regbridge::auth::Scope::parse_list([format!("repository:{repository}:pull,push").as_str()]);
        let path = format!("/v2/{repository}/blobs/uploads/");
        let response = client.send(Method::POST, &path, HeaderMap::new(), None, &scopes).await;
        match response {
            Ok(r) if r.status() == StatusCode::ACCEPTED => Ok(true),
            Ok(r) if matches!(r.status().as_u16(), 401 | 403) => Ok(false),
            Ok(r) => Err(format!("starting an upload to {repository} answered {}", r.status())),
            Err(regbridge::Error::Denied { .. } | regbridge::Error::Unauthenticated { .. }) => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn service_account_grant(email: &str) -> CrossAccountPermissions {
    CrossAccountPermissions {
        access: CrossAccountAccess::Gcp {
            project_numbers: Default::default(),
            allowed_service_types: Default::default(),
            service_account_emails: [email.to_owned()].into(),
        },
        permissions: Permissions::Pull,
    }
}

/// Whether `email` is already a member of the repository's unconditional reader binding.
fn already_granted(granted: &[CrossAccountPermissions], email: &str) -> bool {
    granted.iter().any(|g| match &g.access {
        CrossAccountAccess::Gcp { service_account_emails, .. } => service_account_emails.contains(email),
        _ => false,
    })
}

/// The Artifact Registry REST URL of the GAR repository `project/location/repository`, and the caller's
/// ADC bearer headers: for the suite's own check of whether the repository existed before the run.
async fn repository_url_and_headers(settings: &[String]) -> (String, HeaderMap) {
    let (project, location, repository) = (&settings[0], &settings[1], &settings[2]);
    let url = format!("{DEFAULT_API_ENDPOINT}/v1/projects/{project}/locations/{location}/repositories/{repository}");
    let credentials = Builder::default().build().expect("Application Default Credentials");
    let headers = match credentials.headers(Extensions::new()).await.expect("an ADC access token") {
        CacheableResource::New { data, .. } => data,
        CacheableResource::NotModified => panic!("ADC returned no headers"),
    };
    (url, headers)
}

#[tokio::test]
async fn conformance_against_real_gar() {
    let Some(settings) =
        live::settings("conformance_against_real_gar", "REGBRIDGE_LIVE_GAR", &["project", "location", "repository"])
    else {
        return;
    };
    let pull_sa = live::optional("REGBRIDGE_LIVE_GAR_PULL_SA");
    let push_sa = live::optional("REGBRIDGE_LIVE_GAR_PUSH_SA");
    let (url, headers) = repository_url_and_headers(&settings).await;
    let http = reqwest::Client::new();
    let before = http.get(&url).headers(headers.clone()).send().await.expect("reach Artifact Registry");
    let existed = match before.status() {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        s => panic!("reading {url} answered {s}: {}", before.text().await.unwrap_or_default()),
    };

    let mut builder =
        GarRegistry::builder().with_project(&settings[0]).with_location(&settings[1]).with_repository(&settings[2]);
    if let Some(sa) = &pull_sa {
        builder = builder.with_pull_service_account(sa);
    }
    if let Some(sa) = &push_sa {
        builder = builder.with_push_service_account(sa);
    }
    let reg = builder.build().expect("GAR settings");
    let prefix = format!("{}-", live::run_prefix());
    let mut caps = Capabilities::new(&prefix);
    caps.ttl_bounds = (Duration::from_secs(1), Duration::from_secs(3600));
    let outcome = match (&pull_sa, &push_sa) {
        (Some(pull), Some(push)) => {
            caps.push_probe =
                Some(Arc::new(UploadProbe(url::Url::parse(&reg.registry_endpoint()).expect("registry URL"))));
            // A grant the accounts already have is someone else's: the suite would revoke it at the end.
            let probe = reg.create_repository(&format!("{prefix}grants")).await.expect("create_repository");
            let granted = reg.get_cross_account_access(&probe.name).await.expect("read the IAM policy");
            if already_granted(&granted, pull) || already_granted(&granted, push) {
                eprintln!("live: cross-account checks skipped: {pull} or {push} is already a reader of the repository");
            } else {
                caps.grants = Some((service_account_grant(pull), service_account_grant(push)));
            }
            let outcome = conformance::run_all(&reg, &caps).await;
            if let Some((a, b)) = &caps.grants {
                // After a failure midway, revoke what may be left (a no-op when nothing is).
                for grant in [a, b] {
                    if let Err(e) = reg.remove_cross_account_access(&probe.name, grant).await {
                        eprintln!("live: could not revoke {grant:?}: {e}");
                    }
                }
            }
            reg.delete_repository(&probe.name).await.expect("forget the grants image");
            outcome
        }
        _ => {
            eprintln!(
                "live: credential and cross-account checks skipped: set REGBRIDGE_LIVE_GAR_PULL_SA and \
                 REGBRIDGE_LIVE_GAR_PUSH_SA to run them"
            );
            let outcome = conformance::create_is_idempotent(&reg, &caps).await;
            match outcome {
                Ok(()) => conformance::missing_repositories_are_not_found(&reg, &caps).await,
                e => e,
            }
        }
    };

    if !existed {
        let deleted = http.delete(&url).headers(headers).send().await.expect("reach Artifact Registry");
        // The answer is the long-running operation of the deletion; it completes on its own.
        eprintln!("live: deleting {url}, which the run created: {}", deleted.status());
    }
    outcome.unwrap();
}
