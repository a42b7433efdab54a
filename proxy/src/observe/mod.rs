//! Operability: one log line per request, Prometheus metrics at `/metrics`, and `/healthz` / `/readyz`.
//!
//! The access line is written when the response body has been sent (or the client went away), so it carries
//! the bytes really transferred and the whole duration of a streamed blob, not only the time to the first
//! byte. It names the method, the path (never the query: signed upload URLs carry their signature there),
//! the route, the status, bytes in and out and the duration; credentials never appear in it.
//!
//! Metrics go through the `metrics` facade (the providers count credential-cache hits and misses with it)
//! into one process-wide Prometheus recorder.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub mod meters;

pub use meters::Meters;
use meters::{ENDPOINTS, METHODS, NO_REPOSITORY, NO_ROUTE, method_index, route_label};

use crate::pipeline::request::{Endpoint, Parsed};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for request and upstream durations.
const BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The process's Prometheus recorder (installed on first use; servers in one process share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)
            .expect("the buckets are not empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder installed first (a program embedding the proxy) keeps its metrics; ours are
        // then rendered empty rather than failing.
        let _ = metrics::set_global_recorder(recorder);
        // Histogram samples queue up until upkeep drains them into buckets; without a scrape that queue would
        // grow with every request, so a thread drains it every few seconds.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

/// `GET /metrics`: every metric in Prometheus' text format.
pub async fn metrics_endpoint() -> Response {
    let handle = prometheus();
    handle.run_upkeep();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], handle.render()).into_response()
}

/// `GET /healthz`: the process serves requests.
pub async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: the data directory is writable, so pushes can land (routes were checked at start).
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.config.data_dir.join(".readyz");
    let ready = tokio::fs::write(&probe, b"ok").await.is_ok();
    let _ = tokio::fs::remove_file(&probe).await;
    if ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let message = format!("not ready: cannot write to the data directory {}\n", state.config.data_dir.display());
        (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
    }
}

/// Records the duration of one request to an upstream registry.
pub fn upstream_latency(provider: &str, method: &str, elapsed: Duration) {
    let labels = [("provider", provider.to_owned()), ("method", method.to_owned())];
    metrics::histogram!("regbridge_upstream_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
}

/// The endpoint kind (an index into [`ENDPOINTS`]) of a parsed request.
fn classify(parsed: &Parsed) -> usize {
    match &parsed.endpoint {
        Endpoint::Ping => 0,
        Endpoint::Token => 1,
        Endpoint::Metrics => 2,
        Endpoint::Health => 3,
        Endpoint::Admin => 4,
        Endpoint::Other => 5,
        Endpoint::Oci(Err(_)) => 6,
        Endpoint::Oci(Ok(route)) => ENDPOINTS.iter().position(|e| *e == route.endpoint()).unwrap_or(5),
    }
}

/// The middleware: counts the bytes both ways and writes the access line and the request metrics when the
/// response is over.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_index(request.method());
    let parsed = request.extensions().get::<Arc<Parsed>>().cloned();
    let parsed = parsed.unwrap_or_else(|| Arc::new(Parsed::of(&state, request.uri())));
    let endpoint = classify(&parsed);
    let route = match &parsed.route {
        Some(Ok((index, _))) => *index,
        Some(Err(_)) => NO_ROUTE,
        None => NO_REPOSITORY,
    };
    // The path is copied only when the access line will be written.
    let path = tracing::enabled!(target: "regbridge::access", tracing::Level::INFO)
        .then(|| (request.method().to_string(), request.uri().path().to_owned()));
    let received = Arc::new(AtomicU64::new(0));
    let upload = endpoint == 10 && matches!(METHODS[method], "POST" | "PATCH" | "PUT");
    if upload {
        metrics::gauge!("regbridge_active_uploads").increment(1.0);
    }
    let request = if http_body::Body::is_end_stream(request.body()) {
        request
    } else {
        request.map(|body| Body::new(Counted::new(body, received.clone(), None)))
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let line = AccessLine { state, method, path, endpoint, route, status, received, started, upload };
    // Streamed bodies (blobs) announce their length in the header, not in the body's size hint.
    let announced = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    response.map(|body| {
        let mut counted = Counted::new(body, Arc::new(AtomicU64::new(0)), Some(line));
        counted.expected = counted.expected.or(announced);
        Body::new(counted)
    })
}

/// What the access line and the metrics say about one finished request.
struct AccessLine {
    state: Arc<AppState>,
    method: usize,
    /// Method and path, when access lines are logged.
    path: Option<(String, String)>,
    endpoint: usize,
    route: usize,
    status: u16,
    received: Arc<AtomicU64>,
    started: Instant,
    upload: bool,
}

impl AccessLine {
    fn finish(self, sent: u64, complete: bool) {
        let received = self.received.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let state = &self.state;
        if let Some((method, path)) = &self.path {
            tracing::info!(
                target: "regbridge::access",
                method = %method,
                path = %path,
                route = %route_label(&state.routes, self.route),
                status = self.status,
                bytes_in = received,
                bytes_out = sent,
                duration_ms = elapsed.as_millis() as u64,
                complete,
                "request"
            );
        }
        let meters = &state.meters;
        meters.requests(&state.routes, (self.route, self.endpoint, self.method, self.status)).increment(1);
        let (bytes_in, bytes_out) = meters.bytes(&state.routes, self.route);
        bytes_in.increment(received);
        bytes_out.increment(sent);
        meters.duration(self.endpoint).record(elapsed.as_secs_f64());
        if self.upload {
            metrics::gauge!("regbridge_active_uploads").decrement(1.0);
        }
    }
}

pin_project_lite::pin_project! {
    /// A body that counts its data bytes, and finishes its access line when it ends or is dropped.
    struct Counted {
        #[pin]
        inner: Body,
        count: Arc<AtomicU64>,
        expected: Option<u64>,
        line: Option<AccessLine>,
    }

    impl PinnedDrop for Counted {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(line) = this.line.take() {
                // hyper stops polling once a body of known length is sent, and never polls an empty one
                // (HEAD, 201, 204): those are complete too.
                let sent = this.count.load(Ordering::Relaxed);
                let whole = this.expected.is_some_and(|n| sent >= n);
                line.finish(sent, whole || http_body::Body::is_end_stream(&*this.inner));
            }
        }
    }
}

impl Counted {
    fn new(inner: Body, count: Arc<AtomicU64>, line: Option<AccessLine>) -> Self {
        let expected = http_body::Body::size_hint(&inner).exact();
        Self { inner, count, expected, line }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => {
                if let Some(line) = this.line.take() {
                    line.finish(this.count.load(Ordering::Relaxed), true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
