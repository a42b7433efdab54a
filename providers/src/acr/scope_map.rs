//! Repository-scoped ACR credentials: a scope map per repository and permission level, a token bound to
//! it, and a password generated for the token with an expiry
//! (<https://learn.microsoft.com/azure/container-registry/container-registry-token-based-repository-permissions>).
//!
//! Names are `regbridge-{pull|push}-{24 hex digits of sha256(repository)}`: recognisable, stable for a
//! repository and level (so minting again reuses them and cleanup knows what to delete without listing), and
//! within ARM's rule for these resources (5-50 alphanumerics and hyphens).

use std::time::Duration;

use chrono::{DateTime, Utc};
use regbridge::{Permissions, Secret};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Every name this provider gives a scope map or token starts with this.
pub const NAME_PREFIX: &str = "regbridge-";

/// The shortest credential lifetime minted; shorter TTLs are raised to it (a password that expires while
/// it is handed over is of no use).
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// The longest credential lifetime minted. ACR sets no maximum on a token password's expiry; regbridge
/// caps it at one year so that no password it mints lives forever.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The scope map and token name for `repository` at `permissions`.
pub fn resource_name(repository: &str, permissions: Permissions) -> String {
    let digest = Sha256::digest(repository.as_bytes());
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let level = match permissions {
        Permissions::Pull => "pull",
        Permissions::PushPull => "push",
    };
    format!("{NAME_PREFIX}{level}-{}", &hash[..24])
}

/// The scope map actions for `repository`: read content and metadata; push adds writing both, and
/// deleting content, because `PushPull` includes deleting manifests (the proxy mints it for deletes).
pub fn actions(repository: &str, permissions: Permissions) -> Vec<String> {
    let mut verbs = vec!["content/read", "metadata/read"];
    if permissions.can_push() {
        verbs.extend(["content/write", "metadata/write", "content/delete"]);
    }
    verbs.into_iter().map(|v| format!("repositories/{repository}/{v}")).collect()
}

/// The body of `PUT .../scopeMaps/{name}`.
pub fn scope_map_body(repository: &str, permissions: Permissions) -> Value {
    json!({
        "properties": {
            "description": format!("regbridge {permissions:?} credentials for repository {repository}"),
            "actions": actions(repository, permissions),
        }
    })
}

/// Whether an existing scope map has exactly `actions` and finished provisioning.
pub fn scope_map_is(existing: &Value, actions: &[String]) -> bool {
    let have: Option<Vec<String>> =
        existing.pointer("/properties/actions").and_then(|a| serde_json::from_value(a.clone()).ok());
    let mut have = have.unwrap_or_default();
    let mut want = actions.to_vec();
    have.sort();
    want.sort();
    have == want && provisioned(existing)
}

/// Whether an existing token is enabled, bound to `scope_map_id` and finished provisioning.
pub fn token_is(existing: &Value, scope_map_id: &str) -> bool {
    let text = |k: &str| existing.pointer(&format!("/properties/{k}")).and_then(Value::as_str).unwrap_or_default();
    text("scopeMapId").eq_ignore_ascii_case(scope_map_id) && text("status") == "enabled" && provisioned(existing)
}

fn provisioned(existing: &Value) -> bool {
    existing.pointer("/properties/provisioningState").and_then(Value::as_str) == Some("Succeeded")
}

/// The body of `PUT .../tokens/{name}` binding the token to `scope_map_id`.
pub fn token_body(scope_map_id: &str) -> Value {
    json!({ "properties": { "scopeMapId": scope_map_id, "status": "enabled" } })
}

/// The body of `POST .../generateCredentials`: a new value for `slot` of `token_id`, expiring at `expiry`.
pub fn generate_body(token_id: &str, slot: &str, expiry: DateTime<Utc>) -> Value {
    json!({
        "tokenId": token_id,
        "name": slot,
        "expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

#[derive(Deserialize)]
struct PasswordInfo {
    name: String,
    #[serde(default, rename = "creationTime")]
    creation_time: Option<DateTime<Utc>>,
}

/// Which of the token's two passwords to (re)generate: a slot without a password, else the older one.
///
/// A token has two password slots; regenerating one invalidates the value it held. Taking the older slot
/// means the credentials minted last stay valid when minting again: at most two credentials per repository
/// and level are valid at once, and a third mint revokes the oldest.
pub fn password_slot(token: &Value) -> &'static str {
    let passwords: Vec<PasswordInfo> = token
        .pointer("/properties/credentials/passwords")
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    let created = |slot: &str| passwords.iter().find(|p| p.name == slot).map(|p| p.creation_time);
    match (created("password1"), created("password2")) {
        (None, _) => "password1",
        (Some(_), None) => "password2",
        (Some(a), Some(b)) if b < a => "password2",
        _ => "password1",
    }
}

/// What `generateCredentials` answers.
#[derive(Deserialize)]
pub struct Generated {
    /// The user name: the token's name.
    #[serde(default)]
    pub username: Option<String>,
    /// The passwords generated.
    #[serde(default)]
    pub passwords: Vec<GeneratedPassword>,
}

impl Generated {
    /// The user name (when ACR gave one) and the password generated for `slot` (else the first one).
    pub fn take(mut self, slot: &str) -> Option<(Option<String>, GeneratedPassword)> {
        let index = self.passwords.iter().position(|p| p.name == slot).unwrap_or(0);
        if self.passwords.is_empty() {
            return None;
        }
        let password = self.passwords.swap_remove(index);
        Some((self.username.filter(|u| !u.is_empty()), password))
    }
}

/// One generated password.
#[derive(Deserialize)]
pub struct GeneratedPassword {
    /// `password1` or `password2`.
    pub name: String,
    /// The value.
    pub value: Secret,
    /// When it expires, as ACR set it.
    #[serde(default)]
    pub expiry: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_recognisable_and_within_arm_rules() {
        let long = "a/".repeat(120) + "b";
        for repo in ["app", "team/app", long.as_str()] {
            for p in [Permissions::Pull, Permissions::PushPull] {
                let n = resource_name(repo, p);
                assert!(n.starts_with(NAME_PREFIX) && (5..=50).contains(&n.len()), "{n}");
                assert!(n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{n}");
            }
        }
        assert_ne!(resource_name("a", Permissions::Pull), resource_name("a", Permissions::PushPull));
        assert_ne!(resource_name("a", Permissions::Pull), resource_name("b", Permissions::Pull));
    }

    #[test]
    fn pull_reads_and_push_also_writes() {
        assert_eq!(
            actions("t/a", Permissions::Pull),
            ["repositories/t/a/content/read", "repositories/t/a/metadata/read"]
        );
        let push = actions("t/a", Permissions::PushPull);
        assert_eq!(push.len(), 5);
        assert!(push.contains(&"repositories/t/a/content/delete".to_owned()));
        assert!(push.contains(&"repositories/t/a/content/write".to_owned()));
    }

    #[test]
    fn slot_is_the_free_or_older_one() {
        let token = |p: Value| json!({"properties": {"credentials": {"passwords": p}}});
        assert_eq!(password_slot(&json!({})), "password1");
        assert_eq!(password_slot(&token(json!([{"name": "password1"}]))), "password2");
        let both = |t1: &str, t2: &str| {
            token(json!([{"name": "password1", "creationTime": t1}, {"name": "password2", "creationTime": t2}]))
        };
        assert_eq!(password_slot(&both("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")), "password1");
        assert_eq!(password_slot(&both("2026-01-03T00:00:00Z", "2026-01-02T00:00:00Z")), "password2");
    }
}
