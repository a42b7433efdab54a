//! GAR registry credentials: an OAuth access token of the pull or push service account, minted with IAM
//! Credentials `generateAccessToken` and presented as Basic `oauth2accesstoken` / token
//! (<https://cloud.google.com/artifact-registry/docs/docker/authentication#token>).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use regbridge::{Result, Secret};

use super::client::GarApi;
use crate::http::{CredentialSource, FetchedToken, TokenCache};

/// The user name Artifact Registry expects with an access token.
pub const USERNAME: &str = "oauth2accesstoken";

/// The longest token `generateAccessToken` issues without the organisation policy
/// `constraints/iam.allowServiceAccountCredentialLifetimeExtension`; longer TTLs are clamped to it.
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);

/// How long a registry login made of the caller's own token (no service account) is taken to live: the
/// credentials library does not report the token's expiry, and refreshes tokens 4 minutes before it, so one
/// it hands out has at least this much left.
pub const CALLER_TOKEN_LIFETIME: Duration = Duration::from_secs(240);

/// The shortest lifetime asked for: a zero TTL still gets a token that can be used once.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The TTL as `generateAccessToken`'s `lifetime` in seconds: clamped to 1..=3600.
pub fn lifetime_secs(ttl: Duration) -> u64 {
    ttl.clamp(MIN_LIFETIME, MAX_LIFETIME).as_secs()
}

/// The credentials the provider's own `/v2/` reads (`get_manifest`, `head_blob`) go out with: a token of
/// the pull (else push) service account, cached until shortly before it expires; without service accounts
/// the caller's own token, which never leaves the process.
pub(crate) struct ReadCredentials {
    pub(crate) api: Arc<GarApi>,
    pub(crate) email: Option<String>,
    pub(crate) cache: TokenCache<String>,
}

impl std::fmt::Debug for ReadCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCredentials").field("service_account", &self.email).finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialSource for ReadCredentials {
    async fn credentials(&self, _scopes: &[regbridge::auth::Scope]) -> Result<Option<(String, Secret)>> {
        let Some(email) = &self.email else {
            return Ok(Some((USERNAME.to_owned(), self.api.caller_token().await?.0)));
        };
        // The token is the service account's, the same for every repository it may read.
        let token = self
            .cache
            .get_or_fetch(email, || async {
                let (token, expires_at) = self.api.generate_access_token(email, lifetime_secs(MAX_LIFETIME)).await?;
                let expires_in = (expires_at - Utc::now()).to_std().unwrap_or_default();
                Ok(FetchedToken { token, expires_in: Some(expires_in) })
            })
            .await?;
        Ok(Some((USERNAME.to_owned(), token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_is_clamped_to_an_hour() {
        assert_eq!(lifetime_secs(Duration::ZERO), 1);
        assert_eq!(lifetime_secs(Duration::from_secs(900)), 900);
        assert_eq!(lifetime_secs(Duration::from_secs(7200)), 3600);
    }
}
