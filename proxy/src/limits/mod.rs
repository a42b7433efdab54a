//! Limits on what a client may hold: connections (how many, how long idle) and request bodies (how long
//! they may stall). Head sizes and head read time are hyper's settings, in `server.rs`.
//!
//! * [`ConnectionLimits`] is the acceptor every connection passes (under TLS too): it caps concurrent
//!   connections and closes the ones idle too long, where idle means no request in flight and no byte
//!   moved. A download in progress, or a handler waiting on an upstream, is never idle.
//! * [`body_read_timeout`] is a middleware ending a request whose body delivers no bytes for a while.

mod accept;
mod tracked;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tower_http::timeout::{TimeoutBody, TimeoutError};

pub use accept::ConnectionLimits;

/// Middleware: a request body that delivers no bytes for `timeout` fails with a read error in the
/// handler, and the client gets `408 Request Timeout` with `Connection: close`, whatever the handler made
/// of the error (its body stays). The timer runs only while the handler waits for body bytes, so a slow
/// disk does not count. What was written before the stall stays (a chunked upload can resume from there).
pub async fn body_read_timeout(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    use http_body::Body as _;
    if request.body().is_end_stream() {
        // GET, HEAD, DELETE: nothing to wait for, so no timer and no allocation on the busiest requests.
        return next.run(request).await;
    }
    let stalled = Arc::new(AtomicBool::new(false));
    let seen = stalled.clone();
    let request = request.map(|body| {
        Body::new(TimeoutBody::new(timeout, body).map_err(move |e| {
            if e.is::<TimeoutError>() {
                seen.store(true, Ordering::Relaxed);
            }
            e
        }))
    });
    let mut response = next.run(request).await;
    if stalled.load(Ordering::Relaxed) {
        // The handler's error body stays (it names the endpoint's OCI code and the bytes received); the
        // status says why, and the connection goes: the rest of the body may still arrive, or never.
        tracing::info!(timeout_secs = timeout.as_secs_f64(), "request body stalled; answered 408");
        *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
