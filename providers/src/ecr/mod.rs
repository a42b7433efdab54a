//! AWS Elastic Container Registry (cargo feature `ecr`), through `aws-sdk-ecr` and `aws-sdk-sts`.
//!
//! * **Names.** Routable names are `{prefix}/{logical}` (just `{logical}` without a prefix): ECR
//!   repositories are flat, and `/` is a legal character in their names, so the prefix is a path.
//! * **Creation.** `create_repository` sets tag mutability and scan-on-push from
//!   [`EcrRegistryBuilder::with_immutable_tags`] and [`EcrRegistryBuilder::with_scan_on_push`]; an existing
//!   repository is returned as it is, its settings untouched.
//! * **Credentials.** With a pull or push role configured, `generate_credentials` assumes it with STS
//!   (`DurationSeconds` = the TTL clamped to 900..=43200 s, and to the role's limit once STS refused a
//!   longer session: see the `session` module) and an inline session policy that allows only the
//!   pull (or pull and push) actions on *this repository's ARN* plus `ecr:GetAuthorizationToken`, then calls
//!   `GetAuthorizationToken` with that session. `Pull` uses the pull role (else the push role, still
//!   limited by the session policy); `PushPull` needs the push role. `expires_at` is the earlier of the
//!   session's and the token's expiry. **Without roles** the token is minted
//!   with the base credentials: it is valid for every repository those credentials can reach and lives 12 h
//!   whatever the TTL, so configure roles wherever credentials leave the control plane.
//! * **Cross-account access** is a repository policy: regbridge's statements have the Sids
//!   `RegbridgeCrossAccountPull` and `RegbridgeCrossAccountPullLambda`; every other statement is kept.
//!   Only `Pull` grants are supported. ECR has no concurrency token for policies, so two writers racing
//!   may lose one update. `VirtualMachine` and `Kubernetes` need no statement of their own and are not
//!   reported back by `get_cross_account_access`; regions live only in the Lambda statement's
//!   `aws:sourceArn` conditions, so they are kept (and reported) only for `Serverless` grants, and a
//!   serverless grant without regions allows functions in any region.
//! * **Regions.** `add_cross_account_access` and `remove_cross_account_access` apply the same merge to the
//!   repository of the same name in every other region listed in the access (its replicas), with an ECR
//!   client for that region sharing the credentials and endpoint override. All policies (this region's
//!   and the replicas') are read before any is written: a listed region without the repository is
//!   `NotFound` naming the region, and any failed read writes nothing anywhere. A write failing part way
//!   leaves the regions written before it changed (ECR has no transaction across regions); the error names
//!   the region. `get_cross_account_access` reports the grants of this region's repository only.
//! * **Partitions.** ARNs (repositories, account principals, Lambda source ARNs) use the partition of the
//!   caller identity (when the account is discovered) or of the region (`aws-cn`, `aws-us-gov`, ...), and
//!   the registry URL is `GetAuthorizationToken`'s `proxyEndpoint` (else computed for the partition).
//! * **Reads.** `get_manifest` uses `BatchGetImage` with the media types its reference documents (see
//!   the `images` module); an image it cannot return as stored (an index or manifest list) is read through the
//!   registry's `/v2/` API with a token of the base credentials. Its `failures` become errors by code.
//!   `head_blob` uses `BatchCheckLayerAvailability`, and `generate_blob_download_url`
//!   `GetDownloadUrlForLayer`.

mod builder;
mod client;
mod credential;
mod images;
mod partition;
mod policy;
mod session;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ecr::types::{ImageIdentifier, ImageScanningConfiguration, ImageTagMutability, LayerAvailability};
use regbridge::error::OciErrorCode;
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{
    ArtifactRegistry, AuthMethod, Credentials, CrossAccountAccess, CrossAccountPermissions, Error, Manifest, Page,
    Permissions, Repository, RepositoryPage, Resource, Result,
};
use url::Url;

pub use builder::EcrRegistryBuilder;
use client::{EcrClient, map_ecr_error};
pub use partition::Partition;
use policy::Policy;
use session::SessionLimits;

use crate::http::UpstreamClient;

/// The longest repository name ECR accepts.
pub const MAX_ECR_NAME_LEN: usize = 256;

/// An ECR registry (one account and region) behind [`ArtifactRegistry`]. Build it with
/// [`EcrRegistryBuilder`].
#[derive(Debug)]
pub struct EcrRegistry {
    region: String,
    account: String,
    prefix: String,
    pull_role_arn: Option<String>,
    push_role_arn: Option<String>,
    registry_endpoint: String,
    scan_on_push: bool,
    immutable_tags: bool,
    client: EcrClient,
    partition: Partition,
    sessions: SessionLimits,
    /// The registry's `/v2/` API, for what `BatchGetImage` cannot return.
    registry: UpstreamClient,
}

impl fmt::Display for EcrRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ecr({}/{})", self.account, self.region)
    }
}

impl EcrRegistry {
    /// A builder with no settings; see also [`EcrRegistryBuilder::from_env`].
    pub fn builder() -> EcrRegistryBuilder {
        EcrRegistryBuilder::new()
    }

    /// The account id owning the registry.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The region of the registry.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The partition of the registry (`aws`, `aws-cn`, `aws-us-gov`, ...).
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// The ARN of repository `name` (routable): `arn:{partition}:ecr:{region}:{account}:repository/{name}`.
    pub fn repository_arn(&self, name: &str) -> String {
        self.partition.arn("ecr", &self.region, &self.account, &format!("repository/{name}"))
    }

    /// The longest session STS was found to allow for `role` (after it refused a longer one), if any.
    pub fn learned_session_limit(&self, role: &str) -> Option<Duration> {
        self.sessions.limit(role)
    }

    /// Registry-wide Basic credentials (`AWS` / password), as a docker credential helper hands out: docker
    /// asks per host, not per repository. A role is assumed with a session policy allowing `permissions`'
    /// actions on every repository of this account and region (`repository/*`), so the session never
    /// exceeds what the role may do here, nor what was asked: `PushPull` assumes the push (else pull) role,
    /// or mints with the base credentials when neither is set; `Pull` assumes the pull (else push) role with
    /// a pull-only policy, and without a role is refused (`InvalidInput`): the base credentials' token
    /// carries all their permissions and cannot be narrowed.
    pub async fn registry_credentials(&self, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let (role, permissions) = match (permissions, &self.push_role_arn, &self.pull_role_arn) {
            (Permissions::PushPull, Some(r), _) => (Some(r.as_str()), Permissions::PushPull),
            (Permissions::PushPull, None, Some(r)) => (Some(r.as_str()), Permissions::Pull),
            (Permissions::PushPull, None, None) => (None, Permissions::PushPull),
            (Permissions::Pull, _, Some(r)) | (Permissions::Pull, Some(r), None) => {
                (Some(r.as_str()), Permissions::Pull)
            }
            (Permissions::Pull, None, None) => {
                return Err(Error::bad_input(
                    "a pull-only ECR login needs a role to assume (its session is then limited to pulls): the \
                     base credentials' token carries all their permissions; set a pull or push role \
                     (role_arn), or ask without pull-only",
                ));
            }
        };
        let (ecr, session_expiry) = match role {
            None => (self.client.ecr.clone(), None),
            Some(role) => {
                let arn = self.repository_arn("*");
                let (creds, expiry) =
                    session::assume(&self.client.sts, &self.sessions, role, "helper", &arn, permissions, ttl).await?;
                (self.client.ecr_with(creds), expiry)
            }
        };
        let token = credential::authorization_token(&ecr, "the registry").await?;
        let expires_at = session_expiry.map_or(token.expires_at, |s| s.min(token.expires_at));
        Ok(Credentials {
            auth_method: AuthMethod::Basic,
            username: token.username,
            password: token.password,
            expires_at,
        })
    }

    /// The routable names of every repository of this registry whose name starts with `prefix` (all pages
    /// of `DescribeRepositories`). The live suite uses it to find what a failed run left behind.
    pub async fn repositories_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut page = Page::first(Some(DESCRIBE_PAGE as u32));
        loop {
            let found = self.describe_page(|n| n.starts_with(prefix), &page, prefix).await?;
            names.extend(found.repositories.into_iter().map(|r| r.name));
            match found.next {
                Some(token) => page.after = Some(token),
                None => return Ok(names),
            }
        }
    }

    /// Up to `page`'s size of the repositories `keep` accepts, from `page.after` on. Pages are read until
    /// one has a match or none is left, so a caller filtering by prefix is not handed a run of empty pages.
    /// ECR may answer more than `maxResults` (moto does), so a page can end inside ECR's: the continuation
    /// token is `SKIP:TOKEN`, the number of entries already handed out of ECR's page `TOKEN` (empty for the
    /// first). `what` names the listing in errors.
    async fn describe_page(&self, keep: impl Fn(&str) -> bool, page: &Page, what: &str) -> Result<RepositoryPage> {
        let size = page.size_or(DESCRIBE_PAGE as u32).min(DESCRIBE_PAGE as u32) as usize;
        let (mut skip, mut token) = match page.after.as_deref() {
            None => (0, None),
            Some(after) => {
                let (skip, token) =
                    after.split_once(':').and_then(|(n, t)| Some((n.parse::<usize>().ok()?, t))).ok_or_else(|| {
                        Error::bad_input("invalid continuation token: give the `next` of the previous page")
                    })?;
                (skip, Some(token.to_owned()).filter(|t| !t.is_empty()))
            }
        };
        loop {
            let described = self
                .client
                .ecr
                .describe_repositories()
                .registry_id(&self.account)
                .max_results(size as i32)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| map_ecr_error("DescribeRepositories", what, e))?;
            let entries = described.repositories();
            let mut repositories = Vec::new();
            for (i, r) in entries.iter().enumerate().skip(skip) {
                if repositories.len() == size {
                    let next = format!("{i}:{}", token.unwrap_or_default());
                    return Ok(RepositoryPage { repositories, next: Some(next) });
                }
                if let Some(name) = r.repository_name().filter(|n| keep(n)) {
                    repositories.push(self.repository(name, Some(r)));
                }
            }
            token = described.next_token().map(str::to_owned);
            skip = 0;
            if !repositories.is_empty() || token.is_none() {
                return Ok(RepositoryPage { repositories, next: token.map(|t| format!("0:{t}")) });
            }
        }
    }

    fn host(&self) -> &str {
        self.registry_endpoint.split_once("://").map_or(self.registry_endpoint.as_str(), |(_, h)| h)
    }

    /// `repo` as ECR described it, its URI on the registry host (the same host `registry_endpoint` names,
    /// so an override of it applies here too).
    fn repository(&self, name: &str, repo: Option<&aws_sdk_ecr::types::Repository>) -> Repository {
        Repository {
            name: name.to_owned(),
            uri: format!("{}/{name}", self.host()),
            created_at: repo.and_then(|r| r.created_at()).and_then(credential::to_chrono),
        }
    }

    /// Checks a routable name: a valid OCI name ECR accepts.
    fn routable(&self, id: &str) -> Result<String> {
        let name = RepositoryName::parse(id)?;
        if name.as_str().len() > MAX_ECR_NAME_LEN {
            return Err(Error::invalid(
                OciErrorCode::NameInvalid,
                format!("ECR repository names are at most {MAX_ECR_NAME_LEN} characters"),
            ));
        }
        Ok(name.as_str().to_owned())
    }

    async fn describe(&self, name: &str) -> Result<Repository> {
        let out = self
            .client
            .ecr
            .describe_repositories()
            .registry_id(&self.account)
            .repository_names(name)
            .send()
            .await
            .map_err(|e| map_ecr_error("DescribeRepositories", name, e))?;
        let repo = out
            .repositories()
            .iter()
            .find(|r| r.repository_name() == Some(name))
            .ok_or_else(|| Error::not_found(Resource::Repository, name))?;
        Ok(self.repository(name, Some(repo)))
    }

    /// The current policy of `name` through `ecr`: `RepositoryPolicyNotFoundException` is "no policy", any
    /// other error is returned (and the caller writes nothing).
    async fn read_policy(&self, ecr: &aws_sdk_ecr::Client, name: &str) -> Result<Policy> {
        match ecr.get_repository_policy().registry_id(&self.account).repository_name(name).send().await {
            Ok(out) => Policy::parse(out.policy_text(), &self.partition),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_policy_not_found_exception()) => {
                Policy::parse(None, &self.partition)
            }
            Err(e) => Err(map_ecr_error("GetRepositoryPolicy", name, e)),
        }
    }

    async fn write_policy(&self, ecr: &aws_sdk_ecr::Client, name: &str, before: &Policy, after: &Policy) -> Result<()> {
        match after.render(&self.partition) {
            Some(text) => {
                ecr.set_repository_policy()
                    .registry_id(&self.account)
                    .repository_name(name)
                    .policy_text(text)
                    .send()
                    .await
                    .map_err(|e| map_ecr_error("SetRepositoryPolicy", name, e))?;
            }
            None if before.render(&self.partition).is_some() => {
                ecr.delete_repository_policy()
                    .registry_id(&self.account)
                    .repository_name(name)
                    .send()
                    .await
                    .map_err(|e| map_ecr_error("DeleteRepositoryPolicy", name, e))?;
            }
            None => {}
        }
        Ok(())
    }

    /// The regions a grant is applied in, each with its ECR client: this registry's region first, then
    /// every other region listed in the access (its replica repositories), in order.
    fn target_regions(&self, access: &CrossAccountAccess) -> Result<Vec<(String, aws_sdk_ecr::Client)>> {
        let mut targets = vec![(self.region.clone(), self.client.ecr.clone())];
        if let CrossAccountAccess::Aws { regions, .. } = access {
            for region in regions.iter().filter(|r| **r != self.region) {
                if !builder::valid_region(region) {
                    return Err(Error::bad_input(format!("{region:?} is not an AWS region name like eu-west-1")));
                }
                targets.push((region.clone(), self.client.ecr_in(region)));
            }
        }
        Ok(targets)
    }

    /// Adds or removes `grant` in the policy of `id` in this region and in each region the grant lists.
    /// Every policy is read before anything is written, so a failed read (a replica region without the
    /// repository, a refused call) writes nothing anywhere.
    async fn change_access(&self, id: &str, grant: &CrossAccountPermissions, add: bool) -> Result<()> {
        let name = self.routable(id)?;
        let access = check_grant(grant)?;
        let targets = self.target_regions(access)?;
        // With replicas involved, errors say which region failed.
        let context = |e: Error, region: &str| if targets.len() > 1 { in_region(e, region) } else { e };
        let mut planned = Vec::new();
        for (region, ecr) in &targets {
            let before = self.read_policy(ecr, &name).await.map_err(|e| context(e, region))?;
            let merged = if add { before.granted.union(access) } else { before.granted.difference(access) }
                .expect("both are Aws accesses");
            let after = Policy { granted: merged, ..before.clone() };
            planned.push((region, ecr, before, after));
        }
        for (region, ecr, before, after) in &planned {
            self.write_policy(ecr, &name, before, after).await.map_err(|e| context(e, region))?;
        }
        Ok(())
    }

    fn role_for(&self, permissions: Permissions) -> Result<Option<&str>> {
        Ok(match (permissions, &self.pull_role_arn, &self.push_role_arn) {
            (_, None, None) => None,
            (Permissions::Pull, Some(r), _) | (Permissions::Pull, None, Some(r)) => Some(r),
            (Permissions::PushPull, _, Some(r)) => Some(r),
            (Permissions::PushPull, Some(_), None) => {
                return Err(Error::bad_input(
                    "PushPull credentials need a push role: call with_push_role_arn (REGBRIDGE_ECR_PUSH_ROLE_ARN)",
                ));
            }
        })
    }
}

fn check_grant(grant: &CrossAccountPermissions) -> Result<&CrossAccountAccess> {
    if grant.permissions != Permissions::Pull {
        return Err(Error::bad_input("ECR cross-account grants written by regbridge are Pull only"));
    }
    match &grant.access {
        a @ CrossAccountAccess::Aws { account_ids, role_arns, .. } => {
            if let Some(bad) = account_ids.iter().find(|a| !builder::valid_account(a)) {
                return Err(Error::bad_input(format!("{bad:?} is not a 12-digit AWS account id")));
            }
            if let Some(bad) = role_arns.iter().find(|r| !r.starts_with("arn:aws") || !r.contains(":iam::")) {
                return Err(Error::bad_input(format!("{bad:?} is not an IAM role ARN")));
            }
            Ok(a)
        }
        other => Err(Error::bad_input(format!("ECR accepts aws cross-account access, not {}", other.platform()))),
    }
}

/// Repositories per `DescribeRepositories` page when listing (the API allows 1..=1000).
const DESCRIBE_PAGE: i32 = 1000;

/// `err` with the region it happened in added to its name or message.
fn in_region(err: Error, region: &str) -> Error {
    match err {
        Error::NotFound { resource, name, source } => {
            Error::NotFound { resource, name: format!("{name} in region {region}"), source }
        }
        Error::InvalidInput { code, message } => Error::InvalidInput { code, message: format!("{region}: {message}") },
        Error::Unauthenticated { message } => Error::Unauthenticated { message: format!("{region}: {message}") },
        Error::Denied { message } => Error::Denied { message: format!("{region}: {message}") },
        Error::TooManyRequests { message, retry_after } => {
            Error::TooManyRequests { message: format!("{region}: {message}"), retry_after }
        }
        Error::Upstream { provider, status, message, source } => {
            Error::Upstream { provider, status, message: format!("{region}: {message}"), source }
        }
        Error::Internal { message, source } => Error::Internal { message: format!("{region}: {message}"), source },
        other => other,
    }
}

fn image_id(reference: &Reference) -> ImageIdentifier {
    match reference {
        Reference::Tag(t) => ImageIdentifier::builder().image_tag(t.as_str()).build(),
        Reference::Digest(d) => ImageIdentifier::builder().image_digest(d.to_string()).build(),
    }
}

#[async_trait]
impl ArtifactRegistry for EcrRegistry {
    fn registry_endpoint(&self) -> String {
        self.registry_endpoint.clone()
    }

    fn upstream_repository_prefix(&self) -> String {
        self.prefix.clone()
    }

    async fn create_repository(&self, name: &str) -> Result<Repository> {
        let logical = RepositoryName::parse(name)?;
        let name = self.routable(logical.with_prefix(&self.prefix)?.as_str())?;
        let mutability = if self.immutable_tags { ImageTagMutability::Immutable } else { ImageTagMutability::Mutable };
        let created = self
            .client
            .ecr
            .create_repository()
            .registry_id(&self.account)
            .repository_name(&name)
            .image_tag_mutability(mutability)
            .image_scanning_configuration(ImageScanningConfiguration::builder().scan_on_push(self.scan_on_push).build())
            .send()
            .await;
        match created {
            Ok(out) => Ok(self.repository(&name, out.repository())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_repository_already_exists_exception()) => {
                self.describe(&name).await
            }
            Err(e) => Err(map_ecr_error("CreateRepository", &name, e)),
        }
    }

    /// `DescribeRepositories` pages (ECR's `nextToken` is the continuation token), keeping the names under
    /// this registry's prefix that start with `prefix`: ECR filters only by exact names, so the prefix is
    /// applied to each page here.
    async fn list_repositories(&self, prefix: Option<&str>, page: Page) -> Result<RepositoryPage> {
        let own = self.prefix.trim_matches('/');
        let in_prefix = |n: &str| own.is_empty() || n.strip_prefix(own).is_some_and(|rest| rest.starts_with('/'));
        let keep = |n: &str| in_prefix(n) && prefix.is_none_or(|p| n.starts_with(p));
        self.describe_page(keep, &page, prefix.unwrap_or(own)).await
    }

    async fn get_repository(&self, id: &str) -> Result<Repository> {
        let name = self.routable(id)?;
        self.describe(&name).await
    }

    async fn delete_repository(&self, id: &str) -> Result<()> {
        let name = self.routable(id)?;
        self.client
            .ecr
            .delete_repository()
            .registry_id(&self.account)
            .repository_name(&name)
            .force(true)
            .send()
            .await
            .map_err(|e| map_ecr_error("DeleteRepository", &name, e))?;
        Ok(())
    }

    async fn generate_credentials(&self, id: &str, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let name = self.routable(id)?;
        let role = self.role_for(permissions)?;
        // The repository must exist: minting for a missing one is NotFound, as for every other method.
        self.describe(&name).await?;
        let (ecr, session_expiry) = match role {
            None => (self.client.ecr.clone(), None),
            Some(role) => {
                let arn = self.repository_arn(&name);
                let (creds, expiry) =
                    session::assume(&self.client.sts, &self.sessions, role, &name, &arn, permissions, ttl).await?;
                (self.client.ecr_with(creds), expiry)
            }
        };
        let token = credential::authorization_token(&ecr, &name).await?;
        let (username, password) = (token.username, token.password);
        let expires_at = session_expiry.map_or(token.expires_at, |s| s.min(token.expires_at));
        Ok(Credentials { auth_method: AuthMethod::Basic, username, password, expires_at })
    }

    async fn get_manifest(&self, id: &str, reference: &Reference) -> Result<Manifest> {
        let name = self.routable(id)?;
        let out = self
            .client
            .ecr
            .batch_get_image()
            .registry_id(&self.account)
            .repository_name(&name)
            .image_ids(image_id(reference))
            .set_accepted_media_types(Some(images::ACCEPTED_MEDIA_TYPES.iter().map(|s| s.to_string()).collect()))
            .send()
            .await
            .map_err(|e| map_ecr_error("BatchGetImage", &name, e))?;
        if let Some(manifest) = images::from_output(&out, &name, reference)? {
            return Ok(manifest);
        }
        self.registry
            .get_manifest(&name, reference)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{name}:{reference}")))
    }

    async fn add_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, true).await
    }

    async fn remove_cross_account_access(&self, id: &str, grant: &CrossAccountPermissions) -> Result<()> {
        self.change_access(id, grant, false).await
    }

    /// Reports the grants in the policy of the repository in this registry's region only; replica
    /// repositories in other regions are written by `add`/`remove` but not read back here.
    async fn get_cross_account_access(&self, id: &str) -> Result<Vec<CrossAccountPermissions>> {
        let name = self.routable(id)?;
        let policy = self.read_policy(&self.client.ecr, &name).await?;
        Ok(if policy.granted.is_empty() {
            Vec::new()
        } else {
            vec![CrossAccountPermissions { access: policy.granted, permissions: Permissions::Pull }]
        })
    }

    async fn generate_blob_download_url(&self, id: &str, digest: &Digest, ttl: Duration) -> Result<Option<Url>> {
        // ECR decides the URL's validity itself; the TTL cannot be passed on.
        let _ = ttl;
        let name = self.routable(id)?;
        let out = self
            .client
            .ecr
            .get_download_url_for_layer()
            .registry_id(&self.account)
            .repository_name(&name)
            .layer_digest(digest.to_string())
            .send()
            .await
            .map_err(|e| map_ecr_error("GetDownloadUrlForLayer", &name, e))?;
        out.download_url()
            .map(|u| {
                Url::parse(u).map_err(|e| Error::Upstream {
                    provider: client::PROVIDER.into(),
                    status: None,
                    message: "GetDownloadUrlForLayer returned an invalid URL".into(),
                    source: Some(Box::new(e)),
                })
            })
            .transpose()
    }

    async fn head_blob(&self, id: &str, digest: &Digest) -> Result<Option<u64>> {
        let name = self.routable(id)?;
        let out = self
            .client
            .ecr
            .batch_check_layer_availability()
            .registry_id(&self.account)
            .repository_name(&name)
            .layer_digests(digest.to_string())
            .send()
            .await
            .map_err(|e| map_ecr_error("BatchCheckLayerAvailability", &name, e))?;
        Ok(out
            .layers()
            .iter()
            .find(|l| l.layer_availability() == Some(&LayerAvailability::Available))
            .and_then(|l| l.layer_size())
            .map(|s| s as u64))
    }
}
