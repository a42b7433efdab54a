//! One connection's shared state: when bytes last moved, how many requests are in flight, whether it was
//! closed to make room.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

/// A connection's shared state.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) id: u64,
    pub(super) epoch: Instant,
    /// Milliseconds since `epoch` when bytes last moved or a request started or ended.
    pub(super) last_active: AtomicU64,
    pub(super) in_flight: AtomicUsize,
    pub(super) closed: AtomicBool,
    /// The reader's waker, so [`Conn::close`] makes hyper poll the stream and see the error.
    pub(super) reader: AtomicWaker,
}

impl Conn {
    pub(super) fn new(id: u64, epoch: Instant) -> Self {
        let conn = Self {
            id,
            epoch,
            last_active: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            reader: AtomicWaker::new(),
        };
        conn.touch();
        conn
    }

    pub(super) fn touch(&self) {
        self.last_active.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    pub(super) fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// No request in flight: closing the connection loses nothing but a keep-alive.
    pub(super) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.closed.load(Ordering::Relaxed)
    }

    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.reader.wake();
    }

    pub(super) fn idle_deadline(&self, idle: Duration) -> Instant {
        self.epoch + Duration::from_millis(self.last_active()) + idle
    }
}
