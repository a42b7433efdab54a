//! Contract checks for [`ArtifactRegistry`] implementations (feature `conformance`).
//!
//! Every provider's tests call these against a real backend (the local registry, moto, wiremock). Each
//! check returns `Err` with a message naming the provider, the step and what was seen, so a failing test
//! says what broke. [`run_all`] runs every check the [`Capabilities`] allow.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::Utc;

use crate::ArtifactRegistry;
use crate::error::{Error, OciErrorCode};
use crate::oci::Reference;
use crate::types::{Credentials, CrossAccountAccess, CrossAccountPermissions, Permissions};

/// The outcome of one check: `Err` carries a message saying what broke.
pub type Check = Result<(), String>;

/// Tries to push to a repository with given credentials, through the registry's real `/v2/` API. The
/// trait has no push method, so tests that can push supply one.
#[async_trait]
pub trait PushProbe: Send + Sync {
    /// `Ok(true)` when the push was accepted, `Ok(false)` when it was refused (401/403).
    async fn can_push(&self, repository: &str, credentials: &Credentials) -> Result<bool, String>;
}

/// What the backend under test supports, and the inputs checks need.
#[derive(Clone)]
pub struct Capabilities {
    /// Prefix for the logical names checks create, so runs on shared backends do not collide.
    pub name_prefix: String,
    /// Whether `create_repository`/`delete_repository` work (false for generic registries).
    pub repository_management: bool,
    /// The shortest and longest TTL the provider grants; a TTL outside is clamped into it.
    pub ttl_bounds: (Duration, Duration),
    /// Two grants of the provider's platform naming different principals, for the merge check.
    pub grants: Option<(CrossAccountPermissions, CrossAccountPermissions)>,
    /// A way to try a push, for the pull-cannot-push check.
    pub push_probe: Option<Arc<dyn PushProbe>>,
    /// A manifest that exists (routable repository, reference), for the head/get agreement check.
    pub existing_manifest: Option<(String, Reference)>,
}

impl Capabilities {
    /// Defaults for a provider with repository management and TTLs from 1 s to 12 h.
    pub fn new(name_prefix: &str) -> Self {
        Self {
            name_prefix: name_prefix.into(),
            repository_management: true,
            ttl_bounds: (Duration::from_secs(1), Duration::from_secs(12 * 3600)),
            grants: None,
            push_probe: None,
            existing_manifest: None,
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

fn unique(caps: &Capabilities, what: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{}{what}-{:x}", caps.name_prefix, nanos % 0xffff_ffff)
}

fn step<T>(reg: &dyn ArtifactRegistry, what: &str, r: Result<T, Error>) -> Result<T, String> {
    r.map_err(|e| format!("{reg}: {what} failed: {e}"))
}

/// `create_repository` twice returns the same repository; `get_repository` finds it; `delete_repository`
/// removes it; invalid names are `InvalidInput` before anything is created.
pub async fn create_is_idempotent(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    if !caps.repository_management {
        return Ok(());
    }
    let logical = unique(caps, "idem");
    let first = step(reg, "create_repository", reg.create_repository(&logical).await)?;
    let second = step(reg, "second create_repository", reg.create_repository(&logical).await)?;
    ensure!(first.name == second.name, "{reg}: create twice gave {} then {}", first.name, second.name);
    ensure!(first.name.ends_with(&logical), "{reg}: routable name {} does not end with {logical}", first.name);
    ensure!(!first.uri.is_empty(), "{reg}: create_repository returned an empty uri");
    let got = step(reg, "get_repository", reg.get_repository(&first.name).await)?;
    ensure!(got.name == first.name, "{reg}: get_repository gave {} for {}", got.name, first.name);
    for bad in ["../x", "UPPER", &"a".repeat(300)] {
        match reg.create_repository(bad).await {
            Err(Error::InvalidInput { code: OciErrorCode::NameInvalid, .. }) => {}
            other => return Err(format!("{reg}: create_repository({bad:?}) gave {other:?}, expected NAME_INVALID")),
        }
    }
    step(reg, "delete_repository", reg.delete_repository(&first.name).await)?;
    match reg.get_repository(&first.name).await {
        Err(Error::NotFound { .. }) => Ok(()),
        other => Err(format!("{reg}: get_repository after delete gave {other:?}, expected NotFound")),
    }
}

/// Missing repositories are `NotFound` for get and delete, and missing manifests `None` for head.
pub async fn missing_repositories_are_not_found(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    let prefix = reg.upstream_repository_prefix();
    let logical = unique(caps, "missing");
    let name = if prefix.is_empty() { logical } else { format!("{prefix}/{logical}") };
    if caps.repository_management {
        let got = reg.get_repository(&name).await;
        ensure!(matches!(got, Err(Error::NotFound { .. })), "{reg}: get_repository({name}) gave {got:?}");
        let deleted = reg.delete_repository(&name).await;
        ensure!(matches!(deleted, Err(Error::NotFound { .. })), "{reg}: delete_repository({name}) gave {deleted:?}");
    }
    let tag = Reference::parse("no-such-tag").expect("valid tag");
    let head = reg.head_manifest(&name, &tag).await;
    ensure!(
        matches!(head, Ok(None) | Err(Error::NotFound { .. })),
        "{reg}: head_manifest of a missing repository gave {head:?}"
    );
    let get = reg.get_manifest(&name, &tag).await;
    ensure!(matches!(get, Err(Error::NotFound { .. })), "{reg}: get_manifest of a missing manifest gave {get:?}");
    Ok(())
}

/// Credentials expire when asked (TTL clamped into the provider's bounds) and carry a user and a secret.
pub async fn credentials_expire_when_asked(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    let repo = step(reg, "create_repository", reg.create_repository(&unique(caps, "creds")).await)?;
    let (min, max) = caps.ttl_bounds;
    for (asked, permissions) in [
        (min.max(Duration::from_secs(900)).min(max), Permissions::Pull),
        (max + Duration::from_secs(3600), Permissions::PushPull),
    ] {
        let before = Utc::now();
        let creds = step(reg, "generate_credentials", reg.generate_credentials(&repo.name, permissions, asked).await)?;
        let expected = asked.clamp(min, max);
        let lifetime = (creds.expires_at - before).to_std().unwrap_or_default();
        ensure!(
            lifetime <= expected + Duration::from_secs(5),
            "{reg}: asked for {asked:?} (clamped {expected:?}), credentials live {lifetime:?}"
        );
        ensure!(
            lifetime + Duration::from_secs(120) >= expected.min(Duration::from_secs(3600)),
            "{reg}: asked for {asked:?}, credentials live only {lifetime:?}"
        );
        ensure!(!creds.username.is_empty() && !creds.password.is_empty(), "{reg}: empty credentials");
        ensure!(!format!("{creds:?}").contains(creds.password.expose()), "{reg}: Debug shows the password");
    }
    if caps.repository_management {
        step(reg, "delete_repository", reg.delete_repository(&repo.name).await)?;
    }
    Ok(())
}

/// A `Pull` credential cannot push; a `PushPull` credential can.
pub async fn pull_credentials_cannot_push(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    let Some(probe) = &caps.push_probe else { return Ok(()) };
    let repo = step(reg, "create_repository", reg.create_repository(&unique(caps, "pull")).await)?;
    let ttl = Duration::from_secs(900);
    let pull =
        step(reg, "generate_credentials(Pull)", reg.generate_credentials(&repo.name, Permissions::Pull, ttl).await)?;
    let push = step(
        reg,
        "generate_credentials(PushPull)",
        reg.generate_credentials(&repo.name, Permissions::PushPull, ttl).await,
    )?;
    ensure!(!probe.can_push(&repo.name, &pull).await?, "{reg}: a Pull credential pushed to {}", repo.name);
    ensure!(probe.can_push(&repo.name, &push).await?, "{reg}: a PushPull credential could not push to {}", repo.name);
    step(reg, "cleanup_credentials", reg.cleanup_credentials(&repo.name).await)?;
    if caps.repository_management {
        step(reg, "delete_repository", reg.delete_repository(&repo.name).await)?;
    }
    Ok(())
}

fn granted(list: &[CrossAccountPermissions], permissions: Permissions) -> Option<&CrossAccountAccess> {
    list.iter().find(|g| g.permissions == permissions).map(|g| &g.access)
}

/// Adding two grants keeps both; removing one keeps the other; removing both leaves nothing.
pub async fn cross_account_add_remove_merge(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    let Some((a, b)) = &caps.grants else { return Ok(()) };
    let repo = step(reg, "create_repository", reg.create_repository(&unique(caps, "xacct")).await)?;
    let name = repo.name.as_str();
    step(reg, "add a", reg.add_cross_account_access(name, a).await)?;
    step(reg, "add b", reg.add_cross_account_access(name, b).await)?;
    let both = a.access.union(&b.access).ok_or_else(|| format!("{reg}: grants of different platforms"))?;
    let now = step(reg, "get", reg.get_cross_account_access(name).await)?;
    ensure!(granted(&now, a.permissions) == Some(&both), "{reg}: after adding a and b, got {now:?}, expected {both:?}");
    step(reg, "remove a", reg.remove_cross_account_access(name, a).await)?;
    let now = step(reg, "get", reg.get_cross_account_access(name).await)?;
    let left = both.difference(&a.access).expect("same platform");
    ensure!(granted(&now, a.permissions) == Some(&left), "{reg}: after removing a, got {now:?}, expected {left:?}");
    step(reg, "remove b", reg.remove_cross_account_access(name, b).await)?;
    let now = step(reg, "get", reg.get_cross_account_access(name).await)?;
    ensure!(
        granted(&now, a.permissions).is_none_or(CrossAccountAccess::is_empty),
        "{reg}: after removing both, got {now:?}"
    );
    let missing = reg.get_cross_account_access(&format!("{name}-missing")).await;
    ensure!(matches!(missing, Err(Error::NotFound { .. })), "{reg}: access of a missing repository gave {missing:?}");
    if caps.repository_management {
        step(reg, "delete_repository", reg.delete_repository(name).await)?;
    }
    Ok(())
}

/// `head_manifest` reports the media type, digest and size of what `get_manifest` returns.
pub async fn head_and_get_agree(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    let Some((repo, reference)) = &caps.existing_manifest else { return Ok(()) };
    let got = step(reg, "get_manifest", reg.get_manifest(repo, reference).await)?;
    let head = step(reg, "head_manifest", reg.head_manifest(repo, reference).await)?
        .ok_or_else(|| format!("{reg}: head_manifest found nothing where get_manifest found {}", got.digest))?;
    ensure!(head.digest == got.digest, "{reg}: head digest {} != get digest {}", head.digest, got.digest);
    ensure!(head.size == got.bytes.len() as u64, "{reg}: head size {} != {} bytes", head.size, got.bytes.len());
    ensure!(head.media_type == got.media_type, "{reg}: head type {} != {}", head.media_type, got.media_type);
    ensure!(
        crate::oci::Digest::of(got.digest.algorithm(), &got.bytes) == got.digest,
        "{reg}: manifest bytes do not hash to {}",
        got.digest
    );
    Ok(())
}

/// Every check above, in order; stops at the first failure.
pub async fn run_all(reg: &dyn ArtifactRegistry, caps: &Capabilities) -> Check {
    create_is_idempotent(reg, caps).await?;
    missing_repositories_are_not_found(reg, caps).await?;
    credentials_expire_when_asked(reg, caps).await?;
    pull_credentials_cannot_push(reg, caps).await?;
    cross_account_add_remove_merge(reg, caps).await?;
    head_and_get_agree(reg, caps).await
}
