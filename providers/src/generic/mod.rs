//! The generic provider: any OCI registry with stored credentials.
//!
//! [`GenericRegistry`] fronts a registry regbridge cannot administer (Docker Hub, GHCR, Harbor, a
//! distribution registry) with a stored username and password or token. It reads manifests and blob sizes
//! over the registry's `/v2/` API through an [`UpstreamClient`], which the proxy also forwards through.
//! Repository management is not possible and answers `Unsupported`.
//!
//! Repository ids are routable names, the [`upstream_repository_prefix`](ArtifactRegistry::upstream_repository_prefix)
//! already included, and are used upstream as they are.

mod builder;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{
    ArtifactRegistry, Credentials, Error, Manifest, ManifestDescriptor, Permissions, Repository, Resource, Result,
};
use url::Url;

pub use builder::{GenericRegistryBuilder, normalize_registry_url};

use crate::http::{StaticCredentials, UpstreamClient};

/// Why repository management is unsupported, appended to the operation's name in the error.
const NOT_MANAGED: &str =
    "(a generic registry's repositories are managed in the registry itself, not through regbridge)";

/// Any OCI registry with stored credentials. Build it with [`GenericRegistryBuilder`].
///
/// `Display` is `Generic(host[:port])`.
#[derive(Clone)]
pub struct GenericRegistry {
    url: Url,
    host: String,
    prefix: String,
    credentials: StaticCredentials,
    client: UpstreamClient,
}

impl GenericRegistry {
    /// A builder for the registry at `url` (see [`GenericRegistryBuilder::new`]).
    pub fn builder(url: impl Into<String>) -> GenericRegistryBuilder {
        GenericRegistryBuilder::new(url)
    }

    /// The client for the registry's `/v2/` API, with the stored credentials, for the proxy to forward
    /// through.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// The normalised registry URL (`https://ghcr.io/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn unsupported(&self, operation: &str) -> Error {
        Error::unsupported(format!("{operation} {NOT_MANAGED}"), self)
    }
}

impl fmt::Display for GenericRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Generic({})", self.host)
    }
}

impl fmt::Debug for GenericRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRegistry")
            .field("url", &self.url.as_str())
            .field("prefix", &self.prefix)
            .field("username", &self.credentials.username())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ArtifactRegistry for GenericRegistry {
    /// The normalised URL without a trailing slash: `https://ghcr.io`, `http://127.0.0.1:5000`.
    fn registry_endpoint(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    fn upstream_repository_prefix(&self) -> String {
        self.prefix.clone()
    }

    /// `Unsupported`: repositories are created in the registry itself (or by pushing, where it allows).
    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let _ = name;
        Err(self.unsupported("create_repository"))
    }

    /// `Unsupported`: the `/v2/` API has no way to describe a repository.
    async fn get_repository(&self, id: &str) -> Result<Repository> {
        let _ = id;
        Err(self.unsupported("get_repository"))
    }

    /// `Unsupported`: repositories are deleted in the registry itself.
    async fn delete_repository(&self, id: &str) -> Result<()> {
        let _ = id;
        Err(self.unsupported("delete_repository"))
    }

    /// The stored credentials, as `Basic`, with `expires_at` = now + `ttl`.
    ///
    /// Static credentials do not expire and are not scoped: they are the same for every repository and
    /// every [`Permissions`] level, and keep working after `expires_at` (which only tells callers when to
    /// ask again, as with every provider). Without stored credentials this is `Unsupported`: anonymous
    /// access needs none.
    /// Always `Unsupported`: a generic registry has only the static credentials it was configured with,
    /// which are neither short-lived nor scoped to a repository, so they are never handed out as if they
    /// were. (`regbridge creds mint` mints credentials for the proxy itself instead.)
    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let _ = (RepositoryName::parse(id)?, permissions, ttl);
        Err(Error::unsupported(
            "generate_credentials (a generic registry's credentials are static and not scoped to a repository, \
             so they are never handed out; go through the proxy with credentials it mints)",
            self,
        ))
    }

    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        self.client
            .get_manifest(id, reference)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{id}:{reference} at {self}")))
    }

    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        self.client.head_manifest(id, reference).await
    }

    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        self.client.head_blob(id, digest).await
    }
}
