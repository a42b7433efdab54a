//! The control plane's operations on the routes: repositories, cross-account access, credentials, cleanup.
//!
//! The one code path behind both the CLI (on the server's host, over its data directory) and the management
//! API (`/admin/v1/`, in the server): each call resolves the client-visible repository name to the route
//! serving it and acts on that route's provider, exactly as the other does. Authorization is the caller's
//! concern (the API checks the principal first; the CLI runs as the data directory's owner).

pub mod formats;
pub mod gc;
pub mod inspect;
pub mod list;
pub mod migrate;
pub mod routes;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use regbridge::oci::RepositoryName;
use regbridge::{
    ArtifactRegistry, Credentials, CrossAccountAccess, CrossAccountPermissions, DynArtifactRegistry, Error,
    Permissions, Repository, Resource, Result,
};
use regbridge_providers::local::{Access, LocalRegistry};

use crate::accounts::{Principal, rules};
use crate::routing::{RoutingTable, Target};

/// The user name of server-wide credentials (the credential helper's): never a configured user, so Basic
/// logins with it are token logins. A member's or robot's are `regbridge-credential-helper@NAME` (`@` is in
/// no account name).
pub const HELPER_USER: &str = "regbridge-credential-helper";

/// What server-wide credentials for `principal` hold: the user name to present, the token's access and its
/// lifetime (`ttl`, cut to a robot's expiry). An admin's open every repository (`pull` only with
/// `pull_only`); a member's or robot's carry exactly its rules (their `pull` only with `pull_only`), so they
/// never reach another repository or do another action than the account may. Refused (`Denied`) when
/// nothing would be left.
pub fn server_grant(principal: &Principal, pull_only: bool, ttl: Duration) -> Result<(String, Vec<Access>, Duration)> {
    if principal.is_admin() {
        let actions: &[&str] = if pull_only { &["pull"] } else { &["pull", "push", "delete"] };
        return Ok((HELPER_USER.to_owned(), vec![Access::every_repository(actions)], ttl));
    }
    let name = &principal.name;
    let access = rules::token_access(&principal.rules, pull_only);
    if access.is_empty() {
        let what = if pull_only { "pull any repository" } else { "use any repository" };
        return Err(Error::Denied { message: format!("{name} may not {what}: an admin can give it rules") });
    }
    let ttl = match principal.expires_at {
        None => ttl,
        Some(at) => {
            let left = (at - chrono::Utc::now()).to_std().unwrap_or_default();
            if left < Duration::from_secs(1) {
                return Err(Error::Unauthenticated { message: format!("the robot account {name} has expired") });
            }
            ttl.min(left)
        }
    };
    Ok((format!("{HELPER_USER}@{name}"), access, ttl))
}

/// How to reach the local provider: built once by the server, or on first use by the CLI (which must not
/// need a data directory for a command on a cloud route).
pub type LocalSource = Arc<dyn Fn() -> Result<Arc<LocalRegistry>> + Send + Sync>;

/// The operations over one routing table.
pub struct Manager<'a> {
    routes: &'a RoutingTable,
    local: LocalSource,
    /// This server's URL, where clients reach the local registry and the proxy.
    endpoint: String,
}

/// A repository name resolved to the provider that serves it.
pub struct Opened {
    /// The provider.
    pub registry: DynArtifactRegistry,
    /// The repository's name at the provider (the route's prefix mapped).
    pub id: String,
    /// The registry URL clients use for it (`https://123.dkr.ecr...`, or this server's URL).
    pub endpoint: String,
    /// The route, for messages.
    pub route: String,
}

/// Credentials minted for a repository, and where to use them.
#[derive(Debug)]
pub struct Minted {
    /// The credentials.
    pub credentials: Credentials,
    /// The registry URL they are for.
    pub endpoint: String,
    /// They are credentials for this proxy, not for the route's registry (which cannot mint scoped ones).
    pub through_proxy: bool,
    /// The provider gave a shorter lifetime than asked (the cloud's limit): the one they have.
    pub clamped_to: Option<Duration>,
}

impl<'a> Manager<'a> {
    /// Operations over `routes`; the local provider comes from `local`, clients reach this server at
    /// `endpoint`.
    pub fn new(routes: &'a RoutingTable, local: LocalSource, endpoint: impl Into<String>) -> Self {
        Self { routes, local, endpoint: endpoint.into() }
    }

    /// This server's URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The provider serving `name` under the routes.
    pub fn open(&self, name: &str) -> Result<Opened> {
        let parsed = RepositoryName::parse(name)?;
        let resolved = self.routes.resolve(&parsed)?;
        let route = resolved.route.label.clone();
        Ok(match &resolved.route.target {
            Target::Local => Opened {
                registry: (self.local)()?,
                id: resolved.upstream_name.clone(),
                endpoint: self.endpoint.clone(),
                route,
            },
            Target::Upstream(upstream) => Opened {
                registry: upstream.provider.clone(),
                id: resolved.upstream_name.clone(),
                endpoint: upstream.provider.registry_endpoint(),
                route,
            },
            Target::Connection(_) => {
                return Err(Error::unsupported(
                    "repository management on a route to a registry connection (a generic registry)",
                    route,
                ));
            }
        })
    }

    /// Whether `name` is served by another registry through the proxy (not by the local registry).
    pub fn is_proxied(&self, name: &RepositoryName) -> Result<bool> {
        Ok(!matches!(self.routes.resolve(name)?.route.target, Target::Local))
    }

    /// Creates `name` (idempotent: an existing repository is returned unchanged).
    pub async fn create_repository(&self, name: &str) -> Result<Repository> {
        let opened = self.open(name)?;
        opened.registry.create_repository(&opened.id).await
    }

    /// The repository `name`; `NotFound` when it does not exist.
    pub async fn get_repository(&self, name: &str) -> Result<Repository> {
        let opened = self.open(name)?;
        opened.registry.get_repository(&opened.id).await
    }

    /// Deletes `name` and everything in it. Answers the route that served it.
    pub async fn delete_repository(&self, name: &str) -> Result<String> {
        let opened = self.open(name)?;
        opened.registry.delete_repository(&opened.id).await?;
        Ok(opened.route)
    }

    /// The cross-account grants on `name`.
    pub async fn access(&self, name: &str) -> Result<Vec<CrossAccountPermissions>> {
        let opened = self.open(name)?;
        opened.registry.get_cross_account_access(&opened.id).await
    }

    /// Adds `grant` on `name`, keeping every grant already there; answers the grants after.
    pub async fn grant(&self, name: &str, grant: &CrossAccountPermissions) -> Result<Vec<CrossAccountPermissions>> {
        let opened = self.open(name)?;
        opened.registry.add_cross_account_access(&opened.id, grant).await?;
        opened.registry.get_cross_account_access(&opened.id).await
    }

    /// Revokes `access`'s principals on `name` at `level`, or at every level they hold when `None`; answers
    /// the grants after. See [`revoke`].
    pub async fn revoke(
        &self,
        name: &str,
        access: &CrossAccountAccess,
        level: Option<Permissions>,
    ) -> Result<Vec<CrossAccountPermissions>> {
        let opened = self.open(name)?;
        revoke(opened.registry.as_ref(), &opened.id, access, level).await?;
        opened.registry.get_cross_account_access(&opened.id).await
    }

    /// Mints `permissions` on `name` for `ttl` at the provider of its route. A route whose registry has only
    /// static credentials (a generic registry or a connection) never hands them out: the client gets
    /// credentials for this proxy instead, scoped the same way.
    pub async fn mint(&self, name: &str, permissions: Permissions, ttl: Duration) -> Result<Minted> {
        let parsed = RepositoryName::parse(name)?;
        let minted = match self.open(name) {
            Ok(opened) => match opened.registry.generate_credentials(&opened.id, permissions, ttl).await {
                Ok(credentials) => Some((credentials, opened.endpoint)),
                Err(Error::Unsupported { .. }) if self.is_proxied(&parsed)? => None,
                Err(err) => return Err(err),
            },
            Err(Error::Unsupported { .. }) if self.is_proxied(&parsed)? => None,
            Err(err) => return Err(err),
        };
        let (credentials, endpoint, through_proxy) = match minted {
            Some((credentials, endpoint)) => (credentials, endpoint, false),
            None => {
                let credentials = (self.local)()?.proxy_credentials(&parsed, permissions, ttl)?;
                (credentials, self.endpoint.clone(), true)
            }
        };
        let clamped_to = clamped(&credentials, ttl);
        if let Some(lifetime) = clamped_to {
            tracing::warn!(
                repository = name,
                asked_secs = ttl.as_secs(),
                lifetime_secs = lifetime.as_secs(),
                "the credentials live shorter than asked: the registry's limit"
            );
        }
        Ok(Minted { credentials, endpoint, through_proxy, clamped_to })
    }

    /// Deletes what minting left behind at the provider of `name`'s route (ACR tokens and scope maps).
    pub async fn cleanup(&self, name: &str) -> Result<()> {
        let opened = self.open(name)?;
        opened.registry.cleanup_credentials(&opened.id).await
    }
}

/// The lifetime `credentials` have when it is clearly shorter than `asked` (by more than a minute, so the
/// time spent minting is not reported as a limit).
fn clamped(credentials: &Credentials, asked: Duration) -> Option<Duration> {
    let left = credentials.remaining();
    (left + Duration::from_secs(60) < asked).then_some(left)
}

/// Revokes `access`'s principals on repository `id` at `level`, or at every level where any of them holds a
/// grant when `level` is `None` (a principal granted push would otherwise keep it after "remove"). Answers
/// the levels revoked; `NotFound` when none of the principals holds a grant there, so a typo in an account
/// id is not reported as success.
pub async fn revoke(
    registry: &dyn ArtifactRegistry,
    id: &str,
    access: &CrossAccountAccess,
    level: Option<Permissions>,
) -> Result<Vec<Permissions>> {
    let current = registry.get_cross_account_access(id).await?;
    let held: Vec<Permissions> = current
        .iter()
        .filter(|g| level.is_none_or(|l| g.permissions == l))
        // A grant holds one of the principals when removing them changes it.
        .filter(|g| g.access.difference(access).is_some_and(|rest| rest != g.access))
        .map(|g| g.permissions)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if held.is_empty() {
        let at = level.map_or(String::new(), |l| format!(" at the {} level", level_name(l)));
        let platform = access.platform();
        return Err(Error::not_found(Resource::Other, format!("{platform} grant of these principals on {id}{at}")));
    }
    for permissions in &held {
        let grant = CrossAccountPermissions { access: access.clone(), permissions: *permissions };
        registry.remove_cross_account_access(id, &grant).await?;
    }
    Ok(held)
}

fn level_name(level: Permissions) -> &'static str {
    if level.can_push() { "push" } else { "pull" }
}
