//! The values the [`ArtifactRegistry`](crate::ArtifactRegistry) trait takes and returns.
//!
//! Control planes store these, so their JSON is part of the API: camelCase field names, enums tagged by a
//! `platform` or written as camelCase strings. Changing a name here is a breaking change.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::oci::Digest;
use crate::secret::Secret;

/// A repository as a provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// The routable name: the provider's prefix plus the logical name (`team/app`, `proj/repo/app`).
    pub name: String,
    /// Where clients pull from, without scheme: `123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app`.
    pub uri: String,
    /// When the repository was created, where the provider knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// Which page of a repository listing to read.
///
/// `after` is the continuation token a previous [`RepositoryPage::next`] returned, opaque to callers: the
/// last name of the previous page for the local registry and ACR, the cloud's own token for ECR and GAR.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// At most this many repositories per page; `None` is the provider's own page size. Zero is taken as
    /// one, so a caller can never ask for pages that make no progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Where to continue: the `next` of the previous page, `None` for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Page {
    /// The first page, of at most `limit` repositories.
    pub fn first(limit: Option<u32>) -> Self {
        Self { limit, after: None }
    }

    /// The page size to ask for: `limit` (at least one), else `default`.
    pub fn size_or(&self, default: u32) -> u32 {
        self.limit.map_or(default, |l| l.max(1))
    }
}

/// One page of a repository listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryPage {
    /// The repositories of this page, by routable name. A page may hold fewer than the limit (even none
    /// where the provider filters a cloud page by prefix) while `next` is set.
    pub repositories: Vec<Repository>,
    /// The token for the next page ([`Page::after`]); `None` on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What a credential or a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permissions {
    /// Read manifests, tags and blobs.
    Pull,
    /// Pull, and also upload blobs, put and delete manifests.
    PushPull,
}

impl Permissions {
    /// True when these permissions include pushing.
    pub fn can_push(self) -> bool {
        matches!(self, Permissions::PushPull)
    }
}

/// Kinds of compute that pull images. Some clouds pull on behalf of serverless services with a service
/// identity of their own (AWS Lambda's `lambda.amazonaws.com`, Cloud Run's serverless robot), which a
/// cross-account grant must name separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ComputeServiceType {
    /// Virtual machines (EC2, Compute Engine, Azure VMs).
    VirtualMachine,
    /// Managed Kubernetes (EKS, GKE, AKS) and container services that pull as the node's identity (ECS).
    Kubernetes,
    /// Serverless functions and containers (AWS Lambda, Cloud Run, Cloud Functions, Azure Container Apps).
    Serverless,
}

impl ComputeServiceType {
    /// True where the cloud pulls with a service principal of its own.
    pub fn is_serverless(self) -> bool {
        matches!(self, ComputeServiceType::Serverless)
    }
}

/// Who else, outside the registry's own account, may use a repository. One variant per platform; a
/// provider accepts only its own variant and answers `InvalidInput` for the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "camelCase")]
pub enum CrossAccountAccess {
    /// AWS accounts and roles (ECR repository policy).
    #[serde(rename_all = "camelCase")]
    Aws {
        /// 12-digit account ids, granted as `arn:aws:iam::{id}:root`.
        #[serde(default)]
        account_ids: BTreeSet<String>,
        /// Regions whose replica repositories get the same grant (and, for serverless, the regions in the
        /// `aws:sourceArn` condition).
        #[serde(default)]
        regions: BTreeSet<String>,
        /// Compute types that pull; `Serverless` adds the Lambda service principal.
        #[serde(default)]
        allowed_service_types: BTreeSet<ComputeServiceType>,
        /// IAM role ARNs granted directly.
        #[serde(default)]
        role_arns: BTreeSet<String>,
    },
    /// Google Cloud projects and service accounts (Artifact Registry IAM policy).
    #[serde(rename_all = "camelCase")]
    Gcp {
        /// Project numbers; `Serverless` grants their serverless robot accounts.
        #[serde(default)]
        project_numbers: BTreeSet<String>,
        /// Compute types that pull.
        #[serde(default)]
        allowed_service_types: BTreeSet<ComputeServiceType>,
        /// Service account e-mails granted directly.
        #[serde(default)]
        service_account_emails: BTreeSet<String>,
    },
    /// Azure principals (ACR role assignments).
    #[serde(rename_all = "camelCase")]
    Azure {
        /// Object ids of users, groups, service principals or managed identities.
        #[serde(default)]
        principal_ids: BTreeSet<String>,
        /// Tenant the principals live in, when not the registry's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant_id: Option<String>,
        /// Compute types that pull.
        #[serde(default)]
        allowed_service_types: BTreeSet<ComputeServiceType>,
    },
    /// Accounts of the embedded local registry.
    #[serde(rename_all = "camelCase")]
    Local {
        /// Account ids, as carried in credentials the local provider mints.
        #[serde(default)]
        account_ids: BTreeSet<String>,
    },
}

impl CrossAccountAccess {
    /// The platform name (`aws`, `gcp`, `azure`, `local`), as in the JSON `platform` tag.
    pub fn platform(&self) -> &'static str {
        match self {
            CrossAccountAccess::Aws { .. } => "aws",
            CrossAccountAccess::Gcp { .. } => "gcp",
            CrossAccountAccess::Azure { .. } => "azure",
            CrossAccountAccess::Local { .. } => "local",
        }
    }

    /// True when the access names no principal at all.
    pub fn is_empty(&self) -> bool {
        match self {
            CrossAccountAccess::Aws { account_ids, role_arns, .. } => account_ids.is_empty() && role_arns.is_empty(),
            CrossAccountAccess::Gcp { project_numbers, service_account_emails, .. } => {
                project_numbers.is_empty() && service_account_emails.is_empty()
            }
            CrossAccountAccess::Azure { principal_ids, .. } => principal_ids.is_empty(),
            CrossAccountAccess::Local { account_ids } => account_ids.is_empty(),
        }
    }

    /// `self` with every principal, region and service type of `other` added (same platform only; `None`
    /// otherwise). The merge `add_cross_account_access` applies to what is already granted.
    pub fn union(&self, other: &Self) -> Option<Self> {
        self.merge(other, Merge::Add)
    }

    /// `self` with every principal of `other` removed (same platform only; `None` otherwise). Regions and
    /// service types qualify the principals that remain, so they stay until no principal does.
    pub fn difference(&self, other: &Self) -> Option<Self> {
        self.merge(other, Merge::Remove)
    }

    fn merge(&self, other: &Self, how: Merge) -> Option<Self> {
        let principals = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> BTreeSet<String> {
            match how {
                Merge::Add => a.union(b).cloned().collect(),
                Merge::Remove => a.difference(b).cloned().collect(),
            }
        };
        fn qualifiers<T: Ord + Clone>(a: &BTreeSet<T>, b: &BTreeSet<T>, how: Merge) -> BTreeSet<T> {
            match how {
                Merge::Add => a.union(b).cloned().collect(),
                Merge::Remove => a.clone(),
            }
        }
        let merged = match (self, other) {
            (
                CrossAccountAccess::Aws { account_ids, regions, allowed_service_types, role_arns },
                CrossAccountAccess::Aws { account_ids: a2, regions: r2, allowed_service_types: s2, role_arns: ro2 },
            ) => CrossAccountAccess::Aws {
                account_ids: principals(account_ids, a2),
                regions: qualifiers(regions, r2, how),
                allowed_service_types: qualifiers(allowed_service_types, s2, how),
                role_arns: principals(role_arns, ro2),
            },
            (
                CrossAccountAccess::Gcp { project_numbers, allowed_service_types, service_account_emails },
                CrossAccountAccess::Gcp { project_numbers: p2, allowed_service_types: s2, service_account_emails: e2 },
            ) => CrossAccountAccess::Gcp {
                project_numbers: principals(project_numbers, p2),
                allowed_service_types: qualifiers(allowed_service_types, s2, how),
                service_account_emails: principals(service_account_emails, e2),
            },
            (
                CrossAccountAccess::Azure { principal_ids, tenant_id, allowed_service_types },
                CrossAccountAccess::Azure { principal_ids: p2, tenant_id: t2, allowed_service_types: s2 },
            ) => CrossAccountAccess::Azure {
                principal_ids: principals(principal_ids, p2),
                tenant_id: tenant_id.clone().or_else(|| t2.clone()),
                allowed_service_types: qualifiers(allowed_service_types, s2, how),
            },
            (CrossAccountAccess::Local { account_ids }, CrossAccountAccess::Local { account_ids: a2 }) => {
                CrossAccountAccess::Local { account_ids: principals(account_ids, a2) }
            }
            _ => return None,
        };
        Some(if merged.is_empty() { merged.cleared() } else { merged })
    }

    /// The same platform with nothing granted.
    pub fn cleared(&self) -> Self {
        match self {
            CrossAccountAccess::Aws { .. } => CrossAccountAccess::Aws {
                account_ids: BTreeSet::new(),
                regions: BTreeSet::new(),
                allowed_service_types: BTreeSet::new(),
                role_arns: BTreeSet::new(),
            },
            CrossAccountAccess::Gcp { .. } => CrossAccountAccess::Gcp {
                project_numbers: BTreeSet::new(),
                allowed_service_types: BTreeSet::new(),
                service_account_emails: BTreeSet::new(),
            },
            CrossAccountAccess::Azure { .. } => CrossAccountAccess::Azure {
                principal_ids: BTreeSet::new(),
                tenant_id: None,
                allowed_service_types: BTreeSet::new(),
            },
            CrossAccountAccess::Local { .. } => CrossAccountAccess::Local { account_ids: BTreeSet::new() },
        }
    }
}

#[derive(Clone, Copy)]
enum Merge {
    Add,
    Remove,
}

/// A cross-account grant: who ([`CrossAccountAccess`]) may do what ([`Permissions`]). The argument of
/// `add_cross_account_access` / `remove_cross_account_access`, and what `get_cross_account_access` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrossAccountPermissions {
    /// The principals.
    pub access: CrossAccountAccess,
    /// What they may do. Clouds that only support pull grants (ECR repository policies written by
    /// regbridge, GAR reader bindings) answer `InvalidInput` for `PushPull`.
    pub permissions: Permissions,
}

fn ids<I: IntoIterator<Item = S>, S: Into<String>>(ids: I) -> BTreeSet<String> {
    ids.into_iter().map(Into::into).collect()
}

impl CrossAccountPermissions {
    /// Pull for AWS accounts (12-digit ids), as in `CrossAccountPermissions::aws_pull(["123456789012"])`.
    pub fn aws_pull<I: IntoIterator<Item = S>, S: Into<String>>(account_ids: I) -> Self {
        let access = CrossAccountAccess::Aws {
            account_ids: ids(account_ids),
            regions: BTreeSet::new(),
            allowed_service_types: BTreeSet::new(),
            role_arns: BTreeSet::new(),
        };
        Self { access, permissions: Permissions::Pull }
    }

    /// Pull for Google Cloud service accounts (e-mails).
    pub fn gcp_pull<I: IntoIterator<Item = S>, S: Into<String>>(service_account_emails: I) -> Self {
        let access = CrossAccountAccess::Gcp {
            project_numbers: BTreeSet::new(),
            allowed_service_types: BTreeSet::new(),
            service_account_emails: ids(service_account_emails),
        };
        Self { access, permissions: Permissions::Pull }
    }

    /// Pull for Azure principals (object ids) of the registry's own tenant.
    pub fn azure_pull<I: IntoIterator<Item = S>, S: Into<String>>(principal_ids: I) -> Self {
        let access = CrossAccountAccess::Azure {
            principal_ids: ids(principal_ids),
            tenant_id: None,
            allowed_service_types: BTreeSet::new(),
        };
        Self { access, permissions: Permissions::Pull }
    }

    /// `permissions` for accounts of the embedded local registry.
    pub fn local<I: IntoIterator<Item = S>, S: Into<String>>(account_ids: I, permissions: Permissions) -> Self {
        Self { access: CrossAccountAccess::Local { account_ids: ids(account_ids) }, permissions }
    }

    /// The same principals with push and pull (for the providers that grant push: ACR and local).
    pub fn with_push(mut self) -> Self {
        self.permissions = Permissions::PushPull;
        self
    }
}

/// How a client presents [`Credentials`] to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AuthMethod {
    /// `Authorization: Basic base64(username:password)`, or the token flow with those credentials.
    Basic,
    /// `Authorization: Bearer <password>`; the username is informational.
    Bearer,
}

/// Short-lived registry credentials scoped to one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// How to present them.
    pub auth_method: AuthMethod,
    /// The user name (`AWS`, `oauth2accesstoken`, an ACR token name, a local account).
    pub username: String,
    /// The password or token. Prints as `<redacted>`.
    pub password: Secret,
    /// When they stop working: the earliest expiry of everything involved.
    pub expires_at: DateTime<Utc>,
}

impl Credentials {
    /// Time left before expiry (zero when already expired).
    pub fn remaining(&self) -> Duration {
        (self.expires_at - Utc::now()).to_std().unwrap_or_default()
    }
}

/// A manifest read from a registry: the exact bytes and how they were described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's media type (`Content-Type`).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The bytes as stored; the digest is of these.
    pub bytes: Vec<u8>,
}

/// What `head_manifest` tells: type, digest and size, without the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDescriptor {
    /// The media type.
    pub media_type: String,
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

impl From<&Manifest> for ManifestDescriptor {
    fn from(m: &Manifest) -> Self {
        Self { media_type: m.media_type.clone(), digest: m.digest.clone(), size: m.bytes.len() as u64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grant_constructors() {
        let aws = CrossAccountPermissions::aws_pull(["123456789012"]);
        assert_eq!(aws.permissions, Permissions::Pull);
        assert!(
            matches!(&aws.access, CrossAccountAccess::Aws { account_ids, .. } if account_ids == &set(&["123456789012"]))
        );
        let gcp = CrossAccountPermissions::gcp_pull(vec!["sa@p.iam.gserviceaccount.com".to_string()]);
        assert_eq!(gcp.access.platform(), "gcp");
        let azure = CrossAccountPermissions::azure_pull(["oid"]).with_push();
        assert_eq!((azure.access.platform(), azure.permissions), ("azure", Permissions::PushPull));
        let local = CrossAccountPermissions::local(["b", "c"], Permissions::Pull);
        assert_eq!(local.access, CrossAccountAccess::Local { account_ids: set(&["b", "c"]) });
        assert!(CrossAccountPermissions::aws_pull(Vec::<String>::new()).access.is_empty());
    }

    #[test]
    fn json_is_stable_camel_case() {
        let grant = CrossAccountPermissions {
            access: CrossAccountAccess::Aws {
                account_ids: set(&["111122223333"]),
                regions: set(&["us-east-1"]),
                allowed_service_types: [ComputeServiceType::Serverless].into(),
                role_arns: BTreeSet::new(),
            },
            permissions: Permissions::Pull,
        };
        let json = serde_json::to_value(&grant).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "access": {
                    "platform": "aws",
                    "accountIds": ["111122223333"],
                    "regions": ["us-east-1"],
                    "allowedServiceTypes": ["serverless"],
                    "roleArns": []
                },
                "permissions": "pull"
            })
        );
        let back: CrossAccountPermissions = serde_json::from_value(json).unwrap();
        assert_eq!(back, grant);

        let creds = Credentials {
            auth_method: AuthMethod::Basic,
            username: "AWS".into(),
            password: Secret::new("tok"),
            expires_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().into(),
        };
        let json = serde_json::to_string(&creds).unwrap();
        assert_eq!(
            json,
            r#"{"authMethod":"basic","username":"AWS","password":"tok","expiresAt":"2026-01-02T03:04:05Z"}"#
        );
        assert!(!format!("{creds:?}").contains("tok\""));
    }

    #[test]
    fn missing_lists_default_to_empty() {
        let a: CrossAccountAccess = serde_json::from_str(r#"{"platform":"local","accountIds":["b"]}"#).unwrap();
        assert_eq!(a, CrossAccountAccess::Local { account_ids: set(&["b"]) });
        let g: CrossAccountAccess = serde_json::from_str(r#"{"platform":"gcp"}"#).unwrap();
        assert!(g.is_empty());
    }

    #[test]
    fn union_and_difference_merge() {
        let a = CrossAccountAccess::Local { account_ids: set(&["a", "b"]) };
        let b = CrossAccountAccess::Local { account_ids: set(&["b", "c"]) };
        assert_eq!(a.union(&b).unwrap(), CrossAccountAccess::Local { account_ids: set(&["a", "b", "c"]) });
        assert_eq!(a.difference(&b).unwrap(), CrossAccountAccess::Local { account_ids: set(&["a"]) });
        let gcp = CrossAccountAccess::Gcp {
            project_numbers: set(&["1"]),
            allowed_service_types: BTreeSet::new(),
            service_account_emails: BTreeSet::new(),
        };
        assert!(a.union(&gcp).is_none());
    }

    #[test]
    fn difference_keeps_qualifiers_while_principals_remain() {
        let aws = |ids: &[&str], regions: &[&str]| CrossAccountAccess::Aws {
            account_ids: set(ids),
            regions: set(regions),
            allowed_service_types: [ComputeServiceType::Serverless].into(),
            role_arns: BTreeSet::new(),
        };
        let have = aws(&["1", "2"], &["us-east-1"]);
        let left = have.difference(&aws(&["2"], &["us-east-1"])).unwrap();
        assert_eq!(left, aws(&["1"], &["us-east-1"]));
        let none = have.difference(&aws(&["1", "2"], &["us-east-1"])).unwrap();
        assert!(none.is_empty());
    }
}
