//! Google Artifact Registry (cargo feature `gar`): the Artifact Registry and IAM Credentials REST APIs
//! through the shared [`RestClient`](crate::http::RestClient), the caller authenticated by
//! `google-cloud-auth`, images read through the shared `/v2/` [`UpstreamClient`].
//!
//! * **Names.** One provider serves one GAR repository (format `DOCKER`) `{project}/{location}/{repository}`:
//!   the prefix is `{project}/{repository}`, the routable names are the images in it,
//!   `{project}/{repository}/{logical}`, pulled from `{location}-docker.pkg.dev/{project}/{repository}/{logical}`.
//! * **Repositories.** `create_repository` creates the GAR repository when it is missing
//!   (`repositories.create`, then its long-running operation is polled to completion within
//!   [`GarRegistryBuilder::with_operation_timeout`]). GAR has no empty images: an image (a *package*) comes
//!   to exist with its first push. An image created but not pushed yet is remembered by this provider
//!   instance, so `get_repository` finds it and `delete_repository` forgets it; another instance (another
//!   proxy replica) sees it once something was pushed. `delete_repository` deletes the package, which
//!   deletes its versions and tags, and waits for that operation.
//! * **Cross-account access** is the GAR repository's IAM policy: pull grants are members of its
//!   unconditional `roles/artifactregistry.reader` binding (service accounts as given; for `Serverless`,
//!   the Cloud Run robot `service-{N}@serverless-robot-prod.iam.gserviceaccount.com` of each project
//!   number). IAM in GAR is per repository, so **a grant on one image lets the grantee read every image of
//!   the GAR repository**; give each tenant its own GAR repository (one provider each) where that matters.
//!   The policy is read at version 3 and written back with its etag; other roles, conditional bindings and
//!   other members are kept; an etag conflict (409 / `ABORTED`) re-reads and retries up to
//!   [`MAX_POLICY_ATTEMPTS`] times; a failed read writes nothing. Only `Pull` grants exist.
//! * **Credentials.** `generate_credentials` mints an OAuth access token of the pull (or push) service
//!   account with IAM Credentials `generateAccessToken`, `lifetime` = the TTL clamped to 1..=3600 s (the
//!   default maximum; see [`credential::MAX_LIFETIME`]), and answers Basic `oauth2accesstoken` / token with
//!   the token's `expireTime`. `Pull` uses the pull service account (else the push one); `PushPull` needs
//!   the push service account. The image need not exist yet (a push creates it); the GAR repository must
//!   (`NotFound` otherwise). A token is the service account's: it reaches every repository that
//!   account may, so grant the pull account `roles/artifactregistry.reader` and the push account
//!   `roles/artifactregistry.writer` on this repository only. The caller needs
//!   `roles/iam.serviceAccountTokenCreator` on both.
//! * **Reads.** Manifests and blobs go through the registry's `/v2/` API with a token of the pull (else
//!   push) service account, or the caller's own token when none is configured. GAR has no presigned blob
//!   URLs: `generate_blob_download_url` answers `None`, and the registry's own redirects are passed on.

mod builder;
mod client;
pub mod credential;
mod iam;
mod operations;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use regbridge::error::OciErrorCode;
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{
    ArtifactRegistry, AuthMethod, Credentials, CrossAccountAccess, CrossAccountPermissions, Error, Manifest,
    ManifestDescriptor, Page, Permissions, Repository, RepositoryPage, Resource, Result,
};

pub use builder::{
    DEFAULT_API_ENDPOINT, DEFAULT_IAM_CREDENTIALS_ENDPOINT, DEFAULT_OPERATION_TIMEOUT, GarRegistryBuilder,
};
pub use iam::{READER_ROLE, serverless_robot};

use crate::http::UpstreamClient;
use client::{GarApi, explain};
use iam::Policy;

/// The provider name used in `Upstream` errors.
pub(crate) const PROVIDER: &str = "gar";

/// The predefined role that carries `artifactregistry.repositories.getIamPolicy` and `setIamPolicy`, which
/// cross-account grants need.
pub const POLICY_ADMIN_ROLE: &str = "roles/artifactregistry.admin";

/// How many times a read-modify-write of the IAM policy is tried when the etag keeps changing.
pub const MAX_POLICY_ATTEMPTS: u32 = 5;

/// One Artifact Registry repository behind [`ArtifactRegistry`]. Build it with [`GarRegistryBuilder`].
///
/// `Display` is `Gar(project/location/repository)`.
pub struct GarRegistry {
    project: String,
    location: String,
    repository: String,
    display: String,
    pull_service_account: Option<String>,
    push_service_account: Option<String>,
    registry_endpoint: String,
    api: Arc<GarApi>,
    data: UpstreamClient,
    operation_timeout: Duration,
    /// Images created by this instance and not pushed yet (GAR has no empty images).
    pending: Mutex<HashSet<String>>,
}

impl fmt::Display for GarRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for GarRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GarRegistry")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("repository", &self.repository)
            .field("pull_service_account", &self.pull_service_account)
            .field("push_service_account", &self.push_service_account)
            .field("registry_endpoint", &self.registry_endpoint)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl GarRegistry {
    /// A builder with no settings; see also [`GarRegistryBuilder::from_env`].
    pub fn builder() -> GarRegistryBuilder {
        GarRegistryBuilder::new()
    }

    /// The project id.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The location (`europe-west1`).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The GAR repository id.
    pub fn repository_id(&self) -> &str {
        &self.repository
    }

    /// The client for the registry's `/v2/` API, as the provider's own reads use it.
    pub fn client(&self) -> &UpstreamClient {
        &self.data
    }

    fn prefix(&self) -> String {
        format!("{}/{}", self.project, self.repository)
    }

    fn host(&self) -> &str {
        self.registry_endpoint.split_once("://").map_or(self.registry_endpoint.as_str(), |(_, h)| h)
    }

    /// The image path inside the GAR repository of routable name `id` (`proj/repo/team/app` → `team/app`),
    /// checked before any call is made.
    fn image_path<'a>(&self, id: &'a str) -> Result<&'a str> {
        RepositoryName::parse(id)?;
        let prefix = self.prefix();
        id.strip_prefix(&prefix).and_then(|rest| rest.strip_prefix('/')).ok_or_else(|| {
            Error::invalid(
                OciErrorCode::NameInvalid,
                format!("{id:?} is not an image of {self}: its names start with {prefix}/"),
            )
        })
    }

    fn repository(&self, id: &str, created_at: Option<chrono::DateTime<chrono::Utc>>) -> Repository {
        Repository { name: id.to_owned(), uri: format!("{}/{id}", self.host()), created_at }
    }

    fn is_pending(&self, id: &str) -> bool {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).contains(id)
    }

    fn set_pending(&self, id: &str, pending: bool) -> bool {
        let mut set = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending { set.insert(id.to_owned()) } else { set.remove(id) }
    }

    fn missing_gar_repository(&self) -> Error {
        Error::not_found(
            Resource::Repository,
            format!(
                "{} (the GAR repository does not exist yet: create_repository creates it)",
                self.api.repository_resource()
            ),
        )
    }

    /// Makes sure the GAR repository exists as a `DOCKER` repository, creating it if needed.
    async fn ensure_gar_repository(&self) -> Result<()> {
        match self.api.get_repository().await? {
            Some(r) if r.format.is_empty() || r.format == "DOCKER" => return Ok(()),
            Some(r) => {
                return Err(server_error(format!(
                    "GAR repository {} has format {}; regbridge needs a DOCKER repository: configure another \
                     repository id",
                    self.api.repository_resource(),
                    r.format
                )));
            }
            None => {}
        }
        let what = format!("create repository {}", self.api.repository_resource());
        let Some(op) = self.api.create_repository().await? else { return Ok(()) };
        match operations::wait(&self.api, op, self.operation_timeout, &what).await {
            Ok(()) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The image `id`: its package when something was pushed, else this instance's record of creating it.
    async fn find(&self, id: &str) -> Result<Repository> {
        let path = self.image_path(id)?;
        if let Some(package) = self.api.get_package(path).await? {
            return Ok(self.repository(id, package.create_time));
        }
        if self.is_pending(id) {
            if self.api.get_repository().await?.is_some() {
                return Ok(self.repository(id, None));
            }
            self.set_pending(id, false);
            return Err(self.missing_gar_repository());
        }
        Err(Error::not_found(Resource::Repository, format!("{id} (no image of that name in {self})")))
    }

    /// Adds or removes the members `grant` names in the reader binding, retrying on etag conflicts.
    async fn change_access(&self, id: &str, grant: &CrossAccountPermissions, add: bool) -> Result<()> {
        self.image_path(id)?;
        if grant.permissions != Permissions::Pull {
            return Err(Error::bad_input(
                "GAR cross-account grants are Pull only (roles/artifactregistry.reader on the repository)",
            ));
        }
        let members = iam::members(&grant.access)?;
        self.find(id).await?;
        let resource = self.api.repository_resource();
        for attempt in 1..=MAX_POLICY_ATTEMPTS {
            let mut policy = self.read_policy().await?;
            if !policy.apply(&members, add) {
                return Ok(());
            }
            match self.api.set_iam_policy(&policy.to_write()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_conflict() && attempt < MAX_POLICY_ATTEMPTS => {
                    tracing::debug!(%resource, attempt, "IAM policy changed since it was read; reading it again");
                }
                Err(e) if e.is_conflict() => {
                    return Err(Error::Upstream {
                        provider: PROVIDER.into(),
                        status: e.status.map(|s| s.as_u16()),
                        message: format!(
                            "the IAM policy of {resource} changed under every one of {MAX_POLICY_ATTEMPTS} attempts \
                             to update it (etag conflict); another writer is busy with it: try again later"
                        ),
                        source: Some(Box::new(e.error)),
                    });
                }
                Err(e) => return Err(explain(e, &policy_fix(&resource))),
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn read_policy(&self) -> Result<Policy> {
        let resource = self.api.repository_resource();
        let value = self.api.get_iam_policy().await.map_err(|e| explain(e, &policy_fix(&resource)))?;
        Policy::parse(value)
    }

    fn service_account(&self, permissions: Permissions) -> Result<&str> {
        match (permissions, &self.pull_service_account, &self.push_service_account) {
            (Permissions::Pull, Some(sa), _) | (Permissions::Pull, None, Some(sa)) => Ok(sa),
            (Permissions::PushPull, _, Some(sa)) => Ok(sa),
            // The request is fine; the server was set up without the account that serves it.
            (Permissions::PushPull, ..) => Err(server_error(
                "PushPull credentials need a push service account, and none is configured: set \
                 push_service_account (with_push_service_account, REGBRIDGE_GAR_PUSH_SERVICE_ACCOUNT)"
                    .into(),
            )),
            (Permissions::Pull, None, None) => Err(server_error(
                "Pull credentials need a pull service account, and none is configured: set pull_service_account \
                 (with_pull_service_account, REGBRIDGE_GAR_PULL_SERVICE_ACCOUNT)"
                    .into(),
            )),
        }
    }
}

/// A failure of the server's own setup or of the cloud's (a missing setting, a repository of the wrong format,
/// an organisation policy): a server error naming what to fix, never `InvalidInput`, which would blame the
/// client's request.
pub(crate) fn server_error(message: String) -> Error {
    Error::Upstream { provider: PROVIDER.into(), status: None, message, source: None }
}

/// What to grant when a policy call is refused. Of the predefined roles only `roles/artifactregistry.admin`
/// carries `repositories.getIamPolicy` and `setIamPolicy` (`repoAdmin` manages artifacts, not access); see
/// <https://cloud.google.com/iam/docs/roles-permissions/artifactregistry>.
fn policy_fix(resource: &str) -> String {
    format!(
        "the caller needs artifactregistry.repositories.getIamPolicy and setIamPolicy on {resource}: grant \
         {POLICY_ADMIN_ROLE} on the repository (roles/artifactregistry.repoAdmin lacks them), or a custom role \
         with both"
    )
}

#[async_trait]
impl ArtifactRegistry for GarRegistry {
    /// `https://{location}-docker.pkg.dev`, or the configured override.
    fn registry_endpoint(&self) -> String {
        self.registry_endpoint.clone()
    }

    /// `{project}/{repository}`.
    fn upstream_repository_prefix(&self) -> String {
        self.prefix()
    }

    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let logical = RepositoryName::parse(name)?;
        let id = logical.with_prefix(&self.prefix())?;
        let id = id.as_str();
        self.ensure_gar_repository().await?;
        if let Some(package) = self.api.get_package(self.image_path(id)?).await? {
            return Ok(self.repository(id, package.create_time));
        }
        self.set_pending(id, true);
        Ok(self.repository(id, None))
    }

    /// `packages.list` pages (GAR's `nextPageToken` is the continuation token), keeping the images whose
    /// routable name starts with `prefix`. GAR's `filter` matches resource names, in which the image path is
    /// percent-encoded, so the prefix is applied to each page here, as ECR's is. Images created here but not
    /// pushed yet do not exist at GAR and are not listed.
    async fn list_repositories(&self, prefix: Option<&str>, page: Page) -> Result<RepositoryPage> {
        let own = format!("{}/", self.prefix());
        if let Some(p) = prefix
            && !p.starts_with(&own)
            && !own.starts_with(p)
        {
            // No image of this repository can have that name: nothing to ask GAR.
            return Ok(RepositoryPage { repositories: Vec::new(), next: None });
        }
        let size = page.limit.unwrap_or(client::MAX_PAGE_SIZE);
        let found = self.api.list_packages(size, page.after.as_deref()).await?;
        let repositories = found
            .packages
            .into_iter()
            .filter_map(|package| {
                let encoded = package.name.rsplit_once("/packages/")?.1;
                let path = percent_encoding::percent_decode_str(encoded).decode_utf8().ok()?;
                let id = RepositoryName::parse(&format!("{own}{path}")).ok()?;
                prefix
                    .is_none_or(|p| id.as_str().starts_with(p))
                    .then(|| self.repository(id.as_str(), package.create_time))
            })
            .collect();
        Ok(RepositoryPage { repositories, next: found.next_page_token.filter(|t| !t.is_empty()) })
    }

    async fn get_repository(&self, id: &str) -> Result<Repository> {
        self.find(id).await
    }

    async fn delete_repository(&self, id: &str) -> Result<()> {
        let path = self.image_path(id)?;
        let what = format!("delete image {id}");
        let Some(op) = self.api.delete_package(path).await? else {
            if self.set_pending(id, false) {
                // Created, never pushed: nothing exists upstream.
                return Ok(());
            }
            return Err(Error::not_found(Resource::Repository, format!("{id} (no image of that name in {self})")));
        };
        operations::wait(&self.api, op, self.operation_timeout, &what).await?;
        self.set_pending(id, false);
        Ok(())
    }

    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        self.image_path(id)?;
        let email = self.service_account(permissions)?;
        // The image need not exist (a push creates it), but the GAR repository must.
        if self.api.get_repository().await?.is_none() {
            return Err(self.missing_gar_repository());
        }
        let (password, expires_at) = self.api.generate_access_token(email, credential::lifetime_secs(ttl)).await?;
        Ok(Credentials { auth_method: AuthMethod::Basic, username: credential::USERNAME.into(), password, expires_at })
    }

    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        self.image_path(id)?;
        self.data
            .get_manifest(id, reference)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{id}:{reference} at {self}")))
    }

    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, true).await
    }

    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, false).await
    }

    /// The reader binding of the GAR repository, which every image of it shares.
    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        self.find(id).await?;
        let granted: CrossAccountAccess = self.read_policy().await?.granted();
        Ok(if granted.is_empty() {
            Vec::new()
        } else {
            vec![CrossAccountPermissions { access: granted, permissions: Permissions::Pull }]
        })
    }

    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        self.image_path(id)?;
        self.data.head_manifest(id, reference).await
    }

    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        self.image_path(id)?;
        self.data.head_blob(id, digest).await
    }
}
