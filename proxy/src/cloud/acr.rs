//! Azure Container Registry routes: the `[routes.acr]` settings and the provider built from them.
//!
//! ```toml
//! [[routes]]
//! prefix = "azure"
//! provider = "acr"
//! upstream_prefix = "team"            # azure/app -> team/app in the registry
//!
//! [routes.acr]
//! subscription_id = "00000000-0000-0000-0000-000000000000"
//! resource_group = "registries"
//! registry_name = "myreg"             # myreg.azurecr.io
//! identity = "service_principal"      # auto (default), service_principal, managed_identity,
//!                                     # workload_identity, developer_tools or access_token
//! tenant_id = "11111111-1111-1111-1111-111111111111"
//! client_id = "22222222-2222-2222-2222-222222222222"
//! client_secret_env = "ACR_CLIENT_SECRET"
//! # arm_url = "https://management.azure.com"        # other clouds, tests
//! # arm_scope = "https://management.azure.com/.default"
//! # data_plane_scope = "https://containerregistry.azure.net/.default"  # the registry audience
//! # registry_endpoint = "https://myreg.azurecr.io"  # tests
//! ```
//!
//! `regbridge gc --cloud` deletes the tokens regbridge minted in each ACR route's registry whose passwords
//! have all expired, and their scope maps ([`cleanup_expired_tokens`]).

use std::sync::Arc;

use regbridge::{Error, Result, Secret};
use regbridge_providers::acr::{AcrRegistryBuilder, AzureIdentity, CleanupReport};
use serde::Deserialize;

use crate::config_file::RouteConfig;

/// Which Entra ID identity the route's provider uses for ARM and the registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    /// A service principal when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are set,
    /// else workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set, else the managed identity.
    #[default]
    Auto,
    /// `tenant_id`, `client_id` and `client_secret` (or `client_secret_env`).
    ServicePrincipal,
    /// The host's managed identity: system-assigned, or user-assigned with `client_id`.
    ManagedIdentity,
    /// Entra Workload ID on AKS (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity,
    /// `az login` / `azd auth login` of the user running the proxy.
    DeveloperTools,
    /// A fixed ARM access token, `access_token` or `access_token_env` (CI, tests; never refreshed).
    AccessToken,
}

/// The `[routes.acr]` table of a `provider = "acr"` route.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The subscription id holding the registry.
    pub subscription_id: Option<String>,
    /// The resource group holding the registry.
    pub resource_group: Option<String>,
    /// The registry's name (`myreg` of `myreg.azurecr.io`).
    pub registry_name: Option<String>,
    /// Resource Manager URL override (sovereign clouds, tests).
    pub arm_url: Option<String>,
    /// Entra ID scope of ARM tokens (sovereign clouds).
    pub arm_scope: Option<String>,
    /// Entra ID scope of the token exchanged for registry access (default the registry audience
    /// `https://containerregistry.azure.net/.default`; sovereign clouds have their own).
    pub data_plane_scope: Option<String>,
    /// Registry data-plane URL override (tests).
    pub registry_endpoint: Option<String>,
    /// How to authenticate.
    #[serde(default)]
    pub identity: Identity,
    /// service_principal: the tenant id.
    pub tenant_id: Option<String>,
    /// service_principal: the application id; managed_identity: a user-assigned identity's client id.
    pub client_id: Option<String>,
    /// service_principal: the client secret (the file is then a secret itself).
    pub client_secret: Option<Secret>,
    /// service_principal: the environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// access_token: the token.
    pub access_token: Option<Secret>,
    /// access_token: the environment variable holding the token.
    pub access_token_env: Option<String>,
}

impl Settings {
    /// A secret given inline or by environment variable (`what` names it in errors).
    fn secret(value: &Option<Secret>, var: &Option<String>, what: &str) -> Result<Secret> {
        match (value, var) {
            (Some(_), Some(_)) => Err(Error::bad_input(format!("[routes.acr]: give {what} or {what}_env, not both"))),
            (Some(v), None) => Ok(v.clone()),
            (None, Some(var)) => std::env::var(var)
                .map(Secret::new)
                .map_err(|_| Error::bad_input(format!("[routes.acr]: {what}_env names {var}, which is not set"))),
            (None, None) => Err(Error::bad_input(format!("[routes.acr]: this identity needs {what} or {what}_env"))),
        }
    }

    /// The identity these settings describe.
    pub fn identity(&self) -> Result<AzureIdentity> {
        Ok(match self.identity {
            Identity::Auto => AzureIdentity::Auto,
            Identity::ServicePrincipal => {
                let need = |v: &Option<String>, what: &str| {
                    v.clone().ok_or_else(|| Error::bad_input(format!("[routes.acr]: service_principal needs {what}")))
                };
                AzureIdentity::ServicePrincipal {
                    tenant_id: need(&self.tenant_id, "tenant_id")?,
                    client_id: need(&self.client_id, "client_id")?,
                    client_secret: Self::secret(&self.client_secret, &self.client_secret_env, "client_secret")?,
                }
            }
            Identity::ManagedIdentity => AzureIdentity::ManagedIdentity { client_id: self.client_id.clone() },
            Identity::WorkloadIdentity => AzureIdentity::WorkloadIdentity,
            Identity::DeveloperTools => AzureIdentity::DeveloperTools,
            Identity::AccessToken => {
                AzureIdentity::AccessToken(Self::secret(&self.access_token, &self.access_token_env, "access_token")?)
            }
        })
    }

    /// A provider builder with these settings; unset ones come from `REGBRIDGE_ACR_*` / `AZURE_*`.
    pub fn builder(&self, upstream_prefix: &str) -> Result<AcrRegistryBuilder> {
        let mut b = AcrRegistryBuilder::from_env().with_prefix(upstream_prefix).with_identity(self.identity()?);
        if let Some(v) = &self.subscription_id {
            b = b.with_subscription_id(v);
        }
        if let Some(v) = &self.resource_group {
            b = b.with_resource_group(v);
        }
        if let Some(v) = &self.registry_name {
            b = b.with_registry(v);
        }
        if let Some(v) = &self.arm_url {
            b = b.with_arm_url(v);
        }
        if let Some(v) = &self.arm_scope {
            b = b.with_arm_scope(v);
        }
        if let Some(v) = &self.data_plane_scope {
            b = b.with_data_plane_scope(v);
        }
        if let Some(v) = &self.registry_endpoint {
            b = b.with_registry_endpoint(v);
        }
        Ok(b)
    }
}

/// The provider of an `acr` route.
pub(super) async fn provider(r: &RouteConfig) -> Result<regbridge::DynArtifactRegistry> {
    let settings = r.acr.clone().unwrap_or_default();
    Ok(Arc::new(settings.builder(&r.upstream_prefix)?.build()?))
}

/// `regbridge gc --cloud` for an `acr` route: deletes the expired tokens regbridge minted in its registry.
pub async fn cleanup_expired_tokens(r: &RouteConfig) -> Result<CleanupReport> {
    let settings = r.acr.clone().unwrap_or_default();
    settings.builder(&r.upstream_prefix)?.build()?.cleanup_expired_tokens().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_file::FileConfig;

    const EXAMPLE: &str = r#"
[[routes]]
prefix = "azure"
provider = "acr"
upstream_prefix = "team"

[routes.acr]
subscription_id = "00000000-0000-0000-0000-000000000001"
resource_group = "registries"
registry_name = "myreg"
identity = "service_principal"
tenant_id = "11111111-1111-1111-1111-111111111111"
client_id = "22222222-2222-2222-2222-222222222222"
client_secret = "SPSECRETVALUE"
arm_url = "http://127.0.0.1:1"
data_plane_scope = "https://containerregistry.azure.cn/.default"
registry_endpoint = "http://127.0.0.1:2"
"#;

    #[tokio::test]
    async fn parses_an_acr_route() {
        let config = FileConfig::parse(EXAMPLE).unwrap();
        let route = &config.routes[0];
        let acr = route.acr.as_ref().unwrap();
        assert_eq!(acr.registry_name.as_deref(), Some("myreg"));
        assert_eq!(acr.identity, Identity::ServicePrincipal);
        assert_eq!(acr.data_plane_scope.as_deref(), Some("https://containerregistry.azure.cn/.default"));
        assert!(matches!(acr.identity().unwrap(), AzureIdentity::ServicePrincipal { .. }));
        assert!(!format!("{config:?}").contains("SPSECRETVALUE"));
        let provider = provider(route).await.unwrap();
        assert_eq!(provider.registry_endpoint(), "http://127.0.0.1:2");
        assert_eq!(provider.upstream_repository_prefix(), "team");
        assert_eq!(provider.to_string(), "Acr(myreg)");
    }

    #[test]
    fn bad_settings_are_named() {
        let err = FileConfig::parse("[[routes]]\nprovider = \"acr\"\n[routes.acr]\nregistry = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `registry`"), "{err}");
        let sp = Settings { identity: Identity::ServicePrincipal, ..Settings::default() };
        assert!(sp.identity().unwrap_err().to_string().contains("tenant_id"));
        let token = Settings { identity: Identity::AccessToken, ..Settings::default() };
        assert!(token.identity().unwrap_err().to_string().contains("access_token"));
        let parsed: Settings = toml::from_str("identity = \"managed_identity\"\nclient_id = \"c\"").unwrap();
        assert!(matches!(parsed.identity().unwrap(), AzureIdentity::ManagedIdentity { client_id: Some(_) }));
    }
}
