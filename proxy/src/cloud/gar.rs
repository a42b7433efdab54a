//! Google Artifact Registry routes: the `[routes.gar]` settings and the provider built from them.
//!
//! ```toml
//! [[routes]]
//! prefix = "gcp"                # clients push and pull gcp/<name>
//! provider = "gar"              # upstream: {location}-docker.pkg.dev/{project}/{repository}/<name>
//!
//! [routes.gar]
//! project = "my-project"
//! location = "europe-west1"
//! repository = "images"         # a DOCKER repository, created when missing
//! pull_service_account = "regbridge-pull@my-project.iam.gserviceaccount.com"
//! push_service_account = "regbridge-push@my-project.iam.gserviceaccount.com"
//! # operation_timeout_secs = 120
//! # api_endpoint = "...", iam_credentials_endpoint = "...", registry_endpoint = "..."  (overrides, tests)
//! ```
//!
//! Settings left out come from the `REGBRIDGE_GAR_*` environment variables; the server's own Google
//! credentials are Application Default Credentials.

use std::time::Duration;

use regbridge::{Error, Result};
use regbridge_providers::gar::GarRegistryBuilder;
use serde::Deserialize;

use crate::config_file::RouteConfig;

/// The `[routes.gar]` table of a `provider = "gar"` route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The project id owning the repository.
    pub project: Option<String>,
    /// The repository's location (`europe-west1`, `us`).
    pub location: Option<String>,
    /// The GAR repository id; created as a `DOCKER` repository when missing.
    pub repository: Option<String>,
    /// The service account whose tokens pull.
    pub pull_service_account: Option<String>,
    /// The service account whose tokens push.
    pub push_service_account: Option<String>,
    /// Override of the Artifact Registry API URL.
    pub api_endpoint: Option<String>,
    /// Override of the IAM Credentials API URL.
    pub iam_credentials_endpoint: Option<String>,
    /// Override of the registry URL (default `https://{location}-docker.pkg.dev`).
    pub registry_endpoint: Option<String>,
    /// How long repository creation and image deletion are waited for (default 120).
    pub operation_timeout_secs: Option<u64>,
}

/// The builder for a route's settings, over the `REGBRIDGE_GAR_*` environment.
fn builder(r: &RouteConfig) -> Result<GarRegistryBuilder> {
    // Settings of other providers would be silently ignored here; say where GAR's go instead.
    let foreign = [
        ("registry", r.registry.is_some(), "registry_endpoint in [routes.gar]"),
        ("endpoint", r.endpoint.is_some(), "api_endpoint in [routes.gar]"),
        ("username", r.username.is_some(), "pull/push_service_account in [routes.gar]"),
        ("password", r.password.is_some() || r.password_env.is_some(), "Application Default Credentials"),
        ("region", r.region.is_some(), "location in [routes.gar]"),
        ("account", r.account.is_some(), "project in [routes.gar]"),
        ("pull_role_arn", r.pull_role_arn.is_some(), "pull_service_account in [routes.gar]"),
        ("push_role_arn", r.push_role_arn.is_some(), "push_service_account in [routes.gar]"),
        ("upstream_prefix", !r.upstream_prefix.is_empty(), "project and repository in [routes.gar]"),
    ];
    if let Some((key, _, instead)) = foreign.iter().find(|(_, set, _)| *set) {
        return Err(Error::bad_input(format!("`{key}` does not apply to gar routes; use {instead}")));
    }
    let s = r.gar.clone().unwrap_or_default();
    let mut b = GarRegistryBuilder::from_env();
    if let Some(v) = s.project {
        b = b.with_project(v);
    }
    if let Some(v) = s.location {
        b = b.with_location(v);
    }
    if let Some(v) = s.repository {
        b = b.with_repository(v);
    }
    if let Some(v) = s.pull_service_account {
        b = b.with_pull_service_account(v);
    }
    if let Some(v) = s.push_service_account {
        b = b.with_push_service_account(v);
    }
    if let Some(v) = s.api_endpoint {
        b = b.with_api_endpoint(v);
    }
    if let Some(v) = s.iam_credentials_endpoint {
        b = b.with_iam_credentials_endpoint(v);
    }
    if let Some(v) = s.registry_endpoint {
        b = b.with_registry_endpoint(v);
    }
    if let Some(secs) = s.operation_timeout_secs {
        b = b.with_operation_timeout(Duration::from_secs(secs.max(1)));
    }
    Ok(b)
}

/// The provider of a `gar` route.
pub(super) async fn provider(r: &RouteConfig) -> Result<regbridge::DynArtifactRegistry> {
    Ok(std::sync::Arc::new(builder(r)?.build()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::FileConfig;

    const EXAMPLE: &str = r#"
[[routes]]
prefix = "gcp"
provider = "gar"

[routes.gar]
project = "my-project"
location = "europe-west1"
repository = "images"
pull_service_account = "regbridge-pull@my-project.iam.gserviceaccount.com"
push_service_account = "regbridge-push@my-project.iam.gserviceaccount.com"
registry_endpoint = "http://127.0.0.1:5001"
operation_timeout_secs = 30
"#;

    #[test]
    fn parses_a_gar_route() {
        let config = FileConfig::parse(EXAMPLE).unwrap();
        let route = &config.routes[0];
        assert_eq!((route.prefix.as_str(), route.provider.as_str()), ("gcp", "gar"));
        let gar = route.gar.as_ref().unwrap();
        assert_eq!(gar.project.as_deref(), Some("my-project"));
        assert_eq!(gar.location.as_deref(), Some("europe-west1"));
        assert_eq!(gar.repository.as_deref(), Some("images"));
        assert_eq!(gar.pull_service_account.as_deref(), Some("regbridge-pull@my-project.iam.gserviceaccount.com"));
        assert_eq!(gar.push_service_account.as_deref(), Some("regbridge-push@my-project.iam.gserviceaccount.com"));
        assert_eq!(gar.registry_endpoint.as_deref(), Some("http://127.0.0.1:5001"));
        assert_eq!(gar.operation_timeout_secs, Some(30));
        let dbg = format!("{:?}", builder(route).unwrap());
        assert!(dbg.contains("my-project") && dbg.contains("europe-west1"), "{dbg}");

        let typo = EXAMPLE.replace("repository = ", "repo = ");
        assert!(FileConfig::parse(&typo).unwrap_err().to_string().contains("unknown field `repo`"));
        let foreign = EXAMPLE.replace("provider = \"gar\"", "provider = \"gar\"\nregion = \"us-east-1\"");
        let err = builder(&FileConfig::parse(&foreign).unwrap().routes[0]).unwrap_err().to_string();
        assert!(err.contains("`region`") && err.contains("location"), "{err}");
    }
}
