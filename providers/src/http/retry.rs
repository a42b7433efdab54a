//! Which requests are retried, and after which outcomes.
//!
//! A retry sends the same request again, so it is only safe when sending it twice has the effect of
//! sending it once and when the request can be sent again at all:
//!
//! * only `GET` and `HEAD` are retried. `PUT` and `DELETE` are idempotent in HTTP's sense, but a registry
//!   `PUT` that completes an upload or a `PATCH` that appends a chunk changes the upload session's state, so
//!   a second attempt after a lost response may fail or, worse, commit twice;
//! * a request whose body is a stream is never retried: its bytes were consumed by the first attempt;
//! * the outcomes retried are connection failures and timeouts (no response arrived), `429 Too Many
//!   Requests` and `5xx` except `501 Not Implemented` and `505 HTTP Version Not Supported`, which no second
//!   attempt changes.
//!
//! Failures after the response headers arrived (a connection reset while the body streams) are not seen
//! here: the response was already handed to the caller.

use http::{Method, StatusCode};

/// True for the methods the client retries: `GET` and `HEAD`.
pub fn is_retryable_method(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
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
