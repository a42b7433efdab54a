//! Cleanup of the tokens regbridge minted whose passwords have all expired, and of their scope maps: a
//! registry's tokens and scope maps are limited per SKU ([`quota`](super::quota)), and a token whose
//! passwords are all past their expiry lets nobody in, but still counts.
//!
//! Tokens are listed with `GET .../tokens` (following `nextLink`); only those named `regbridge-...` are
//! considered. Each candidate is read again just before it is deleted, so a credential minted for it in
//! the meantime keeps it (a mint that regenerates a password between that read and the delete can still
//! lose its token; the next mint makes a new one).

use chrono::{DateTime, Utc};
use regbridge::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use super::scope_map::NAME_PREFIX;
use super::{AcrRegistry, Deleted};

/// A regbridge token without any password is deleted only once it is this old: younger, a mint may be
/// between making the token and generating its password.
const UNFINISHED_MINT_AGE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// What [`AcrRegistry::cleanup_expired_tokens`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// The tokens deleted: regbridge's, every password expired.
    pub tokens_deleted: Vec<String>,
    /// The scope maps deleted: those of deleted tokens that no other token used.
    pub scope_maps_deleted: Vec<String>,
    /// regbridge tokens kept because a password is still valid (or never expires).
    pub tokens_kept: usize,
    /// Scope maps of deleted tokens kept because another token still uses them.
    pub scope_maps_kept: Vec<String>,
}

fn text<'a>(resource: &'a Value, pointer: &str) -> &'a str {
    resource.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value).ok().map(Into::into)
}

/// Whether `token` (as ARM describes it, with `properties.credentials.passwords`) lets nobody in any more
/// at `now`: it has passwords and each has an `expiry` in the past, or it never got one and is older than
/// [`UNFINISHED_MINT_AGE`]. A password without `expiry` never expires.
pub(crate) fn expired(token: &Value, now: DateTime<Utc>) -> bool {
    let passwords =
        token.pointer("/properties/credentials/passwords").and_then(Value::as_array).cloned().unwrap_or_default();
    if passwords.is_empty() {
        return time(text(token, "/properties/creationDate")).is_some_and(|c| now - c > UNFINISHED_MINT_AGE);
    }
    passwords.iter().all(|p| time(text(p, "/expiry")).is_some_and(|e| e <= now))
}

impl AcrRegistry {
    /// Deletes the tokens regbridge made (names `regbridge-...`) whose passwords have all expired, then
    /// their scope maps where no remaining token uses them. Tokens and scope maps made otherwise are never
    /// touched. Safe to run while credentials are minted (see the module docs); the proxy's
    /// `regbridge gc --cloud` runs it for every ACR route.
    pub async fn cleanup_expired_tokens(&self) -> Result<CleanupReport> {
        let url = self.acr_url("/tokens")?;
        let tokens = self.arm.list(&url, &format!("list the tokens of {}", self.registry)).await?;
        let mut report = CleanupReport::default();
        let mut freed = Vec::new();
        let mut remaining: Vec<String> = Vec::new();
        for listed in &tokens {
            let name = text(listed, "/name").to_owned();
            let scope_map = text(listed, "/properties/scopeMapId").to_owned();
            if !name.starts_with(NAME_PREFIX) {
                remaining.push(scope_map);
                continue;
            }
            // Read again: listings may leave out the passwords, and a mint may have happened since.
            let token_url = self.acr_url(&format!("/tokens/{name}"))?;
            let Some(token) = self.arm.get_if_exists(&token_url, &format!("read token {name}")).await? else {
                continue;
            };
            if !expired(&token, Utc::now()) {
                report.tokens_kept += 1;
                remaining.push(scope_map);
                continue;
            }
            if self.arm.delete(&token_url, &format!("delete expired token {name}")).await? == Deleted::Yes {
                report.tokens_deleted.push(name);
            }
            freed.push(text(&token, "/properties/scopeMapId").to_owned());
        }
        for scope_map_id in freed {
            let Some(map) = scope_map_id.rsplit('/').next().filter(|m| m.starts_with(NAME_PREFIX)) else { continue };
            if remaining.iter().any(|r| r.eq_ignore_ascii_case(&scope_map_id)) {
                report.scope_maps_kept.push(map.to_owned());
                continue;
            }
            let map_url = self.acr_url(&format!("/scopeMaps/{map}"))?;
            match self.arm.delete(&map_url, &format!("delete scope map {map}")).await {
                Ok(Deleted::Yes) => report.scope_maps_deleted.push(map.to_owned()),
                Ok(Deleted::Absent) => {}
                // A token made for it since the listing: it is in use again.
                Err(Error::Upstream { status: Some(409), .. }) => report.scope_maps_kept.push(map.to_owned()),
                Err(e) => return Err(e),
            }
        }
        tracing::info!(registry = %self.registry, ?report, "cleaned up expired tokens");
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expired_means_every_password_is_past_its_expiry() {
        let now = time("2026-12-01T00:00:00Z").unwrap();
        let token = |passwords: Value, created: &str| json!({"properties": {"creationDate": created, "credentials": {"passwords": passwords}}});
        let past = json!({"name": "password1", "expiry": "2026-11-30T00:00:00+00:00"});
        let future = json!({"name": "password2", "expiry": "2026-12-02T00:00:00Z"});
        let forever = json!({"name": "password2"});
        assert!(expired(&token(json!([past]), "2026-01-01T00:00:00Z"), now));
        assert!(!expired(&token(json!([past, future]), "2026-01-01T00:00:00Z"), now));
        assert!(!expired(&token(json!([past, forever]), "2026-01-01T00:00:00Z"), now));
        assert!(expired(&token(json!([]), "2026-11-30T22:00:00Z"), now), "never minted, old");
        assert!(!expired(&token(json!([]), "2026-11-30T23:30:00Z"), now), "a mint may be under way");
    }
}
