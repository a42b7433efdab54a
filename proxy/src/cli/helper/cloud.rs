//! Registry-wide logins for cloud hosts, minted by the providers' own credential code:
//!
//! - **ECR**: `GetAuthorizationToken` with the ambient AWS credentials, or in a session of `role_arn`
//!   ([`EcrRegistry::registry_credentials`](regbridge_providers::ecr::EcrRegistry::registry_credentials)).
//!   Pull-only: the role's session is limited to pulls by a session policy; without a role it is refused.
//! - **GAR**: an access token of the caller (Application Default Credentials) or of `service_account`
//!   ([`GarRegistryBuilder::registry_credentials`](regbridge_providers::gar::GarRegistryBuilder::registry_credentials)).
//!   Pull-only: a token of `pull_service_account`; without one it is refused.
//! - **ACR**: the refresh token of the `/oauth2/exchange` of the identity's Entra ID token
//!   ([`AcrRegistryBuilder::registry_credentials`](regbridge_providers::acr::AcrRegistryBuilder::registry_credentials)).
//!   Pull-only is refused: the refresh token carries every permission of the identity.
//!
//! A refused pull-only request is an error naming what to configure instead: a login that can push is never
//! handed out when pull-only was asked.

use std::time::Duration;

use chrono::Utc;
use regbridge::{Error, Permissions, Result};

use super::cache::Entry;
use crate::config_file::HelperHost;

/// The user names each cloud's registry expects, for `list`.
pub fn username(provider: &str) -> &'static str {
    match provider {
        "ecr" => "AWS",
        "gar" => "oauth2accesstoken",
        "acr" => "00000000-0000-0000-0000-000000000000",
        _ => "",
    }
}

/// Refuses settings of another cloud, which would otherwise be silently ignored.
fn check_settings(host: &HelperHost) -> Result<()> {
    let set = [
        ("region", host.region.is_some(), "ecr"),
        ("account", host.account.is_some(), "ecr"),
        ("role_arn", host.role_arn.is_some(), "ecr"),
        ("service_account", host.service_account.is_some(), "gar"),
        ("pull_service_account", host.pull_service_account.is_some(), "gar"),
        ("identity", host.identity.is_some(), "acr"),
        ("tenant_id", host.tenant_id.is_some(), "acr"),
        ("client_id", host.client_id.is_some(), "acr"),
        ("client_secret_env", host.client_secret_env.is_some(), "acr"),
        ("access_token_env", host.access_token_env.is_some(), "acr"),
    ];
    match set.iter().find(|(_, given, cloud)| *given && *cloud != host.provider) {
        Some((key, _, cloud)) => Err(Error::bad_input(format!(
            "[[helper.hosts]] {}: `{key}` is a {cloud} setting and does not apply to {} hosts",
            host.host, host.provider
        ))),
        None => Ok(()),
    }
}

/// Mints a login for `host` that lives about `ttl` (or what the cloud grants); with `pull_only`, one that
/// can only pull, or an error saying why the cloud cannot and what to do instead.
pub async fn mint(host: &HelperHost, ttl: Duration, pull_only: bool) -> Result<Entry> {
    check_settings(host)?;
    let permissions = if pull_only { Permissions::Pull } else { Permissions::PushPull };
    let issued_at = Utc::now();
    let login = match host.provider.as_str() {
        #[cfg(feature = "ecr")]
        "ecr" => {
            let route = crate::config_file::RouteConfig {
                provider: "ecr".into(),
                region: host.region.clone(),
                account: host.account.clone(),
                push_role_arn: host.role_arn.clone(),
                endpoint: host.endpoint.clone(),
                // Given, so building does not probe for it: the helper only mints.
                registry: Some(format!("https://{}", host.host)),
                ..crate::config_file::RouteConfig::local()
            };
            crate::cloud::ecr::provider(&route).await?.registry_credentials(permissions, ttl).await
        }
        #[cfg(feature = "gar")]
        "gar" => {
            let mut builder = regbridge_providers::gar::GarRegistryBuilder::new();
            if let Some(sa) = &host.service_account {
                builder = builder.with_push_service_account(sa);
            }
            if let Some(sa) = &host.pull_service_account {
                builder = builder.with_pull_service_account(sa);
            }
            if let Some(url) = &host.endpoint {
                builder = builder.with_iam_credentials_endpoint(url);
            }
            builder.registry_credentials(permissions, ttl).await
        }
        #[cfg(feature = "acr")]
        "acr" => {
            if pull_only {
                return Err(Error::bad_input(format!(
                    "ACR cannot mint a registry-wide pull-only login for {}: its login (the refresh token of the \
                     Entra ID identity) carries every permission the identity has on the registry. Drop \
                     --pull-only and configure an identity with only AcrPull (client_id in [[helper.hosts]]), or \
                     use a token of the _repositories_pull scope map (`az acr token create --scope-map \
                     _repositories_pull`) with `docker login`",
                    host.host
                )));
            }
            let endpoint = host.endpoint.clone().unwrap_or_else(|| format!("https://{}", host.host));
            regbridge_providers::acr::AcrRegistryBuilder::new()
                .with_registry_endpoint(endpoint)
                .with_identity(acr_identity(host)?)
                .registry_credentials()
                .await
        }
        other => {
            return Err(Error::bad_input(format!(
                "the credential helper cannot mint for {other:?} hosts ({}) in this build",
                host.host
            )));
        }
    }
    .map_err(|e| explain(host, e))?;
    Ok(Entry { username: login.username, secret: login.password, issued_at, expires_at: login.expires_at })
}

/// A failed mint, naming the host and its cloud: the helper's message is all docker shows.
fn explain(host: &HelperHost, e: Error) -> Error {
    let what = format!("{} login for {}", host.provider.to_uppercase(), host.host);
    match e {
        Error::InvalidInput { code, message } => Error::InvalidInput { code, message: format!("{what}: {message}") },
        Error::Unauthenticated { message } => Error::Unauthenticated { message: format!("{what}: {message}") },
        Error::Denied { message } => Error::Denied { message: format!("{what}: {message}") },
        Error::Upstream { provider, status, message, source } => {
            Error::Upstream { provider, status, message: format!("{what}: {message}"), source }
        }
        other => other,
    }
}

/// The Entra ID identity of an ACR host: the same settings, and the same code, as an `acr` route's.
#[cfg(feature = "acr")]
fn acr_identity(host: &HelperHost) -> Result<regbridge_providers::acr::AzureIdentity> {
    use serde::Deserialize;
    use serde::de::IntoDeserializer;
    let identity = match &host.identity {
        None => crate::cloud::acr::Identity::Auto,
        Some(name) => crate::cloud::acr::Identity::deserialize(name.as_str().into_deserializer()).map_err(
            |_: serde::de::value::Error| {
                Error::bad_input(format!(
                    "[[helper.hosts]] {}: identity {name:?} is not one of auto, service_principal, \
                     managed_identity, workload_identity, developer_tools, access_token",
                    host.host
                ))
            },
        )?,
    };
    crate::cloud::acr::Settings {
        identity,
        tenant_id: host.tenant_id.clone(),
        client_id: host.client_id.clone(),
        client_secret_env: host.client_secret_env.clone(),
        access_token_env: host.access_token_env.clone(),
        ..Default::default()
    }
    .identity()
}
