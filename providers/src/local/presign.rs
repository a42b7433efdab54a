//! Presigned blob URLs over an `object_store` [`Signer`] (S3, GCS and Azure implement it), cached so a
//! hot blob costs one signature per cache window rather than one per GET.
//!
//! A URL is handed out only during the first half of its lifetime, so every URL a client
//! receives stays valid for at least half the TTL (5 minutes at the default 10): long enough to start the
//! download, and to resume it with a range GET after a dropped connection, without going back to the
//! registry. Storage services check a URL's expiry when a request starts, so a download under way is not cut
//! off when it expires.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path;
use object_store::signer::Signer;
use regbridge::{Error, Result};
use url::Url;

/// How long presigned blob URLs live unless configured otherwise: 10 minutes, a pull's worth of blobs, and
/// short enough that a URL that leaks (a log, a proxy's cache) is soon useless.
pub const DEFAULT_PRESIGN_TTL: Duration = Duration::from_secs(600);

/// URLs kept at most by default (one per blob and TTL; a URL is about 600 bytes, so this is a few MiB).
pub const DEFAULT_CACHE_ENTRIES: u64 = 10_000;

/// A URL is reused for `1 / KEEP_DIVISOR` of its TTL: the half kept back is what the last client given it
/// has left.
const KEEP_DIVISOR: u32 = 2;

/// Signs GET URLs of storage keys, each reused for the first half of its TTL.
#[derive(Clone)]
pub struct Presigner {
    signer: Arc<dyn Signer>,
    cache: moka::sync::Cache<(Path, Duration), Cached>,
}

/// A signed URL and how long the cache may hand it out.
#[derive(Clone)]
struct Cached {
    url: Url,
    keep: Duration,
}

/// Expires each entry after its own `keep` (TTLs may differ between calls).
struct KeepFor;

impl moka::Expiry<(Path, Duration), Cached> for KeepFor {
    fn expire_after_create(&self, _key: &(Path, Duration), value: &Cached, _created_at: Instant) -> Option<Duration> {
        Some(value.keep)
    }
}

impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs carry signatures: they stay out of debug output.
        f.debug_struct("Presigner").field("signer", &self.signer).field("cached", &self.cache.entry_count()).finish()
    }
}

impl Presigner {
    /// A presigner over `signer` (an `AmazonS3`, `GoogleCloudStorage` or `MicrosoftAzure`) caching at most
    /// [`DEFAULT_CACHE_ENTRIES`] URLs.
    pub fn new(signer: Arc<dyn Signer>) -> Self {
        Self::with_capacity(signer, DEFAULT_CACHE_ENTRIES)
    }

    /// The same caching at most `entries` URLs (the least used go first beyond it).
    pub fn with_capacity(signer: Arc<dyn Signer>, entries: u64) -> Self {
        let cache = moka::sync::Cache::builder().max_capacity(entries).expire_after(KeepFor).build();
        Self { signer, cache }
    }

    /// A URL that GETs `key` (range requests included) without credentials, valid for `ttl` from when it
    /// was signed and handed out only while at least half of that remains.
    pub async fn get_url(&self, key: &Path, ttl: Duration) -> Result<Url> {
        let cache_key = (key.clone(), ttl);
        if let Some(cached) = self.cache.get(&cache_key) {
            return Ok(cached.url);
        }
        let url = self
            .signer
            .signed_url(object_store::signer::Method::GET, key, ttl)
            .await
            .map_err(|e| Error::internal(format!("presign a download URL for {key}"), e))?;
        self.cache.insert(cache_key, Cached { url: url.clone(), keep: ttl / KEEP_DIVISOR });
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Signs URLs that count the signatures made.
    #[derive(Debug, Default)]
    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl Signer for Counting {
        async fn signed_url(
            &self,
            _method: object_store::signer::Method,
            path: &Path,
            ttl: Duration,
        ) -> object_store::Result<Url> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Url::parse(&format!("https://bucket.example/{path}?ttl={}&n={n}", ttl.as_secs())).unwrap())
        }
    }

    #[tokio::test]
    async fn a_url_is_reused_for_half_its_ttl_then_renewed() {
        let signer = Arc::new(Counting::default());
        let presigner = Presigner::new(signer.clone());
        let key = Path::from("blobs/sha256/ab");
        let ttl = Duration::from_millis(400);
        let first = presigner.get_url(&key, ttl).await.unwrap();
        assert_eq!(presigner.get_url(&key, ttl).await.unwrap(), first, "reused within the window");
        assert_eq!(signer.0.load(Ordering::SeqCst), 1);
        // Another key and another TTL are signed of their own.
        presigner.get_url(&Path::from("blobs/sha256/cd"), ttl).await.unwrap();
        presigner.get_url(&key, Duration::from_secs(60)).await.unwrap();
        assert_eq!(signer.0.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let renewed = presigner.get_url(&key, ttl).await.unwrap();
        assert_ne!(renewed, first, "renewed once half the TTL has passed");
        assert_eq!(signer.0.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let presigner = Presigner::with_capacity(Arc::new(Counting::default()), 10);
        for i in 0..100 {
            presigner.get_url(&Path::from(format!("k{i}")), Duration::from_secs(60)).await.unwrap();
        }
        presigner.cache.run_pending_tasks();
        assert!(presigner.cache.entry_count() <= 10, "{} entries", presigner.cache.entry_count());
    }
}
