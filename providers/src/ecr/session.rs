//! STS `AssumeRole` for scoped credentials, within the session length the role really allows.
//!
//! STS refuses a `DurationSeconds` above the role's `MaxSessionDuration` (1 h unless raised, at most 12 h)
//! and, when the caller's own credentials come from an assumed role (role chaining: ECS, EKS, Lambda, EC2
//! instance roles assuming another role), anything above 1 h, with HTTP 400 `ValidationError` ("The
//! requested DurationSeconds exceeds the MaxSessionDuration set for this role." / "... exceeds the 1 hour
//! session limit for roles assumed by role chaining."). Neither message says the limit, so on that refusal
//! the session is asked once more at the largest value the message names, else 1 h (which every role
//! accepts), and that limit is remembered per role: later mints send it directly.
//!
//! See <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::RequestId;
use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
use chrono::{DateTime, Utc};
use regbridge::{Error, Permissions, Result};

use super::client::{PROVIDER, map_sts_error};
use super::credential::{self, MAX_SESSION, MIN_SESSION};

/// The session length every role accepts: the default and smallest `MaxSessionDuration`, and the role
/// chaining limit.
pub const SAFE_SESSION: Duration = Duration::from_secs(3600);

type StsError = aws_sdk_sts::error::SdkError<AssumeRoleError, aws_sdk_sts::config::http::HttpResponse>;

/// The longest session each role was found to accept. It holds at most the configured pull and push roles.
#[derive(Debug, Default)]
pub struct SessionLimits {
    learned: Mutex<HashMap<String, Duration>>,
}

impl SessionLimits {
    /// The TTL as `DurationSeconds` for `role`: clamped to 900 s..12 h and to the limit learned for it.
    pub fn seconds(&self, role: &str, ttl: Duration) -> i32 {
        let max = self.limit(role).unwrap_or(MAX_SESSION);
        ttl.clamp(MIN_SESSION, max.max(MIN_SESSION)).as_secs() as i32
    }

    /// The limit learned for `role`, if any.
    pub fn limit(&self, role: &str) -> Option<Duration> {
        self.learned.lock().ok()?.get(role).copied()
    }

    fn learn(&self, role: &str, limit: Duration) {
        if let Ok(mut learned) = self.learned.lock() {
            learned.insert(role.to_owned(), limit);
        }
    }
}

/// A session of `role` with an inline policy allowing only `permissions` on `repository_arn`, as long as
/// `ttl` or the longest the role allows: its credentials and their expiry.
pub async fn assume(
    sts: &aws_sdk_sts::Client,
    limits: &SessionLimits,
    role: &str,
    repository: &str,
    repository_arn: &str,
    permissions: Permissions,
    ttl: Duration,
) -> Result<(aws_sdk_ecr::config::Credentials, Option<DateTime<Utc>>)> {
    let send = |seconds: i32| {
        sts.assume_role()
            .role_arn(role)
            .role_session_name(credential::session_name(repository))
            .duration_seconds(seconds)
            .policy(credential::session_policy(repository_arn, permissions))
            .send()
    };
    let asked = limits.seconds(role, ttl);
    let out = match send(asked).await {
        Ok(out) => out,
        Err(e) => {
            let Some(allowed) = allowed_seconds(e.code(), e.message(), asked) else {
                return Err(config_error(role, e));
            };
            limits.learn(role, Duration::from_secs(allowed as u64));
            // No secret here: the role ARN and numbers only.
            tracing::warn!(
                role,
                asked_seconds = asked,
                granted_seconds = allowed,
                "STS refused a {asked} s session for {role} ({}); credentials now last at most {allowed} s. \
                 To allow longer ones, raise the role's MaxSessionDuration (aws iam update-role --role-name \
                 <name> --max-session-duration <seconds>, up to 43200), and do not assume it from another \
                 assumed role's credentials (role chaining is limited to 1 h)",
                e.message().unwrap_or("DurationSeconds too long"),
            );
            send(allowed).await.map_err(|e| config_error(role, e))?
        }
    };
    session_credentials(out)
}

fn session_credentials(out: AssumeRoleOutput) -> Result<(aws_sdk_ecr::config::Credentials, Option<DateTime<Utc>>)> {
    let c = out.credentials().ok_or_else(|| Error::Upstream {
        provider: PROVIDER.into(),
        status: None,
        message: "AssumeRole returned no credentials".into(),
        source: None,
    })?;
    let expiry = credential::to_chrono(c.expiration());
    let creds = aws_sdk_ecr::config::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        c.expiration().to_owned().try_into().ok(),
        "regbridge-assume-role",
    );
    Ok((creds, expiry))
}

/// The largest `DurationSeconds` STS will accept, when `code`/`message` is its refusal of a duration of
/// `asked` seconds: the largest number of seconds below `asked` the message names, else 1 h. `None`
/// for any other error, or when `asked` was already 1 h or less (every role accepts that, so the
/// refusal is about something else).
pub fn allowed_seconds(code: Option<&str>, message: Option<&str>, asked: i32) -> Option<i32> {
    let message = message.unwrap_or_default();
    if code != Some("ValidationError") || !message.contains("DurationSeconds") {
        return None;
    }
    let named = message
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<i32>().ok())
        .filter(|n| (MIN_SESSION.as_secs() as i32..asked).contains(n))
        .max();
    let safe = SAFE_SESSION.as_secs() as i32;
    named.or((asked > safe).then_some(safe))
}

/// An `AssumeRole` refusal as a server-side error naming the role and the fix: the role or the server's
/// own credentials are misconfigured, which no client request can fix. Throttling stays `TooManyRequests`,
/// and STS's own failures (5xx, no answer) stay as mapped: there is nothing to fix in the setup.
fn config_error(role: &str, err: StsError) -> Error {
    let code = err.code().unwrap_or_default().to_owned();
    let fix = match code.as_str() {
        "AccessDenied" | "AccessDeniedException" => {
            "the role's trust policy must allow regbridge's AWS identity to call sts:AssumeRole, and that \
             identity's policies must allow sts:AssumeRole on the role"
        }
        "RegionDisabledException" => "activate STS in this region (IAM account settings) or use another region",
        "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException" => "regbridge's own AWS credentials are invalid or expired: renew them",
        "MalformedPolicyDocument" | "PackedPolicyTooLarge" => {
            "STS refused regbridge's session policy; shorter repository names keep it small"
        }
        _ => "check that the role ARN names an existing role in this account and partition",
    };
    let request_id = err.request_id().map(|id| format!(" (request id {id})")).unwrap_or_default();
    let status = err.raw_response().map(|r| r.status().as_u16());
    match map_sts_error("AssumeRole", err) {
        throttled @ Error::TooManyRequests { .. } => throttled,
        unavailable @ Error::Upstream { .. } if status.is_none_or(|s| s >= 500) => unavailable,
        mapped => Error::Upstream {
            provider: PROVIDER.into(),
            status,
            message: format!("AssumeRole of {role} failed{request_id}: {mapped}; fix: {fix}"),
            source: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: &str = "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.";
    const CHAINED: &str =
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.";

    #[test]
    fn the_refused_duration_falls_back_to_the_safe_session() {
        assert_eq!(allowed_seconds(Some("ValidationError"), Some(MAX), 43_200), Some(3600));
        assert_eq!(allowed_seconds(Some("ValidationError"), Some(CHAINED), 7200), Some(3600));
        let named = "DurationSeconds must be less than or equal to 21600";
        assert_eq!(allowed_seconds(Some("ValidationError"), Some(named), 43_200), Some(21_600));
        // Not a duration refusal, or nothing shorter to try.
        assert_eq!(allowed_seconds(Some("ValidationError"), Some("Invalid RoleArn"), 43_200), None);
        assert_eq!(allowed_seconds(Some("AccessDenied"), Some(MAX), 43_200), None);
        assert_eq!(allowed_seconds(Some("ValidationError"), Some(MAX), 3600), None);
    }

    #[test]
    fn learned_limits_cap_later_sessions() {
        let limits = SessionLimits::default();
        let role = "arn:aws:iam::123456789012:role/pull";
        assert_eq!(limits.seconds(role, Duration::from_secs(99_999)), 43_200);
        assert_eq!(limits.seconds(role, Duration::from_secs(1)), 900);
        limits.learn(role, SAFE_SESSION);
        assert_eq!(limits.seconds(role, Duration::from_secs(99_999)), 3600);
        assert_eq!(limits.seconds(role, Duration::from_secs(1200)), 1200);
        assert_eq!(limits.seconds("arn:aws:iam::123456789012:role/other", Duration::from_secs(7200)), 7200);
    }
}
