//! [`RestClient`]: JSON requests to a cloud control plane (Google's Artifact Registry and IAM Credentials
//! APIs, Azure Resource Manager, ACR's `/acr/v1/` metadata API), bearer-authenticated, retried where safe.
//!
//! Whether a request is safe to send twice is stated per call with a [`RestMethod`]: a plain [`Method`]
//! converts into one that is repeated when the method is idempotent, and
//! [`RestMethod::safe_to_repeat`] marks a `POST` whose second delivery is harmless (an etag-guarded
//! write, a call that mints a token). The retry loop itself is [`with_retries`]'s.
//!
//! Google and Azure both answer failures with `{"error": {"code": ..., "message": ..., "status": ...}}`;
//! [`RestError`] keeps the status and that code so a provider can act on it (an etag conflict is retried,
//! a missing repository is `NotFound`), and turns into a [`regbridge::Error`] whose message names the
//! provider, what was attempted and the service's own message, never the token.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use regbridge::{Error, Resource, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::ClientOptions;
use super::backoff::{Backoff, retry_after};
use super::errors::read_bounded;
use super::retry::{Rules, is_idempotent_rest_method, with_retries};

/// The method of a control-plane request and whether the request may be sent again after a failure that
/// may have come after the service acted on it (a 5xx, a broken connection, a timeout).
///
/// `RestMethod::from(Method::GET)` (or passing a [`Method`] where an `impl Into<RestMethod>` is taken) is
/// repeated when the method is idempotent in these APIs (`GET`, `HEAD`, `PUT`, `DELETE`); a plain `POST`
/// or `PATCH` is sent once, so a call with a side effect on every delivery (ACR `generateCredentials`,
/// which rotates a password) never runs twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestMethod {
    method: Method,
    safe_to_repeat: bool,
}

impl RestMethod {
    /// `method`, stated by the caller to be safe to send twice: a second delivery of a request that was
    /// already processed either changes nothing or fails in a way the caller handles. For example GAR
    /// `setIamPolicy` carries the etag it read, so a repeat of an applied write fails with an etag conflict
    /// (which re-reads the policy), and IAM Credentials `generateAccessToken` mints a new token each time
    /// and keeps no state.
    pub fn safe_to_repeat(method: Method) -> Self {
        Self { method, safe_to_repeat: true }
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Whether the request is sent again after 5xx answers and connection failures.
    pub fn is_safe_to_repeat(&self) -> bool {
        self.safe_to_repeat
    }
}

impl From<Method> for RestMethod {
    /// Repeated only when `method` is idempotent in these APIs.
    fn from(method: Method) -> Self {
        let safe_to_repeat = is_idempotent_rest_method(&method);
        Self { method, safe_to_repeat }
    }
}

/// A failed control-plane request: the HTTP status (`None` when no response arrived), the service's error
/// code (Google's `status` such as `ABORTED`, else `code`), and the message for the caller.
#[derive(Debug)]
pub struct RestError {
    /// The response's status, if there was a response.
    pub status: Option<StatusCode>,
    /// The service's error code: Google's `error.status` (`ABORTED`, `NOT_FOUND`), Azure's `error.code`
    /// (`ResourceNotFound`), or empty.
    pub code: String,
    /// `Retry-After`, on 429 and 503.
    pub retry_after: Option<Duration>,
    /// The error as the library reports it.
    pub error: Error,
}

impl RestError {
    /// Whether the failure is a concurrency conflict: 409, 412, or Google's `ABORTED`.
    pub fn is_conflict(&self) -> bool {
        matches!(self.status.map(|s| s.as_u16()), Some(409 | 412)) || self.code == "ABORTED"
    }

    /// Whether the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status == Some(StatusCode::NOT_FOUND)
    }
}

impl From<RestError> for Error {
    fn from(e: RestError) -> Self {
        e.error
    }
}

/// A client for a cloud control plane's JSON REST API.
#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    provider: String,
    backoff: Backoff,
    max_attempts: u32,
}

impl RestClient {
    /// A client whose errors name `provider`, with `options`' timeouts and attempts.
    pub fn new(provider: impl Into<String>, options: &ClientOptions) -> regbridge::Result<Self> {
        let http = options.http_client()?;
        Ok(Self {
            http,
            provider: provider.into(),
            backoff: Backoff::default(),
            max_attempts: options.max_attempts.max(1),
        })
    }

    /// The same client waiting `backoff` between attempts (tests use short waits).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The provider name used in errors.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Sends `method` to `url` with `Authorization: Bearer token`, `extra` headers (`If-Match`, ...) and an
    /// optional JSON body, and answers the 2xx response. `what` says what is attempted
    /// ("create repository team-a") for errors.
    ///
    /// **Retries.** A 429 (the request was not processed) is retried for every method, after its
    /// `Retry-After` when it gives one (capped by the backoff's `retry_after_cap`); 5xx and connection
    /// failures are retried only when `method` is safe to repeat: `GET`, `HEAD`, `PUT` and `DELETE`, which
    /// are idempotent in these APIs, and what the caller marked with [`RestMethod::safe_to_repeat`]. Any
    /// other `POST` that failed after it may have been processed is not sent twice.
    pub async fn send(
        &self,
        method: impl Into<RestMethod>,
        url: &Url,
        token: &Secret,
        extra: HeaderMap,
        body: Option<&Value>,
        what: &str,
    ) -> Result<reqwest::Response, RestError> {
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
            self.fail(None, "", None, format!("{what}: the access token contains characters a header cannot carry"))
        })?;
        bearer.set_sensitive(true);
        let method = method.into();
        self.execute(&method, what, |http| {
            let request = http.request(method.method().clone(), url.clone()).headers(extra.clone());
            let request = request.header(header::AUTHORIZATION, bearer.clone());
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await
    }

    /// A form `POST` without a bearer token, for token endpoints that take their credentials in the form
    /// (ACR's `/oauth2/exchange` and `/oauth2/token`), answered as [`send`](Self::send) answers.
    ///
    /// It is always [safe to repeat](RestMethod::safe_to_repeat), so 5xx answers and connection failures
    /// are retried: only token endpoints use it, and each delivery mints a new token and changes no state,
    /// so a repeat after a lost answer at worst leaves an unused token behind.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<reqwest::Response, RestError> {
        let method = RestMethod::safe_to_repeat(Method::POST);
        self.execute(&method, what, |http| http.post(url.clone()).form(form)).await
    }

    /// Sends the request `build` makes, as often as the retry rules of [`send`](Self::send) allow for
    /// `method`, and answers the 2xx response.
    async fn execute(
        &self,
        method: &RestMethod,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RestError> {
        let rules = Rules { max_attempts: self.max_attempts, failures: method.is_safe_to_repeat(), rate_limits: true };
        let result = with_retries(rules, &self.backoff, &self.provider, what, || build(&self.http).send()).await;
        match result {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => Err(self.response_error(what, r).await),
            Err(e) => {
                let kind = if e.is_timeout() { "timed out" } else { "could not connect or the connection broke" };
                Err(self.fail(None, "", None, format!("{what}: {kind}")))
            }
        }
    }

    /// [`send`](Self::send), then the body as `T` (an empty body reads as JSON `null`).
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: impl Into<RestMethod>,
        url: &Url,
        token: &Secret,
        extra: HeaderMap,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, RestError> {
        let response = self.send(method, url, token, extra, body, what).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|_| self.fail(None, "", None, format!("{what}: the response body broke off")))?;
        let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
        serde_json::from_slice(bytes)
            .map_err(|e| self.fail(None, "", None, format!("{what}: the response is not the expected JSON: {e}")))
    }

    /// The error for a failed `response` to `what`.
    pub async fn response_error(&self, what: &str, response: reqwest::Response) -> RestError {
        let status = response.status();
        let wait = retry_after(response.headers());
        let (code, message) = service_error(&read_bounded(response).await);
        let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
        let provider = &self.provider;
        let error = match status.as_u16() {
            400 => Error::bad_input(format!("{provider} rejected {what}{detail}")),
            401 => Error::Unauthenticated {
                message: format!("{provider} refused the caller's credentials for {what}{detail}"),
            },
            403 => Error::Denied { message: format!("{provider} denied {what}{detail}") },
            404 => Error::NotFound {
                resource: Resource::Other,
                name: format!("{what} at {provider}{detail}"),
                source: None,
            },
            429 => {
                Error::TooManyRequests { message: format!("{provider} rate-limited {what}{detail}"), retry_after: wait }
            }
            s => Error::Upstream {
                provider: provider.clone(),
                status: Some(s),
                message: format!("{what} failed{detail}"),
                source: None,
            },
        };
        RestError { status: Some(status), code, retry_after: wait, error }
    }

    fn fail(&self, status: Option<StatusCode>, code: &str, wait: Option<Duration>, message: String) -> RestError {
        RestError {
            status,
            code: code.to_owned(),
            retry_after: wait,
            error: Error::Upstream { provider: self.provider.clone(), status: None, message, source: None },
        }
    }
}

/// The code and message of a Google or Azure error body (`{"error": {...}}`); empty for other bodies.
/// Google's `status` (`ABORTED`) is preferred over its numeric `code`; Azure's `code` is a string.
fn service_error(body: &[u8]) -> (String, String) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else { return (String::new(), String::new()) };
    let Some(error) = value.get("error") else { return (String::new(), String::new()) };
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let code = match text("status") {
        s if s.is_empty() => text("code"),
        s => s,
    };
    (code, text("message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_and_azure_error_bodies() {
        let google = br#"{"error":{"code":409,"message":"etag mismatch","status":"ABORTED"}}"#;
        assert_eq!(service_error(google), ("ABORTED".into(), "etag mismatch".into()));
        let azure = br#"{"error":{"code":"ResourceNotFound","message":"The Resource was not found."}}"#;
        assert_eq!(service_error(azure), ("ResourceNotFound".into(), "The Resource was not found.".into()));
        assert_eq!(service_error(b"<html/>"), (String::new(), String::new()));
    }
}
