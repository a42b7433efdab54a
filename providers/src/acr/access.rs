//! Cross-account access through ARM role assignments: the registry's role-assignment mode (read from the
//! registry resource and kept for a while), creating assignments with `principalType` and the waits a new
//! principal needs, reading and removing them. What the assignments are is [`roles`](super::roles).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regbridge::{CrossAccountPermissions, Error, Result};
use serde_json::{Value, json};
use url::Url;

use super::arm::{ACR_API_VERSION, AUTHZ_API_VERSION, Arm, explain};
use super::roles::{self, Mode};
use crate::http::RestError;

/// How long a registry's role-assignment mode is trusted before it is read again (an administrator may
/// switch a registry to ABAC mode; grants made in the old mode stop working then).
const MODE_TTL: Duration = Duration::from_secs(600);

/// ARM's code for a principal it cannot find (yet) in Entra ID.
const PRINCIPAL_NOT_FOUND: &str = "PrincipalNotFound";

/// ARM's code for a `principalType` that is not the principal's.
const UNMATCHED_PRINCIPAL_TYPE: &str = "UnmatchedPrincipalType";

/// ARM's code for an assignment of the same role to the same principal under another name.
const ASSIGNMENT_EXISTS: &str = "RoleAssignmentExists";

/// At most this many attempts of one assignment, whatever the waits (a bound beside the time bound).
const MAX_ASSIGNMENT_ATTEMPTS: u32 = 64;

/// The role assignments of one registry.
#[derive(Debug)]
pub(crate) struct Access {
    pub(crate) arm: Arc<Arm>,
    pub(crate) registry: String,
    pub(crate) subscription: String,
    /// The registry's ARM resource id, the scope of every assignment.
    pub(crate) registry_id: String,
    /// How long `PrincipalNotFound` is retried (Entra ID replication of a new principal).
    pub(crate) principal_wait: Duration,
    pub(crate) mode: Mutex<Option<(Instant, Mode)>>,
}

impl Access {
    /// The registry's role-assignment mode, from `GET` of the registry resource (kept [`MODE_TTL`]).
    pub(crate) async fn mode(&self) -> Result<Mode> {
        let cached = *self.mode.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, mode)) = cached.filter(|(at, _)| at.elapsed() < MODE_TTL) {
            tracing::trace!(registry = %self.registry, ?mode, age = ?at.elapsed(), "cached role assignment mode");
            return Ok(mode);
        }
        let url = self.arm.url(&self.registry_id, ACR_API_VERSION, &[])?;
        let resource = self.arm.get(&url, &format!("read registry {}", self.registry)).await?;
        let mode = Mode::of(&resource);
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), mode));
        Ok(mode)
    }

    fn assignment_url(&self, name: &str) -> Result<Url> {
        let path = format!("{}/providers/Microsoft.Authorization/roleAssignments/{name}", self.registry_id);
        self.arm.url(&path, AUTHZ_API_VERSION, &[])
    }

    /// Adds (`add`) or removes the assignments of `grant` for `repository`, one per principal of
    /// `principals` (the grant's, checked by [`roles::principals`]).
    pub(crate) async fn change(
        &self,
        repository: &str,
        grant: &CrossAccountPermissions,
        principals: &BTreeSet<String>,
        add: bool,
    ) -> Result<()> {
        let mode = self.mode().await?;
        let role = mode.role_for(grant.permissions);
        for principal in principals {
            let name = match mode {
                Mode::Legacy => roles::assignment_name(&self.registry_id, role, principal),
                Mode::Abac => roles::repository_assignment_name(&self.registry_id, role, principal, repository),
            };
            let url = self.assignment_url(&name)?;
            if add {
                let condition =
                    (mode == Mode::Abac).then(|| roles::repository_condition(repository, grant.permissions));
                let body = roles::assignment_body(
                    &self.subscription,
                    role,
                    principal,
                    roles::principal_type(grant),
                    condition,
                );
                let what = match mode {
                    Mode::Legacy => format!("assign role {role} on {} to {principal}", self.registry),
                    Mode::Abac => format!("assign role {role} on {}/{repository} to {principal}", self.registry),
                };
                self.create(&url, body, principal, &what).await?;
            } else {
                self.arm.delete(&url, &format!("remove role assignment of {principal} on {}", self.registry)).await?;
            }
        }
        Ok(())
    }

    /// `PUT` one assignment: `RoleAssignmentExists` is success; `UnmatchedPrincipalType` is answered once
    /// with the type ARM names; `PrincipalNotFound` (a principal Entra ID has not replicated yet) is sent
    /// again with the client's backoff for up to `principal_wait`.
    async fn create(&self, url: &Url, mut body: Value, principal: &str, what: &str) -> Result<()> {
        let started = Instant::now();
        let mut corrected = false;
        for attempt in 1..=MAX_ASSIGNMENT_ATTEMPTS {
            let e = match self.arm.try_put(url, &body, what).await? {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            match e.code.as_str() {
                ASSIGNMENT_EXISTS if e.is_conflict() => return Ok(()),
                UNMATCHED_PRINCIPAL_TYPE if !corrected => {
                    let Some(actual) = roles::named_principal_type(&e.error.to_string()) else {
                        return Err(explain(e));
                    };
                    tracing::debug!(principal, %actual, "ARM named the principal's type; assigning again with it");
                    body["properties"]["principalType"] = json!(actual);
                    corrected = true;
                }
                PRINCIPAL_NOT_FOUND => {
                    let left = self.principal_wait.saturating_sub(started.elapsed());
                    if left.is_zero() || attempt == MAX_ASSIGNMENT_ATTEMPTS {
                        return Err(self.principal_missing(e, principal));
                    }
                    let backoff = &self.arm.backoff;
                    let wait = backoff.delay(attempt, None).unwrap_or(backoff.max).min(left);
                    tracing::debug!(
                        principal,
                        attempt,
                        ?wait,
                        "principal not found yet; Entra ID may still replicate it"
                    );
                    tokio::time::sleep(wait).await;
                }
                _ => return Err(explain(e)),
            }
        }
        Err(Error::Upstream {
            provider: super::arm::PROVIDER.into(),
            status: None,
            message: format!("{what}: ARM kept refusing after {MAX_ASSIGNMENT_ATTEMPTS} attempts"),
            source: None,
        })
    }

    /// `PrincipalNotFound` after the wait: the caller gave an object id that is not (or not yet) in the
    /// registry's tenant.
    fn principal_missing(&self, e: RestError, principal: &str) -> Error {
        Error::bad_input(format!(
            "{} (code {PRINCIPAL_NOT_FOUND}, still after {:?}); check that {principal} is the object id of a \
             user, group, service principal or managed identity in the registry's tenant",
            e.error, self.principal_wait
        ))
    }

    /// The grants that apply to `repository`, read from the assignments at the registry's scope.
    pub(crate) async fn grants(&self, repository: &str) -> Result<Vec<CrossAccountPermissions>> {
        let mode = self.mode().await?;
        let path = format!("{}/providers/Microsoft.Authorization/roleAssignments", self.registry_id);
        let url = self.arm.url(&path, AUTHZ_API_VERSION, &[("$filter", "atScope()")])?;
        let assignments = self.arm.list(&url, &format!("list role assignments of {}", self.registry)).await?;
        Ok(roles::grants_at(&self.registry_id, mode, repository, &assignments))
    }
}
