//! The embedded local registry: its storage, its signed credentials, and [`LocalRegistry`], the
//! [`ArtifactRegistry`] over them.
//!
//! Accounts: every repository has an owner account. Credentials minted by a `LocalRegistry` carry its
//! account; the server lets them use a repository of another account only while that account has a
//! cross-account grant on it, checked on every request, so removing a grant takes effect at once.

pub mod fence;
pub mod fs;
pub mod gc;
mod index;
pub mod manifest;
mod mtime;
pub mod object;
pub mod presign;
pub mod storage;
pub mod token;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{
    ArtifactRegistry, AuthMethod, Credentials, CrossAccountAccess, CrossAccountPermissions, Error, Manifest,
    ManifestDescriptor, OciErrorCode, Page, Permissions, Repository, RepositoryPage, Resource, Result,
};

pub use fs::FsStorage;
pub use object::{Bucket, ObjectStorage};
pub use presign::{DEFAULT_PRESIGN_TTL, Presigner};
pub use storage::{ListPage, References, Storage, StoredManifest};
pub use token::{Access, Claims, TokenKind, TokenSigner};

/// The account a registry acts as when none is configured.
pub const DEFAULT_ACCOUNT: &str = "local";

/// The shortest credential lifetime minted; shorter TTLs are raised to it.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// The longest credential lifetime minted (12 hours, as ECR's longest session); longer TTLs are lowered.
pub const MAX_TTL: Duration = Duration::from_secs(12 * 3600);

/// Repositories per page of `list_repositories` when the caller gives no limit.
const LIST_PAGE: u32 = 100;

/// Writes a file only its owner can read (mode 0600), for keys and passwords.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::internal(format!("create {}", parent.display()), e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).map_err(|e| Error::internal(format!("create {}", path.display()), e))?;
    file.write_all(bytes).map_err(|e| Error::internal(format!("write {}", path.display()), e))
}

/// The token actions a permission level grants.
pub fn actions_for(permissions: Permissions) -> &'static [&'static str] {
    match permissions {
        Permissions::Pull => &["pull"],
        Permissions::PushPull => &["pull", "push", "delete"],
    }
}

/// Validates and stores a manifest pushed to `repo` under `reference`, returning its digest and the digest
/// of its subject, if any.
///
/// The digest is of the bytes as sent. Pushing by digest checks that the bytes hash to it. Everything the
/// manifest references (config, layers, index entries) must already be in the repository; the storage
/// checks that under its fence against garbage collection ([`Storage::put_manifest`]).
pub async fn store_manifest(
    storage: &dyn Storage,
    repo: &RepositoryName,
    reference: &Reference,
    content_type: Option<&str>,
    bytes: Bytes,
) -> Result<(Digest, Option<Digest>)> {
    let parsed = manifest::parse(content_type, &bytes)?;
    let digest = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if &actual != expected {
                return Err(Error::DigestInvalid { expected: expected.to_string(), actual: actual.to_string() });
            }
            actual
        }
        Reference::Tag(_) => Digest::sha256(&bytes),
    };
    let referrer = parsed.subject.as_ref().map(|_| parsed.referrer(&digest, bytes.len() as u64));
    let references = References { blobs: parsed.blobs, manifests: parsed.manifests };
    let stored = StoredManifest { media_type: parsed.media_type, digest, bytes, subject: parsed.subject };
    storage.put_manifest(repo, &stored, &references, referrer, reference.tag()).await?;
    Ok((stored.digest, stored.subject))
}

/// Fails with `MANIFEST_BLOB_UNKNOWN` unless every blob and manifest in `references` is in `repo`: the
/// check every [`Storage::put_manifest`] makes inside its fence against garbage collection.
pub async fn check_references(storage: &dyn Storage, repo: &RepositoryName, references: &References) -> Result<()> {
    for blob in &references.blobs {
        if storage.blob_size(repo, blob).await?.is_none() {
            return Err(Error::invalid(
                OciErrorCode::ManifestBlobUnknown,
                format!("the manifest references blob {blob}, which is not in {repo}; push the blob first"),
            ));
        }
    }
    for child in &references.manifests {
        if storage.get_manifest(repo, &Reference::Digest(child.clone())).await?.is_none() {
            return Err(Error::invalid(
                OciErrorCode::ManifestBlobUnknown,
                format!("the index references manifest {child}, which is not in {repo}; push it first"),
            ));
        }
    }
    Ok(())
}

/// The local provider: repositories in the embedded storage, credentials signed by the server's key.
#[derive(Clone)]
pub struct LocalRegistry {
    storage: Arc<dyn Storage>,
    signer: TokenSigner,
    account: String,
    endpoint: String,
    namespace: String,
    blob_redirect: Option<Duration>,
}

impl LocalRegistry {
    /// Credentials for this server acting as the proxy of a route to another registry: a token allowing
    /// `permissions` on the client-visible `name` only, for `ttl` (clamped like
    /// [`generate_credentials`](ArtifactRegistry::generate_credentials)). It names no account, since such a
    /// repository has no owner here; the route's own upstream credentials stay with the server.
    pub fn proxy_credentials(
        &self,
        name: &RepositoryName,
        permissions: Permissions,
        ttl: Duration,
    ) -> Result<Credentials> {
        self.mint(name, permissions, ttl, None)
    }

    fn mint(
        &self,
        name: &RepositoryName,
        permissions: Permissions,
        ttl: Duration,
        acct: Option<&str>,
    ) -> Result<Credentials> {
        let ttl = ttl.clamp(MIN_TTL, MAX_TTL);
        let access = vec![Access::repository(name.as_str(), actions_for(permissions))];
        let (token, claims) = self.signer.sign(&self.account, acct, TokenKind::Minted, access, ttl)?;
        Ok(Credentials {
            auth_method: AuthMethod::Basic,
            username: self.account.clone(),
            password: token,
            expires_at: claims.expires_at(),
        })
    }

    /// A provider over `storage` acting as [`DEFAULT_ACCOUNT`], for a registry reachable at `endpoint`
    /// (`http://127.0.0.1:5000`).
    pub fn new(storage: Arc<dyn Storage>, signer: TokenSigner, endpoint: impl Into<String>) -> Self {
        Self {
            storage,
            signer,
            account: DEFAULT_ACCOUNT.into(),
            endpoint: endpoint.into().trim_end_matches('/').to_owned(),
            namespace: String::new(),
            blob_redirect: Some(DEFAULT_PRESIGN_TTL),
        }
    }

    /// The same registry acting as `account`, a tenant boundary in management calls: repositories it
    /// creates are owned by `account`; it deletes, grants on and re-creates only repositories `account`
    /// owns; it mints credentials only for what `account` may use (its own repositories, and others' at
    /// the level a cross-account grant gives it); the credentials carry `account`. Anything else is
    /// [`Error::Denied`]. Reads (get, list grants, manifests) stay open to every account.
    ///
    /// The boundary holds for callers given a `LocalRegistry`: code holding the storage and the signing key
    /// can build a provider for any account, so a multi-tenant control plane keeps those to itself.
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = account.into();
        self
    }

    /// Puts every repository this provider creates under `namespace/`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into().trim_matches('/').to_owned();
        self
    }

    /// Whether [`generate_blob_download_url`](ArtifactRegistry::generate_blob_download_url) hands out the
    /// storage's presigned URLs, and the longest they live: `Some(ttl)` (the default,
    /// [`DEFAULT_PRESIGN_TTL`]) caps the TTL asked for at `ttl`; `None` answers `None`, for storage clients
    /// cannot reach (the `[storage] redirect = false` of the server).
    pub fn with_blob_redirect(mut self, max_ttl: Option<Duration>) -> Self {
        self.blob_redirect = max_ttl;
        self
    }

    /// The account this provider acts as.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The storage.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    fn host(&self) -> &str {
        self.endpoint.split_once("://").map(|(_, h)| h).unwrap_or(&self.endpoint)
    }

    fn repository(&self, meta: &storage::RepositoryMeta) -> Repository {
        Repository {
            name: meta.name.clone(),
            uri: format!("{}/{}", self.host(), meta.name),
            created_at: Some(meta.created_at),
        }
    }

    async fn meta(&self, id: &str) -> Result<(RepositoryName, storage::RepositoryMeta)> {
        let name = RepositoryName::parse(id)?;
        let meta = self.storage.repository(&name).await?.ok_or_else(|| Error::not_found(Resource::Repository, id))?;
        Ok((name, meta))
    }

    /// The repository `id`, when this provider's account owns it; [`Error::Denied`] otherwise.
    async fn owned(&self, id: &str, what: &str) -> Result<(RepositoryName, storage::RepositoryMeta)> {
        let (name, meta) = self.meta(id).await?;
        if meta.owner != self.account {
            return Err(self.not_owner(id, what));
        }
        Ok((name, meta))
    }

    fn not_owner(&self, id: &str, what: &str) -> Error {
        Error::Denied {
            message: format!(
                "account {:?} may not {what} {id}: another account owns it (use a provider with_account of its owner)",
                self.account
            ),
        }
    }

    fn local_accounts(grant: &CrossAccountPermissions) -> Result<Vec<String>> {
        match &grant.access {
            CrossAccountAccess::Local { account_ids } => {
                if let Some(bad) = account_ids.iter().find(|a| a.trim().is_empty() || a.contains(char::is_whitespace)) {
                    return Err(Error::bad_input(format!("invalid account id {bad:?}")));
                }
                Ok(account_ids.iter().cloned().collect())
            }
            other => Err(Error::bad_input(format!(
                "the local registry takes grants with platform \"local\", not {:?}",
                other.platform()
            ))),
        }
    }
}

impl fmt::Display for LocalRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Local({}@{})", self.account, self.host())
    }
}

impl fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRegistry")
            .field("account", &self.account)
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ArtifactRegistry for LocalRegistry {
    fn registry_endpoint(&self) -> String {
        self.endpoint.clone()
    }

    fn upstream_repository_prefix(&self) -> String {
        self.namespace.clone()
    }

    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let logical = RepositoryName::parse(name)?;
        let routable = logical.with_prefix(&self.namespace)?;
        let meta = self.storage.create_repository(&routable, &self.account).await?;
        // Creating is idempotent for the owner; for another account it would hand over a stranger's repository.
        if meta.owner != self.account {
            return Err(self.not_owner(routable.as_str(), "create"));
        }
        Ok(self.repository(&meta))
    }

    async fn get_repository(&self, id: &str) -> Result<Repository> {
        let (_, meta) = self.meta(id).await?;
        Ok(self.repository(&meta))
    }

    async fn delete_repository(&self, id: &str) -> Result<()> {
        let (name, _) = self.owned(id, "delete").await?;
        self.storage.delete_repository(&name).await
    }

    /// Pages of the storage's sorted names under this provider's namespace; the token is the last name of
    /// the previous page, so a listing goes on correctly while repositories are created or deleted.
    async fn list_repositories(&self, prefix: Option<&str>, page: Page) -> Result<RepositoryPage> {
        let size = page.size_or(LIST_PAGE) as usize;
        let names = self.storage.list_repositories().await?;
        let in_namespace = |n: &str| {
            self.namespace.is_empty()
                || n.strip_prefix(self.namespace.as_str()).is_some_and(|rest| rest.starts_with('/'))
        };
        let mut matching = names
            .into_iter()
            .filter(|n| in_namespace(n) && prefix.is_none_or(|p| n.starts_with(p)))
            .filter(|n| page.after.as_deref().is_none_or(|after| n.as_str() > after));
        let mut repositories = Vec::new();
        let mut last = None;
        for name in matching.by_ref().take(size) {
            // A repository deleted since the names were read is left out rather than failing the page.
            if let Some(meta) = self.storage.repository(&RepositoryName::parse(&name)?).await? {
                repositories.push(self.repository(&meta));
            }
            last = Some(name);
        }
        let next = matching.next().and(last);
        Ok(RepositoryPage { repositories, next })
    }

    /// Signs a token for this provider's account allowing `permissions` on `id`. TTLs are clamped to
    /// [`MIN_TTL`]..=[`MAX_TTL`]. Only for a repository the account may use at `permissions` (it owns it,
    /// or holds a grant at that level).
    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let (name, meta) = self.meta(id).await?;
        if !meta.allows(&self.account, permissions == Permissions::PushPull) {
            return Err(self.not_owner(id, &format!("mint {permissions:?} credentials for")));
        }
        self.mint(&name, permissions, ttl, Some(&self.account))
    }

    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        let name = RepositoryName::parse(id)?;
        let m = self
            .storage
            .get_manifest(&name, reference)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{id}:{reference}")))?;
        Ok(Manifest { media_type: m.media_type, digest: m.digest, bytes: m.bytes.to_vec() })
    }

    async fn head_manifest(&self, id: &str, reference: &Reference) -> Result<Option<ManifestDescriptor>> {
        let name = RepositoryName::parse(id)?;
        Ok(self.storage.get_manifest(&name, reference).await?.map(|m| ManifestDescriptor {
            media_type: m.media_type,
            size: m.bytes.len() as u64,
            digest: m.digest,
        }))
    }

    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        self.storage.blob_size(&RepositoryName::parse(id)?, digest).await
    }

    /// The storage's presigned URL for blob `digest` of `id`, valid for `ttl` clamped to
    /// [`MIN_TTL`]..=the [`with_blob_redirect`](LocalRegistry::with_blob_redirect) cap; `None` where the
    /// storage cannot presign or redirects are off. `NotFound` when `id` does not have the blob: a URL is
    /// never handed out for content the repository does not hold.
    async fn generate_blob_download_url(&self, id: &str, digest: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        let Some(max_ttl) = self.blob_redirect else { return Ok(None) };
        let name = RepositoryName::parse(id)?;
        if self.storage.blob_size(&name, digest).await?.is_none() {
            return Err(Error::not_found(Resource::Blob, format!("{id}@{digest}")));
        }
        self.storage.blob_download_url(digest, ttl.clamp(MIN_TTL, max_ttl.max(MIN_TTL))).await
    }

    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        let accounts = Self::local_accounts(grant)?;
        let (name, _) = self.owned(id, "grant access to").await?;
        let level = grant.permissions;
        self.storage
            .update_repository(
                &name,
                Box::new(move |meta| meta.grants.entry(level).or_default().extend(accounts.iter().cloned())),
            )
            .await?;
        Ok(())
    }

    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        let accounts = Self::local_accounts(grant)?;
        let (name, _) = self.owned(id, "remove access to").await?;
        let level = grant.permissions;
        self.storage
            .update_repository(
                &name,
                Box::new(move |meta| {
                    if let Some(set) = meta.grants.get_mut(&level) {
                        for a in &accounts {
                            set.remove(a);
                        }
                        if set.is_empty() {
                            meta.grants.remove(&level);
                        }
                    }
                }),
            )
            .await?;
        Ok(())
    }

    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        let (_, meta) = self.meta(id).await?;
        Ok(meta
            .grants
            .iter()
            .filter(|(_, accounts)| !accounts.is_empty())
            .map(|(level, accounts)| CrossAccountPermissions {
                access: CrossAccountAccess::Local { account_ids: accounts.clone() },
                permissions: *level,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(dir: &Path) -> LocalRegistry {
        let storage = Arc::new(FsStorage::open(dir).unwrap());
        LocalRegistry::new(storage, TokenSigner::new(&[7u8; 32]).unwrap(), "http://127.0.0.1:5000")
    }

    async fn names(registry: &LocalRegistry, prefix: Option<&str>, page: Page) -> (Vec<String>, Option<String>) {
        let page = registry.list_repositories(prefix, page).await.unwrap();
        (page.repositories.into_iter().map(|r| r.name).collect(), page.next)
    }

    #[tokio::test]
    async fn lists_repositories_in_pages_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let local = registry(dir.path());
        for name in ["team/b", "team/a", "other/x", "team/a/nested"] {
            local.create_repository(name).await.unwrap();
        }
        let (first, next) = names(&local, Some("team/"), Page::first(Some(2))).await;
        assert_eq!(first, ["team/a", "team/a/nested"]);
        let next = next.expect("a second page");
        let (second, end) = names(&local, Some("team/"), Page { limit: Some(2), after: Some(next) }).await;
        assert_eq!(second, ["team/b"]);
        assert_eq!(end, None);

        let (all, end) = names(&local, None, Page::default()).await;
        assert_eq!(all, ["other/x", "team/a", "team/a/nested", "team/b"]);
        assert_eq!(end, None);
        // A limit of zero still makes progress.
        let (one, next) = names(&local, None, Page::first(Some(0))).await;
        assert_eq!((one.len(), next.as_deref()), (1, Some("other/x")));
    }

    #[tokio::test]
    async fn a_namespaced_registry_lists_only_its_namespace() {
        let dir = tempfile::tempdir().unwrap();
        registry(dir.path()).create_repository("elsewhere").await.unwrap();
        let scoped = registry(dir.path()).with_namespace("ns");
        scoped.create_repository("app").await.unwrap();
        let (all, _) = names(&scoped, None, Page::default()).await;
        assert_eq!(all, ["ns/app"]);
        // A token pointing outside the namespace does not reach other names either.
        let (after, _) = names(&scoped, None, Page { limit: None, after: Some("a".into()) }).await;
        assert_eq!(after, ["ns/app"]);
    }
}
