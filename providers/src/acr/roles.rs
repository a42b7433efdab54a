//! Cross-account access to an ACR registry: ARM role assignments of `AcrPull` (pull) and `AcrPush` (push
//! and pull) to principal ids at the registry's scope.
//!
//! **Per registry, not per repository.** Azure RBAC on a registry applies to all of its repositories; ACR
//! has no repository-level role assignment. A grant made for one repository therefore lets the principal
//! pull (or push) every repository of the registry, and `get_cross_account_access` reports the same grants
//! for every repository. Use one registry per customer where that matters.
//!
//! Assignments are named by a GUID derived from the scope, the role and the principal, so adding is
//! idempotent (ARM answers `409 RoleAssignmentExists` when the same assignment exists under another name,
//! also taken as success) and removing deletes exactly what adding made (a missing one is success).

use std::collections::BTreeSet;

use regbridge::{CrossAccountAccess, CrossAccountPermissions, Error, Permissions, Result};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The built-in `AcrPull` role definition id.
pub const ACR_PULL_ROLE: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";

/// The built-in `AcrPush` role definition id (pull and push).
pub const ACR_PUSH_ROLE: &str = "8311e382-0749-4cb8-b61a-304f252e45ec";

/// The role granting `permissions`.
pub fn role_for(permissions: Permissions) -> &'static str {
    match permissions {
        Permissions::Pull => ACR_PULL_ROLE,
        Permissions::PushPull => ACR_PUSH_ROLE,
    }
}

/// The full role definition id in `subscription`.
pub fn role_definition_id(subscription: &str, role: &str) -> String {
    format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}")
}

/// The deterministic name (a GUID) of the assignment of `role` to `principal` at `scope`.
pub fn assignment_name(scope: &str, role: &str, principal: &str) -> String {
    let digest = Sha256::digest(format!("{}|{role}|{}", scope.to_ascii_lowercase(), principal.to_ascii_lowercase()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    // A name-based UUID shape (version 5 bits, RFC 4122 variant), as ARM expects a GUID.
    uuid::Builder::from_bytes(bytes)
        .with_variant(uuid::Variant::RFC4122)
        .with_version(uuid::Version::Sha1)
        .into_uuid()
        .to_string()
}

/// The body of `PUT .../roleAssignments/{name}`.
pub fn assignment_body(subscription: &str, role: &str, principal: &str) -> Value {
    json!({ "properties": { "roleDefinitionId": role_definition_id(subscription, role), "principalId": principal } })
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

/// The grants in a role assignment listing: assignments of `AcrPull`/`AcrPush` made at exactly `scope`
/// (inherited ones from the resource group or subscription are not the registry's grants), one entry per
/// level that has principals.
pub fn grants_at(scope: &str, assignments: &[Value]) -> Vec<CrossAccountPermissions> {
    let mut pull = BTreeSet::new();
    let mut push = BTreeSet::new();
    for a in assignments {
        let text = |k: &str| a.pointer(&format!("/properties/{k}")).and_then(Value::as_str).unwrap_or_default();
        if !text("scope").eq_ignore_ascii_case(scope) {
            continue;
        }
        let role = text("roleDefinitionId").rsplit('/').next().unwrap_or_default().to_ascii_lowercase();
        let principal = text("principalId").to_ascii_lowercase();
        match role.as_str() {
            ACR_PULL_ROLE => pull.insert(principal),
            ACR_PUSH_ROLE => push.insert(principal),
            _ => false,
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
    }

    #[test]
    fn only_registry_scope_acr_roles_count() {
        let scope = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r";
        let item = |scope: &str, role: &str, p: &str| json!({"properties": {"scope": scope, "roleDefinitionId": role_definition_id("s", role), "principalId": p}});
        let list = [
            item(scope, ACR_PULL_ROLE, "a"),
            item(scope, ACR_PUSH_ROLE, "b"),
            item("/subscriptions/s", ACR_PULL_ROLE, "c"),
            item(scope, "acdd72a7-3385-48ef-bd42-f606fba81ae7", "d"),
        ];
        let grants = grants_at(scope, &list);
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[0].permissions, Permissions::Pull);
        assert!(
            matches!(&grants[0].access, CrossAccountAccess::Azure { principal_ids, .. } if principal_ids.len() == 1)
        );
    }
}
