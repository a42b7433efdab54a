//! The ACR provider with a first push after `create_repository`, as a deployment does: ACR creates a
//! repository only when an image is pushed to it, and the trait has no push method. Shared by the
//! wiremock suite (`tests/acr.rs`, pushing into its fake) and the live suite (`tests/live_acr.rs`, pushing
//! a tiny image with minted credentials).
#![allow(dead_code)] // each suite uses its own part

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use regbridge::oci::{Digest, Reference};
use regbridge::{
    ArtifactRegistry, Credentials, CrossAccountPermissions, Manifest, ManifestDescriptor, Permissions, Repository,
    Result,
};
use regbridge_providers::acr::AcrRegistry;

/// How a suite pushes the first image into a repository ACR does not have yet.
#[async_trait]
pub trait Pusher: Send + Sync {
    /// Makes `repository` exist by pushing an image to it.
    async fn push(&self, registry: &AcrRegistry, repository: &str) -> Result<()>;
}

/// [`AcrRegistry`] with a first push after `create_repository`, and a record of every repository the
/// checks touched (for a cleanup afterwards).
pub struct FirstPush<P> {
    pub inner: AcrRegistry,
    pub pusher: P,
    pub touched: Mutex<Vec<String>>,
}

impl<P: Pusher> FirstPush<P> {
    pub fn new(inner: AcrRegistry, pusher: P) -> Self {
        Self { inner, pusher, touched: Mutex::new(Vec::new()) }
    }

    fn touch(&self, id: &str) {
        let mut touched = self.touched.lock().unwrap();
        if !touched.iter().any(|t| t == id) {
            touched.push(id.to_owned());
        }
    }
}

impl<P> fmt::Display for FirstPush<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl<P> fmt::Debug for FirstPush<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<P: Pusher + 'static> ArtifactRegistry for FirstPush<P> {
    fn registry_endpoint(&self) -> String {
        self.inner.registry_endpoint()
    }
    fn upstream_repository_prefix(&self) -> String {
        self.inner.upstream_repository_prefix()
    }
    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let repo = self.inner.create_repository(name).await?;
        self.touch(&repo.name);
        if repo.created_at.is_some() {
            return Ok(repo);
        }
        self.pusher.push(&self.inner, &repo.name).await?;
        self.inner.get_repository(&repo.name).await
    }
    async fn get_repository(&self, id: &str) -> Result<Repository> {
        self.inner.get_repository(id).await
    }
    async fn delete_repository(&self, id: &str) -> Result<()> {
        self.inner.delete_repository(id).await
    }
    async fn generate_credentials(&self, id: &str, p: Permissions, ttl: Duration) -> Result<Credentials> {
        self.touch(id);
        self.inner.generate_credentials(id, p, ttl).await
    }
    async fn cleanup_credentials(&self, id: &str) -> Result<()> {
        self.inner.cleanup_credentials(id).await
    }
    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        self.inner.get_manifest(id, reference).await
    }
    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        self.inner.head_manifest(id, reference).await
    }
    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        self.inner.head_blob(id, digest).await
    }
    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.touch(id);
        self.inner.add_cross_account_access(id, grant).await
    }
    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.inner.remove_cross_account_access(id, grant).await
    }
    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        self.inner.get_cross_account_access(id).await
    }
}
