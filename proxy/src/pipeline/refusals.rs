//! Which (token, scopes) refusals were seen in the last minute: what turns a repeated insufficient-scope
//! 401 into a 403 ([`super::reply::insufficient_scope`]).
//!
//! Replicas behind a round-robin load balancer get a client's first request and its retry on different
//! servers, so the memory is shared through storage ([`Storage::seen_recently`]) as well as kept here
//! (a bounded cache, which also saves the storage a round trip when the repeat comes back here).

use std::time::Duration;

use regbridge::auth::{Scope, scope::format_list};
use regbridge_providers::local::storage::Storage;
use sha2::Digest as _;

/// How long a refusal is remembered.
const MEMORY: Duration = Duration::from_secs(60);

/// Recently refused (token, scopes) pairs, remembered by hash for a minute, bounded.
#[derive(Debug)]
pub struct ScopeRefusals {
    seen: moka::sync::Cache<[u8; 32], ()>,
}

impl Default for ScopeRefusals {
    fn default() -> Self {
        Self { seen: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(MEMORY).build() }
    }
}

impl ScopeRefusals {
    /// Records the refusal and says whether it was already recorded, here or by another server on
    /// `storage`. Storage that cannot be reached leaves the answer to this server's memory (a 401 instead
    /// of a 403 is the worst that comes of it).
    pub async fn seen_before(&self, storage: &dyn Storage, token: &str, scopes: &[Scope]) -> bool {
        let mut h = sha2::Sha256::new();
        h.update(token.as_bytes());
        h.update([0]);
        h.update(format_list(scopes).as_bytes());
        let key: [u8; 32] = h.finalize().into();
        if self.seen.contains_key(&key) {
            return true;
        }
        self.seen.insert(key, ());
        match storage.seen_recently(&hex::encode(key), MEMORY).await {
            Ok(seen) => seen,
            Err(e) => {
                tracing::warn!(error = %e, "could not share an insufficient-scope refusal through storage");
                false
            }
        }
    }
}
