//! `regbridge creds mint REPO`: short-lived credentials for one repository, in the format the consumer
//! reads (JSON, shell variables, a docker `config.json`, an `X-Registry-Auth` header, a Kubernetes Secret).

use std::time::Duration;

use regbridge::{Permissions, Result};

use super::backend::Backend;
use super::context::ConfigArgs;
use crate::manage::formats::{Format, SecretTarget};

/// Credential commands.
#[derive(clap::Subcommand)]
pub enum CredsCommand {
    /// Mint credentials for REPO at the provider of its route (STS + ECR, IAM Credentials, an ACR token,
    /// or a token of this server) and print them.
    Mint(MintArgs),
    /// Delete what minting left behind at REPO's provider (ACR tokens and scope maps; nothing elsewhere).
    Cleanup(super::access::RepoOnly),
}

/// What to mint and how to print it.
#[derive(clap::Args)]
pub struct MintArgs {
    /// The client-visible repository name.
    repo: String,
    /// Credentials that may pull only (the default).
    #[arg(long, conflicts_with = "push")]
    pull: bool,
    /// Credentials that may push and pull.
    #[arg(long)]
    push: bool,
    /// How long they live: `900s`, `15m`, `1h` (providers clamp to what they support).
    #[arg(long, default_value = "15m", value_parser = parse_ttl)]
    ttl: Duration,
    /// Output: json (the Credentials type), env (shell variables), docker-config (a config.json docker,
    /// podman and skopeo read as is), x-registry-auth (the header value), k8s-secret (a
    /// kubernetes.io/dockerconfigjson Secret in YAML).
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// The Secret's name, for --format k8s-secret [default: regbridge-<repo>].
    #[arg(long)]
    secret_name: Option<String>,
    /// The Secret's namespace, for --format k8s-secret.
    #[arg(long)]
    namespace: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Parses `900`, `900s`, `15m`, `1h`, `1h30m`.
pub fn parse_ttl(text: &str) -> std::result::Result<Duration, String> {
    match super::parse_duration(text, "TTL")? {
        d if d.as_secs() > 0 => Ok(d),
        _ => Err(format!("the TTL {:?} is shorter than a second", text.trim())),
    }
}

/// Runs a credential command.
pub async fn run(command: CredsCommand) -> Result<()> {
    match command {
        CredsCommand::Mint(args) => {
            let permissions = if args.push { Permissions::PushPull } else { Permissions::Pull };
            let secret = SecretTarget { name: args.secret_name.clone(), namespace: args.namespace.clone() };
            let backend = Backend::select(&args.config).await?;
            let text = backend.mint(&args.repo, permissions, args.ttl, args.format, &secret).await?;
            super::write_out(format_args!("{text}"));
        }
        CredsCommand::Cleanup(args) => {
            Backend::select(&args.config).await?.cleanup(&args.repo).await?;
            eprintln!("cleaned up the credentials minted for {}", args.repo);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_ttl("15 parsecs").unwrap_err().contains("15m"));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("").is_err());
    }
}
