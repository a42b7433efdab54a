//! The acceptor: admits a connection under the cap (closing the longest-idle one to make room when the cap
//! is reached), and wraps its stream and service so idleness can be seen.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::tracked::{Conn, InFlight, Tracked};

/// How often, at most, the cap being reached is logged (a flood would otherwise log a line per connection).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The connection cap and idle timeout, as an `axum_server` acceptor. Cloning shares the same registry.
///
/// At the cap, a new connection takes the place of the connection idle longest (no request in flight),
/// which is closed: silent connections cannot lock everyone else out, while connections doing work are
/// never dropped for a newcomer. When every connection is busy, the new one is closed at once.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    registry: Arc<Registry>,
}

#[derive(Debug)]
pub(super) struct Registry {
    max: usize,
    pub(super) idle: Duration,
    pub(super) body_read: Duration,
    /// The zero of the millisecond clocks in [`Conn`].
    pub(super) epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    shed: Mutex<Shed>,
}

/// What the cap did since it was last logged.
#[derive(Debug, Default)]
struct Shed {
    logged: Option<Instant>,
    closed_idle: u64,
    refused: u64,
}

impl ConnectionLimits {
    /// At most `max` connections at once (at least 1); a connection idle for `idle` is closed; a request
    /// body silent for `body_read` ends its request with 408.
    pub fn new(max: usize, idle: Duration, body_read: Duration) -> Self {
        Self {
            registry: Arc::new(Registry {
                max: max.max(1),
                idle,
                body_read,
                epoch: Instant::now(),
                next_id: AtomicU64::new(0),
                open: Mutex::new(HashMap::new()),
                shed: Mutex::new(Shed::default()),
            }),
        }
    }

    /// Registers a new connection, making room if needed; `None` when every connection is busy.
    fn admit(&self) -> Option<Arc<Conn>> {
        let registry = &self.registry;
        let mut open = registry.lock();
        let mut evicted = false;
        if open.len() >= registry.max {
            let victim = open.values().filter(|c| c.is_idle()).min_by_key(|c| c.last_active()).cloned();
            match victim {
                Some(victim) => {
                    open.remove(&victim.id);
                    victim.close();
                    evicted = true;
                }
                None => {
                    drop(open);
                    registry.shed(false);
                    return None;
                }
            }
        }
        let conn = Arc::new(Conn::new(registry.next_id.fetch_add(1, Ordering::Relaxed), registry));
        open.insert(conn.id, conn.clone());
        drop(open);
        if evicted {
            registry.shed(true);
        }
        Some(conn)
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // A panic while holding the map leaves it consistent (inserts and removes are single calls).
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Counts one connection closed (`idle`) or refused at the cap, and logs the counts now and then.
    fn shed(&self, idle: bool) {
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

impl<I, S> Accept<I, S> for ConnectionLimits
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    type Stream = Tracked<I>;
    type Service = InFlight<S>;
    type Future = Ready<io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        ready(match self.admit() {
            Some(conn) => Ok((
                Tracked::new(stream, conn.clone(), self.registry.clone()),
                InFlight::new(service, conn, self.registry.body_read),
            )),
            // axum_server drops the stream, which closes the connection.
            None => Err(io::Error::other("connection limit reached")),
        })
    }
}
