//! The one HTTP client every provider uses for a registry's `/v2/` API.
//!
//! [`UpstreamClient`] sends requests to one upstream registry on behalf of the proxy and the providers:
//! it authenticates (Basic, or the Docker bearer-token flow with a [`TokenCache`]), retries what is safe to
//! retry ([`retry`]) with jittered backoff ([`Backoff`]), never follows redirects, and maps failures to
//! [`regbridge::Error`] without ever showing a credential or token.
//!
//! Credentials come from a [`CredentialSource`]: [`StaticCredentials`] for a stored username/password, or a
//! provider that mints short-lived ones.

mod auth;
mod backoff;
mod challenge;
mod client;
mod errors;
mod manifest;
mod minted;
mod rest;
pub mod retry;
mod token;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use regbridge::Secret;
use regbridge::auth::Scope;

pub use backoff::{Backoff, retry_after};
pub use challenge::{Challenge, parse_challenge, select_challenge};
pub use client::UpstreamClient;
pub use manifest::MAX_MANIFEST_BYTES;
pub use minted::MintedCredentials;
pub use rest::{RestClient, RestError, RestMethod};
pub use token::{DEFAULT_TOKEN_LIFETIME, FetchedToken, MAX_REFRESH_MARGIN, TokenCache, TokenKey};

/// Where an upstream client gets its credentials (static username/password, or minted by a provider).
#[async_trait]
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// Username and password for a request needing `scopes`, or None for anonymous access. Sources that
    /// mint credentials per repository read the repository and the actions from them.
    async fn credentials(&self, scopes: &[Scope]) -> regbridge::Result<Option<(String, regbridge::Secret)>>;
}

/// Static credentials: a stored username and password (or token), or none at all.
#[derive(Clone)]
pub struct StaticCredentials {
    login: Option<(String, Secret)>,
}

impl StaticCredentials {
    /// A username and a password or token.
    pub fn new(username: impl Into<String>, password: Secret) -> Self {
        Self { login: Some((username.into(), password)) }
    }

    /// No credentials: requests go out anonymously, and token endpoints are asked without credentials.
    pub fn anonymous() -> Self {
        Self { login: None }
    }

    /// The username, when there are credentials.
    pub fn username(&self) -> Option<&str> {
        self.login.as_ref().map(|(u, _)| u.as_str())
    }

    /// The username and password, when there are credentials.
    pub fn login(&self) -> Option<&(String, Secret)> {
        self.login.as_ref()
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password is a `Secret` and would print redacted anyway; leaving it out says so plainly.
        f.debug_struct("StaticCredentials").field("username", &self.username()).finish_non_exhaustive()
    }
}

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn credentials(&self, _scopes: &[Scope]) -> regbridge::Result<Option<(String, Secret)>> {
        Ok(self.login.clone())
    }
}

/// Timeouts and retries of an [`UpstreamClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The longest wait for a TCP (and TLS) connection to be established.
    pub connect_timeout: Duration,
    /// The longest wait between two reads: for the response headers, and between bytes of a body. There is
    /// deliberately no total timeout, since a large blob may take long to stream while it keeps moving.
    pub idle_timeout: Duration,
    /// Attempts per retryable request (`GET`/`HEAD`), the first included; 0 counts as 1.
    pub max_attempts: u32,
}

impl Default for ClientOptions {
    /// Connect within 10 s, idle at most 60 s, 3 attempts.
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60), max_attempts: 3 }
    }
}

impl ClientOptions {
    /// An HTTP client with these timeouts that never follows redirects (a redirect is an answer to pass on
    /// or to act on, and must not carry credentials to another host).
    pub fn http_client(&self) -> regbridge::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.idle_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("regbridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| regbridge::Error::internal("could not build the HTTP client", e))
    }
}
