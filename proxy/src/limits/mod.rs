//! Limits on what a client may hold: connections (how many, how long idle) and request bodies (how long
//! they may stall). Head sizes and head read time are hyper's settings, in `server.rs`.
//!
//! * [`ConnectionLimits`] is the acceptor every connection passes (under TLS too): it caps concurrent
//!   connections and closes the ones idle too long, where idle means no request in flight and no byte
//!   moved. A download in progress, or a handler waiting on an upstream, is never idle.
//! * The same acceptor's per-connection service wraps every request body, so a body that delivers no
//!   bytes for the body read timeout ends its request with 408 (one place, before any router layer).

mod accept;
mod body;
mod conn;
mod registry;
mod tracked;

pub use accept::ConnectionLimits;
pub use body::Watched;
pub use tracked::{Guarded, InFlight, Tracked};
