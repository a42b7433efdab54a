//! Azure Container Registry (cargo feature `acr`): Azure Resource Manager and the registry's data plane
//! through reqwest ([`RestClient`](crate::http::RestClient), [`UpstreamClient`]), the caller's Entra ID token
//! from `azure_identity` ([`AzureIdentity`]).
//!
//! * **Names.** Routable names are `{prefix}/{logical}` (just `{logical}` without a prefix) in the
//!   registry `https://{registry}.azurecr.io`.
//! * **Repositories.** ACR creates a repository when the first image is pushed to it and has no call to
//!   create an empty one. `create_repository` therefore validates the name and returns the routable name
//!   and URI (with the creation time when the repository already exists); until something is pushed,
//!   `get_repository`, `delete_repository` and the access methods answer `NotFound` for it. Reads and
//!   deletes use the data plane's metadata API (`/acr/v1/{name}`) with an access token obtained by the
//!   documented exchange of the caller's Entra ID token (see `data_plane`).
//! * **Credentials.** `generate_credentials` ensures a scope map allowing
//!   `repositories/{name}/content/read` and `metadata/read` (plus `content/write`, `metadata/write` and
//!   `content/delete` for `PushPull`, which includes deleting manifests) and a token bound to it, both named `regbridge-{pull|push}-{hash of the repository}` (read
//!   first, and written with ARM `PUT` only when missing or different: ARM throttles writes much harder than
//!   reads), then calls `generateCredentials` for one of the token's two passwords with `expiry` = now +
//!   TTL. The TTL is clamped to 1 minute..=365 days ([`MIN_TTL`], [`MAX_TTL`]; ACR itself sets no maximum).
//!   The credentials are Basic: the token name and the password. Minting again for the same repository and
//!   level regenerates the token's *older* password, so the two most recent credentials stay valid and a
//!   third mint revokes the oldest. Credentials can be minted for a repository nothing was pushed to yet
//!   (that is how it gets created). `cleanup_credentials` deletes the two tokens and two scope maps of that
//!   repository, and nothing else.
//! * **Cross-account access** is ARM role assignments at the registry's scope, in the registry's
//!   role-assignment mode (read from the registry resource and kept for ten minutes): `AcrPull`/`AcrPush`,
//!   registry-wide, in legacy mode; the "Container Registry Repository Reader"/"Writer" roles with an ABAC
//!   condition on the repository, per repository, on registries with ABAC repository permissions (which
//!   ignore `AcrPull`/`AcrPush`). Assignments carry `principalType`, and `PrincipalNotFound` for a principal
//!   Entra ID has not replicated yet is retried for up to a minute
//!   ([`AcrRegistryBuilder::with_principal_wait`]). See [`roles`]. `tenant_id` is not stored by ARM:
//!   principals must be object ids in the registry's tenant, and `get_cross_account_access` reports
//!   neither it nor `allowed_service_types`.
//! * **Quotas.** A registry holds at most 100 / 500 / 50,000 tokens and as many scope maps (Basic /
//!   Standard / Premium); ARM's `QuotaExceeded` is an upstream error naming the quota, the limit and the
//!   fix ([`quota`]). [`AcrRegistry::cleanup_expired_tokens`] deletes regbridge's tokens whose passwords
//!   have all expired, and their scope maps.
//! * **Reads.** `get_manifest`, `head_manifest` and `head_blob` go through the shared `/v2/` client, which
//!   answers ACR's Bearer challenge at `/oauth2/token` with the caller's refresh token (Basic
//!   `00000000-0000-0000-0000-000000000000`). `generate_blob_download_url` is `None`: ACR redirects blob
//!   GETs to storage itself, and the proxy passes that redirect on.
//! * **Long-running ARM operations** (`Azure-AsyncOperation`) are polled until `Succeeded`, `Failed` or
//!   `Canceled`, at most two minutes by default ([`AcrRegistryBuilder::with_polling`]).
//! * **The caller's identity** needs, on the registry: `Contributor` (or "Container Registry Contributor
//!   and Data Access Configuration Administrator", or a custom role allowing scope maps, tokens and
//!   `generateCredentials`) to mint credentials and read the registry's mode; data-plane read and delete
//!   rights for the metadata API: `AcrPull` and `AcrDelete` in legacy mode (which `Contributor` also
//!   gives there), "Container Registry Repository Reader" and "... Contributor" in ABAC mode (where
//!   `Contributor` gives no data-plane rights); and `Role Based Access Control Administrator` or `Owner`
//!   for cross-account access. The data plane is reached with an Entra ID token for the registry's own
//!   audience ([`DATA_PLANE_SCOPE`]), so registries that refuse ARM-audience tokens work.
//! * **Errors.** A repository ACR does not know is `NotFound`; a refused identity `Unauthenticated` or
//!   `Denied` naming the role it needs; ARM throttling (429) is retried after `Retry-After` and then
//!   `TooManyRequests`; a failed operation `Upstream` with ARM's code and message. Passwords and tokens
//!   are [`regbridge::Secret`]s and appear in no `Debug` output, log or error.

mod access;
mod arm;
mod builder;
mod data_plane;
mod gc;
pub mod quota;
pub mod roles;
mod scope_map;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{
    ArtifactRegistry, AuthMethod, Credentials, CrossAccountPermissions, Error, Manifest, ManifestDescriptor, Page,
    Permissions, Repository, RepositoryPage, Resource, Result,
};
use serde_json::Value;

pub use arm::{ACR_API_VERSION, ARM_SCOPE, AUTHZ_API_VERSION, DATA_PLANE_SCOPE, DEFAULT_ARM_URL};
pub use builder::{AcrRegistryBuilder, AzureIdentity, DEFAULT_PRINCIPAL_WAIT};
pub use data_plane::NULL_GUID_USER;
pub use gc::CleanupReport;
pub use scope_map::{MAX_TTL, MIN_TTL, NAME_PREFIX, actions, resource_name};

use access::Access;
use arm::{Arm, Deleted, upstream};
use data_plane::DataPlane;
use scope_map::Generated;

use crate::http::UpstreamClient;

/// The most repository names one catalog page asks for (and the page size when the caller gives none).
const CATALOG_PAGE: u32 = 1000;

/// An Azure container registry behind [`ArtifactRegistry`]. Build it with [`AcrRegistryBuilder`].
pub struct AcrRegistry {
    registry: String,
    /// `/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.ContainerRegistry/registries/{r}`.
    registry_id: String,
    prefix: String,
    endpoint: String,
    arm: Arc<Arm>,
    access: Access,
    data: Arc<DataPlane>,
    v2: UpstreamClient,
}

impl fmt::Display for AcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Acr({})", self.registry)
    }
}

impl fmt::Debug for AcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcrRegistry")
            .field("registry_id", &self.registry_id)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("arm", &self.arm)
            .finish_non_exhaustive()
    }
}

impl AcrRegistry {
    /// A builder with no settings; see also [`AcrRegistryBuilder::from_env`].
    pub fn builder() -> AcrRegistryBuilder {
        AcrRegistryBuilder::new()
    }

    /// The registry's ARM resource id, the scope of its role assignments.
    pub fn registry_id(&self) -> &str {
        &self.registry_id
    }

    /// The `/v2/` client, authenticated as the caller's identity.
    pub fn client(&self) -> &UpstreamClient {
        &self.v2
    }

    fn host(&self) -> &str {
        self.endpoint.split_once("://").map_or(self.endpoint.as_str(), |(_, h)| h)
    }

    fn routable(&self, id: &str) -> Result<String> {
        Ok(RepositoryName::parse(id)?.as_str().to_owned())
    }

    fn repository(&self, name: &str, created_at: Option<chrono::DateTime<Utc>>) -> Repository {
        Repository { name: name.to_owned(), uri: format!("{}/{name}", self.host()), created_at }
    }

    /// The repository `name` as ACR knows it, or `NotFound`.
    async fn existing(&self, name: &str) -> Result<Repository> {
        match self.data.repository_created(name).await? {
            Some(created) => Ok(self.repository(name, created)),
            None => Err(Error::NotFound {
                resource: Resource::Repository,
                name: format!("{name} in {self} (ACR creates a repository when the first image is pushed to it)"),
                source: None,
            }),
        }
    }

    fn acr_url(&self, sub_path: &str) -> Result<url::Url> {
        self.arm.url(&format!("{}{sub_path}", self.registry_id), ACR_API_VERSION, &[])
    }

    /// Makes sure the scope map and the token for repository `name` at `permissions` exist as they should;
    /// their name and the token as ARM describes it (with its passwords' metadata, not their values).
    async fn ensure_token(&self, name: &str, permissions: Permissions) -> Result<(String, Value)> {
        let resource = scope_map::resource_name(name, permissions);
        let scope_map_id = format!("{}/scopeMaps/{resource}", self.registry_id);
        let actions = scope_map::actions(name, permissions);
        self.arm
            .ensure(
                &self.acr_url(&format!("/scopeMaps/{resource}"))?,
                &scope_map::scope_map_body(name, permissions),
                |existing| scope_map::scope_map_is(existing, &actions),
                &format!("create scope map {resource}"),
            )
            .await?;
        let token = self
            .arm
            .ensure(
                &self.acr_url(&format!("/tokens/{resource}"))?,
                &scope_map::token_body(&scope_map_id),
                |existing| scope_map::token_is(existing, &scope_map_id),
                &format!("create token {resource}"),
            )
            .await?;
        Ok((resource, token))
    }

    async fn change_access(&self, id: &str, grant: &CrossAccountPermissions, add: bool) -> Result<()> {
        let name = self.routable(id)?;
        // Bad input is refused before any call.
        let principals = roles::principals(grant)?;
        self.existing(&name).await?;
        self.access.change(&name, grant, principals, add).await
    }
}

#[async_trait]
impl ArtifactRegistry for AcrRegistry {
    fn registry_endpoint(&self) -> String {
        self.endpoint.clone()
    }

    fn upstream_repository_prefix(&self) -> String {
        self.prefix.clone()
    }

    /// Validates the name; returns the repository with its creation time when it exists, else as it will
    /// be once the first image is pushed (`created_at` unset). ACR has no call to create a repository.
    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let logical = RepositoryName::parse(name)?;
        let name = self.routable(logical.with_prefix(&self.prefix)?.as_str())?;
        let created = self.data.repository_created(&name).await?;
        Ok(self.repository(&name, created.flatten()))
    }

    /// `/acr/v1/_catalog` pages on the data plane (the `last` of the next page is the continuation token),
    /// keeping the names under this registry's prefix that start with `prefix`; the catalog has no filter,
    /// so the prefix is applied to each page here. The catalog holds no creation times.
    async fn list_repositories(&self, prefix: Option<&str>, page: Page) -> Result<RepositoryPage> {
        let own = self.prefix.trim_matches('/');
        let in_prefix = |n: &str| own.is_empty() || n.strip_prefix(own).is_some_and(|rest| rest.starts_with('/'));
        let size = page.limit.unwrap_or(CATALOG_PAGE).clamp(1, CATALOG_PAGE);
        let (names, next) = self.data.catalog(size, page.after.as_deref()).await?;
        let repositories = names
            .iter()
            .filter(|n| in_prefix(n) && prefix.is_none_or(|p| n.starts_with(p)))
            .filter(|n| RepositoryName::parse(n).is_ok())
            .map(|n| self.repository(n, None))
            .collect();
        Ok(RepositoryPage { repositories, next })
    }

    async fn get_repository(&self, id: &str) -> Result<Repository> {
        let name = self.routable(id)?;
        self.existing(&name).await
    }

    async fn delete_repository(&self, id: &str) -> Result<()> {
        let name = self.routable(id)?;
        self.data.delete_repository(&name).await
    }

    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let name = self.routable(id)?;
        let (resource, token) = self.ensure_token(&name, permissions).await?;
        let slot = scope_map::password_slot(&token);
        // Whole seconds, as ARM takes them, so that `expires_at` is exactly what was asked for.
        let lifetime = ttl.clamp(MIN_TTL, MAX_TTL).as_secs() as i64;
        let expiry = chrono::DateTime::from_timestamp(Utc::now().timestamp() + lifetime, 0)
            .ok_or_else(|| Error::bad_input("the credential expiry is out of range"))?;
        let token_id = format!("{}/tokens/{resource}", self.registry_id);
        let answer = self
            .arm
            .post(
                &self.acr_url("/generateCredentials")?,
                &scope_map::generate_body(&token_id, slot, expiry),
                &format!("generate credentials for token {resource}"),
            )
            .await?;
        let (username, password) = serde_json::from_value::<Generated>(answer)
            .map_err(|e| upstream(format!("generateCredentials answered unexpected JSON: {e}")))?
            .take(slot)
            .ok_or_else(|| upstream(format!("generateCredentials returned no password for token {resource}")))?;
        Ok(Credentials {
            auth_method: AuthMethod::Basic,
            username: username.unwrap_or(resource),
            expires_at: password.expiry.map_or(expiry, |e| e.min(expiry)),
            password: password.value,
        })
    }

    /// Deletes the tokens, then the scope maps (a scope map in use cannot be deleted), that
    /// `generate_credentials` made for repository `id`; those already gone are skipped.
    async fn cleanup_credentials(&self, id: &str) -> Result<()> {
        let name = self.routable(id)?;
        for permissions in [Permissions::Pull, Permissions::PushPull] {
            let resource = scope_map::resource_name(&name, permissions);
            for kind in ["tokens", "scopeMaps"] {
                let url = self.acr_url(&format!("/{kind}/{resource}"))?;
                let deleted: Deleted = self.arm.delete(&url, &format!("delete {kind} {resource}")).await?;
                tracing::debug!(registry = %self.registry, kind, resource, ?deleted, "cleaned up credentials");
            }
        }
        Ok(())
    }

    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        let name = self.routable(id)?;
        self.v2
            .get_manifest(&name, reference)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{name}:{reference} in {self}")))
    }

    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        let name = self.routable(id)?;
        self.v2.head_manifest(&name, reference).await
    }

    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        let name = self.routable(id)?;
        self.v2.head_blob(&name, digest).await
    }

    /// Assigns the role of the registry's mode to each principal: `AcrPull`/`AcrPush` on the registry, or in
    /// ABAC mode the repository roles with a condition on this repository. See [`roles`].
    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, true).await
    }

    /// Deletes the role assignments `add_cross_account_access` made for these principals (in ABAC mode, for
    /// this repository only); assignments made otherwise (other names, other roles, inherited) are left
    /// alone.
    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, false).await
    }

    /// The assignments made at the registry's scope (by anyone) that apply to this repository: every
    /// `AcrPull`/`AcrPush` one in legacy mode; in ABAC mode the repository roles whose condition names this
    /// repository, and unconditioned ones.
    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        let name = self.routable(id)?;
        self.existing(&name).await?;
        self.access.grants(&name).await
    }
}
