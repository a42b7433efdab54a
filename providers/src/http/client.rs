//! [`UpstreamClient`]: requests to one registry's `/v2/` API, authenticated, retried where safe.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use regbridge::auth::Scope;
use regbridge::auth::encode_basic;
use regbridge::{Error, Result};
use url::Url;

use super::auth::{Auth, Scheme};
use super::backoff::Backoff;
use super::errors;
use super::retry::{Rules, may_retry, with_retries};
use super::token::{TokenCache, TokenKey};
use super::{ClientOptions, CredentialSource};

/// A client for one upstream registry's `/v2/` API.
///
/// Cloning is cheap and clones share the connection pool, the token cache and what was learnt about the
/// registry's authentication scheme.
///
/// # Authentication
///
/// The client learns how the registry authenticates from its `401` challenges and remembers it: `Basic`
/// (credentials on every request), or `Bearer` (the Docker token flow: a token per scope from the
/// challenge's `realm`, cached in a [`TokenCache`] until shortly before it expires). Once the scheme is
/// known, requests carry authentication from the start, so a registry sees one request, not two.
///
/// # Which outcomes are `Err`
///
/// [`send`](Self::send) answers `Ok(response)` for *every* HTTP response, including 3xx (redirects are
/// never followed), 4xx, 5xx after the retries, and a 401 that remained after the one authentication
/// retry: the proxy forwards those. It answers `Err` only when there is no response to forward:
///
/// * `InvalidInput` for a `path_and_query` that is not under `/v2/`;
/// * `Upstream { status: None, .. }` when no response arrived (connection refused or reset, timeout)
///   after the retries;
/// * errors of the [`CredentialSource`];
/// * token endpoint failures: `Unauthenticated` (it refused the credentials, 401), `Denied` (403),
///   `TooManyRequests` (429), `Upstream` (anything else, or no token in its answer).
///
/// The convenience methods ([`get_manifest`](Self::get_manifest), [`head_manifest`](Self::head_manifest),
/// [`head_blob`](Self::head_blob)) also turn failed responses into errors
/// ([`response_error`](Self::response_error)).
///
/// Errors and logs never contain credentials, tokens, the upstream's `WWW-Authenticate` challenge or its
/// token endpoint's URL. The returned [`reqwest::Response`] is the upstream's, headers included: the
/// caller must not forward its `WWW-Authenticate`.
#[derive(Clone)]
pub struct UpstreamClient {
    pub(super) inner: Arc<Inner>,
    backoff: Backoff,
}

pub(super) struct Inner {
    pub(super) http: reqwest::Client,
    pub(super) base_url: Url,
    /// `scheme://host[:port]`, which request paths are appended to.
    pub(super) origin: String,
    pub(super) provider: String,
    pub(super) credentials: Arc<dyn CredentialSource>,
    pub(super) max_attempts: u32,
    pub(super) tokens: TokenCache,
    pub(super) scheme: Mutex<Scheme>,
    /// Caller scope to the token key the registry's challenge named, where its scope differs from the
    /// caller's (otherwise the key is derived from the scheme).
    pub(super) scope_keys: Mutex<HashMap<String, TokenKey>>,
}

impl fmt::Debug for UpstreamClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamClient")
            .field("provider", &self.inner.provider)
            .field("base_url", &self.inner.base_url.as_str())
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

impl UpstreamClient {
    /// A client for the registry at `base_url` (`https://ghcr.io`, `http://127.0.0.1:5000`: scheme and host,
    /// no path, query or user-info). `provider` names the registry in errors.
    pub fn new(
        base_url: url::Url,
        provider: impl Into<String>,
        credentials: Arc<dyn CredentialSource>,
        options: ClientOptions,
    ) -> Result<Self> {
        let bad = |why: &str| Error::bad_input(format!("invalid upstream registry URL {base_url}: {why}"));
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if base_url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if !base_url.username().is_empty() || base_url.password().is_some() {
            return Err(bad("credentials belong in the credential source, not in the URL"));
        }
        if base_url.query().is_some() || base_url.fragment().is_some() || base_url.path() != "/" {
            return Err(bad("registries serve /v2/ at the root, so the URL has no path or query"));
        }
        let http = options.http_client()?;
        let origin = base_url.origin().ascii_serialization();
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                origin,
                base_url,
                provider: provider.into(),
                credentials,
                max_attempts: options.max_attempts.max(1),
                tokens: TokenCache::new(),
                scheme: Mutex::new(Scheme::Unknown),
                scope_keys: Mutex::new(HashMap::new()),
            }),
            backoff: Backoff::default(),
        })
    }

    /// The same client waiting `backoff` between attempts (tests use short waits).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The registry's URL.
    pub fn base_url(&self) -> &url::Url {
        &self.inner.base_url
    }

    /// The provider name used in errors.
    pub fn provider(&self) -> &str {
        &self.inner.provider
    }

    /// Sends `method` to `path_and_query` (starts with `/v2/`, passed through byte for byte — the query is
    /// not re-encoded) with `headers` (hop-by-hop and `Authorization` removed by the caller; the client adds
    /// its own `Authorization`, and drops `Host`) and an optional body. `scopes` are the token scopes the
    /// request needs (`repository:team/app:pull,push`), used when the registry's challenge names none and
    /// to authenticate before the registry asks.
    ///
    /// **Authentication.** The request first carries what worked last time for this scope (a cached bearer
    /// token, or Basic if the registry answered a Basic challenge). On a 401 with a `Bearer` challenge a
    /// token is fetched from the challenge's realm (with the challenge's scope, else `scopes`, and Basic
    /// credentials when the [`CredentialSource`] has some), cached, and the request is sent once more; on a
    /// 401 with a `Basic` challenge it is sent once more with Basic credentials.
    ///
    /// **Streaming bodies.** A body that is a stream ([`reqwest::Body::wrap_stream`]) is consumed by sending
    /// it and cannot be replayed, so authentication is settled *before* it is sent: with the scheme learnt
    /// earlier, or, when nothing is known yet, after a bodyless `GET /v2/` probe. The body is then sent
    /// exactly once, and a 401 is returned as it is. Buffered bodies ([`reqwest::Body::from`] bytes) are
    /// replayed for the authentication retry.
    ///
    /// **Retries.** `GET` and `HEAD` without a streaming body are retried with jittered backoff on
    /// connection errors and timeouts, 429 and 5xx, up to [`ClientOptions::max_attempts`] attempts in all
    /// (see [`super::retry`]). Redirects are not followed: they are returned, for the proxy to pass on.
    ///
    /// Which outcomes are `Err` rather than a response is listed on [`UpstreamClient`]. Characters a URL
    /// query may not contain (space, `"`, `#`, `<`, `>`, `'`) are percent-encoded by URL parsing; a valid
    /// request target, as any client sends, passes unchanged, `%XX` escapes, order and repeated keys kept.
    pub async fn send(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: http::HeaderMap,
        body: Option<reqwest::Body>,
        scopes: &[Scope],
    ) -> Result<reqwest::Response> {
        let url = self.url_for(path_and_query)?;
        self.send_url(method, url, path_and_query, headers, body, scopes).await
    }

    /// [`send`](Self::send) to an upload session the registry handed out, which may live anywhere on the
    /// registry's own host (GAR answers with `/artifacts-uploads/...`), not only under `/v2/`. The path must
    /// be absolute and stay on the registry's origin.
    pub async fn send_session(
        &self,
        method: http::Method,
        path_and_query: &str,
        headers: http::HeaderMap,
        body: Option<reqwest::Body>,
        scopes: &[Scope],
    ) -> Result<reqwest::Response> {
        let bad = || Error::bad_input(format!("an upload session path must be absolute, not {path_and_query:?}"));
        let url = absolute_url(&self.inner.origin, path_and_query).ok_or_else(bad)?;
        self.send_url(method, url, path_and_query, headers, body, scopes).await
    }

    async fn send_url(
        &self,
        method: http::Method,
        url: Url,
        path_and_query: &str,
        mut headers: http::HeaderMap,
        body: Option<reqwest::Body>,
        scopes: &[Scope],
    ) -> Result<reqwest::Response> {
        headers.remove(AUTHORIZATION);
        headers.remove(HOST);
        let what = describe(&method, path_and_query);
        let buffered = match body {
            Some(body) => match body.as_bytes() {
                Some(bytes) => Some(Bytes::copy_from_slice(bytes)),
                None => {
                    let auth = self.auth_before_stream(scopes).await?;
                    return self.send_once(&method, &url, &headers, Some(body), &auth, &what).await;
                }
            },
            None => None,
        };
        let auth = self.known_auth(scopes).await?;
        let response = self.send_retrying(&method, &url, &headers, buffered.clone(), &auth, &what).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(retry_auth) = self.answer_challenge(response.headers(), scopes, &auth).await? else {
            return Ok(response);
        };
        drop(response);
        self.send_retrying(&method, &url, &headers, buffered, &retry_auth, &what).await
    }

    /// Logs in to the registry: `GET /v2/` authenticated as [`send`](Self::send) would for `scopes` (none: the
    /// registry's plain login check, which token services grant to any valid login), and the registry's
    /// error when it does not answer 2xx.
    pub async fn ping(&self, scopes: &[Scope]) -> Result<()> {
        let response = self.send(Method::GET, "/v2/", HeaderMap::new(), None, scopes).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(self.response_error("GET /v2/", response).await)
    }

    /// The error for a failed `response` to `what` (`GET /v2/a/manifests/b`): 401 `Unauthenticated`, 403
    /// `Denied`, 404 `NotFound`, 429 `TooManyRequests` with `Retry-After`, else `Upstream` with the status.
    /// The message carries the upstream's OCI error message and nothing else of the response.
    pub async fn response_error(&self, what: &str, response: reqwest::Response) -> Error {
        errors::from_response(&self.inner.provider, what, response).await
    }

    /// The underlying HTTP client (no redirects, the configured timeouts), for requests that must not
    /// carry this registry's credentials, such as following a redirect to storage.
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(super) fn url_for(&self, path_and_query: &str) -> Result<Url> {
        let bad = || Error::bad_input(format!("upstream request paths start with /v2/, not {path_and_query:?}"));
        if !path_and_query.starts_with("/v2/") {
            return Err(bad());
        }
        let url = absolute_url(&self.inner.origin, path_and_query).ok_or_else(bad)?;
        if !url.path().starts_with("/v2/") {
            return Err(bad());
        }
        Ok(url)
    }

    fn request(&self, method: &Method, url: &Url, headers: &HeaderMap, auth: &Auth) -> Result<reqwest::RequestBuilder> {
        let mut builder = self.inner.http.request(method.clone(), url.clone()).headers(headers.clone());
        let value = match auth {
            Auth::None => None,
            Auth::Basic(user, password) => Some(format!("Basic {}", encode_basic(user, password))),
            Auth::Bearer(_, token) => Some(format!("Bearer {}", token.expose())),
        };
        if let Some(value) = value {
            let mut value = HeaderValue::from_str(&value).map_err(|_| Error::Upstream {
                provider: self.inner.provider.clone(),
                status: None,
                message: "the upstream credentials or token contain characters a header cannot carry".into(),
                source: None,
            })?;
            value.set_sensitive(true);
            builder = builder.header(AUTHORIZATION, value);
        }
        Ok(builder)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<reqwest::Body>,
        auth: &Auth,
        what: &str,
    ) -> Result<reqwest::Response> {
        let mut builder = self.request(method, url, headers, auth)?;
        if let Some(body) = body {
            builder = builder.body(body);
        }
        builder.send().await.map_err(|e| errors::from_transport(&self.inner.provider, what, e))
    }

    /// Sends a request whose body (if any) is in memory, retrying `GET`/`HEAD` as [`super::retry`] allows.
    pub(super) async fn send_retrying(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
        auth: &Auth,
        what: &str,
    ) -> Result<reqwest::Response> {
        let attempts = if may_retry(method, false) { self.inner.max_attempts } else { 1 };
        let rules = Rules { max_attempts: attempts, failures: true, rate_limits: true };
        let mut builder = self.request(method, url, headers, auth)?;
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let request = builder.build().map_err(|e| errors::from_transport(&self.inner.provider, what, e))?;
        let http = &self.inner.http;
        // The body is bytes, never a stream, and a request with a bytes body always clones.
        let send = || http.execute(request.try_clone().expect("a request with a buffered body clones"));
        with_retries(rules, &self.backoff, &self.inner.provider, what, send)
            .await
            .map_err(|e| errors::from_transport(&self.inner.provider, what, e))
    }
}

/// `GET /v2/a/manifests/b`: the method and path, without the query (upload state, pagination markers).
/// `origin` + `path_and_query` as a URL, or `None` when the path is not absolute on that origin or URL
/// parsing would change it: dot segments (`..`, `%2e%2e`) are resolved by parsing, so a path that comes out
/// different from what was given was trying to reach somewhere else, and is refused rather than followed.
fn absolute_url(origin: &str, path_and_query: &str) -> Option<Url> {
    if !path_and_query.starts_with('/') || path_and_query.starts_with("//") {
        return None;
    }
    let url = Url::parse(&format!("{origin}{path_and_query}")).ok()?;
    let path = path_and_query.split(['?', '#']).next().unwrap_or_default();
    (url.path() == path && url.origin().ascii_serialization() == origin.trim_end_matches('/')).then_some(url)
}

fn describe(method: &Method, path_and_query: &str) -> String {
    let path = path_and_query.split('?').next().unwrap_or_default();
    format!("{method} {path}")
}
