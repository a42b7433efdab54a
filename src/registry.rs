//! The [`ArtifactRegistry`] trait: one API over ECR, Artifact Registry, ACR, generic OCI registries and the
//! embedded local registry.

use std::fmt::{Debug, Display};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::error::{Error, Result};
use crate::oci::{Digest, Reference};
use crate::types::{
    Credentials, CrossAccountPermissions, Manifest, ManifestDescriptor, Page, Permissions, Repository, RepositoryPage,
};

/// A shared, dynamically dispatched registry, as the proxy's routing table holds them.
pub type DynArtifactRegistry = Arc<dyn ArtifactRegistry>;

/// A container registry behind one API.
///
/// # Contract
///
/// Every implementation, checked by [`crate::conformance`] where the `conformance` feature is on:
///
/// * **Names.** Methods that create take a *logical* name (`app`) and return the *routable* name (the
///   provider's [`upstream_repository_prefix`](Self::upstream_repository_prefix) plus the logical name).
///   Every other method takes the routable name. Invalid names are `Error::InvalidInput` (`NAME_INVALID`)
///   before any cloud call is made.
/// * **Idempotence.** `create_repository` on an existing repository returns it; it is not an error.
/// * **Missing things.** A missing repository is `Error::NotFound` from `get_repository`,
///   `delete_repository` and the access methods; `get_manifest` of a missing manifest is `Error::NotFound`;
///   `head_manifest` and `head_blob` answer `Ok(None)`.
/// * **Merging.** `add_cross_account_access` and `remove_cross_account_access` merge with what is granted,
///   and never drop grants someone else made. A failed read of the current policy is an error, never taken
///   as "no policy". Read-modify-write uses the cloud's concurrency token and retries on conflict.
/// * **Credentials** are scoped to one repository, honour the TTL (clamped to what the cloud allows, and
///   documented per provider), carry the earliest expiry of everything involved, and a `Pull` credential
///   cannot push.
/// * **Agreement.** `head_manifest` reports the media type, digest and size of what `get_manifest` returns.
/// * **Secrets** never appear in `Debug`, `Display`, logs or errors.
///
/// `Display` names the provider and its target, e.g. `Ecr(123456789012/us-east-1)`.
#[async_trait]
pub trait ArtifactRegistry: Display + Debug + Send + Sync + 'static {
    /// The raw registry URL clients and the proxy talk to, with scheme: `https://123456789012.dkr.ecr.us-east-1.amazonaws.com`,
    /// `https://europe-west1-docker.pkg.dev`, `https://myreg.azurecr.io`, `http://127.0.0.1:5000`.
    fn registry_endpoint(&self) -> String;

    /// The path prefix of this provider's repositories upstream: ECR `team`, GAR `my-project/my-repo`, ACR
    /// `""` or a prefix, local `""` or a namespace.
    fn upstream_repository_prefix(&self) -> String;

    /// Creates the repository for the *logical* `name` and returns it with its routable name and URI.
    /// Idempotent: an existing repository is returned.
    async fn create_repository(&self, name: &str) -> Result<Repository>;

    /// The repository with routable name `id`, or `Error::NotFound`.
    async fn get_repository(&self, id: &str) -> Result<Repository>;

    /// Deletes the repository `id` and every image in it; `Error::NotFound` when it does not exist.
    async fn delete_repository(&self, id: &str) -> Result<()>;

    /// One page of the repositories whose routable name starts with `prefix` (every repository for
    /// `None`), in the provider's order. Follow [`RepositoryPage::next`] with [`Page::after`] for the rest;
    /// a token of another listing, or a forged one, is `Error::InvalidInput` or starts over, never another
    /// registry's names.
    async fn list_repositories(&self, prefix: Option<&str>, page: Page) -> Result<RepositoryPage> {
        let _ = (prefix, page);
        Err(Error::unsupported("list_repositories", self))
    }

    /// Mints short-lived credentials for repository `id` allowing `permissions`, valid for `ttl` (clamped to
    /// what the provider allows). `Credentials::expires_at` is the earliest expiry of everything involved.
    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials>;

    /// The manifest `reference` of repository `id`, byte for byte, or `Error::NotFound`.
    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest>;

    /// Grants `grant` on repository `id`, merged with what is already granted.
    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        let _ = (id, grant);
        Err(Error::unsupported("add_cross_account_access", self))
    }

    /// Revokes the principals of `grant` on repository `id`, leaving every other grant in place.
    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        let _ = (id, grant);
        Err(Error::unsupported("remove_cross_account_access", self))
    }

    /// What is granted on repository `id`: at most one entry per [`Permissions`] level, none when nothing
    /// is granted.
    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        let _ = id;
        Err(Error::unsupported("get_cross_account_access", self))
    }

    /// Removes whatever `generate_credentials` created for repository `id` (ACR scope maps and tokens). A
    /// no-op where minting creates nothing, which is the default.
    async fn cleanup_credentials(&self, id: &str) -> Result<()> {
        let _ = id;
        Ok(())
    }

    /// A presigned URL to download blob `digest` of repository `id` directly from storage, valid for about
    /// `ttl`; `None` where the provider has none (the default).
    async fn generate_blob_download_url(&self, id: &str, digest: &Digest, ttl: Duration) -> Result<Option<Url>> {
        let _ = (id, digest, ttl);
        Ok(None)
    }

    /// Media type, digest and size of manifest `reference`, or `None` when it does not exist. The default
    /// derives it from [`get_manifest`](Self::get_manifest), so the two agree by construction.
    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        match self.get_manifest(id, reference).await {
            Ok(m) => Ok(Some(ManifestDescriptor::from(&m))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The size of blob `digest` in repository `id`, or `None` when it does not exist.
    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        let _ = (id, digest);
        Err(Error::unsupported("head_blob", self))
    }
}
