//! Registry-wide logins for cloud hosts, minted by the providers' own credential code.

use std::time::Duration;

use chrono::Utc;
use regbridge::{Error, Result};

use super::cache::Entry;
use crate::config_file::{HelperHost, RouteConfig};

/// The user names each cloud's registry expects, for `list`.
pub fn username(provider: &str) -> &'static str {
    match provider {
        "ecr" => "AWS",
        "gar" => "oauth2accesstoken",
        "acr" => "00000000-0000-0000-0000-000000000000",
        _ => "",
    }
}

/// Mints a login for `host` that lives about `ttl` (or what the cloud grants).
pub async fn mint(host: &HelperHost, ttl: Duration) -> Result<Entry> {
    let issued_at = Utc::now();
    match host.provider.as_str() {
        #[cfg(feature = "ecr")]
        "ecr" => {
            let route = RouteConfig {
                provider: "ecr".into(),
                region: host.region.clone(),
                account: host.account.clone(),
                push_role_arn: host.role_arn.clone(),
                endpoint: host.endpoint.clone(),
                // Given, so building does not probe for it: the helper only mints.
                registry: Some(format!("https://{}", host.host)),
                ..RouteConfig::local()
            };
            let login = crate::cloud::ecr::provider(&route).await?.registry_credentials(ttl).await?;
            Ok(Entry { username: login.username, secret: login.password, issued_at, expires_at: login.expires_at })
        }
        other => Err(Error::bad_input(format!(
            "the credential helper cannot mint for {other:?} hosts ({}) in this build",
            host.host
        ))),
    }
}
