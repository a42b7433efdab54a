//! Azure Resource Manager calls of the ACR provider: the caller's Entra ID token, JSON requests through the
//! shared [`RestClient`] (which retries 429 after `Retry-After`), polling of long-running operations, and
//! the one place ARM failures become [`regbridge::Error`]s with a hint of what to fix.
//!
//! Long-running operations follow
//! <https://learn.microsoft.com/azure/azure-resource-manager/management/async-operations>: a `201`/`202`
//! carrying `Azure-AsyncOperation` is polled until its `status` is `Succeeded`, `Failed` or `Canceled`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method, StatusCode};
use regbridge::{Error, Resource, Result, Secret};
use serde_json::Value;
use url::Url;

use super::quota;
use crate::http::{Backoff, RestClient, RestError, retry_after};

/// The provider name in errors.
pub(crate) const PROVIDER: &str = "acr";

/// The public Azure cloud's Resource Manager.
pub const DEFAULT_ARM_URL: &str = "https://management.azure.com";

/// The Entra ID scope of ARM tokens.
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";

/// The Entra ID scope of the token sent to the registry's `/oauth2/exchange`. ACR also takes ARM-audience
/// tokens there, but registries that follow the Azure Policy "Container registries should have ARM
/// audience token authentication disabled" refuse them, so the data plane always asks for this audience.
pub const DATA_PLANE_SCOPE: &str = "https://containerregistry.azure.net/.default";

/// `api-version` of the `Microsoft.ContainerRegistry` calls: the first stable version whose registry
/// resource reports `properties.roleAssignmentMode` (ABAC repository permissions); scope maps and tokens
/// are GA in it too.
pub const ACR_API_VERSION: &str = "2025-11-01";

/// `api-version` of the `Microsoft.Authorization` role assignment calls.
pub const AUTHZ_API_VERSION: &str = "2022-04-01";

/// The most pages [`Arm::list`] reads (a registry's 50,000 tokens fit many times over).
const MAX_PAGES: usize = 10_000;

/// What [`Arm::delete`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// The resource existed and is gone.
    Yes,
    /// There was nothing to delete (404 or 204).
    Absent,
}

/// An ARM client: base URL, caller credential, retries, LRO polling.
pub(crate) struct Arm {
    pub(crate) rest: RestClient,
    /// The waits between attempts of requests ARM refuses for a while (a principal not yet replicated).
    pub(crate) backoff: Backoff,
    base: String,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    pub(crate) poll_interval: Duration,
    pub(crate) lro_timeout: Duration,
}

impl fmt::Debug for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arm")
            .field("base", &self.base)
            .field("scope", &self.scope)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Arm {
    pub(crate) fn new(
        rest: RestClient,
        backoff: Backoff,
        base: &str,
        credential: Arc<dyn TokenCredential>,
        scope: String,
        poll_interval: Duration,
        lro_timeout: Duration,
    ) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Self { rest, backoff, base, credential, scope, poll_interval, lro_timeout }
    }

    /// The caller's Entra ID access token for ARM, and when it expires.
    pub(crate) async fn token(&self) -> Result<(Secret, DateTime<Utc>)> {
        self.token_for(&self.scope).await
    }

    /// The caller's Entra ID access token for `scope` (ARM's, or the registry data plane's), and when it
    /// expires. The credential caches and refreshes a token per scope; errors never include it.
    pub(crate) async fn token_for(&self, scope: &str) -> Result<(Secret, DateTime<Utc>)> {
        let token = self.credential.get_token(&[scope], None).await.map_err(|e| Error::Unauthenticated {
            message: format!(
                "could not get an Entra ID token for {scope} ({e}); configure a service principal \
                 (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), a managed identity, or `az login`"
            ),
        })?;
        let expires = DateTime::from_timestamp(token.expires_on.unix_timestamp(), 0).unwrap_or_else(Utc::now);
        Ok((Secret::new(token.token.secret()), expires))
    }

    /// `base` + `path` with `api-version` and `query` pairs.
    pub(crate) fn url(&self, path: &str, api_version: &str, query: &[(&str, &str)]) -> Result<Url> {
        let mut url = Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| Error::bad_input(format!("ARM URL {}{path} is not a URL: {e}", self.base)))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", api_version);
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// `GET url` as JSON.
    pub(crate) async fn get(&self, url: &Url, what: &str) -> Result<Value> {
        let (token, _) = self.token().await?;
        self.get_with(url, &token, what).await
    }

    /// The resource at `url`, or `None` when ARM does not have it (404).
    pub(crate) async fn get_if_exists(&self, url: &Url, what: &str) -> Result<Option<Value>> {
        let (token, _) = self.token().await?;
        match self.rest.json(Method::GET, url, &token, HeaderMap::new(), None, what).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(explain(e)),
        }
    }

    /// The resource at `url` as `current` accepts it: read first, and `PUT body` (waiting for the operation)
    /// only when it is missing or `current` rejects it. ARM limits writes far more than reads, and an
    /// unchanged token keeps its passwords untouched.
    pub(crate) async fn ensure(
        &self,
        url: &Url,
        body: &Value,
        current: impl Fn(&Value) -> bool,
        what: &str,
    ) -> Result<Value> {
        match self.get_if_exists(url, what).await? {
            Some(existing) if current(&existing) => Ok(existing),
            _ => self.put(url, body, what).await,
        }
    }

    /// `PUT` (create or update) and wait for the operation to finish; the resource as ARM returns it.
    pub(crate) async fn put(&self, url: &Url, body: &Value, what: &str) -> Result<Value> {
        self.send(Method::PUT, url, Some(body), what).await
    }

    /// One `PUT`, waiting for its operation; ARM's refusal as it came (status and code) in the inner
    /// result, for callers that act on the code (a principal not replicated yet, an assignment that exists).
    pub(crate) async fn try_put(
        &self,
        url: &Url,
        body: &Value,
        what: &str,
    ) -> Result<std::result::Result<Value, RestError>> {
        let (token, _) = self.token().await?;
        match self.rest.send(Method::PUT, url, &token, HeaderMap::new(), Some(body), what).await {
            Ok(response) => self.finish(response, &token, what).await.map(Ok),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Every item of an ARM listing, following `nextLink` until a page has none
    /// (<https://learn.microsoft.com/azure/azure-resource-manager/management/resource-manager-rest-api>).
    /// A `nextLink` already seen, or more than [`MAX_PAGES`] pages, ends the walk with an error rather
    /// than looping.
    pub(crate) async fn list(&self, url: &Url, what: &str) -> Result<Vec<Value>> {
        let (token, _) = self.token().await?;
        let mut url = url.clone();
        let mut seen = std::collections::HashSet::new();
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.get_with(&url, &token, what).await?;
            items.extend(page.get("value").and_then(Value::as_array).cloned().unwrap_or_default());
            let Some(next) = page.get("nextLink").and_then(Value::as_str).filter(|l| !l.is_empty()) else {
                return Ok(items);
            };
            if !seen.insert(next.to_owned()) {
                return Err(upstream(format!("{what}: ARM answered the same nextLink twice")));
            }
            url = Url::parse(next).map_err(|_| upstream(format!("{what}: ARM answered an invalid nextLink")))?;
        }
        Err(upstream(format!("{what}: ARM answered more than {MAX_PAGES} pages")))
    }

    /// `POST` an action and wait for it to finish; its result.
    pub(crate) async fn post(&self, url: &Url, body: &Value, what: &str) -> Result<Value> {
        self.send(Method::POST, url, Some(body), what).await
    }

    /// `DELETE` and wait; a missing resource is [`Deleted::Absent`], not an error.
    pub(crate) async fn delete(&self, url: &Url, what: &str) -> Result<Deleted> {
        let (token, _) = self.token().await?;
        let response = match self.rest.send(Method::DELETE, url, &token, HeaderMap::new(), None, what).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(Deleted::Absent),
            Err(e) => return Err(explain(e)),
        };
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Deleted::Absent);
        }
        self.finish(response, &token, what).await?;
        Ok(Deleted::Yes)
    }

    async fn send(&self, method: Method, url: &Url, body: Option<&Value>, what: &str) -> Result<Value> {
        let (token, _) = self.token().await?;
        let response = self.rest.send(method, url, &token, HeaderMap::new(), body, what).await.map_err(explain)?;
        self.finish(response, &token, what).await
    }

    /// The result of a 2xx `response`: its body, after polling `Azure-AsyncOperation` (then reading
    /// `Location` for the final result, where given) when the operation is still running.
    async fn finish(&self, response: reqwest::Response, token: &Secret, what: &str) -> Result<Value> {
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| Url::parse(v).ok());
        let operation = header("azure-asyncoperation");
        let location = header("location");
        let first_wait = retry_after(response.headers());
        let accepted = response.status() == StatusCode::ACCEPTED;
        let body = self.body(response, what).await?;
        let Some(operation) = operation else {
            if accepted && let Some(location) = location {
                return self.poll_location(&location, token, first_wait, what).await;
            }
            return Ok(body);
        };
        if provisioning_state(&body).is_some_and(is_terminal_success) {
            return Ok(body);
        }
        self.poll_operation(&operation, token, first_wait, what).await?;
        match location {
            Some(location) if accepted => self.get_with(&location, token, what).await,
            _ => Ok(body),
        }
    }

    /// Polls an `Azure-AsyncOperation` status URL until a terminal status, or the LRO timeout.
    async fn poll_operation(&self, url: &Url, token: &Secret, first: Option<Duration>, what: &str) -> Result<()> {
        let started = Instant::now();
        let mut wait = first.unwrap_or(self.poll_interval);
        loop {
            self.sleep_or_time_out(started, wait, what).await?;
            let response =
                self.rest.send(Method::GET, url, token, HeaderMap::new(), None, what).await.map_err(explain)?;
            wait = retry_after(response.headers()).unwrap_or(self.poll_interval);
            let status_body = self.body(response, what).await?;
            match status_body.get("status").and_then(Value::as_str).unwrap_or_default() {
                "Succeeded" => return Ok(()),
                s @ ("Failed" | "Canceled") => return Err(operation_failed(what, s, &status_body)),
                _ => {}
            }
        }
    }

    /// Polls a `Location` URL (an operation without `Azure-AsyncOperation`) until it answers other than 202.
    async fn poll_location(&self, url: &Url, token: &Secret, first: Option<Duration>, what: &str) -> Result<Value> {
        let started = Instant::now();
        let mut wait = first.unwrap_or(self.poll_interval);
        loop {
            self.sleep_or_time_out(started, wait, what).await?;
            let response =
                self.rest.send(Method::GET, url, token, HeaderMap::new(), None, what).await.map_err(explain)?;
            if response.status() != StatusCode::ACCEPTED {
                return self.body(response, what).await;
            }
            wait = retry_after(response.headers()).unwrap_or(self.poll_interval);
        }
    }

    async fn sleep_or_time_out(&self, started: Instant, wait: Duration, what: &str) -> Result<()> {
        // A Retry-After longer than the time left would only overshoot the deadline.
        let left = self.lro_timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::Upstream {
                provider: PROVIDER.into(),
                status: None,
                message: format!(
                    "{what} did not finish within {:?}; ARM may still complete it, so retry the call later",
                    self.lro_timeout
                ),
                source: None,
            });
        }
        tokio::time::sleep(wait.min(left)).await;
        Ok(())
    }

    async fn get_with(&self, url: &Url, token: &Secret, what: &str) -> Result<Value> {
        self.rest.json(Method::GET, url, token, HeaderMap::new(), None, what).await.map_err(explain)
    }

    async fn body(&self, response: reqwest::Response, what: &str) -> Result<Value> {
        let bytes = response.bytes().await.map_err(|_| upstream(format!("{what}: the response body broke off")))?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| upstream(format!("{what}: the response is not JSON: {e}")))
    }
}

fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState").and_then(Value::as_str)
}

fn is_terminal_success(state: &str) -> bool {
    state == "Succeeded"
}

pub(crate) fn upstream(message: String) -> Error {
    Error::Upstream { provider: PROVIDER.into(), status: None, message, source: None }
}

/// A long-running operation that ended `Failed` or `Canceled`, with ARM's error code and message.
fn operation_failed(what: &str, status: &str, body: &Value) -> Error {
    let text = |k: &str| body.pointer(&format!("/error/{k}")).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (code, message) = (text("code"), text("message"));
    if code == quota::QUOTA_EXCEEDED {
        return quota::exceeded(what, None, &message);
    }
    let detail = match (code.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(": {code}"),
        (true, false) => format!(": {message}"),
        (false, false) => format!(": {code}: {message}"),
    };
    let hint = if status == "Canceled" {
        "someone or something canceled it; retry the call"
    } else {
        "fix what ARM reports and retry; the resource may be left half-made, which a retry or \
         cleanup_credentials repairs"
    };
    upstream(format!("{what}: the long-running ARM operation ended {status}{detail} ({hint})"))
}

/// An ARM failure with a hint of what to fix added to the message the shared client wrote.
pub(crate) fn explain(e: RestError) -> Error {
    let code = e.code.clone();
    if code == quota::QUOTA_EXCEEDED {
        return quota::from_rest(&e);
    }
    match e.error {
        Error::Unauthenticated { message } => Error::Unauthenticated {
            message: format!("{message} (the Entra ID token was refused: check the tenant and the identity)"),
        },
        Error::Denied { message } => Error::Denied {
            message: format!(
                "{message} (code {code}); grant the caller's identity a role on the registry that allows it: \
                 Contributor for the registry, its scope maps and tokens, Role Based Access Control \
                 Administrator or Owner for role assignments"
            ),
        },
        Error::NotFound { name, source, .. } => Error::NotFound {
            resource: Resource::Other,
            name: format!("{name} (code {code}); check the subscription id, resource group and registry name"),
            source,
        },
        Error::TooManyRequests { message, retry_after } => Error::TooManyRequests {
            message: format!("{message}; ARM throttles per subscription and identity, retry after the wait"),
            retry_after,
        },
        other => other,
    }
}
