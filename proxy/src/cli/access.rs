//! `regbridge access add|remove|get REPO`: cross-account access.

use std::collections::BTreeSet;

use regbridge::{ComputeServiceType, CrossAccountAccess, CrossAccountPermissions, Error, Permissions, Result};

use super::backend::Backend;
use super::context::ConfigArgs;
use super::output::{OutputArgs, Row, print_list};
use super::print_json;

/// Cross-account access commands.
#[derive(clap::Subcommand)]
pub enum AccessCommand {
    /// Grant the named principals access to REPO, keeping every grant already there.
    Add(GrantArgs),
    /// Revoke the named principals' access to REPO at every level they hold (or only at the level --pull
    /// or --push names), keeping every other grant. Exit 3 when none of them has access.
    Remove(GrantArgs),
    /// List the grants on REPO.
    Get(GetArgs),
}

/// A repository alone.
#[derive(clap::Args)]
pub struct RepoOnly {
    /// The client-visible repository name.
    pub repo: String,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The flags of `access get`.
#[derive(clap::Args)]
pub struct GetArgs {
    /// The client-visible repository name.
    pub repo: String,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl Row for CrossAccountPermissions {
    fn headers() -> &'static [&'static str] {
        &["platform", "principals", "permissions", "scope"]
    }
    fn cells(&self) -> Vec<String> {
        let join =
            |sets: &[&BTreeSet<String>]| sets.iter().flat_map(|s| s.iter().cloned()).collect::<Vec<_>>().join(",");
        // The names the JSON uses (`virtualMachine`), so both outputs say the same.
        let types = |t: &BTreeSet<ComputeServiceType>| -> Vec<String> {
            t.iter().filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned)).collect()
        };
        let (platform, principals, scope): (&str, String, Vec<String>) = match &self.access {
            CrossAccountAccess::Aws { account_ids, regions, allowed_service_types, role_arns } => {
                let scope = regions.iter().cloned().chain(types(allowed_service_types)).collect();
                ("aws", join(&[account_ids, role_arns]), scope)
            }
            CrossAccountAccess::Gcp { project_numbers, allowed_service_types, service_account_emails } => {
                ("gcp", join(&[project_numbers, service_account_emails]), types(allowed_service_types))
            }
            CrossAccountAccess::Azure { principal_ids, tenant_id, allowed_service_types } => {
                let scope =
                    tenant_id.iter().map(|t| format!("tenant {t}")).chain(types(allowed_service_types)).collect();
                ("azure", join(&[principal_ids]), scope)
            }
            CrossAccountAccess::Local { account_ids } => ("local", join(&[account_ids]), Vec::new()),
        };
        let permissions = if self.permissions.can_push() { "pull,push" } else { "pull" };
        vec![platform.to_owned(), principals, permissions.to_owned(), scope.join(",")]
    }
}

/// Who gets (or loses) access, on one platform.
#[derive(clap::Args)]
pub struct GrantArgs {
    /// The client-visible repository name.
    repo: String,
    /// AWS account ids (12 digits), for ECR routes. Repeat or separate with commas.
    #[arg(long = "aws-account", value_delimiter = ',')]
    aws_accounts: Vec<String>,
    /// AWS regions whose replica repositories get the same grant (ECR).
    #[arg(long = "aws-region", value_delimiter = ',')]
    aws_regions: Vec<String>,
    /// IAM role ARNs granted directly (ECR).
    #[arg(long = "aws-role-arn", value_delimiter = ',')]
    aws_role_arns: Vec<String>,
    /// Google Cloud project numbers, for GAR routes.
    #[arg(long = "gcp-project", value_delimiter = ',')]
    gcp_projects: Vec<String>,
    /// Google service account e-mails granted directly (GAR).
    #[arg(long = "gcp-service-account", value_delimiter = ',')]
    gcp_service_accounts: Vec<String>,
    /// Azure principal object ids, for ACR routes (ACR grants per registry, not per repository).
    #[arg(long = "azure-principal", value_delimiter = ',')]
    azure_principals: Vec<String>,
    /// Accounts of the embedded local registry.
    #[arg(long = "local-account", value_delimiter = ',')]
    local_accounts: Vec<String>,
    /// Compute that pulls: virtual-machine, kubernetes, serverless (adds the cloud's serverless principal).
    #[arg(long = "service-type", value_delimiter = ',', value_parser = parse_service_type)]
    service_types: Vec<ComputeServiceType>,
    /// add: grant push as well as pull (where the provider supports it). remove: revoke only the push level.
    #[arg(long, conflicts_with = "pull")]
    push: bool,
    /// add: grant pull only (the default). remove: revoke only the pull level.
    #[arg(long)]
    pull: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

fn parse_service_type(s: &str) -> std::result::Result<ComputeServiceType, String> {
    match s {
        "virtual-machine" | "vm" => Ok(ComputeServiceType::VirtualMachine),
        "kubernetes" | "k8s" => Ok(ComputeServiceType::Kubernetes),
        "serverless" => Ok(ComputeServiceType::Serverless),
        other => Err(format!("unknown service type {other:?}; use virtual-machine, kubernetes or serverless")),
    }
}

fn set(values: &[String]) -> BTreeSet<String> {
    values.iter().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
}

impl GrantArgs {
    /// The level --pull or --push names, if either does.
    fn level(&self) -> Option<Permissions> {
        match (self.pull, self.push) {
            (_, true) => Some(Permissions::PushPull),
            (true, false) => Some(Permissions::Pull),
            (false, false) => None,
        }
    }

    /// The grant these flags describe (pull unless --push); exactly one platform's flags may be given.
    fn grant(&self) -> Result<CrossAccountPermissions> {
        let types: BTreeSet<ComputeServiceType> = self.service_types.iter().copied().collect();
        let mut given = Vec::new();
        if !self.aws_accounts.is_empty() || !self.aws_role_arns.is_empty() {
            given.push(CrossAccountAccess::Aws {
                account_ids: set(&self.aws_accounts),
                regions: set(&self.aws_regions),
                allowed_service_types: types.clone(),
                role_arns: set(&self.aws_role_arns),
            });
        }
        if !self.gcp_projects.is_empty() || !self.gcp_service_accounts.is_empty() {
            given.push(CrossAccountAccess::Gcp {
                project_numbers: set(&self.gcp_projects),
                allowed_service_types: types.clone(),
                service_account_emails: set(&self.gcp_service_accounts),
            });
        }
        if !self.azure_principals.is_empty() {
            given.push(CrossAccountAccess::Azure {
                principal_ids: set(&self.azure_principals),
                tenant_id: None,
                allowed_service_types: types.clone(),
            });
        }
        if !self.local_accounts.is_empty() {
            given.push(CrossAccountAccess::Local { account_ids: set(&self.local_accounts) });
        }
        match given.len() {
            1 => Ok(CrossAccountPermissions {
                access: given.remove(0),
                permissions: if self.push { Permissions::PushPull } else { Permissions::Pull },
            }),
            0 => Err(Error::bad_input(
                "name who gets access: --aws-account, --gcp-project, --gcp-service-account, --azure-principal or \
                 --local-account",
            )),
            _ => Err(Error::bad_input("give the principals of one platform at a time (the route's provider)")),
        }
    }
}

/// Runs an access command.
pub async fn run(command: AccessCommand) -> Result<()> {
    match command {
        AccessCommand::Add(args) => {
            let grant = args.grant()?;
            print_json(&Backend::select(&args.config).await?.grant(&args.repo, &grant).await?);
        }
        AccessCommand::Remove(args) => {
            let grant = args.grant()?;
            let backend = Backend::select(&args.config).await?;
            print_json(&backend.revoke(&args.repo, &grant.access, args.level()).await?);
        }
        AccessCommand::Get(args) => {
            print_list(&Backend::select(&args.config).await?.access(&args.repo).await?, args.output.output);
        }
    }
    Ok(())
}
