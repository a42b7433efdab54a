//! The registry of open connections: the cap, the timeouts, and the counts of connections closed or refused
//! at the cap, logged now and then.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::conn::Conn;

/// How often, at most, the cap being reached is logged (a flood would otherwise log a line per connection).
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) struct Registry {
    pub(super) max: usize,
    pub(super) idle: Duration,
    pub(super) body_read: Duration,
    /// The zero of the millisecond clocks in [`Conn`].
    pub(super) epoch: Instant,
    pub(super) next_id: AtomicU64,
    pub(super) open: Mutex<HashMap<u64, Arc<Conn>>>,
    pub(super) shed: Mutex<Shed>,
}

/// What the cap did since it was last logged.
#[derive(Debug, Default)]
pub(super) struct Shed {
    logged: Option<Instant>,
    closed_idle: u64,
    refused: u64,
}

impl Registry {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding the map leaves it consistent (inserts and removes are single calls).
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Counts one connection closed (`idle`) or refused at the cap, and logs the counts now and then.
    pub(super) fn shed(&self, idle: bool) {
        let mut shed = self.shed.lock().unwrap_or_else(PoisonError::into_inner);
        if idle {
            shed.closed_idle += 1;
        } else {
            shed.refused += 1;
        }
        if shed.logged.is_some_and(|at| at.elapsed() < WARN_EVERY) {
            return;
        }
        tracing::warn!(
            max_connections = self.max,
            closed_idle = shed.closed_idle,
            refused_busy = shed.refused,
            "connection limit reached: closing the longest-idle connections for new ones, and refusing new ones \
             when all are busy (raise max_connections if this is real load)"
        );
        *shed = Shed { logged: Some(Instant::now()), ..Shed::default() };
    }
}
