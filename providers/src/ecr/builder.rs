//! [`EcrRegistryBuilder`]: ECR settings from the environment or `with_*` calls, validated at `build()`.

use std::fmt;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sts::config::Credentials as AwsCredentials;
use regbridge::{Error, Result, Secret};
use url::Url;

use super::EcrRegistry;
use super::client::{EcrClient, map_sts_error};
use super::credential::{self, RegistryToken};
use super::partition::Partition;
use super::session::SessionLimits;
use crate::http::{ClientOptions, UpstreamClient};

/// Builds an [`EcrRegistry`].
///
/// Settings come from [`from_env`](Self::from_env) and/or the `with_*` methods; [`build`](Self::build)
/// validates them (errors name the bad setting), loads the AWS credential chain (environment, shared
/// config and credentials files, web identity, ECS and EC2 instance metadata; not SSO profiles nor
/// `credential_process`, whose SDK features are left out to keep the build lean) unless
/// [`with_credentials`](Self::with_credentials) was given, and discovers the account with STS
/// `GetCallerIdentity` when [`with_account`](Self::with_account) was not given (its ARN then also names the
/// partition; otherwise the region does). Unless [`with_registry_endpoint`](Self::with_registry_endpoint)
/// was given, the registry URL is `GetAuthorizationToken`'s `proxyEndpoint`, or, when that call fails
/// (the base credentials may lack `ecr:GetAuthorizationToken`), the partition's computed host.
#[derive(Clone, Default)]
pub struct EcrRegistryBuilder {
    region: Option<String>,
    account: Option<String>,
    prefix: Option<String>,
    pull_role_arn: Option<String>,
    push_role_arn: Option<String>,
    endpoint: Option<String>,
    sts_endpoint: Option<String>,
    registry_endpoint: Option<String>,
    credentials: Option<(String, Secret)>,
    scan_on_push: bool,
    immutable_tags: bool,
}

impl fmt::Debug for EcrRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcrRegistryBuilder")
            .field("region", &self.region)
            .field("account", &self.account)
            .field("prefix", &self.prefix)
            .field("pull_role_arn", &self.pull_role_arn)
            .field("push_role_arn", &self.push_role_arn)
            .field("endpoint", &self.endpoint)
            .field("sts_endpoint", &self.sts_endpoint)
            .field("registry_endpoint", &self.registry_endpoint)
            .field("credentials", &self.credentials.as_ref().map(|(id, _)| (id, "<redacted>")))
            .field("scan_on_push", &self.scan_on_push)
            .field("immutable_tags", &self.immutable_tags)
            .finish()
    }
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl EcrRegistryBuilder {
    /// An empty builder: region (at least) must be set before `build()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings from the environment: `REGBRIDGE_ECR_REGION` (else `AWS_REGION`, `AWS_DEFAULT_REGION`),
    /// `REGBRIDGE_ECR_ACCOUNT`, `REGBRIDGE_ECR_PREFIX`, `REGBRIDGE_ECR_PULL_ROLE_ARN`,
    /// `REGBRIDGE_ECR_PUSH_ROLE_ARN`, `REGBRIDGE_ECR_ENDPOINT` (else `AWS_ENDPOINT_URL`),
    /// `REGBRIDGE_ECR_REGISTRY_ENDPOINT`, `REGBRIDGE_ECR_SCAN_ON_PUSH` and `REGBRIDGE_ECR_IMMUTABLE_TAGS`
    /// (`true`/`1`/`yes`). AWS credentials always come from the standard chain.
    pub fn from_env() -> Self {
        Self {
            region: env(&["REGBRIDGE_ECR_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"]),
            account: env(&["REGBRIDGE_ECR_ACCOUNT"]),
            prefix: env(&["REGBRIDGE_ECR_PREFIX"]),
            pull_role_arn: env(&["REGBRIDGE_ECR_PULL_ROLE_ARN"]),
            push_role_arn: env(&["REGBRIDGE_ECR_PUSH_ROLE_ARN"]),
            endpoint: env(&["REGBRIDGE_ECR_ENDPOINT", "AWS_ENDPOINT_URL"]),
            sts_endpoint: None,
            registry_endpoint: env(&["REGBRIDGE_ECR_REGISTRY_ENDPOINT"]),
            credentials: None,
            scan_on_push: env(&["REGBRIDGE_ECR_SCAN_ON_PUSH"]).is_some_and(|v| truthy(&v)),
            immutable_tags: env(&["REGBRIDGE_ECR_IMMUTABLE_TAGS"]).is_some_and(|v| truthy(&v)),
        }
    }

    /// The AWS region of the registry, e.g. `us-east-1`.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The 12-digit account id owning the registry (its host is `{account}.dkr.ecr.{region}...`).
    /// Discovered with STS `GetCallerIdentity` when not set.
    ///
    /// It says which registry this provider addresses, not who may manage it: AWS IAM decides that for
    /// the caller's credentials, so it is no tenant boundary within regbridge. (The local provider's
    /// `with_account` is one, since there regbridge itself owns the repositories.)
    pub fn with_account(mut self, account: impl Into<String>) -> Self {
        self.account = Some(account.into());
        self
    }

    /// The repository prefix (`team`, `team/sub`): routable names are `{prefix}/{logical}`.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The role assumed to mint `Pull` credentials.
    pub fn with_pull_role_arn(mut self, arn: impl Into<String>) -> Self {
        self.pull_role_arn = Some(arn.into());
        self
    }

    /// The role assumed to mint `PushPull` credentials.
    pub fn with_push_role_arn(mut self, arn: impl Into<String>) -> Self {
        self.push_role_arn = Some(arn.into());
        self
    }

    /// Endpoint override for the ECR *and* STS APIs (moto, a VPC endpoint).
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Endpoint override for STS only; takes precedence over [`with_endpoint`](Self::with_endpoint).
    pub fn with_sts_endpoint(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint = Some(url.into());
        self
    }

    /// Override of the data-plane URL returned by `registry_endpoint()` (tests, pull-through mirrors).
    pub fn with_registry_endpoint(mut self, url: impl Into<String>) -> Self {
        self.registry_endpoint = Some(url.into());
        self
    }

    /// Static credentials instead of the AWS credential chain (tests).
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        self.credentials = Some((access_key_id.into(), Secret::new(secret_access_key.into())));
        self
    }

    /// Repositories created from now on scan images on push (default: off).
    pub fn with_scan_on_push(mut self, scan: bool) -> Self {
        self.scan_on_push = scan;
        self
    }

    /// Repositories created from now on have immutable tags (default: mutable).
    pub fn with_immutable_tags(mut self, immutable: bool) -> Self {
        self.immutable_tags = immutable;
        self
    }

    /// Validates the settings, loads credentials and, if needed, discovers the account.
    pub async fn build(self) -> Result<EcrRegistry> {
        let region = self.region.as_deref().map(str::trim).unwrap_or_default().to_owned();
        if region.is_empty() {
            return Err(Error::bad_input("ECR region is not set: call with_region or set AWS_REGION"));
        }
        if !valid_region(&region) {
            return Err(Error::bad_input(format!("ECR region {region:?} is not an AWS region name like us-east-1")));
        }
        if let Some(a) = &self.account
            && !valid_account(a)
        {
            return Err(Error::bad_input(format!("ECR account {a:?} is not a 12-digit AWS account id")));
        }
        let prefix = self.prefix.as_deref().unwrap_or_default().trim_matches('/').to_owned();
        if !prefix.is_empty() {
            regbridge::oci::RepositoryName::parse(&prefix)
                .map_err(|e| Error::bad_input(format!("ECR prefix {prefix:?} is not a valid repository path: {e}")))?;
        }
        for (setting, arn) in [("pull role ARN", &self.pull_role_arn), ("push role ARN", &self.push_role_arn)] {
            if let Some(arn) = arn
                && !valid_role_arn(arn)
            {
                return Err(Error::bad_input(format!(
                    "ECR {setting} {arn:?} is not an IAM role ARN like arn:aws:iam::123456789012:role/name"
                )));
            }
        }
        let endpoint = self.endpoint.as_deref().map(|u| check_url("ECR endpoint", u)).transpose()?;
        let sts_endpoint = self.sts_endpoint.as_deref().map(|u| check_url("STS endpoint", u)).transpose()?;
        let registry_endpoint =
            self.registry_endpoint.as_deref().map(|u| check_url("ECR registry endpoint", u)).transpose()?;

        // Every call is bounded: connecting, each attempt (the SDK retries throttling and 5xx up to three
        // attempts with jittered backoff), and the whole operation.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()))
            .timeout_config(timeouts);
        if let Some((id, secret)) = &self.credentials {
            loader = loader.credentials_provider(AwsCredentials::new(id, secret.expose(), None, None, "regbridge"));
        }
        let sdk = loader.load().await;
        let client = EcrClient::new(&sdk, endpoint.as_deref(), sts_endpoint.as_deref().or(endpoint.as_deref()));

        let (account, partition) = match self.account {
            Some(a) => (a, Partition::for_region(&region)),
            None => {
                let who =
                    client.sts.get_caller_identity().send().await.map_err(|e| map_sts_error("GetCallerIdentity", e))?;
                let account = who.account().filter(|a| valid_account(a)).map(str::to_owned).ok_or_else(|| {
                    Error::bad_input("STS GetCallerIdentity returned no account id: call with_account")
                })?;
                let partition = who
                    .arn()
                    .and_then(|arn| Partition::from_arn(arn, &region))
                    .unwrap_or_else(|| Partition::for_region(&region));
                (account, partition)
            }
        };
        let registry_endpoint = match registry_endpoint {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => discover_registry(&client, &partition, &account, &region).await,
        };
        let registry_url = Url::parse(&registry_endpoint)
            .map_err(|e| Error::bad_input(format!("ECR registry endpoint {registry_endpoint:?} is not a URL: {e}")))?;
        let registry = UpstreamClient::new(
            registry_url,
            super::client::PROVIDER,
            std::sync::Arc::new(RegistryToken::new(client.ecr.clone())),
            ClientOptions::default(),
        )?;
        Ok(EcrRegistry {
            region,
            account,
            prefix,
            pull_role_arn: self.pull_role_arn,
            push_role_arn: self.push_role_arn,
            registry_endpoint,
            scan_on_push: self.scan_on_push,
            immutable_tags: self.immutable_tags,
            client,
            partition,
            sessions: SessionLimits::default(),
            registry,
        })
    }
}

/// The registry URL: `GetAuthorizationToken`'s `proxyEndpoint`, else (the call failed, or answered no URL)
/// the host computed for the partition.
async fn discover_registry(client: &EcrClient, partition: &Partition, account: &str, region: &str) -> String {
    match credential::authorization_token(&client.ecr, "the registry").await {
        Ok(token) => match token.proxy_endpoint.filter(|u| Url::parse(u).is_ok_and(|u| u.has_host())) {
            Some(url) => return url,
            None => tracing::debug!("GetAuthorizationToken gave no proxyEndpoint; computing the registry host"),
        },
        Err(e) => tracing::debug!(error = %e, "GetAuthorizationToken failed; computing the registry host"),
    }
    format!("https://{}", partition.registry_host(account, region))
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

fn check_url(setting: &str, url: &str) -> Result<String> {
    let parsed = Url::parse(url).map_err(|e| Error::bad_input(format!("{setting} {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::bad_input(format!("{setting} {url:?} must be an http or https URL with a host")));
    }
    Ok(url.to_owned())
}

pub(crate) fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn valid_region(r: &str) -> bool {
    // `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `eu-central-2`.
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn valid_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[3].is_empty()
        && valid_account(parts[4])
        && parts[5].strip_prefix("role/").is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(valid_region("us-east-1") && valid_region("us-gov-west-1"));
        assert!(!valid_region("useast1") && !valid_region("us-east") && !valid_region("US-EAST-1"));
        assert!(valid_account("123456789012") && !valid_account("12345"));
        assert!(valid_role_arn("arn:aws:iam::123456789012:role/puller"));
        assert!(valid_role_arn("arn:aws:iam::123456789012:role/path/puller"));
        assert!(!valid_role_arn("arn:aws:iam::123456789012:user/bob"));
        assert!(!valid_role_arn("arn:aws:s3:::bucket"));
    }

    #[test]
    fn from_env_reads_the_documented_variables() {
        let vars = [
            ("REGBRIDGE_ECR_REGION", "eu-central-1"),
            ("REGBRIDGE_ECR_ACCOUNT", "210987654321"),
            ("REGBRIDGE_ECR_PREFIX", "envteam"),
            ("REGBRIDGE_ECR_PULL_ROLE_ARN", "arn:aws:iam::210987654321:role/pull"),
            ("REGBRIDGE_ECR_PUSH_ROLE_ARN", "arn:aws:iam::210987654321:role/push"),
            ("REGBRIDGE_ECR_ENDPOINT", "http://127.0.0.1:1"),
            ("REGBRIDGE_ECR_REGISTRY_ENDPOINT", "http://127.0.0.1:2"),
            ("REGBRIDGE_ECR_SCAN_ON_PUSH", "true"),
            ("REGBRIDGE_ECR_IMMUTABLE_TAGS", "0"),
        ];
        // SAFETY: no other test of this binary reads or writes these REGBRIDGE_ECR_* variables.
        unsafe {
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let b = EcrRegistryBuilder::from_env();
        unsafe {
            for (k, _) in vars {
                std::env::remove_var(k);
            }
        }
        assert_eq!(b.region.as_deref(), Some("eu-central-1"));
        assert_eq!(b.account.as_deref(), Some("210987654321"));
        assert_eq!(b.prefix.as_deref(), Some("envteam"));
        assert_eq!(b.pull_role_arn.as_deref(), Some("arn:aws:iam::210987654321:role/pull"));
        assert_eq!(b.push_role_arn.as_deref(), Some("arn:aws:iam::210987654321:role/push"));
        assert_eq!(b.endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(b.registry_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert!(b.scan_on_push && !b.immutable_tags);
    }

    #[tokio::test]
    async fn build_names_the_bad_setting() {
        let err = |b: EcrRegistryBuilder| async move { b.build().await.unwrap_err().to_string() };
        assert!(err(EcrRegistryBuilder::new()).await.contains("region is not set"));
        let base = || EcrRegistryBuilder::new().with_region("us-east-1").with_credentials("AKID", "SECRET");
        assert!(err(base().with_account("12")).await.contains("account \"12\""));
        assert!(err(base().with_account("123456789012").with_prefix("Bad Prefix")).await.contains("prefix"));
        assert!(err(base().with_account("123456789012").with_pull_role_arn("nope")).await.contains("pull role ARN"));
        assert!(err(base().with_account("123456789012").with_endpoint("ftp://x")).await.contains("ECR endpoint"));
        let dbg = format!("{:?}", base());
        assert!(dbg.contains("AKID") && !dbg.contains("SECRET"), "{dbg}");
        // A registry URL of its own: no GetAuthorizationToken goes out for its proxyEndpoint.
        let reg =
            base().with_account("123456789012").with_registry_endpoint("http://127.0.0.1:9").build().await.unwrap();
        let dbg = format!("{reg:?} {reg}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
    }
}
