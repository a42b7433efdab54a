//! The acceptor: admits a connection under the cap (closing the longest-idle one to make room when the cap
//! is reached), and wraps its stream and service so idleness can be seen.

use std::collections::HashMap;
use std::future::{Ready, ready};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::conn::Conn;
use super::registry::{Registry, Shed};
use super::tracked::{InFlight, Tracked};

/// The connection cap and idle timeout, as an `axum_server` acceptor. Cloning shares the same registry.
///
/// At the cap, a new connection takes the place of the connection idle longest (no request in flight),
/// which is closed: silent connections cannot lock everyone else out, while connections doing work are
/// never dropped for a newcomer. When every connection is busy, the new one is closed at once.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    registry: Arc<Registry>,
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
        let conn = Arc::new(Conn::new(registry.next_id.fetch_add(1, Ordering::Relaxed), registry.epoch));
        open.insert(conn.id, conn.clone());
        drop(open);
        if evicted {
            registry.shed(true);
        }
        Some(conn)
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
