//! Cross-account access to an ACR registry as ARM role assignments at the registry's scope, in the
//! registry's role-assignment mode (`properties.roleAssignmentMode` of the registry resource,
//! <https://learn.microsoft.com/azure/container-registry/container-registry-rbac-abac-repository-permissions>):
//!
//! * **`LegacyRegistryPermissions`** (RBAC registry permissions, the mode of registries made before ABAC
//!   existed): `AcrPull` (pull) and `AcrPush` (push and pull). Azure RBAC on a registry applies to all of
//!   its repositories, so a grant made for one repository lets the principal pull (or push) every
//!   repository of the registry, and `get_cross_account_access` reports the same grants for every one.
//! * **`AbacRepositoryPermissions`** (RBAC registry + ABAC repository permissions, becoming the default):
//!   ACR ignores `AcrPull`, `AcrPush` and `AcrDelete` there. Grants are "Container Registry Repository
//!   Reader" (pull) and "Container Registry Repository Writer" (push and pull) with an ABAC condition
//!   (`conditionVersion` 2.0) that limits the role's data actions to the one repository, so grants are
//!   per repository: `get_cross_account_access` reports the assignments whose condition names the
//!   repository, and the unconditioned ones (which apply to every repository).
//!
//! Assignments are named by a GUID derived from the scope, the role, the principal (and the repository in
//! ABAC mode), so adding is idempotent (ARM answers `409 RoleAssignmentExists` when the same assignment
//! exists under another name, also taken as success) and removing deletes exactly what adding made (a
//! missing one is success).
//!
//! **`principalType`.** ARM looks a principal up in Entra ID unless the assignment says what type it is,
//! and answers `400 PrincipalNotFound` for one created moments earlier that has not replicated yet
//! (<https://learn.microsoft.com/azure/role-based-access-control/role-assignments-rest>). Every assignment
//! therefore carries `principalType`: `ServicePrincipal` when the grant names compute service types (they
//! pull as managed identities), else the API's documented default `User`. A grant carries no type of its
//! own, so when ARM answers `UnmatchedPrincipalType` ("... has type 'ServicePrincipal', which is different
//! from specified PrincipalType 'User'") the assignment is sent again once with the type ARM named.

use std::collections::BTreeSet;

use regbridge::{CrossAccountAccess, CrossAccountPermissions, Error, Permissions, Result};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The built-in `AcrPull` role definition id (legacy mode).
pub const ACR_PULL_ROLE: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";

/// The built-in `AcrPush` role definition id (pull and push; legacy mode).
pub const ACR_PUSH_ROLE: &str = "8311e382-0749-4cb8-b61a-304f252e45ec";

/// The built-in "Container Registry Repository Reader" role definition id (ABAC mode: content and
/// metadata read).
pub const REPOSITORY_READER_ROLE: &str = "b93aa761-3e63-49ed-ac28-beffa264f7ac";

/// The built-in "Container Registry Repository Writer" role definition id (ABAC mode: content and metadata
/// read and write).
pub const REPOSITORY_WRITER_ROLE: &str = "2a1e307c-b015-4ebd-883e-5b7698a07328";

/// The registry property value of ABAC repository permissions.
pub const ABAC_MODE: &str = "AbacRepositoryPermissions";

/// `principalType` when the grant does not tell: the role assignments API's documented default.
pub const DEFAULT_PRINCIPAL_TYPE: &str = "User";

/// A registry's role-assignment mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `LegacyRegistryPermissions`, or a registry resource without the property: `AcrPull`/`AcrPush`,
    /// registry-wide.
    Legacy,
    /// `AbacRepositoryPermissions`: repository roles with a condition per repository.
    Abac,
}

impl Mode {
    /// The mode of a registry resource as ARM returns it (`properties.roleAssignmentMode`).
    pub fn of(registry: &Value) -> Mode {
        match registry.pointer("/properties/roleAssignmentMode").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case(ABAC_MODE) => Mode::Abac,
            _ => Mode::Legacy,
        }
    }

    /// The role granting `permissions` in this mode.
    pub fn role_for(self, permissions: Permissions) -> &'static str {
        match (self, permissions) {
            (Mode::Legacy, Permissions::Pull) => ACR_PULL_ROLE,
            (Mode::Legacy, Permissions::PushPull) => ACR_PUSH_ROLE,
            (Mode::Abac, Permissions::Pull) => REPOSITORY_READER_ROLE,
            (Mode::Abac, Permissions::PushPull) => REPOSITORY_WRITER_ROLE,
        }
    }

    /// The permission level `role` grants in this mode, if it is one of this mode's roles.
    fn permissions_of(self, role: &str) -> Option<Permissions> {
        [Permissions::Pull, Permissions::PushPull].into_iter().find(|p| self.role_for(*p) == role)
    }
}

/// The role granting `permissions` in legacy mode (`AcrPull` or `AcrPush`).
pub fn role_for(permissions: Permissions) -> &'static str {
    Mode::Legacy.role_for(permissions)
}

/// The full role definition id in `subscription`.
pub fn role_definition_id(subscription: &str, role: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}")
}

/// A name-based GUID of `parts`, as ARM expects for an assignment name.
fn name_of(parts: &str) -> String {
    let digest = Sha256::digest(parts.to_ascii_lowercase());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A name-based UUID shape (version 5 bits, RFC 4122 variant).
    uuid::Builder::from_bytes(bytes)
        .with_variant(uuid::Variant::RFC4122)
        .with_version(uuid::Version::Sha1)
        .into_uuid()
        .to_string()
}

/// The deterministic name (a GUID) of the registry-wide assignment of `role` to `principal` at `scope`.
pub fn assignment_name(scope: &str, role: &str, principal: &str) -> String {
    name_of(&format!("{scope}|{role}|{principal}"))
}

/// The deterministic name of the assignment of `role` to `principal` at `scope` limited to `repository`
/// (ABAC mode).
pub fn repository_assignment_name(scope: &str, role: &str, principal: &str, repository: &str) -> String {
    name_of(&format!("{scope}|{role}|{principal}|{repository}"))
}

/// The data actions of the repository role granting `permissions`, which its condition limits.
fn data_actions(permissions: Permissions) -> &'static [&'static str] {
    match permissions {
        Permissions::Pull => &["content/read", "metadata/read"],
        Permissions::PushPull => &["content/read", "metadata/read", "content/write", "metadata/write"],
    }
}

/// The ABAC condition limiting the repository role for `permissions` to `repository`, in the documented
/// form: each of the role's data actions is allowed only when the request's repository name is
/// `repository`.
pub fn repository_condition(repository: &str, permissions: Permissions) -> String {
    let actions: Vec<String> = data_actions(permissions)
        .iter()
        .map(|a| format!("!(ActionMatches{{'Microsoft.ContainerRegistry/registries/repositories/{a}'}})"))
        .collect();
    format!(
        "(({}) OR (@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase \
         '{repository}'))",
        actions.join(" AND ")
    )
}

/// The repository names an ABAC condition compares the request's repository with for equality
/// (`... repositories:name] StringEquals[IgnoreCase] 'name'`), lowercased. Other comparisons (prefixes)
/// are not reported as grants of a repository.
pub fn condition_repositories(condition: &str) -> Vec<String> {
    const ATTRIBUTE: &str = "Microsoft.ContainerRegistry/registries/repositories:name]";
    let mut names = Vec::new();
    for (_, rest) in condition.match_indices(ATTRIBUTE).map(|(i, _)| condition.split_at(i + ATTRIBUTE.len())) {
        let rest = rest.trim_start();
        let Some(operand) = ["StringEqualsIgnoreCase", "StringEquals"].iter().find_map(|op| rest.strip_prefix(op))
        else {
            continue;
        };
        if let Some(name) = operand.trim_start().strip_prefix('\'').and_then(|v| v.split('\'').next()) {
            names.push(name.to_ascii_lowercase());
        }
    }
    names
}

/// The body of `PUT .../roleAssignments/{name}`; `condition` for ABAC repository grants.
pub fn assignment_body(
    subscription: &str,
    role: &str,
    principal: &str,
    principal_type: &str,
    condition: Option<String>,
) -> Value {
    let mut properties = json!({
        "roleDefinitionId": role_definition_id(subscription, role),
        "principalId": principal,
        "principalType": principal_type,
    });
    if let Some(condition) = condition {
        properties["condition"] = json!(condition);
        properties["conditionVersion"] = json!("2.0");
    }
    json!({ "properties": properties })
}

/// The `principalType` for the principals of `grant`: `ServicePrincipal` when it names compute service
/// types (virtual machines, Kubernetes nodes and serverless platforms pull as managed identities), else
/// [`DEFAULT_PRINCIPAL_TYPE`].
pub fn principal_type(grant: &CrossAccountPermissions) -> &'static str {
    match &grant.access {
        CrossAccountAccess::Azure { allowed_service_types, .. } if !allowed_service_types.is_empty() => {
            "ServicePrincipal"
        }
        _ => DEFAULT_PRINCIPAL_TYPE,
    }
}

/// The principal type ARM names in an `UnmatchedPrincipalType` message ("The PrincipalId '...' has type
/// 'ServicePrincipal', which is different from specified PrincipalType 'User'.").
pub fn named_principal_type(message: &str) -> Option<String> {
    let rest = message.split_once("has type '")?.1;
    let name = rest.split('\'').next()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic())).then(|| name.to_owned())
}

/// The principal ids of an Azure grant, each checked to be a GUID (an object id). Other platforms are
/// `InvalidInput`.
pub fn principals(grant: &CrossAccountPermissions) -> Result<&BTreeSet<String>> {
    let CrossAccountAccess::Azure { principal_ids, .. } = &grant.access else {
        return Err(Error::bad_input(format!(
            "ACR accepts azure cross-account access (principal ids), not {}",
            grant.access.platform()
        )));
    };
    if let Some(bad) = principal_ids.iter().find(|p| uuid::Uuid::try_parse(p).is_err()) {
        return Err(Error::bad_input(format!(
            "{bad:?} is not an Entra ID object id (a GUID such as 00000000-0000-0000-0000-000000000000): give the \
             object id of the user, group, service principal or managed identity"
        )));
    }
    Ok(principal_ids)
}

/// The grants of `repository` in a role assignment listing: assignments of `mode`'s roles made at exactly
/// `scope` (inherited ones from the resource group or subscription are not the registry's grants), one
/// entry per level that has principals. In ABAC mode, a conditioned assignment counts only when its
/// condition names `repository`.
pub fn grants_at(scope: &str, mode: Mode, repository: &str, assignments: &[Value]) -> Vec<CrossAccountPermissions> {
    let mut pull = BTreeSet::new();
    let mut push = BTreeSet::new();
    for a in assignments {
        let text = |k: &str| a.pointer(&format!("/properties/{k}")).and_then(Value::as_str).unwrap_or_default();
        if !text("scope").eq_ignore_ascii_case(scope) {
            continue;
        }
        let role = text("roleDefinitionId").rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        let Some(permissions) = mode.permissions_of(&role) else { continue };
        let condition = text("condition");
        if mode == Mode::Abac
            && !condition.is_empty()
            && !condition_repositories(condition).contains(&repository.to_ascii_lowercase())
        {
            continue;
        }
        let principal = text("principalId").to_ascii_lowercase();
        match permissions {
            Permissions::Pull => pull.insert(principal),
            Permissions::PushPull => push.insert(principal),
        };
    }
    [(Permissions::Pull, pull), (Permissions::PushPull, push)]
        .into_iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(permissions, principal_ids)| CrossAccountPermissions {
            access: CrossAccountAccess::Azure {
                principal_ids,
                tenant_id: None,
                allowed_service_types: BTreeSet::new(),
            },
            permissions,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_deterministic_guids() {
        let a = assignment_name("/subscriptions/s/x", ACR_PULL_ROLE, "p");
        assert_eq!(a, assignment_name("/SUBSCRIPTIONS/s/X", ACR_PULL_ROLE, "P"));
        assert_ne!(a, assignment_name("/subscriptions/s/x", ACR_PUSH_ROLE, "p"));
        assert!(uuid::Uuid::try_parse(&a).is_ok());
        let r = repository_assignment_name("/subscriptions/s/x", REPOSITORY_READER_ROLE, "p", "team/a");
        assert_ne!(r, repository_assignment_name("/subscriptions/s/x", REPOSITORY_READER_ROLE, "p", "team/b"));
    }

    fn item(scope: &str, role: &str, p: &str, condition: Option<String>) -> Value {
        json!({"properties": {"scope": scope, "roleDefinitionId": role_definition_id("s", role), "principalId": p, "condition": condition}})
    }

    #[test]
    fn only_registry_scope_acr_roles_count() {
        let scope = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r";
        let list = [
            item(scope, ACR_PULL_ROLE, "a", None),
            item(scope, ACR_PUSH_ROLE, "b", None),
            item("/subscriptions/s", ACR_PULL_ROLE, "c", None),
            item(scope, "acdd72a7-3385-48ef-bd42-f606fba81ae7", "d", None),
            item(scope, REPOSITORY_READER_ROLE, "e", None),
        ];
        let grants = grants_at(scope, Mode::Legacy, "any", &list);
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].permissions, Permissions::Pull);
        assert!(
            matches!(&grants[0].access, CrossAccountAccess::Azure { principal_ids, .. } if principal_ids.len() == 1)
        );
    }

    #[test]
    fn abac_grants_are_per_repository() {
        let scope = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r";
        let cond = |repo: &str, p| Some(repository_condition(repo, p));
        let list = [
            item(scope, REPOSITORY_READER_ROLE, "a", cond("team/app", Permissions::Pull)),
            item(scope, REPOSITORY_WRITER_ROLE, "b", cond("team/other", Permissions::PushPull)),
            item(scope, REPOSITORY_READER_ROLE, "c", None),
            item(scope, ACR_PULL_ROLE, "d", None),
        ];
        let grants = grants_at(scope, Mode::Abac, "team/app", &list);
        assert_eq!(grants.len(), 1, "{grants:?}");
        let CrossAccountAccess::Azure { principal_ids, .. } = &grants[0].access else { panic!() };
        assert_eq!(principal_ids.iter().map(String::as_str).collect::<Vec<_>>(), ["a", "c"]);
    }

    #[test]
    fn conditions_follow_the_documented_form() {
        let c = repository_condition("team/app", Permissions::PushPull);
        assert!(c.contains("!(ActionMatches{'Microsoft.ContainerRegistry/registries/repositories/content/write'})"));
        assert!(c.contains(
            "@Request[Microsoft.ContainerRegistry/registries/repositories:name] StringEqualsIgnoreCase 'team/app'"
        ));
        assert_eq!(condition_repositories(&c), ["team/app"]);
        let other = "@Resource[Microsoft.ContainerRegistry/registries/repositories:name] StringEquals 'A/B' OR \
                     @Request[Microsoft.ContainerRegistry/registries/repositories:name] StringStartsWith 'c/'";
        assert_eq!(condition_repositories(other), ["a/b"]);
    }

    #[test]
    fn principal_types() {
        let msg =
            "The PrincipalId 'x' has type 'ServicePrincipal', which is different from specified PrincipalType 'User'.";
        assert_eq!(named_principal_type(msg).as_deref(), Some("ServicePrincipal"));
        assert_eq!(named_principal_type("nothing here"), None);
        let grant = |types: BTreeSet<regbridge::ComputeServiceType>| CrossAccountPermissions {
            access: CrossAccountAccess::Azure {
                principal_ids: BTreeSet::new(),
                tenant_id: None,
                allowed_service_types: types,
            },
            permissions: Permissions::Pull,
        };
        assert_eq!(principal_type(&grant(BTreeSet::new())), "User");
        assert_eq!(principal_type(&grant([regbridge::ComputeServiceType::Kubernetes].into())), "ServicePrincipal");
    }
}
