//! ACR's data plane as the caller's identity: the documented token exchange
//! (<https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md>) and the repository metadata API.
//!
//! 1. `POST /oauth2/exchange` (form `grant_type=access_token`, `service`, `access_token` = the Entra ID
//!    token) answers an ACR *refresh token*. The Entra ID token is one for the registry's own audience
//!    ([`DATA_PLANE_SCOPE`](super::DATA_PLANE_SCOPE) by default), not the ARM token: registries under the
//!    Azure Policy that disables ARM-audience token authentication refuse ARM tokens here;
//! 2. `POST /oauth2/token` (form `grant_type=refresh_token`, `service`, `scope`, `refresh_token`) answers an
//!    *access token* for one scope, e.g. `repository:team/app:metadata_read`, used as `Bearer` on
//!    `/acr/v1/{name}`.
//!
//! The refresh token also logs in to the `/v2/` API as Basic `00000000-0000-0000-0000-000000000000` /
//! refresh token, which is how [`AadLogin`] lets the shared [`UpstreamClient`](crate::http::UpstreamClient)
//! read manifests without minting scope-map tokens.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use regbridge::{Error, Resource, Result, Secret};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::arm::{Arm, upstream};
use crate::http::{CredentialSource, FetchedToken, RestClient, TokenCache};

/// The user name ACR expects with a refresh token as password.
pub const NULL_GUID_USER: &str = "00000000-0000-0000-0000-000000000000";

/// How long a refresh token is reused at most (ACR's live about three hours, but never beyond the Entra ID
/// token they came from).
const REFRESH_TOKEN_REUSE: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
struct RefreshAnswer {
    refresh_token: Secret,
}

#[derive(Deserialize)]
struct AccessAnswer {
    access_token: Secret,
}

/// The registry's data plane, authenticated as the caller.
pub(crate) struct DataPlane {
    rest: RestClient,
    arm: Arc<Arm>,
    endpoint: String,
    service: String,
    /// The Entra ID scope of the token exchanged at `/oauth2/exchange`.
    scope: String,
    refresh: TokenCache<()>,
}

impl fmt::Debug for DataPlane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataPlane").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl DataPlane {
    pub(crate) fn new(endpoint: &Url, rest: RestClient, arm: Arc<Arm>, scope: String) -> Self {
        let host = endpoint.host_str().unwrap_or_default();
        let service = match endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Self {
            rest,
            arm,
            endpoint: endpoint.as_str().trim_end_matches('/').to_owned(),
            service,
            scope,
            refresh: TokenCache::new(),
        }
    }

    /// The caller's ACR refresh token, exchanged for its Entra ID token of the registry's audience and
    /// reused for a while.
    pub(crate) async fn refresh_token(&self) -> Result<Secret> {
        self.refresh
            .get_or_fetch(&(), || async {
                let (token, reuse) = self.exchange().await?;
                Ok(FetchedToken { token, expires_in: Some(reuse) })
            })
            .await
    }

    /// One exchange of the caller's Entra ID token at `/oauth2/exchange`: a new refresh token, and how long
    /// to use it (at most an hour, never beyond the Entra ID token it came from).
    pub(crate) async fn exchange(&self) -> Result<(Secret, Duration)> {
        let (aad, expires) = self.arm.token_for(&self.scope).await?;
        let form = [("grant_type", "access_token"), ("service", self.service.as_str()), ("access_token", aad.expose())];
        let answer: RefreshAnswer = self.post_form("/oauth2/exchange", &form, "token exchange").await?;
        Ok((answer.refresh_token, reuse_for(expires)))
    }

    /// An access token for `scope` (`repository:{name}:metadata_read`, `repository:{name}:delete`).
    async fn access_token(&self, scope: &str) -> Result<Secret> {
        let refresh = self.refresh_token().await?;
        let form = [
            ("grant_type", "refresh_token"),
            ("service", self.service.as_str()),
            ("scope", scope),
            ("refresh_token", refresh.expose()),
        ];
        match self.post_form::<AccessAnswer>("/oauth2/token", &form, &format!("token for {scope}")).await {
            Ok(answer) => Ok(answer.access_token),
            Err(e) => {
                // A refresh token ACR no longer takes (revoked, expired early) is exchanged anew next time.
                if matches!(e, Error::Unauthenticated { .. }) {
                    self.refresh.invalidate(&(), &refresh).await;
                }
                Err(e)
            }
        }
    }

    /// `GET /acr/v1/{name}`: the repository's creation time, or `None` when ACR does not know it (no image
    /// was ever pushed to it).
    pub(crate) async fn repository_created(&self, name: &str) -> Result<Option<Option<DateTime<Utc>>>> {
        let token = self.access_token(&format!("repository:{name}:metadata_read")).await?;
        let url = self.url(&format!("/acr/v1/{name}"))?;
        let what = format!("read repository {name}");
        match self.rest.json::<Value>(Method::GET, &url, &token, HeaderMap::new(), None, &what).await {
            Ok(v) => Ok(Some(v.get("createdTime").and_then(Value::as_str).and_then(|t| t.parse().ok()))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(data_plane_error(e.error, name)),
        }
    }

    /// `DELETE /acr/v1/{name}`: the repository and every image in it; `NotFound` when it does not exist.
    pub(crate) async fn delete_repository(&self, name: &str) -> Result<()> {
        let token = self.access_token(&format!("repository:{name}:delete")).await?;
        let url = self.url(&format!("/acr/v1/{name}"))?;
        let what = format!("delete repository {name}");
        match self.rest.send(Method::DELETE, &url, &token, HeaderMap::new(), None, &what).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(missing(name)),
            Err(e) => Err(data_plane_error(e.error, name)),
        }
    }

    /// `GET /acr/v1/_catalog?n=&last=`: at most `n` repository names after `last`, and the `last` of the
    /// next page from the `Link: <...>; rel="next"` header (absent on the last page). See
    /// <https://learn.microsoft.com/en-us/rest/api/containerregistry/repository/get-list>.
    pub(crate) async fn catalog(&self, n: u32, last: Option<&str>) -> Result<(Vec<String>, Option<String>)> {
        let token = self.access_token("registry:catalog:*").await?;
        let mut url = self.url("/acr/v1/_catalog")?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("n", &n.to_string());
            if let Some(last) = last {
                query.append_pair("last", last);
            }
        }
        let what = "list the repositories";
        let response = match self.rest.send(Method::GET, &url, &token, HeaderMap::new(), None, what).await {
            Ok(response) => response,
            Err(e) => return Err(catalog_error(e.error)),
        };
        let next = next_last(&url, response.headers());
        let bytes = response.bytes().await.map_err(|_| upstream(format!("{what}: the answer broke off")))?;
        let page: Catalog = serde_json::from_slice(&bytes)
            .map_err(|e| upstream(format!("{what}: the answer is not a catalog ({e})")))?;
        Ok((page.repositories, next))
    }

    fn url(&self, path: &str) -> Result<Url> {
        Url::parse(&format!("{}{path}", self.endpoint))
            .map_err(|e| Error::bad_input(format!("{}{path} is not a URL: {e}", self.endpoint)))
    }

    /// A form `POST` to the token endpoints, through the shared control-plane client (a 429 is retried
    /// after its `Retry-After`; nothing else is sent twice).
    async fn post_form<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
        what: &str,
    ) -> Result<T> {
        let url = self.url(path)?;
        let response = self.rest.post_form(&url, form, what).await.map_err(|e| match e.error {
            Error::Unauthenticated { message } | Error::Denied { message } => Error::Unauthenticated {
                message: format!(
                    "{message}; ACR did not accept the caller's Entra ID token: the identity needs a data-plane \
                     role on the registry (legacy mode: AcrPull to read, AcrDelete to delete repositories; ABAC \
                     mode: Container Registry Repository Reader or Contributor) and the registry must allow \
                     Entra ID authentication"
                ),
            },
            other => other,
        })?;
        let bytes = response.bytes().await.map_err(|_| upstream(format!("{what}: the answer broke off")))?;
        serde_json::from_slice(&bytes).map_err(|_| upstream(format!("{what}: the answer has no token")))
    }
}

/// The body of `/acr/v1/_catalog`.
#[derive(Deserialize)]
struct Catalog {
    /// Absent (`{}`) in an empty registry.
    #[serde(default)]
    repositories: Vec<String>,
}

/// The `last` parameter of the `rel="next"` link in `headers` (relative to `base`), as the
/// distribution spec's catalog pagination gives it; `None` on the last page.
fn next_last(base: &Url, headers: &HeaderMap) -> Option<String> {
    headers.get_all(http::header::LINK).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(
        |link| {
            let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
            let next = params.split(';').any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if !next {
                return None;
            }
            let url = base.join(target).ok()?;
            url.query_pairs().find(|(k, _)| k == "last").map(|(_, v)| v.into_owned()).filter(|v| !v.is_empty())
        },
    )
}

/// Catalog failures with what to fix.
fn catalog_error(e: Error) -> Error {
    match e {
        Error::Unauthenticated { message } | Error::Denied { message } => Error::Denied {
            message: format!(
                "{message}; the caller's identity needs a data-plane role that lists the registry's catalog \
                 (legacy mode: AcrPull; ABAC mode: Container Registry Repository Catalog Lister)"
            ),
        },
        other => other,
    }
}

fn reuse_for(aad_expires: DateTime<Utc>) -> Duration {
    (aad_expires - Utc::now()).to_std().unwrap_or_default().min(REFRESH_TOKEN_REUSE)
}

fn missing(name: &str) -> Error {
    Error::NotFound {
        resource: Resource::Repository,
        name: format!("{name} (ACR creates a repository when the first image is pushed to it)"),
        source: None,
    }
}

/// Data-plane failures with what to fix.
fn data_plane_error(e: Error, name: &str) -> Error {
    match e {
        Error::Unauthenticated { message } | Error::Denied { message } => Error::Denied {
            message: format!(
                "{message}; the caller's identity needs a data-plane role on the registry for repository {name} \
                 (legacy mode: AcrPull to read metadata, AcrDelete to delete; ABAC mode: Container Registry \
                 Repository Reader to read, Container Registry Repository Contributor to delete)"
            ),
        },
        other => other,
    }
}

/// Basic login to the `/v2/` API with the caller's refresh token, for [`UpstreamClient`](crate::http::UpstreamClient).
#[derive(Debug)]
pub(crate) struct AadLogin(pub(crate) Arc<DataPlane>);

#[async_trait]
impl CredentialSource for AadLogin {
    async fn credentials(&self, _scopes: &[regbridge::auth::Scope]) -> Result<Option<(String, Secret)>> {
        Ok(Some((NULL_GUID_USER.to_owned(), self.0.refresh_token().await?)))
    }
}
