//! [`AcrRegistryBuilder`]: ACR settings from the environment or `with_*` calls, validated at `build()`, and
//! the choice of Entra ID credential ([`AzureIdentity`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use azure_identity::{
    ClientSecretCredential, DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential,
};
use regbridge::{Error, Result, Secret};
use url::Url;

use super::AcrRegistry;
use super::access::Access;
use super::arm::{ARM_SCOPE, Arm, DATA_PLANE_SCOPE, DEFAULT_ARM_URL, PROVIDER};
use super::data_plane::{AadLogin, DataPlane};
use crate::http::{Backoff, ClientOptions, RestClient, UpstreamClient};

/// How long a role assignment for a principal ARM cannot find yet is retried by default: Entra ID
/// replicates a new service principal or managed identity within about a minute.
pub const DEFAULT_PRINCIPAL_WAIT: Duration = Duration::from_secs(60);

/// How the provider authenticates to Entra ID: tokens for ARM and, separately, for ACR's data plane (the
/// token exchange), each for its own scope.
#[derive(Clone, Default)]
pub enum AzureIdentity {
    /// A service principal when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are all set,
    /// else workload identity when `AZURE_FEDERATED_TOKEN_FILE` is set (AKS), else the managed identity
    /// (user-assigned when `AZURE_CLIENT_ID` is set).
    #[default]
    Auto,
    /// A service principal with a client secret (`ClientSecretCredential`).
    ServicePrincipal {
        /// The tenant (directory) id.
        tenant_id: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
    },
    /// The managed identity of the VM, App Service, Container App, ... (`ManagedIdentityCredential`):
    /// system-assigned, or the user-assigned one with this client id.
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// Entra Workload ID on Kubernetes (`WorkloadIdentityCredential`), from `AZURE_TENANT_ID`,
    /// `AZURE_CLIENT_ID` and `AZURE_FEDERATED_TOKEN_FILE` as the AKS webhook sets them.
    WorkloadIdentity,
    /// The developer's `az login` or `azd auth login` (`DeveloperToolsCredential`).
    DeveloperTools,
    /// An ARM access token obtained elsewhere (`az account get-access-token`), used as it is and never
    /// refreshed: for CI jobs and tests. It is taken to be valid for an hour. It is also what the data plane
    /// exchanges, so registries that refuse ARM-audience tokens need another identity.
    AccessToken(Secret),
    /// Any `azure_core` credential (tests inject fakes; callers may bring their own, e.g. a certificate one).
    Credential(Arc<dyn TokenCredential>),
}

impl fmt::Debug for AzureIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureIdentity::Auto => f.write_str("Auto"),
            AzureIdentity::ServicePrincipal { tenant_id, client_id, .. } => f
                .debug_struct("ServicePrincipal")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            AzureIdentity::ManagedIdentity { client_id } => {
                f.debug_struct("ManagedIdentity").field("client_id", client_id).finish()
            }
            AzureIdentity::WorkloadIdentity => f.write_str("WorkloadIdentity"),
            AzureIdentity::DeveloperTools => f.write_str("DeveloperTools"),
            AzureIdentity::AccessToken(_) => f.write_str("AccessToken(<redacted>)"),
            AzureIdentity::Credential(c) => f.debug_tuple("Credential").field(c).finish(),
        }
    }
}

/// A fixed token ([`AzureIdentity::AccessToken`]).
struct StaticToken(Secret);

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(<redacted>)")
    }
}

#[async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions<'_>>) -> azure_core::Result<AccessToken> {
        let expires = azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(self.0.expose().to_owned(), expires))
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn azure_error(what: &str, e: azure_core::Error) -> Error {
    Error::bad_input(format!("could not set up the {what} credential: {e}"))
}

impl AzureIdentity {
    fn credential(self) -> Result<Arc<dyn TokenCredential>> {
        Ok(match self {
            AzureIdentity::Auto => match (env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"), env("AZURE_CLIENT_SECRET")) {
                (Some(tenant_id), Some(client_id), Some(secret)) => {
                    AzureIdentity::ServicePrincipal { tenant_id, client_id, client_secret: Secret::new(secret) }
                        .credential()?
                }
                (_, client_id, _) => AzureIdentity::ManagedIdentity { client_id }.credential()?,
            },
            AzureIdentity::ServicePrincipal { tenant_id, client_id, client_secret } => ClientSecretCredential::new(
                &tenant_id,
                client_id,
                azure_core::credentials::Secret::new(client_secret.expose().to_owned()),
                None,
            )
            .map_err(|e| azure_error("service principal", e))?,
            AzureIdentity::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.map(UserAssignedId::ClientId),
                    ..Default::default()
                };
                ManagedIdentityCredential::new(Some(options)).map_err(|e| azure_error("managed identity", e))?
            }
            AzureIdentity::WorkloadIdentity => {
                WorkloadIdentityCredential::new(None).map_err(|e| azure_error("workload identity", e))?
            }
            AzureIdentity::DeveloperTools => {
                DeveloperToolsCredential::new(None).map_err(|e| azure_error("developer tools", e))?
            }
            AzureIdentity::AccessToken(token) => Arc::new(StaticToken(token)),
            AzureIdentity::Credential(c) => c,
        })
    }
}

/// Builds an [`AcrRegistry`].
///
/// Required: the subscription id, resource group and registry name (from [`from_env`](Self::from_env) or
/// `with_*`). The registry endpoint defaults to `https://{registry}.azurecr.io` and ARM to
/// `https://management.azure.com`; both can be overridden (sovereign clouds, tests).
#[derive(Clone, Default)]
pub struct AcrRegistryBuilder {
    subscription_id: Option<String>,
    resource_group: Option<String>,
    registry: Option<String>,
    prefix: Option<String>,
    arm_url: Option<String>,
    arm_scope: Option<String>,
    data_plane_scope: Option<String>,
    registry_endpoint: Option<String>,
    identity: AzureIdentity,
    options: Option<ClientOptions>,
    backoff: Option<Backoff>,
    poll_interval: Option<Duration>,
    lro_timeout: Option<Duration>,
    principal_wait: Option<Duration>,
}

impl fmt::Debug for AcrRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrRegistryBuilder")
            .field("subscription_id", &self.subscription_id)
            .field("resource_group", &self.resource_group)
            .field("registry", &self.registry)
            .field("prefix", &self.prefix)
            .field("arm_url", &self.arm_url)
            .field("registry_endpoint", &self.registry_endpoint)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl AcrRegistryBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings from the environment: `REGBRIDGE_ACR_SUBSCRIPTION_ID` (else `AZURE_SUBSCRIPTION_ID`),
    /// `REGBRIDGE_ACR_RESOURCE_GROUP`, `REGBRIDGE_ACR_REGISTRY`, `REGBRIDGE_ACR_PREFIX`,
    /// `REGBRIDGE_ACR_ARM_URL` and `REGBRIDGE_ACR_REGISTRY_ENDPOINT`. The identity is
    /// [`AzureIdentity::Auto`], which reads the `AZURE_*` variables at `build()`.
    pub fn from_env() -> Self {
        Self {
            subscription_id: env("REGBRIDGE_ACR_SUBSCRIPTION_ID").or_else(|| env("AZURE_SUBSCRIPTION_ID")),
            resource_group: env("REGBRIDGE_ACR_RESOURCE_GROUP"),
            registry: env("REGBRIDGE_ACR_REGISTRY"),
            prefix: env("REGBRIDGE_ACR_PREFIX"),
            arm_url: env("REGBRIDGE_ACR_ARM_URL"),
            registry_endpoint: env("REGBRIDGE_ACR_REGISTRY_ENDPOINT"),
            ..Self::default()
        }
    }

    /// The subscription id holding the registry (a GUID).
    pub fn with_subscription_id(mut self, id: impl Into<String>) -> Self {
        self.subscription_id = Some(id.into());
        self
    }

    /// The resource group holding the registry.
    pub fn with_resource_group(mut self, group: impl Into<String>) -> Self {
        self.resource_group = Some(group.into());
        self
    }

    /// The registry's name (`myreg` of `myreg.azurecr.io`).
    pub fn with_registry(mut self, name: impl Into<String>) -> Self {
        self.registry = Some(name.into());
        self
    }

    /// A repository prefix (`team`, `team/sub`): routable names are `{prefix}/{logical}`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The Resource Manager URL (default `https://management.azure.com`; wiremock in tests).
    pub fn with_arm_url(mut self, url: impl Into<String>) -> Self {
        self.arm_url = Some(url.into());
        self
    }

    /// The Entra ID scope of ARM tokens (default `https://management.azure.com/.default`; sovereign clouds
    /// have their own, e.g. `https://management.chinacloudapi.cn/.default`).
    pub fn with_arm_scope(mut self, scope: impl Into<String>) -> Self {
        self.arm_scope = Some(scope.into());
        self
    }

    /// The Entra ID scope of the token exchanged at the registry's `/oauth2/exchange` (default
    /// `https://containerregistry.azure.net/.default`, the registry audience; sovereign clouds have their own,
    /// e.g. `https://containerregistry.azure.cn/.default`).
    pub fn with_data_plane_scope(mut self, scope: impl Into<String>) -> Self {
        self.data_plane_scope = Some(scope.into());
        self
    }

    /// The registry's data-plane URL (default `https://{registry}.azurecr.io`; wiremock in tests).
    pub fn with_registry_endpoint(mut self, url: impl Into<String>) -> Self {
        self.registry_endpoint = Some(url.into());
        self
    }

    /// How to authenticate (default [`AzureIdentity::Auto`]).
    pub fn with_identity(mut self, identity: AzureIdentity) -> Self {
        self.identity = identity;
        self
    }

    /// Authenticate with `credential` (any `azure_core` credential; tests inject fakes).
    pub fn with_credential(self, credential: Arc<dyn TokenCredential>) -> Self {
        self.with_identity(AzureIdentity::Credential(credential))
    }

    /// Timeouts and attempts of the HTTP calls (default [`ClientOptions::default`]).
    pub fn with_client_options(mut self, options: ClientOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The waits between retries (tests use short ones).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// How often a long-running ARM operation is polled when ARM gives no `Retry-After` (default 2 s), and
    /// how long it may take in all (default 2 min).
    pub fn with_polling(mut self, interval: Duration, timeout: Duration) -> Self {
        self.poll_interval = Some(interval);
        self.lro_timeout = Some(timeout);
        self
    }

    /// How long a role assignment is retried while ARM answers `PrincipalNotFound` for a principal Entra
    /// ID has not replicated yet (default [`DEFAULT_PRINCIPAL_WAIT`]; tests use short ones).
    pub fn with_principal_wait(mut self, wait: Duration) -> Self {
        self.principal_wait = Some(wait);
        self
    }

    /// A registry-wide login, as a docker credential helper hands out (`az acr login` does the same): the
    /// caller's ACR refresh token from the documented exchange of its Entra ID token at the registry's
    /// `/oauth2/exchange`, as Basic [`NULL_GUID_USER`](super::NULL_GUID_USER) / refresh token, expiring
    /// within the hour (never beyond the Entra ID token). It carries every data-plane permission of the
    /// identity on the registry: ACR has no narrower registry-wide login. Only the registry name (or
    /// [`with_registry_endpoint`](Self::with_registry_endpoint)), the identity and the data-plane scope are
    /// used; no ARM call is made.
    pub async fn registry_credentials(self) -> Result<regbridge::Credentials> {
        let endpoint = match (&self.registry_endpoint, &self.registry) {
            (Some(url), _) => check_url("registry endpoint", url)?,
            (None, Some(name)) if valid_registry(name) => {
                check_url("registry endpoint", &format!("https://{}.azurecr.io", name.to_ascii_lowercase()))?
            }
            (None, Some(name)) => {
                return Err(Error::bad_input(format!(
                    "ACR registry name {name:?} is not a registry name (5-50 letters and digits)"
                )));
            }
            (None, None) => {
                return Err(Error::bad_input("ACR registry is not set: call with_registry or with_registry_endpoint"));
            }
        };
        let options = self.options.unwrap_or_default();
        let backoff = self.backoff.unwrap_or_default();
        let rest = RestClient::new(PROVIDER, &options)?.with_backoff(backoff);
        // Only Entra ID tokens are asked of it: the ARM URL and polling settings go unused.
        let arm = Arc::new(Arm::new(
            rest.clone(),
            backoff,
            DEFAULT_ARM_URL,
            self.identity.credential()?,
            ARM_SCOPE.to_owned(),
            Duration::from_secs(2),
            Duration::from_secs(120),
        ));
        let scope = self.data_plane_scope.unwrap_or_else(|| DATA_PLANE_SCOPE.to_owned());
        let (password, lifetime) = DataPlane::new(&endpoint, rest, arm, scope).exchange().await?;
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or_default();
        Ok(regbridge::Credentials {
            auth_method: regbridge::AuthMethod::Basic,
            username: super::NULL_GUID_USER.to_owned(),
            password,
            expires_at: chrono::Utc::now() + lifetime,
        })
    }

    /// Validates the settings and sets up the credential (no network call is made).
    pub fn build(self) -> Result<AcrRegistry> {
        let required = |v: &Option<String>, what: &str, how: &str| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| Error::bad_input(format!("ACR {what} is not set: {how}")))
        };
        let subscription = required(
            &self.subscription_id,
            "subscription id",
            "call with_subscription_id or set AZURE_SUBSCRIPTION_ID",
        )?;
        if uuid::Uuid::try_parse(&subscription).is_err() {
            return Err(Error::bad_input(format!("ACR subscription id {subscription:?} is not a GUID")));
        }
        let resource_group = required(
            &self.resource_group,
            "resource group",
            "call with_resource_group or set REGBRIDGE_ACR_RESOURCE_GROUP",
        )?;
        if !valid_resource_group(&resource_group) {
            return Err(Error::bad_input(format!(
                "ACR resource group {resource_group:?} is not a resource group name (1-90 letters, digits, \
                 '-', '_', '.', '(', ')', not ending in '.')"
            )));
        }
        let registry = required(&self.registry, "registry name", "call with_registry or set REGBRIDGE_ACR_REGISTRY")?;
        if !valid_registry(&registry) {
            return Err(Error::bad_input(format!(
                "ACR registry name {registry:?} is not a registry name (5-50 letters and digits)"
            )));
        }
        let prefix = self.prefix.as_deref().unwrap_or_default().trim_matches('/').to_owned();
        if !prefix.is_empty() {
            regbridge::oci::RepositoryName::parse(&prefix)
                .map_err(|e| Error::bad_input(format!("ACR prefix {prefix:?} is not a valid repository path: {e}")))?;
        }
        let arm_url = check_url("ARM URL", self.arm_url.as_deref().unwrap_or(DEFAULT_ARM_URL))?;
        let default_endpoint = format!("https://{}.azurecr.io", registry.to_ascii_lowercase());
        let endpoint = check_url("registry endpoint", self.registry_endpoint.as_deref().unwrap_or(&default_endpoint))?;

        let options = self.options.unwrap_or_default();
        let backoff = self.backoff.unwrap_or_default();
        let rest = RestClient::new(PROVIDER, &options)?.with_backoff(backoff);
        let credential = self.identity.credential()?;
        let arm = Arc::new(Arm::new(
            rest.clone(),
            backoff,
            arm_url.as_str(),
            credential,
            self.arm_scope.unwrap_or_else(|| ARM_SCOPE.to_owned()),
            self.poll_interval.unwrap_or(Duration::from_secs(2)),
            self.lro_timeout.unwrap_or(Duration::from_secs(120)),
        ));
        let data_plane_scope = self.data_plane_scope.unwrap_or_else(|| DATA_PLANE_SCOPE.to_owned());
        let data = Arc::new(DataPlane::new(&endpoint, rest, arm.clone(), data_plane_scope));
        let v2 = UpstreamClient::new(
            endpoint.clone(),
            format!("Acr({registry})"),
            Arc::new(AadLogin(data.clone())),
            options,
        )?
        .with_backoff(backoff);
        let registry_id = format!(
            "/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.ContainerRegistry/registries/{registry}"
        );
        let access = Access {
            arm: arm.clone(),
            registry: registry.clone(),
            subscription,
            registry_id: registry_id.clone(),
            principal_wait: self.principal_wait.unwrap_or(DEFAULT_PRINCIPAL_WAIT),
            mode: std::sync::Mutex::new(None),
        };
        Ok(AcrRegistry {
            registry,
            registry_id,
            prefix,
            endpoint: endpoint.as_str().trim_end_matches('/').to_owned(),
            arm,
            access,
            data,
            v2,
        })
    }
}

/// ACR's rule: 5-50 alphanumerics.
pub(crate) fn valid_registry(name: &str) -> bool {
    (5..=50).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric())
}

fn valid_resource_group(name: &str) -> bool {
    (1..=90).contains(&name.len())
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

fn check_url(setting: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::bad_input(format!("ACR {setting} {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() || parsed.path() != "/" {
        return Err(Error::bad_input(format!(
            "ACR {setting} {url:?} must be an http or https URL with a host and no path"
        )));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> AcrRegistryBuilder {
        AcrRegistryBuilder::new()
            .with_subscription_id("00000000-0000-0000-0000-000000000001")
            .with_resource_group("rg")
            .with_registry("myreg")
            .with_identity(AzureIdentity::AccessToken(Secret::new("TOKENVALUE")))
    }

    #[test]
    fn build_names_the_bad_setting() {
        let err = |b: AcrRegistryBuilder| b.build().unwrap_err().to_string();
        assert!(err(AcrRegistryBuilder::new()).contains("subscription id is not set"));
        assert!(err(base().with_subscription_id("nope")).contains("not a GUID"));
        assert!(err(base().with_registry("my-reg")).contains("registry name"));
        assert!(err(base().with_resource_group("bad/group")).contains("resource group"));
        assert!(err(base().with_prefix("Bad Prefix")).contains("prefix"));
        assert!(err(base().with_arm_url("ftp://x")).contains("ARM URL"));
        let reg = base().with_prefix("team").build().unwrap();
        assert_eq!(regbridge::ArtifactRegistry::registry_endpoint(&reg), "https://myreg.azurecr.io");
        let dbg = format!("{reg:?} {reg} {:?}", base());
        assert!(!dbg.contains("TOKENVALUE"), "{dbg}");
        let sp = AzureIdentity::ServicePrincipal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("SPSECRET"),
        };
        assert!(!format!("{sp:?}").contains("SPSECRET"));
    }
}
