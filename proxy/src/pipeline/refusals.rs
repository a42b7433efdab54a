//! Which (token, scopes) refusals were seen in the last minute: what turns a repeated insufficient-scope
//! 401 into a 403 ([`super::reply::insufficient_scope`]).

use std::time::Duration;

use regbridge::auth::{Scope, scope::format_list};
use sha2::Digest as _;

/// Recently refused (token, scopes) pairs, remembered by hash for a minute, bounded.
#[derive(Debug)]
pub struct ScopeRefusals {
    seen: moka::sync::Cache<[u8; 32], ()>,
}

impl Default for ScopeRefusals {
    fn default() -> Self {
        Self { seen: moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build() }
    }
}

impl ScopeRefusals {
    /// Records the refusal and says whether it was already recorded.
    pub fn seen_before(&self, token: &str, scopes: &[Scope]) -> bool {
        let mut h = sha2::Sha256::new();
        h.update(token.as_bytes());
        h.update([0]);
        h.update(format_list(scopes).as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let seen = self.seen.contains_key(&key);
        self.seen.insert(key, ());
        seen
    }
}
