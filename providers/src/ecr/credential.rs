//! Scoped ECR credentials: STS `AssumeRole` with an inline session policy limited to one repository, then
//! `GetAuthorizationToken` with the session, decoded into Basic `AWS` / password.
//!
//! See <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html> and
//! <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_GetAuthorizationToken.html>.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use regbridge::auth::Scope;
use regbridge::{Error, Permissions, Result, Secret};
use serde_json::json;

use super::client::map_ecr_error;
use crate::http::{CredentialSource, FetchedToken, TokenCache};

/// The shortest session STS grants (`DurationSeconds` minimum).
pub const MIN_SESSION: Duration = Duration::from_secs(900);
/// The longest session STS grants (`DurationSeconds` maximum; the role's `MaxSessionDuration` may be lower,
/// and a role assumed from another assumed role is limited to one hour by AWS: see [`super::session`]).
pub const MAX_SESSION: Duration = Duration::from_secs(43_200);
/// How long an ECR authorization token lives (documented by AWS as 12 hours).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// ECR actions a pull needs.
pub const PULL_ACTIONS: [&str; 3] =
    ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"];
/// ECR actions a push needs in addition to the pull actions.
pub const PUSH_ACTIONS: [&str; 4] =
    ["ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"];

/// The inline session policy: only `permissions`' ECR actions on `repository_arn`, plus
/// `ecr:GetAuthorizationToken` (which has no resource-level scoping, so `*`).
pub fn session_policy(repository_arn: &str, permissions: Permissions) -> String {
    let mut actions: Vec<&str> = PULL_ACTIONS.to_vec();
    if permissions.can_push() {
        actions.extend(PUSH_ACTIONS);
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RegbridgeToken", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "RegbridgeRepository", "Effect": "Allow", "Action": actions, "Resource": repository_arn}
        ]
    })
    .to_string()
}

/// A session name for `AssumeRole`: `[\w+=,.@-]{2,64}`.
pub fn session_name(repository: &str) -> String {
    let cleaned: String =
        repository.chars().map(|c| if c.is_ascii_alphanumeric() || "+=,.@-".contains(c) { c } else { '-' }).collect();
    let mut name = format!("regbridge-{cleaned}");
    name.truncate(64);
    name
}

/// Decodes an ECR authorization token, base64 of `AWS:password`, into user name and password.
pub fn decode_token(token: &str) -> Result<(String, Secret)> {
    let bad = || Error::Upstream {
        provider: super::client::PROVIDER.into(),
        status: None,
        message: "GetAuthorizationToken returned a token that is not base64 of user:password".into(),
        source: None,
    };
    let bytes = STANDARD.decode(token.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    if user.is_empty() || password.is_empty() {
        return Err(bad());
    }
    Ok((user.to_owned(), Secret::new(password)))
}

/// The token's expiry as ECR reported it, or `issued + 12 h` when it reported none or one that is not
/// after the moment the token was issued (no real token is born expired; moto answers a fixed 2015 date).
pub fn token_expiry(reported: Option<DateTime<Utc>>, issued: DateTime<Utc>) -> DateTime<Utc> {
    match reported {
        Some(t) if t > issued => t,
        _ => issued + chrono::Duration::from_std(TOKEN_LIFETIME).expect("12 h fits"),
    }
}

/// What `GetAuthorizationToken` answered: the decoded Basic login, its expiry and the registry URL.
pub struct AuthorizationToken {
    /// The user name (`AWS`).
    pub username: String,
    /// The password.
    pub password: Secret,
    /// When the token expires ([`token_expiry`]).
    pub expires_at: DateTime<Utc>,
    /// The registry URL the token is for (`https://{account}.dkr.ecr.{region}.{suffix}`), when given.
    pub proxy_endpoint: Option<String>,
}

/// Calls `GetAuthorizationToken` with `ecr`'s credentials; `name` is the repository errors mention.
pub async fn authorization_token(ecr: &aws_sdk_ecr::Client, name: &str) -> Result<AuthorizationToken> {
    let issued = Utc::now();
    let out =
        ecr.get_authorization_token().send().await.map_err(|e| map_ecr_error("GetAuthorizationToken", name, e))?;
    let data = out.authorization_data().first().ok_or_else(|| Error::Upstream {
        provider: super::client::PROVIDER.into(),
        status: None,
        message: "GetAuthorizationToken returned no authorization data".into(),
        source: None,
    })?;
    let (username, password) = decode_token(data.authorization_token().unwrap_or_default())?;
    let expires_at = token_expiry(data.expires_at().and_then(to_chrono), issued);
    let proxy_endpoint = data.proxy_endpoint().map(|e| e.trim_end_matches('/').to_owned());
    Ok(AuthorizationToken { username, password, expires_at, proxy_endpoint })
}

/// Registry credentials for the provider's own `/v2/` reads: a token minted with the base credentials,
/// kept until shortly before it expires.
pub struct RegistryToken {
    ecr: aws_sdk_ecr::Client,
    cache: TokenCache<()>,
}

impl RegistryToken {
    /// Mints with `ecr`'s credentials.
    pub fn new(ecr: aws_sdk_ecr::Client) -> Self {
        Self { ecr, cache: TokenCache::new() }
    }
}

impl fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryToken").finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialSource for RegistryToken {
    async fn credentials(&self, _scopes: &[Scope]) -> Result<Option<(String, Secret)>> {
        // The cache holds `user:password` (a Secret), so one entry serves every repository.
        let login = self
            .cache
            .get_or_fetch(&(), || async {
                let token = authorization_token(&self.ecr, "the registry").await?;
                let expires_in = (token.expires_at - Utc::now()).to_std().ok();
                let login = format!("{}:{}", token.username, token.password.expose());
                Ok(FetchedToken { token: Secret::new(login), expires_in })
            })
            .await?;
        let (user, password) = login.expose().split_once(':').unwrap_or_default();
        Ok(Some((user.to_owned(), Secret::new(password))))
    }
}

/// Converts an SDK timestamp to chrono.
pub fn to_chrono(t: &aws_sdk_ecr::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse_policy(policy: &str) -> Option<Value> {
        serde_json::from_str(policy).ok()
    }

    #[test]
    fn policy_names_only_this_repository() {
        let arn = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";
        let pull = parse_policy(&session_policy(arn, Permissions::Pull)).unwrap();
        let stmts = pull["Statement"].as_array().unwrap();
        assert_eq!(stmts[1]["Resource"], arn);
        assert!(!stmts[1]["Action"].as_array().unwrap().iter().any(|a| a == "ecr:PutImage"));
        let push = parse_policy(&session_policy(arn, Permissions::PushPull)).unwrap();
        assert!(push["Statement"][1]["Action"].as_array().unwrap().iter().any(|a| a == "ecr:PutImage"));
    }

    #[test]
    fn token_decodes_to_basic() {
        let (user, password) = decode_token(&STANDARD.encode("AWS:s3cr3t:with:colons")).unwrap();
        assert_eq!((user.as_str(), password.expose()), ("AWS", "s3cr3t:with:colons"));
        assert!(decode_token("%%%").is_err());
        let err = decode_token(&STANDARD.encode("nocolon")).unwrap_err().to_string();
        assert!(!err.contains("nocolon"), "{err}");
    }

    #[test]
    fn born_expired_tokens_get_the_documented_lifetime() {
        let now = Utc::now();
        let old = DateTime::parse_from_rfc3339("2015-01-01T00:00:00Z").unwrap().to_utc();
        assert_eq!(token_expiry(Some(old), now), now + chrono::Duration::hours(12));
        let later = now + chrono::Duration::hours(1);
        assert_eq!(token_expiry(Some(later), now), later);
        assert_eq!(session_name("team/app"), "regbridge-team-app");
    }
}
