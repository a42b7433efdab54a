//! Upstream failures as [`regbridge::Error`]s.
//!
//! Messages name the provider, what was attempted and the upstream's own OCI error message, and nothing
//! else from the response: no headers (a `WWW-Authenticate` challenge stays upstream), no body that is not
//! an OCI error envelope, and never a credential or token.

use regbridge::{Error, Resource};
use serde_json::Value;

use super::backoff::retry_after;

/// How much of an error body is read to find the OCI error message; the rest is dropped unread.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The error for an upstream response that failed: 401 is `Unauthenticated`, 403 `Denied`, 404 `NotFound`
/// (of the resource the OCI code names), 429 `TooManyRequests` (with `Retry-After`), anything else
/// `Upstream` with the status.
pub(crate) async fn from_response(provider: &str, what: &str, response: reqwest::Response) -> Error {
    let status = response.status();
    let wait = retry_after(response.headers());
    let (code, oci) = oci_message(&read_bounded(response).await);
    let detail = if oci.is_empty() { String::new() } else { format!(": {oci}") };
    match status.as_u16() {
        401 => Error::Unauthenticated {
            message: format!("{provider} refused the upstream credentials for {what}{detail}"),
        },
        403 => Error::Denied { message: format!("{provider} denied {what}{detail}") },
        404 => Error::NotFound {
            resource: resource_of(code.as_deref()),
            name: format!("{what} at {provider}{detail}"),
            source: None,
        },
        429 => Error::TooManyRequests { message: format!("{provider} rate-limited {what}{detail}"), retry_after: wait },
        s => Error::Upstream {
            provider: provider.to_owned(),
            status: Some(s),
            message: format!("{what} failed{detail}"),
            source: None,
        },
    }
}

/// The error for a request that got no response (after any retries). The URL is taken out of the
/// source: `what` already says what was requested, and a token endpoint's URL is the upstream's business.
pub(crate) fn from_transport(provider: &str, what: &str, error: reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    Error::Upstream {
        provider: provider.to_owned(),
        status: None,
        message: format!("{what}: {kind}"),
        source: Some(Box::new(error.without_url())),
    }
}

/// Reads at most [`MAX_ERROR_BODY`] bytes of the body; a broken body reads as what arrived.
pub(crate) async fn read_bounded(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())]),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// The first OCI error code and every `CODE: message` of an OCI error envelope, joined by `; `; nothing
/// for other bodies. Parsed loosely (codes outside the specification are kept as text).
fn oci_message(body: &[u8]) -> (Option<String>, String) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return (None, String::new()) };
    let Some(errors) = value.get("errors").and_then(Value::as_array) else { return (None, String::new()) };
    let field = |e: &Value, k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let first = errors.first().map(|e| field(e, "code")).filter(|c| !c.is_empty());
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match (field(e, "code"), field(e, "message")) {
            (c, m) if m.is_empty() => c,
            (c, m) if c.is_empty() => m,
            (c, m) => format!("{c}: {m}"),
        })
        .filter(|s| !s.is_empty())
        .collect();
    (first, parts.join("; "))
}

fn resource_of(code: Option<&str>) -> Resource {
    match code {
        Some("NAME_UNKNOWN") => Resource::Repository,
        Some("MANIFEST_UNKNOWN") => Resource::Manifest,
        Some("BLOB_UNKNOWN") => Resource::Blob,
        Some("BLOB_UPLOAD_UNKNOWN") => Resource::Upload,
        _ => Resource::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_messages_are_extracted() {
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known","detail":{"n":1}},
            {"code":"X_CUSTOM"}]}"#;
        let (code, msg) = oci_message(body);
        assert_eq!(code.as_deref(), Some("NAME_UNKNOWN"));
        assert_eq!(msg, "NAME_UNKNOWN: repository name not known; X_CUSTOM");
        assert_eq!(oci_message(b"<html>nope</html>"), (None, String::new()));
        assert_eq!(oci_message(br#"{"message":"x"}"#), (None, String::new()));
    }
}
