//! The Artifact Registry and IAM Credentials REST calls of the GAR provider, authenticated with the
//! caller's Google credentials (`google-cloud-auth`), sent through the shared [`RestClient`], and the one
//! mapping from their failures to [`regbridge::Error`]s that say what to fix.
//!
//! API references: <https://cloud.google.com/artifact-registry/docs/reference/rest> and
//! <https://cloud.google.com/iam/docs/reference/credentials/rest>.

use chrono::{DateTime, Utc};
use google_cloud_auth::credentials::{CacheableResource, Credentials as GoogleCredentials};
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Method};
use regbridge::{Error, Resource, Result, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use url::Url;

use super::operations::Operation;
use crate::http::{RestClient, RestError, RestMethod};

/// The OAuth scope requested for minted access tokens.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Where the REST calls go, and as whom.
pub(crate) struct GarApi {
    pub(crate) rest: RestClient,
    caller: GoogleCredentials,
    /// The Artifact Registry API root (`https://artifactregistry.googleapis.com/`).
    api: Url,
    /// The IAM Credentials API root (`https://iamcredentials.googleapis.com/`).
    iam_credentials: Url,
    /// `projects/{p}/locations/{l}` and the repository id.
    parent: String,
    repository: String,
}

impl std::fmt::Debug for GarApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GarApi")
            .field("api", &self.api.as_str())
            .field("iam_credentials", &self.iam_credentials.as_str())
            .field("repository", &self.repository_resource())
            .finish_non_exhaustive()
    }
}

/// A GAR repository as `projects.locations.repositories.get` describes it (the fields regbridge reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepositoryResource {
    #[serde(default)]
    pub(crate) format: String,
}

/// A package (a Docker image name) as `packages.get` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackageResource {
    #[serde(default)]
    pub(crate) create_time: Option<DateTime<Utc>>,
}

/// One page of `packages.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PackagePage {
    #[serde(default)]
    pub(crate) packages: Vec<ListedPackage>,
    /// Absent (or empty) on the last page.
    #[serde(default)]
    pub(crate) next_page_token: Option<String>,
}

/// A package as `packages.list` describes it: `name` is the full resource name, the image path
/// percent-encoded in its last segment (`.../packages/team%2Fapp`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListedPackage {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) create_time: Option<DateTime<Utc>>,
}

/// The largest `pageSize` `packages.list` takes.
pub(crate) const MAX_PAGE_SIZE: u32 = 1000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessTokenResponse {
    access_token: String,
    expire_time: DateTime<Utc>,
}

impl GarApi {
    pub(crate) fn new(
        rest: RestClient,
        caller: GoogleCredentials,
        api: Url,
        iam_credentials: Url,
        project: &str,
        location: &str,
        repository: &str,
    ) -> Self {
        Self {
            rest,
            caller,
            api,
            iam_credentials,
            parent: format!("projects/{project}/locations/{location}"),
            repository: repository.to_owned(),
        }
    }

    /// `projects/{p}/locations/{l}/repositories/{r}`, the resource name of the GAR repository.
    pub(crate) fn repository_resource(&self) -> String {
        format!("{}/repositories/{}", self.parent, self.repository)
    }

    /// The caller's bearer token and the other headers its credentials ask for (a quota project).
    pub(crate) async fn caller_token(&self) -> Result<(Secret, HeaderMap)> {
        // The server's own credentials: their absence is its setup, a server error.
        let unauthenticated = |why: String| {
            super::server_error(format!(
                "no Google credentials for the Artifact Registry API ({why}); run `gcloud auth \
                 application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, or attach a service account"
            ))
        };
        let mut headers = match self.caller.headers(Extensions::new()).await {
            Ok(CacheableResource::New { data, .. }) => data,
            Ok(CacheableResource::NotModified) => {
                return Err(unauthenticated("the credentials returned no headers".into()));
            }
            Err(e) => return Err(unauthenticated(e.to_string())),
        };
        let value = headers.remove(AUTHORIZATION).ok_or_else(|| unauthenticated("no Authorization header".into()))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| unauthenticated("the credentials do not produce a bearer token".into()))?;
        Ok((Secret::new(token), headers))
    }

    /// Sends a JSON request as the caller. `what` says what is attempted, for errors.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: impl Into<RestMethod>,
        url: &Url,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T, RestError> {
        let (token, headers) = self.caller_token().await.map_err(|error| RestError {
            status: None,
            code: String::new(),
            retry_after: None,
            error,
        })?;
        self.rest.json(method, url, &token, headers, body, what).await
    }

    /// `{api}/v1/{resource}` with `segments` appended, each percent-encoded as one path segment (so an
    /// image path `team/app` becomes the package id `team%2Fapp`).
    fn api_url(&self, resource: &str, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        {
            let mut path = url.path_segments_mut().expect("http(s) URL");
            path.pop_if_empty().push("v1");
            path.extend(resource.split('/'));
            path.extend(segments);
        }
        url
    }

    /// `projects.locations.repositories.get`; `None` when the repository does not exist.
    pub(crate) async fn get_repository(&self) -> Result<Option<RepositoryResource>> {
        let url = self.api_url(&self.repository_resource(), &[]);
        let what = format!("get repository {}", self.repository_resource());
        match self.call(Method::GET, &url, None, &what).await {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => {
                Err(explain(e, "the caller needs artifactregistry.repositories.get (roles/artifactregistry.reader)"))
            }
        }
    }

    /// `projects.locations.repositories.create` for a `DOCKER` repository: the operation to wait for, or
    /// `None` when someone created it meanwhile (409 `ALREADY_EXISTS`).
    pub(crate) async fn create_repository(&self) -> Result<Option<Operation>> {
        let mut url = self.api_url(&self.parent, &["repositories"]);
        url.query_pairs_mut().append_pair("repositoryId", &self.repository);
        let body = json!({"format": "DOCKER", "description": "Docker images managed by regbridge"});
        let what = format!("create repository {}", self.repository_resource());
        match self.call(Method::POST, &url, Some(&body), &what).await {
            Ok(op) => Ok(Some(op)),
            Err(e) if e.status.is_some_and(|s| s.as_u16() == 409) || e.code == "ALREADY_EXISTS" => Ok(None),
            Err(e) => Err(explain(
                e,
                "the caller needs artifactregistry.repositories.create (roles/artifactregistry.admin), or create \
                 the DOCKER repository beforehand",
            )),
        }
    }

    /// `packages.get` of the image `path` (`team/app`); `None` when nothing was pushed under that name.
    pub(crate) async fn get_package(&self, path: &str) -> Result<Option<PackageResource>> {
        let url = self.api_url(&self.repository_resource(), &["packages", path]);
        match self.call(Method::GET, &url, None, &format!("get image {path}")).await {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(explain(e, "the caller needs artifactregistry.packages.get (roles/artifactregistry.reader)")),
        }
    }

    /// `packages.delete` of the image `path`, which deletes its versions and tags too: the operation to
    /// wait for, or `None` when there is no such package.
    /// One page of the images of the GAR repository (`packages.list`,
    /// <https://cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.repositories.packages/list>):
    /// at most `page_size` (1 to [`MAX_PAGE_SIZE`]), from `page_token`. A missing GAR repository has none.
    pub(crate) async fn list_packages(&self, page_size: u32, page_token: Option<&str>) -> Result<PackagePage> {
        let mut url = self.api_url(&self.repository_resource(), &["packages"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("pageSize", &page_size.clamp(1, MAX_PAGE_SIZE).to_string());
            if let Some(token) = page_token {
                query.append_pair("pageToken", token);
            }
        }
        let what = format!("list the images of {}", self.repository_resource());
        match self.call(Method::GET, &url, None, &what).await {
            Ok(page) => Ok(page),
            Err(e) if e.is_not_found() => Ok(PackagePage::default()),
            Err(e) => {
                Err(explain(e, "the caller needs artifactregistry.packages.list (roles/artifactregistry.reader)"))
            }
        }
    }

    pub(crate) async fn delete_package(&self, path: &str) -> Result<Option<Operation>> {
        let url = self.api_url(&self.repository_resource(), &["packages", path]);
        match self.call(Method::DELETE, &url, None, &format!("delete image {path}")).await {
            Ok(op) => Ok(Some(op)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => {
                Err(explain(e, "the caller needs artifactregistry.packages.delete (roles/artifactregistry.repoAdmin)"))
            }
        }
    }

    /// `operations.get` of operation `name` (`projects/p/locations/l/operations/id`).
    pub(crate) async fn get_operation(&self, name: &str) -> Result<Operation> {
        let url = self.api_url(name, &[]);
        self.call(Method::GET, &url, None, &format!("poll operation {name}")).await.map_err(|e| {
            explain(e, "the caller needs artifactregistry.repositories.get on the repository the operation acts on")
        })
    }

    /// `repositories.getIamPolicy` with `options.requestedPolicyVersion=3`, so conditional bindings are
    /// returned whole and can be written back unchanged.
    pub(crate) async fn get_iam_policy(&self) -> Result<Value, RestError> {
        let resource = self.repository_resource();
        let mut url = self.api_url(&format!("{resource}:getIamPolicy"), &[]);
        url.query_pairs_mut().append_pair("options.requestedPolicyVersion", "3");
        self.call(Method::GET, &url, None, &format!("read the IAM policy of {resource}")).await
    }

    /// `repositories.setIamPolicy` with `policy` (carrying the etag it was read with).
    ///
    /// Safe to repeat after a 5xx or a lost answer: the etag makes a second delivery of a write that was
    /// applied fail with a conflict, and the caller's conflict loop reads the policy again (and finds the
    /// change made).
    pub(crate) async fn set_iam_policy(&self, policy: &Value) -> Result<Value, RestError> {
        let resource = self.repository_resource();
        let url = self.api_url(&format!("{resource}:setIamPolicy"), &[]);
        let body = json!({ "policy": policy });
        let what = format!("write the IAM policy of {resource}");
        self.call(RestMethod::safe_to_repeat(Method::POST), &url, Some(&body), &what).await
    }

    /// IAM Credentials `generateAccessToken` for service account `email`, living `lifetime_secs`: the token
    /// and its `expireTime`. Safe to repeat: each call mints a new token and changes no state.
    pub(crate) async fn generate_access_token(
        &self,
        email: &str,
        lifetime_secs: u64,
    ) -> Result<(Secret, DateTime<Utc>)> {
        let mut url = self.iam_credentials.clone();
        url.path_segments_mut().expect("http(s) URL").pop_if_empty().extend([
            "v1",
            "projects",
            "-",
            "serviceAccounts",
            &format!("{email}:generateAccessToken"),
        ]);
        let body = json!({"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": format!("{lifetime_secs}s")});
        let what = format!("generate an access token for {email}");
        let method = RestMethod::safe_to_repeat(Method::POST);
        let answer: AccessTokenResponse = self.call(method, &url, Some(&body), &what).await.map_err(|e| {
            if e.is_not_found() {
                // A missing service account is the route's configuration, not a missing repository.
                return Error::Upstream {
                    provider: super::PROVIDER.into(),
                    status: Some(404),
                    message: format!("{what}: the service account does not exist; check the configured e-mail"),
                    source: Some(Box::new(e.error)),
                };
            }
            explain(
                e,
                &format!(
                    "grant the caller roles/iam.serviceAccountTokenCreator on {email}, and check that the service \
                     account exists and the IAM Credentials API is enabled"
                ),
            )
        })?;
        Ok((Secret::new(answer.access_token), answer.expire_time))
    }
}

/// The error of a failed call, with `fix` (what to grant or change) added where the server's operator can
/// act on it: refusals (401, 403) and `NotFound`, whose resource is the repository for Artifact Registry
/// calls.
///
/// Every call goes out as the server's own Google identity, so a refusal is the server's setup (a missing
/// role, expired credentials), which no client request can fix: it becomes a server error that keeps the
/// status, never `Denied` or `Unauthenticated`, which would tell a client its own login was refused.
pub(crate) fn explain(e: RestError, fix: &str) -> Error {
    match e.error {
        Error::Denied { message } | Error::Unauthenticated { message } => Error::Upstream {
            provider: super::PROVIDER.into(),
            status: e.status.map(|s| s.as_u16()),
            message: format!("{message}; {fix}"),
            source: None,
        },
        Error::NotFound { name, source, .. } => Error::NotFound { resource: Resource::Repository, name, source },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::ClientOptions;

    #[derive(Debug)]
    struct NoCredentials;

    impl google_cloud_auth::credentials::CredentialsProvider for NoCredentials {
        async fn headers(
            &self,
            _: Extensions,
        ) -> std::result::Result<CacheableResource<HeaderMap>, google_cloud_auth::errors::CredentialsError> {
            Err(google_cloud_auth::errors::CredentialsError::from_msg(false, "no credentials in this test"))
        }

        async fn universe_domain(&self) -> Option<String> {
            None
        }
    }

    fn api() -> GarApi {
        GarApi::new(
            RestClient::new("gar", &ClientOptions::default()).unwrap(),
            GoogleCredentials::from(NoCredentials),
            Url::parse("https://artifactregistry.googleapis.com/").unwrap(),
            Url::parse("https://iamcredentials.googleapis.com").unwrap(),
            "proj",
            "europe-west1",
            "images",
        )
    }

    #[test]
    fn urls_encode_the_package_id() {
        let api = api();
        let url = api.api_url(&api.repository_resource(), &["packages", "team/app"]);
        assert_eq!(
            url.as_str(),
            "https://artifactregistry.googleapis.com/v1/projects/proj/locations/europe-west1/repositories/images/\
             packages/team%2Fapp"
        );
        let url = api.api_url(&format!("{}:getIamPolicy", api.repository_resource()), &[]);
        assert!(url.path().ends_with("/repositories/images:getIamPolicy"), "{url}");
    }

    #[tokio::test]
    async fn missing_caller_credentials_say_how_to_get_some() {
        let err = api().caller_token().await.unwrap_err();
        assert!(matches!(err, Error::Upstream { .. }), "the server's setup, a server error: {err:?}");
        assert!(err.to_string().contains("application-default login"), "{err}");
    }
}
