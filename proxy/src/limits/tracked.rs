//! One connection's activity: the stream notes when bytes move, the service counts requests in flight,
//! and the stream's reads fail once the connection has been idle too long or was closed to make room.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::body::{Stalled, Watched};
use super::conn::Conn;
use super::registry::Registry;

/// A connection's byte stream (TCP, under TLS when there is TLS).
pub struct Tracked<I> {
    io: I,
    conn: Arc<Conn>,
    registry: Arc<Registry>,
    // Boxed so the stream stays `Unpin`, as hyper needs; one allocation per connection.
    timer: Pin<Box<Sleep>>,
}

impl<I> Drop for Tracked<I> {
    fn drop(&mut self) {
        self.registry.forget(self.conn.id);
    }
}

impl<I> Tracked<I> {
    pub(super) fn new(io: I, conn: Arc<Conn>, registry: Arc<Registry>) -> Self {
        let timer = Box::pin(tokio::time::sleep_until(conn.idle_deadline(registry.idle)));
        Self { io, conn, registry, timer }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let conn = &this.conn;
        if conn.closed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed at the connection limit",
            )));
        }
        conn.reader.register(cx.waker());
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {}
            ready => {
                conn.touch();
                return ready;
            }
        }
        // Hyper reads while it waits for a request (and, on HTTP/2, all the time): only then does the idle
        // clock run. While a request is in flight it stops, and its end touches the clock.
        if conn.in_flight.load(Ordering::Relaxed) == 0 {
            let deadline = conn.idle_deadline(this.registry.idle);
            if this.timer.deadline() != deadline {
                this.timer.as_mut().reset(deadline);
            }
            if this.timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")));
            }
        }
        Poll::Pending
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.moved(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.moved(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<I> Tracked<I> {
    fn moved(&self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.conn.touch();
        }
    }
}

/// Marks a request in flight on its connection from the call until its response body is dropped (sent,
/// or abandoned).
#[derive(Debug)]
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::Relaxed);
        conn.touch();
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        // The idle clock starts when the response is done, not when the request's last byte arrived.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection's service: counts its requests in flight and watches their bodies for stalls.
#[derive(Clone, Debug)]
pub struct InFlight<S> {
    inner: S,
    conn: Arc<Conn>,
    body_read: Duration,
}

impl<S> InFlight<S> {
    pub(super) fn new(inner: S, conn: Arc<Conn>, body_read: Duration) -> Self {
        Self { inner, conn, body_read }
    }
}

impl<S, B, R> tower_service::Service<Request<B>> for InFlight<S>
where
    B: http_body::Body,
    S: tower_service::Service<Request<Watched<B>>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<Guarded<R>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let busy = Busy::new(self.conn.clone());
        let (timeout, stalled) = (self.body_read, Stalled::for_body(request.body()));
        let response = self.inner.call(request.map(|body| Watched::new(body, timeout, stalled.clone())));
        Box::pin(async move {
            let mut response = response.await?;
            stalled.answer(&mut response, timeout);
            Ok(response.map(|body| Guarded { body, _busy: busy }))
        })
    }
}

pin_project! {
    /// A response body that keeps its request in flight until it is dropped.
    pub struct Guarded<B> {
        #[pin]
        body: B,
        _busy: Busy,
    }
}

impl<B: http_body::Body> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
