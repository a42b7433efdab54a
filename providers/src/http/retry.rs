//! Which requests are retried, and after which outcomes: the rules, and the one retry loop both HTTP
//! clients use ([`with_retries`]).
//!
//! A retry sends the same request again, so it is only safe when sending it twice has the effect of
//! sending it once and when the request can be sent again at all:
//!
//! * on a registry's `/v2/` API ([`UpstreamClient`](super::UpstreamClient)) only `GET` and `HEAD` are
//!   retried. `PUT` and `DELETE` are idempotent in HTTP's sense, but a registry `PUT` that completes an
//!   upload or a `PATCH` that appends a chunk changes the upload session's state, so a second attempt after
//!   a lost response may fail or, worse, commit twice;
//! * on a control plane's REST API ([`RestClient`](super::RestClient)) `GET`, `HEAD`, `PUT` and `DELETE` are
//!   retried, which those APIs define as idempotent, and a `POST` only when its caller states that it is
//!   safe to repeat ([`RestMethod::safe_to_repeat`](super::RestMethod::safe_to_repeat): an
//!   etag-guarded write, a token endpoint); a `429` is retried for every method, since the request was
//!   not processed;
//! * a request whose body is a stream is never retried: its bytes were consumed by the first attempt;
//! * the outcomes retried are connection failures and timeouts (no response arrived), `429 Too Many
//!   Requests` and `5xx` except `501 Not Implemented` and `505 HTTP Version Not Supported`, which no second
//!   attempt changes.
//!
//! Failures after the response headers arrived (a connection reset while the body streams) are not seen
//! here: the response was already handed to the caller.

use std::future::Future;

use http::{Method, StatusCode};

use super::backoff::{Backoff, retry_after};

/// When a request is sent again: at most `max_attempts` in all; after a 429 when `rate_limits`; after a
/// retryable status or a transport failure when `failures` (idempotent requests only).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Retry 5xx (and 429) answers and transport failures.
    pub failures: bool,
    /// Retry 429 answers (after `Retry-After`).
    pub rate_limits: bool,
}

/// The one retry loop of both HTTP clients: sends with `send` until an outcome the `rules` do not retry,
/// or the attempts run out, waiting `backoff` (or the server's `Retry-After`) in between. Returns the last
/// outcome as it is; callers turn it into their errors.
pub async fn with_retries<F, Fut>(
    rules: Rules,
    backoff: &Backoff,
    provider: &str,
    what: &str,
    mut send: F,
) -> reqwest::Result<reqwest::Response>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut attempt = 1;
    loop {
        let result = send().await;
        let wait = match &result {
            _ if attempt >= rules.max_attempts => None,
            Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS && (rules.rate_limits || rules.failures) => {
                backoff.delay(attempt, retry_after(r.headers()))
            }
            Ok(r) if rules.failures && is_retryable_status(r.status()) => {
                backoff.delay(attempt, retry_after(r.headers()))
            }
            Err(e) if rules.failures && is_retryable_error(e) => backoff.delay(attempt, None),
            _ => None,
        };
        let Some(wait) = wait else { return result };
        let status = result.as_ref().map(|r| r.status().as_u16()).ok();
        tracing::debug!(provider, what, ?status, attempt, ?wait, "retrying");
        drop(result);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// True for the methods the client retries: `GET` and `HEAD`.
pub fn is_retryable_method(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// True for the methods a control plane's REST API (Google's, Azure Resource Manager) defines as
/// idempotent: `GET`, `HEAD`, `PUT` and `DELETE`.
pub fn is_idempotent_rest_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE)
}

/// True for statuses that a later attempt may turn into success: 429 and most 5xx.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// True for transport errors where no response arrived: connecting failed, the request could not be
/// sent, or a timeout expired.
pub fn is_retryable_error(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request()
}

/// Whether a request may be sent again at all: a retryable method and no streaming body.
pub fn may_retry(method: &Method, has_streaming_body: bool) -> bool {
    is_retryable_method(method) && !has_streaming_body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_without_streams_are_retried() {
        assert!(may_retry(&Method::GET, false));
        assert!(may_retry(&Method::HEAD, false));
        assert!(!may_retry(&Method::GET, true));
        for m in [Method::PUT, Method::PATCH, Method::POST, Method::DELETE] {
            assert!(!may_retry(&m, false), "{m}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 307, 400, 401, 403, 404, 501, 505] {
            assert!(!is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
