//! [`MintedCredentials`]: upstream credentials minted by a provider's `generate_credentials` for the
//! repository a request needs, cached until shortly before they expire, one mint at a time per key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use regbridge::{Credentials, DynArtifactRegistry, Permissions, Result, Secret};

use super::CredentialSource;

/// Credentials are minted anew once less than this share of their lifetime is left (at most
/// [`MAX_MARGIN`]), so a request never goes out with credentials about to expire.
const REFRESH_FRACTION: u32 = 5;

/// The most lifetime left at which credentials are minted anew.
const MAX_MARGIN: Duration = Duration::from_secs(300);

type Key = (String, Permissions);
type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// Mints per-repository credentials with a provider, for an [`UpstreamClient`](super::UpstreamClient).
pub struct MintedCredentials {
    provider: DynArtifactRegistry,
    ttl: Duration,
    slots: Mutex<HashMap<Key, Slot>>,
}

impl fmt::Debug for MintedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedCredentials")
            .field("provider", &self.provider.to_string())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl MintedCredentials {
    /// Mints with `provider`, asking for credentials that live `ttl`.
    pub fn new(provider: DynArtifactRegistry, ttl: Duration) -> Self {
        Self { provider, ttl, slots: Mutex::new(HashMap::new()) }
    }

    fn slot(&self, key: &Key) -> Slot {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().clone()
    }
}

/// The repository and permission level a scope needs: the first `repository:` entry, push when any of its
/// actions writes.
pub fn repository_of(scope: &str) -> Option<(String, Permissions)> {
    scope.split_whitespace().find_map(|entry| {
        let mut parts = entry.splitn(3, ':');
        let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
        (kind == "repository").then(|| {
            let push = actions.split(',').any(|a| matches!(a, "push" | "delete" | "*"));
            (name.to_owned(), if push { Permissions::PushPull } else { Permissions::Pull })
        })
    })
}

fn still_fresh(c: &Credentials) -> bool {
    let margin = (c.remaining() / REFRESH_FRACTION).min(MAX_MARGIN);
    c.expires_at - chrono::Duration::from_std(margin).unwrap_or_default() > Utc::now()
}

#[async_trait]
impl CredentialSource for MintedCredentials {
    /// Scopes naming no repository (the catalog) go anonymously: credentials are per repository.
    async fn credentials(&self, scope: &str) -> Result<Option<(String, Secret)>> {
        let Some(key) = repository_of(scope) else { return Ok(None) };
        let slot = self.slot(&key);
        // Holding the slot's lock while minting makes concurrent requests for the same key wait for one mint.
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| still_fresh(c)) {
            metrics::counter!("regbridge_credential_cache_total", "cache" => "minted", "result" => "hit").increment(1);
            return Ok(Some((c.username.clone(), c.password.clone())));
        }
        metrics::counter!("regbridge_credential_cache_total", "cache" => "minted", "result" => "miss").increment(1);
        let minted = self.provider.generate_credentials(&key.0, key.1, self.ttl).await?;
        let login = (minted.username.clone(), minted.password.clone());
        *cached = Some(minted);
        Ok(Some(login))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(repository_of("repository:a/b:pull"), Some(("a/b".into(), Permissions::Pull)));
        assert_eq!(repository_of("repository:a:pull,push"), Some(("a".into(), Permissions::PushPull)));
        assert_eq!(repository_of("repository:a:delete"), Some(("a".into(), Permissions::PushPull)));
        assert_eq!(
            repository_of("registry:catalog:* repository:x:pull repository:y:push"),
            Some(("x".into(), Permissions::Pull))
        );
        assert_eq!(repository_of("registry:catalog:*"), None);
    }
}
