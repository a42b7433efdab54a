//! [`TokenCache`]: bearer tokens cached per key until shortly before they expire, fetched once per key
//! however many requests need one at the same time.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use regbridge::{Result, Secret};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The lifetime assumed when a token endpoint does not say (`expires_in` omitted), as the Docker token
/// specification prescribes.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);

/// Tokens are refreshed this long before they expire, at most: a request that starts with a token must
/// still find it valid when the registry checks it. A quarter of the lifetime is used for short-lived tokens.
pub const MAX_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Above this many keys, inserting a key first drops the keys whose token has expired and that nobody is
/// fetching, so a long-running proxy that sees many repositories does not grow without bound.
const PRUNE_ABOVE: usize = 1024;

/// What a token endpoint answered (Docker token flow), as the cache's key names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenKey {
    /// The challenge's `realm`: the token endpoint's URL.
    pub realm: String,
    /// The challenge's `service`.
    pub service: String,
    /// The scope the token was requested for (space-separated when several).
    pub scope: String,
}

/// A token as fetched, before it is cached.
#[derive(Debug, Clone)]
pub struct FetchedToken {
    /// The token.
    pub token: Secret,
    /// How long it is valid from now; `None` means [`DEFAULT_TOKEN_LIFETIME`].
    pub expires_in: Option<Duration>,
}

#[derive(Clone)]
struct Cached {
    token: Secret,
    refresh_at: Instant,
}

type Slot = Arc<Mutex<Option<Cached>>>;

/// Bearer tokens per key (by default a [`TokenKey`]: realm, service and scope), each kept until shortly
/// before it expires.
///
/// Single flight: each key has its own async lock, held while its token is fetched, so concurrent requests
/// for one key wait for one fetch instead of each asking the token endpoint; requests for other keys are
/// not held up. A failed fetch is not cached: the next caller tries again.
pub struct TokenCache<K = TokenKey> {
    slots: SyncMutex<HashMap<K, Slot>>,
}

impl<K> Default for TokenCache<K> {
    fn default() -> Self {
        Self { slots: SyncMutex::new(HashMap::new()) }
    }
}

impl<K> fmt::Debug for TokenCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.slots.lock().map(|s| s.len()).unwrap_or_default();
        f.debug_struct("TokenCache").field("keys", &keys).finish()
    }
}

impl<K: Eq + Hash + Clone> TokenCache<K> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token for `key` while it is fresh; otherwise the token `fetch` returns, which is cached.
    /// Callers for the same key wait for one fetch.
    pub async fn get_or_fetch<F, Fut>(&self, key: &K, fetch: F) -> Result<Secret>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<FetchedToken>>,
    {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            metrics::counter!("regbridge_credential_cache_total", "cache" => "registry_token", "result" => "hit")
                .increment(1);
            return Ok(c.token.clone());
        }
        metrics::counter!("regbridge_credential_cache_total", "cache" => "registry_token", "result" => "miss")
            .increment(1);
        let fetched = fetch().await?;
        let refresh_at = Instant::now() + refresh_after(fetched.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME));
        *cached = Some(Cached { token: fetched.token.clone(), refresh_at });
        Ok(fetched.token)
    }

    /// The fresh token cached for `key`, without waiting and without fetching: `None` when there is none
    /// or while one is being fetched.
    pub fn peek(&self, key: &K) -> Option<Secret> {
        let slot = self.slots.lock().ok()?.get(key).cloned()?;
        let cached = slot.try_lock().ok()?;
        cached.as_ref().filter(|c| Instant::now() < c.refresh_at).map(|c| c.token.clone())
    }

    /// Forgets `stale`, a token the registry refused, so the next [`get_or_fetch`](Self::get_or_fetch)
    /// fetches a new one. A different token cached since (another request already refreshed) is kept.
    pub async fn invalidate(&self, key: &K, stale: &Secret) {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if cached.as_ref().is_some_and(|c| &c.token == stale) {
            *cached = None;
        }
    }

    /// How many keys the cache holds (fresh or not).
    pub fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or_default()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, key: &K) -> Slot {
        // A poisoned lock only means another thread panicked between two map operations, which leave the
        // map consistent; keep using it.
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= PRUNE_ABOVE {
            let now = Instant::now();
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(cached) => cached.as_ref().is_some_and(|c| now < c.refresh_at),
                Err(_) => true,
            });
        }
        slots.entry(key.clone()).or_default().clone()
    }
}

/// How long a token with `lifetime` is used before it is refreshed: until a quarter of its lifetime, at
/// most [`MAX_REFRESH_MARGIN`], is left.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 4).min(MAX_REFRESH_MARGIN)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn fetched(token: &str, secs: u64) -> Result<FetchedToken> {
        Ok(FetchedToken { token: Secret::new(token), expires_in: Some(Duration::from_secs(secs)) })
    }

    #[test]
    fn refreshes_shortly_before_expiry() {
        assert_eq!(refresh_after(Duration::from_secs(60)), Duration::from_secs(45));
        assert_eq!(refresh_after(Duration::from_secs(300)), Duration::from_secs(270));
        assert_eq!(refresh_after(Duration::from_secs(4)), Duration::from_secs(3));
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test]
    async fn one_fetch_for_concurrent_callers() {
        let cache = Arc::new(TokenCache::<String>::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_fetch(&"k".to_owned(), || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            fetched("t", 300)
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().expose(), "t");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_invalidate_keeps_newer_tokens() {
        let cache = TokenCache::<&str>::new();
        let err = cache
            .get_or_fetch(&"k", || async { Err(regbridge::Error::Unauthenticated { message: "no".into() }) })
            .await;
        assert!(err.is_err());
        let t = cache.get_or_fetch(&"k", || async { fetched("a", 300) }).await.unwrap();
        cache.invalidate(&"k", &Secret::new("other")).await;
        assert_eq!(cache.peek(&"k").unwrap(), t);
        cache.invalidate(&"k", &t).await;
        assert!(cache.peek(&"k").is_none());
    }
}
