//! [`MintedCredentials`]: upstream credentials minted by a provider's `generate_credentials` for the
//! repository a request needs, cached until shortly before they expire, one mint at a time per key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use regbridge::auth::{Action, Scope};
use regbridge::oci::RepositoryName;
use regbridge::{Credentials, DynArtifactRegistry, Permissions, Result, Secret};

use super::CredentialSource;

/// Credentials are minted anew once less than this share of their lifetime is left (at most
/// [`MAX_MARGIN`]), so a request never goes out with credentials about to expire.
const REFRESH_FRACTION: u32 = 5;

/// The most lifetime left at which credentials are minted anew.
const MAX_MARGIN: Duration = Duration::from_secs(300);

type Key = (RepositoryName, Permissions);
type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// Repositories whose credentials are kept at most; the least recently used go first beyond it.
const MAX_KEYS: u64 = 10_000;

/// Mints per-repository credentials with a provider, for an [`UpstreamClient`](super::UpstreamClient).
pub struct MintedCredentials {
    provider: DynArtifactRegistry,
    ttl: Duration,
    slots: moka::sync::Cache<Key, Slot>,
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
        // Idle entries go after the credentials' own lifetime: they would be minted anew by then anyway.
        let slots = moka::sync::Cache::builder().max_capacity(MAX_KEYS).time_to_idle(ttl.max(MAX_MARGIN)).build();
        Self { provider, ttl, slots }
    }

    fn slot(&self, key: &Key) -> Slot {
        self.slots.get_with(key.clone(), Slot::default)
    }
}

/// The repository and permission level scopes need: the first repository scope, push when any of its
/// actions writes.
pub fn repository_of(scopes: &[Scope]) -> Option<(RepositoryName, Permissions)> {
    scopes.iter().find_map(|scope| match scope {
        Scope::Repository { name, actions } => {
            let push = actions.contains(Action::Push) || actions.contains(Action::Delete);
            Some((name.clone(), if push { Permissions::PushPull } else { Permissions::Pull }))
        }
        Scope::Catalog => None,
    })
}

fn still_fresh(c: &Credentials) -> bool {
    let margin = (c.remaining() / REFRESH_FRACTION).min(MAX_MARGIN);
    c.expires_at - chrono::Duration::from_std(margin).unwrap_or_default() > Utc::now()
}

#[async_trait]
impl CredentialSource for MintedCredentials {
    /// Scopes naming no repository (the catalog) go anonymously: credentials are per repository.
    async fn credentials(&self, scopes: &[Scope]) -> Result<Option<(String, Secret)>> {
        let Some(key) = repository_of(scopes) else { return Ok(None) };
        let slot = self.slot(&key);
        // Holding the slot's lock while minting makes concurrent requests for the same key wait for one mint.
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| still_fresh(c)) {
            metrics::counter!("regbridge_credential_cache_total", "cache" => "minted", "result" => "hit").increment(1);
            return Ok(Some((c.username.clone(), c.password.clone())));
        }
        metrics::counter!("regbridge_credential_cache_total", "cache" => "minted", "result" => "miss").increment(1);
        let minted = self.provider.generate_credentials(key.0.as_str(), key.1, self.ttl).await?;
        let login = (minted.username.clone(), minted.password.clone());
        *cached = Some(minted);
        Ok(Some(login))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepositoryName {
        s.parse().unwrap()
    }

    #[test]
    fn scopes() {
        let of = |text: &str| repository_of(&Scope::parse_list([text]));
        assert_eq!(of("repository:a/b:pull"), Some((name("a/b"), Permissions::Pull)));
        assert_eq!(of("repository:a:pull,push"), Some((name("a"), Permissions::PushPull)));
        assert_eq!(of("repository:a:delete"), Some((name("a"), Permissions::PushPull)));
        assert_eq!(of("registry:catalog:* repository:x:pull repository:y:push"), Some((name("x"), Permissions::Pull)));
        assert_eq!(of("registry:catalog:*"), None);
    }
}
