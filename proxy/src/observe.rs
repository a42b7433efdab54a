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

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use regbridge::oci::RepositoryName;

use crate::api::AppState;
use crate::route::OciRoute;

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

/// What a request was, for labels: the endpoint kind and, for repository requests, the route's prefix.
fn classify(state: &AppState, path: &str) -> (&'static str, String) {
    let Some(rest) = path.strip_prefix("/v2/").filter(|r| !r.is_empty()) else {
        let endpoint = match path {
            "/v2/" | "/v2" => "ping",
            "/token" => "token",
            "/metrics" => "metrics",
            "/healthz" | "/readyz" => "health",
            p if p.starts_with("/admin/") => "admin",
            _ => "other",
        };
        return (endpoint, "-".into());
    };
    let Ok(route) = OciRoute::parse(rest) else { return ("invalid", "-".into()) };
    let endpoint = match &route {
        OciRoute::Catalog => "catalog",
        OciRoute::Manifest(..) => "manifest",
        OciRoute::Blob(..) => "blob",
        OciRoute::UploadStart(_) | OciRoute::Upload(..) => "upload",
        OciRoute::Tags(_) => "tags",
        OciRoute::Referrers(..) => "referrers",
    };
    (endpoint, route.repository().map(|name| route_of(state, name)).unwrap_or_else(|| "-".into()))
}

/// The prefix of the route serving `name` (`(default)` for the catch-all route).
fn route_of(state: &AppState, name: &RepositoryName) -> String {
    match state.routes.resolve(name) {
        Ok(resolved) if resolved.route.prefix.is_empty() => "(default)".into(),
        Ok(resolved) => resolved.route.prefix.clone(),
        Err(_) => "(none)".into(),
    }
}

/// The middleware: counts the bytes both ways and writes the access line and the request metrics when the
/// response is over.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let (endpoint, route) = classify(&state, &path);
    let received = Arc::new(AtomicU64::new(0));
    let upload = endpoint == "upload" && method != "GET" && method != "HEAD" && method != "DELETE";
    if upload {
        metrics::gauge!("regbridge_active_uploads").increment(1.0);
    }
    let request = request.map(|body| Body::new(Counted::new(body, received.clone(), None)));
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let line = AccessLine { method, path, endpoint, route, status, received, started, upload };
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
    method: String,
    path: String,
    endpoint: &'static str,
    route: String,
    status: u16,
    received: Arc<AtomicU64>,
    started: Instant,
    upload: bool,
}

impl AccessLine {
    fn finish(self, sent: u64, complete: bool) {
        let received = self.received.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        tracing::info!(
            target: "regbridge::access",
            method = %self.method,
            path = %self.path,
            route = %self.route,
            status = self.status,
            bytes_in = received,
            bytes_out = sent,
            duration_ms = elapsed.as_millis() as u64,
            complete,
            "request"
        );
        let labels = [
            ("route", self.route.clone()),
            ("endpoint", self.endpoint.to_owned()),
            ("method", self.method.clone()),
            ("status", self.status.to_string()),
        ];
        metrics::counter!("regbridge_http_requests_total", &labels).increment(1);
        let by_route = [("route", self.route)];
        metrics::counter!("regbridge_http_received_bytes_total", &by_route).increment(received);
        metrics::counter!("regbridge_http_sent_bytes_total", &by_route).increment(sent);
        let by_endpoint = [("endpoint", self.endpoint.to_owned())];
        metrics::histogram!("regbridge_http_request_duration_seconds", &by_endpoint).record(elapsed.as_secs_f64());
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
