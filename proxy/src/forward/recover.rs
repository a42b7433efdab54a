//! Recovering GET answers whose connection breaks after the headers arrived.
//!
//! The upstream client retries a GET that gets no answer, but once the status line is through the body
//! belongs to the caller. Two recoveries are safe because what is fetched is content-addressed or small:
//!
//! * a manifest (at most [`MAX_MANIFEST_BYTES`], the limit registries apply) is read whole before the client
//!   sees a byte, and fetched again when the connection breaks, so the client gets it complete or gets an
//!   OCI error, never a truncated document;
//! * a blob streams through, and when the connection breaks after `n` bytes the rest is asked for with
//!   `Range: bytes=n-`. Only a `206` whose `Content-Range` starts at `n` continues the stream; anything else
//!   ends it with an error, so the client sees a short body (and checks the digest), never spliced bytes.

use std::pin::Pin;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use regbridge::oci::{Digest, Digester, MAX_MANIFEST_BYTES};
use regbridge::{Error, Result};

/// How many times a broken body is fetched again, per response.
const MAX_RECOVERIES: u32 = 3;

/// Fetches the resource again; given `Some(offset)`, only the bytes from `offset` on.
pub(crate) type Refetch = Arc<dyn Fn(Option<u64>) -> BoxFuture<'static, Result<reqwest::Response>> + Send + Sync>;

/// Whether `response` to `method` can be recovered as a manifest: a whole `200` of bounded size.
fn is_bufferable(method: &Method, response: &reqwest::Response) -> bool {
    method == Method::GET
        && response.status() == StatusCode::OK
        && response.content_length().is_some_and(|n| n <= MAX_MANIFEST_BYTES)
}

/// The manifest `response`, read whole, fetched again through `refetch` when its body breaks. Answers that
/// are not a bounded `200` are returned untouched.
pub(crate) async fn buffered_manifest(
    provider: &str,
    method: &Method,
    mut response: reqwest::Response,
    refetch: Refetch,
) -> Result<reqwest::Response> {
    let mut recoveries = 0;
    loop {
        if !is_bufferable(method, &response) {
            return Ok(response);
        }
        let status = response.status();
        let headers = response.headers().clone();
        match response.bytes().await {
            Ok(body) => return Ok(rebuild(status, headers, reqwest::Body::from(body))),
            Err(err) if recoveries < MAX_RECOVERIES => {
                recoveries += 1;
                tracing::debug!(provider, recoveries, error = %err, "manifest body broke; fetching it again");
                response = refetch(None).await?;
            }
            Err(err) => {
                return Err(Error::Upstream {
                    provider: provider.to_owned(),
                    status: None,
                    message: format!("the manifest's body broke off {recoveries} times; last: {err}"),
                    source: None,
                });
            }
        }
    }
}

/// `response` with its body resumed through `refetch` when the connection breaks. Only a whole `200`
/// with a known length is resumable (a partial answer the client asked for is passed on as it is).
///
/// With `expected`, the bytes are hashed as they pass, and the chunk that completes the body is sent only if
/// the whole matches the digest: an upstream that answers a resume with other bytes (or corrupts a body)
/// makes the client see a broken transfer, never a complete wrong one. Mismatches are counted in
/// `regbridge_proxy_digest_mismatches_total`.
pub(crate) fn resuming_blob(
    provider: &str,
    method: &Method,
    response: reqwest::Response,
    refetch: Refetch,
    expected: Option<&Digest>,
) -> reqwest::Response {
    let Some(total) = response.content_length() else { return response };
    if method != Method::GET || response.status() != StatusCode::OK {
        return response;
    }
    let status = response.status();
    let headers = response.headers().clone();
    let state = Resume {
        provider: provider.to_owned(),
        current: Box::pin(response.bytes_stream()),
        sent: 0,
        total,
        recoveries: 0,
        refetch,
        verify: expected.map(|d| (Digester::new(d.algorithm()), d.clone())),
    };
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        match state.next_chunk().await {
            Some(Ok(chunk)) => Some((Ok(chunk), Some(state))),
            Some(Err(err)) => Some((Err(err), None)),
            None => None,
        }
    });
    rebuild(status, headers, reqwest::Body::wrap_stream(stream))
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One blob body being relayed, and how far it got.
struct Resume {
    provider: String,
    current: ByteStream,
    sent: u64,
    total: u64,
    recoveries: u32,
    refetch: Refetch,
    /// The hash so far and the digest it must come to.
    verify: Option<(Digester, Digest)>,
}

impl Resume {
    /// The next chunk for the client; a broken connection is resumed where it broke.
    async fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            match self.current.next().await {
                Some(Ok(chunk)) => {
                    self.sent += chunk.len() as u64;
                    if let Some((hash, _)) = &mut self.verify {
                        hash.update(&chunk);
                    }
                    if self.sent >= self.total
                        && let Err(err) = self.check()
                    {
                        return Some(Err(err));
                    }
                    return Some(Ok(chunk));
                }
                None if self.sent >= self.total => return None,
                outcome => {
                    let why = match outcome {
                        Some(Err(err)) => err.to_string(),
                        _ => format!("the body ended after {} of {} bytes", self.sent, self.total),
                    };
                    if let Err(err) = self.resume(&why).await {
                        tracing::warn!(provider = %self.provider, error = %err, "could not resume a blob body");
                        return Some(Err(std::io::Error::other(err)));
                    }
                }
            }
        }
    }

    /// At the end of the body: whether what was relayed is the blob it claims to be.
    fn check(&mut self) -> std::io::Result<()> {
        let Some((hash, expected)) = self.verify.take() else { return Ok(()) };
        let got = hash.finish();
        if got == expected && self.sent == self.total {
            return Ok(());
        }
        metrics::counter!("regbridge_proxy_digest_mismatches_total", "provider" => self.provider.clone()).increment(1);
        tracing::warn!(provider = %self.provider, %expected, %got, bytes = self.sent, "an upstream blob body does not match its digest; the transfer is broken off");
        Err(std::io::Error::other(format!("the blob's bytes do not match {expected}")))
    }

    /// Asks for the bytes from `sent` on and continues with them, if the answer is exactly those.
    async fn resume(&mut self, why: &str) -> Result<()> {
        let fail =
            |message: String| Error::Upstream { provider: self.provider.clone(), status: None, message, source: None };
        if self.recoveries >= MAX_RECOVERIES {
            return Err(fail(format!("the blob body broke off {} times; last: {why}", self.recoveries)));
        }
        self.recoveries += 1;
        tracing::debug!(provider = %self.provider, sent = self.sent, why, "blob body broke; resuming with a range");
        let response = (self.refetch)(Some(self.sent)).await?;
        let range_ok = crate::ranges::starts_at(response.headers(), self.sent);
        if response.status() != StatusCode::PARTIAL_CONTENT || !range_ok {
            return Err(fail(format!(
                "resuming at byte {} got {} without a matching Content-Range",
                self.sent,
                response.status()
            )));
        }
        self.current = Box::pin(response.bytes_stream());
        Ok(())
    }
}

/// A response with `status`, `headers` and `body`.
fn rebuild(status: StatusCode, headers: HeaderMap, body: reqwest::Body) -> reqwest::Response {
    let mut rebuilt = axum::http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.headers_mut() = headers;
    reqwest::Response::from(rebuilt)
}
