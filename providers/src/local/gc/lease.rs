//! One collector at a time: the lease record `gc/lease`, taken with a conditional write and an expiry.
//!
//! A collector reads the record. None, or one whose `until` has passed (its holder finished or died), is
//! taken with a write conditional on what was read (create-only, or over the version read), so of two
//! collectors taking it at once exactly one wins; the loser reads the winner's live record and refuses.
//! A live record makes a collector refuse with an error naming its holder and until when. The holder
//! refreshes the record while it runs (a third of the lease after the last refresh, conditional on the
//! version it holds) and stops when another collector took it over; when done it writes the record back
//! as expired, so the next collection need not wait.
//!
//! The lease keeps collections from duplicating work and deleting under each other's reports; what keeps
//! pushes safe is the fence ([`crate::local::fence`]), which does not depend on it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use regbridge::{Error, Resource, Result};
use serde::{Deserialize, Serialize};

use super::collectable::{Collectable, LeaseVersion};

/// How long a lease lives without a refresh unless [`super::GcOptions::lease`] says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How many times taking the lease is retried when the record changed between the read and the write.
const ATTEMPTS: usize = 8;

/// The record: who holds the lease, and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    holder: String,
    until: DateTime<Utc>,
}

/// A held lease; give it back with [`Lease::release`].
pub struct Lease<'a> {
    storage: &'a dyn Collectable,
    record: Record,
    version: LeaseVersion,
    ttl: Duration,
    refreshed: Instant,
}

impl std::fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("holder", &self.record.holder).field("until", &self.record.until).finish()
    }
}

/// Who this process is, for the error another collector shows.
fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "an unknown host".into());
    format!("collection {} (pid {} on {host})", uuid::Uuid::new_v4().simple(), std::process::id())
}

fn until(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

fn json(record: &Record) -> Bytes {
    Bytes::from(serde_json::to_vec(record).expect("lease record serialises"))
}

fn held_by(record: &Record) -> Error {
    Error::AlreadyExists {
        resource: Resource::Other,
        name: format!(
            "a garbage collection run: {} holds the gc lease until {} (refreshed while it runs); run again once \
             it is done, or after that time if it died",
            record.holder,
            record.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    }
}

impl<'a> Lease<'a> {
    /// Takes the lease for `ttl`, or refuses with who holds it.
    pub async fn acquire(storage: &'a dyn Collectable, ttl: Duration) -> Result<Lease<'a>> {
        let holder = holder();
        for _ in 0..ATTEMPTS {
            let current = storage.read_lease().await?;
            let over = match &current {
                None => None,
                Some((bytes, version)) => {
                    // A record that does not parse belongs to nobody we can name: take it over.
                    if let Ok(record) = serde_json::from_slice::<Record>(bytes)
                        && record.until > Utc::now()
                    {
                        return Err(held_by(&record));
                    }
                    Some(version)
                }
            };
            let record = Record { holder: holder.clone(), until: until(ttl) };
            if let Some(version) = storage.write_lease(json(&record), over).await? {
                return Ok(Lease { storage, record, version, ttl, refreshed: Instant::now() });
            }
            // Another collector wrote first: read what it wrote (a live lease: refuse).
        }
        Err(Error::TooManyRequests {
            message: "gc: the lease record kept changing while it was being taken; retry".into(),
            retry_after: Some(Duration::from_secs(1)),
        })
    }

    /// Refreshes the lease once a third of it has passed. Fails, and the collection must stop, when the
    /// lease was taken over. A collector stalled past its expiry (a long listing) still refreshes it if
    /// nobody took it meanwhile: the write is conditional on the version it holds, so it cannot win over a
    /// collector that did.
    pub async fn keep_alive(&mut self) -> Result<()> {
        if self.refreshed.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        self.record.until = until(self.ttl);
        match self.storage.write_lease(json(&self.record), Some(&self.version)).await? {
            Some(version) => {
                self.version = version;
                self.refreshed = Instant::now();
                Ok(())
            }
            None => Err(Error::internal(
                "gc: another collector took the gc lease over; stopped",
                std::io::Error::other(self.record.holder.clone()),
            )),
        }
    }

    /// Gives the lease back: the record is written expired (over the version held, so a collector that
    /// took it over keeps it). Best effort: it expires anyway.
    pub async fn release(self) {
        let record = Record { until: Utc::now() - chrono::Duration::seconds(1), ..self.record };
        let _ = self.storage.write_lease(json(&record), Some(&self.version)).await;
    }
}
