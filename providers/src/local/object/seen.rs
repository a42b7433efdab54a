//! Events replicas must remember together for a short while ([`Storage::seen_recently`]): 256 slot
//! objects under `seen/`, chosen by the event name's first two hex digits, each a JSON map of the names
//! recorded in the last window to when. Every record prunes its slot, so the slots hold only recent
//! events however many there were; writes are compare-and-swap, so racing replicas lose none.
//!
//! [`Storage::seen_recently`]: crate::local::storage::Storage::seen_recently

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regbridge::{Error, Result};

use super::ObjectStorage;
use super::store::{CAS_ATTEMPTS, backoff};

/// The names of one slot and when each was last recorded.
type Slot = BTreeMap<String, DateTime<Utc>>;

/// Only 64 lowercase hex digits become part of a key or a slot.
fn check_name(name: &str) -> Result<()> {
    if name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Ok(());
    }
    Err(Error::bad_input("an event name is 64 lowercase hex digits"))
}

impl ObjectStorage {
    pub(super) async fn record_seen(&self, name: &str, within: Duration) -> Result<bool> {
        check_name(name)?;
        let key = self.keys.seen_slot(&name[..2]);
        let window = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
        for attempt in 0..CAS_ATTEMPTS {
            let current = self.get_versioned(&key).await?;
            // A slot that does not parse (written by something else) is started afresh.
            let mut slot: Slot =
                current.as_ref().and_then(|c| serde_json::from_slice(&c.bytes).ok()).unwrap_or_default();
            let now = Utc::now();
            slot.retain(|_, at| now.signed_duration_since(*at) < window);
            let seen = slot.contains_key(name);
            slot.insert(name.to_owned(), now);
            let json = serde_json::to_vec(&slot).expect("slot serialises");
            if self.put_conditional(&key, json, current.map(|c| c.version)).await? {
                return Ok(seen);
            }
            backoff(attempt).await;
        }
        Err(Error::TooManyRequests {
            message: "many replicas are recording events at once; retry".into(),
            retry_after: Some(Duration::from_secs(1)),
        })
    }
}
