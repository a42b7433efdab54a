//! The body read timeout: every request body is wrapped where the connection's service receives it, so
//! a body that delivers no bytes for a while fails in the handler, and the answer becomes a 408.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Response, StatusCode, header};
use pin_project_lite::pin_project;
use tower_http::timeout::{TimeoutBody, TimeoutError};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Set when a request's body timed out, so its response can say so.
#[derive(Clone, Debug, Default)]
pub(super) struct Stalled(Option<Arc<AtomicBool>>);

impl Stalled {
    /// A flag for a body that can stall; none (and no allocation) for an empty one (GET, HEAD, DELETE).
    pub(super) fn for_body(body: &impl http_body::Body) -> Self {
        Self((!body.is_end_stream()).then(Arc::default))
    }

    /// Whatever the handler made of the read error, the client gets `408 Request Timeout` and
    /// `Connection: close` (the rest of the body may still arrive, or never). The handler's error body stays:
    /// it names the endpoint's OCI code and the bytes received, which a chunked upload can resume from.
    pub(super) fn answer<R>(&self, response: &mut Response<R>, timeout: Duration) {
        if self.0.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            tracing::info!(timeout_secs = timeout.as_secs_f64(), "request body stalled; answered 408");
            *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

pin_project! {
    /// A request body that fails when no bytes arrive for the timeout. tower-http's `TimeoutBody` runs
    /// the timer only while the handler waits for the next frame, so a slow disk does not count.
    pub struct Watched<B> {
        #[pin]
        body: TimeoutBody<B>,
        stalled: Stalled,
    }
}

impl<B> Watched<B> {
    pub(super) fn new(body: B, timeout: Duration, stalled: Stalled) -> Self {
        Self { body: TimeoutBody::new(timeout, body), stalled }
    }
}

impl<B> http_body::Body for Watched<B>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, BoxError>>> {
        let this = self.project();
        let frame = this.body.poll_frame(cx);
        if let Poll::Ready(Some(Err(e))) = &frame
            && e.is::<TimeoutError>()
            && let Some(flag) = &this.stalled.0
        {
            flag.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
