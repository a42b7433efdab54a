//! How an [`UpstreamClient`] authenticates: the scheme learnt from the registry's 401 challenges, Basic
//! credentials from the [`CredentialSource`](super::CredentialSource), bearer tokens from the challenge's
//! realm (Docker token authentication), cached per scope.

use http::header::HeaderMap;
use http::{Method, StatusCode};
use regbridge::auth::{Scope, scope::format_list};
use regbridge::{Error, Result, Secret};
use serde::Deserialize;
use url::Url;

use super::UpstreamClient;
use super::challenge::select_challenge;
use super::errors;
use super::token::{FetchedToken, TokenKey};

/// Above this many remembered scopes the map is cleared: it only saves a round trip per scope.
const MAX_SCOPE_KEYS: usize = 4096;

/// How the registry authenticates, as learnt from its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Scheme {
    Unknown,
    Anonymous,
    Basic,
    Bearer { realm: String, service: String },
}

/// What a 401's challenge taught.
enum Learned {
    Nothing,
    Basic,
    Bearer(TokenKey),
}

/// What one request carries.
#[derive(Clone)]
pub(super) enum Auth {
    None,
    Basic(String, Secret),
    Bearer(TokenKey, Secret),
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<Secret>,
    #[serde(default)]
    access_token: Option<Secret>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl UpstreamClient {
    fn scheme(&self) -> Scheme {
        self.inner.scheme.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_scheme(&self, scheme: Scheme) {
        *self.inner.scheme.lock().unwrap_or_else(|e| e.into_inner()) = scheme;
    }

    /// Authentication from what the registry asked for before, fetching a token if the cached one is
    /// stale; nothing while the scheme is unknown.
    pub(super) async fn known_auth(&self, scopes: &[Scope]) -> Result<Auth> {
        match self.scheme() {
            Scheme::Unknown | Scheme::Anonymous => Ok(Auth::None),
            Scheme::Basic => self.basic(scopes).await,
            Scheme::Bearer { realm, service } => {
                let scope = format_list(scopes);
                let remembered = self.inner.scope_keys.lock().unwrap_or_else(|e| e.into_inner()).get(&scope).cloned();
                let key = remembered.unwrap_or(TokenKey { realm, service, scope });
                let token = self.token(&key).await?;
                Ok(Auth::Bearer(key, token))
            }
        }
    }

    /// Authentication for a request whose body can be sent only once: probes `GET /v2/` first when the
    /// registry's scheme is not known yet.
    pub(super) async fn auth_before_stream(&self, scopes: &[Scope]) -> Result<Auth> {
        if self.scheme() == Scheme::Unknown {
            let url = self.url_for("/v2/")?;
            let probe =
                self.send_retrying(&Method::GET, &url, &HeaderMap::new(), None, &Auth::None, "GET /v2/").await?;
            if probe.status().is_success() {
                self.set_scheme(Scheme::Anonymous);
            } else if probe.status() == StatusCode::UNAUTHORIZED {
                self.learn(probe.headers(), scopes);
            }
        }
        self.known_auth(scopes).await
    }

    /// Records the scheme of a 401's challenge, and for Bearer the token key for `scopes`. The key keeps the
    /// challenge's own scope text: it is what the registry's token endpoint is to be asked for, in the
    /// registry's vocabulary.
    fn learn(&self, headers: &HeaderMap, scopes: &[Scope]) -> Learned {
        let scope = format_list(scopes);
        let scope = scope.as_str();
        let Some(challenge) = select_challenge(headers) else { return Learned::Nothing };
        if challenge.is("Basic") {
            self.set_scheme(Scheme::Basic);
            return Learned::Basic;
        }
        let Some(realm) = challenge.param("realm").filter(|r| !r.is_empty()).map(str::to_owned) else {
            return Learned::Nothing;
        };
        let service = challenge.param("service").unwrap_or_default().to_owned();
        let token_scope = challenge.param("scope").filter(|s| !s.is_empty()).unwrap_or(scope).to_owned();
        self.set_scheme(Scheme::Bearer { realm: realm.clone(), service: service.clone() });
        let key = TokenKey { realm, service, scope: token_scope };
        let mut keys = self.inner.scope_keys.lock().unwrap_or_else(|e| e.into_inner());
        if key.scope == scope {
            keys.remove(scope);
        } else {
            if keys.len() >= MAX_SCOPE_KEYS {
                keys.clear();
            }
            keys.insert(scope.to_owned(), key.clone());
        }
        Learned::Bearer(key)
    }

    /// The authentication to retry a 401 with, or `None` when a retry cannot help (no usable challenge,
    /// Basic credentials already refused or none to give).
    pub(super) async fn answer_challenge(
        &self,
        headers: &HeaderMap,
        scopes: &[Scope],
        sent: &Auth,
    ) -> Result<Option<Auth>> {
        match self.learn(headers, scopes) {
            Learned::Bearer(key) => {
                // The token just refused may still look fresh (revoked, or scoped too narrowly under the
                // same key): drop it so a new one is fetched rather than sent again.
                if let Auth::Bearer(sent_key, stale) = sent
                    && *sent_key == key
                {
                    self.inner.tokens.invalidate(&key, stale).await;
                }
                let token = self.token(&key).await?;
                Ok(Some(Auth::Bearer(key, token)))
            }
            Learned::Basic if !matches!(sent, Auth::Basic(..)) => match self.basic(scopes).await? {
                Auth::None => Ok(None),
                auth => Ok(Some(auth)),
            },
            Learned::Basic | Learned::Nothing => Ok(None),
        }
    }

    async fn basic(&self, scopes: &[Scope]) -> Result<Auth> {
        Ok(match self.inner.credentials.credentials(scopes).await? {
            Some((user, password)) => Auth::Basic(user, password),
            None => Auth::None,
        })
    }

    async fn token(&self, key: &TokenKey) -> Result<Secret> {
        self.inner.tokens.get_or_fetch(key, || self.fetch_token(key)).await
    }

    /// Asks the token endpoint `key.realm` for a token (Docker token authentication specification).
    async fn fetch_token(&self, key: &TokenKey) -> Result<FetchedToken> {
        let provider = &self.inner.provider;
        let upstream = |message: &str| Error::Upstream {
            provider: provider.clone(),
            status: None,
            message: message.to_owned(),
            source: None,
        };
        let mut url = Url::parse(&key.realm).map_err(|_| upstream("the registry's token realm is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(upstream("the registry's token realm is not an http(s) URL"));
        }
        {
            let mut query = url.query_pairs_mut();
            if !key.service.is_empty() {
                query.append_pair("service", &key.service);
            }
            for scope in key.scope.split_whitespace() {
                query.append_pair("scope", scope);
            }
        }
        // The credentials for the token request are those for what the registry asked for.
        let auth = self.basic(&Scope::parse_list([key.scope.as_str()])).await?;
        let what = "token request";
        let response = self.send_retrying(&Method::GET, &url, &HeaderMap::new(), None, &auth, what).await?;
        if !response.status().is_success() {
            return Err(match errors::from_response(provider, what, response).await {
                e @ (Error::Unauthenticated { .. } | Error::Denied { .. } | Error::TooManyRequests { .. }) => e,
                Error::NotFound { .. } => Error::Upstream {
                    provider: provider.clone(),
                    status: Some(404),
                    message: format!("{what} failed"),
                    source: None,
                },
                e => e,
            });
        }
        let body = errors::read_bounded(response).await;
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|_| upstream("the token endpoint's answer is not token JSON"))?;
        let token = [parsed.token, parsed.access_token]
            .into_iter()
            .flatten()
            .find(|t| !t.is_empty())
            .ok_or_else(|| upstream("the token endpoint answered without a token"))?;
        let expires_in = parsed.expires_in.filter(|&s| s > 0).map(std::time::Duration::from_secs);
        tracing::debug!(provider = %provider, service = %key.service, scope = %key.scope, "fetched a registry token");
        Ok(FetchedToken { token, expires_in })
    }
}
