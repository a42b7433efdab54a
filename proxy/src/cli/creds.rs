//! `regbridge creds mint REPO`: short-lived credentials for one repository, in the format the consumer
//! reads (JSON, shell variables, a docker `config.json`, an `X-Registry-Auth` header, a Kubernetes Secret).

use std::time::Duration;

use regbridge::auth::{AuthEntry, DockerConfig, DockerConfigSecret, ServerAddress, XRegistryAuth};
use regbridge::{AuthMethod, Credentials, Error, Permissions, Result};

use regbridge::oci::RepositoryName;

use super::context::{ConfigArgs, is_proxied, local_registry, open, server_url};
use super::print_json;

/// Credential commands.
#[derive(clap::Subcommand)]
pub enum CredsCommand {
    /// Mint credentials for REPO at the provider of its route (STS + ECR, IAM Credentials, an ACR token,
    /// or a token of this server) and print them.
    Mint(MintArgs),
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

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The `Credentials` type as JSON.
    Json,
    /// `REGBRIDGE_REGISTRY=... REGBRIDGE_USERNAME=...` lines for `eval` or `--env-file`.
    Env,
    /// A docker `config.json`.
    DockerConfig,
    /// The base64url value of docker's `X-Registry-Auth` header.
    XRegistryAuth,
    /// A Kubernetes `kubernetes.io/dockerconfigjson` Secret (YAML).
    K8sSecret,
}

/// Parses `900`, `900s`, `15m`, `1h`, `1h30m`.
pub fn parse_ttl(text: &str) -> std::result::Result<Duration, String> {
    match super::parse_duration(text, "TTL")? {
        d if d.as_secs() > 0 => Ok(d),
        _ => Err(format!("the TTL {:?} is shorter than a second", text.trim())),
    }
}

/// Single-quotes `value` for a POSIX shell.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// `team/app` as a Kubernetes object name: `regbridge-team-app`.
fn secret_name_for(repo: &str) -> String {
    let cleaned: String =
        repo.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let name = format!("regbridge-{}", cleaned.trim_matches('-'));
    name.chars().take(253).collect::<String>().trim_end_matches('-').to_owned()
}

/// Prints `creds` for `server` in `format`.
fn print(creds: &Credentials, server: &ServerAddress, args: &MintArgs) -> Result<()> {
    if creds.auth_method == AuthMethod::Bearer && args.format != Format::Json {
        // Docker's formats carry a user name and password; a bearer token goes in as the password, which
        // registries that issue bearer credentials accept through their token endpoint.
        tracing::debug!("bearer credentials written as a user name and password");
    }
    let config = || DockerConfig::with_login(server, AuthEntry::basic(&creds.username, &creds.password));
    match args.format {
        Format::Json => print_json(creds),
        Format::Env => {
            outln!("REGBRIDGE_REGISTRY={}", shell_quote(server.host()));
            outln!("REGBRIDGE_USERNAME={}", shell_quote(&creds.username));
            outln!("REGBRIDGE_PASSWORD={}", shell_quote(creds.password.expose()));
            outln!("REGBRIDGE_EXPIRES_AT={}", shell_quote(&creds.expires_at.to_rfc3339()));
        }
        Format::DockerConfig => outln!("{}", config().to_json()),
        Format::XRegistryAuth => {
            outln!("{}", XRegistryAuth::basic(&creds.username, creds.password.clone(), server.host()).encode())
        }
        Format::K8sSecret => {
            let name = args.secret_name.clone().unwrap_or_else(|| secret_name_for(&args.repo));
            let yaml = DockerConfigSecret::new(&name, args.namespace.as_deref(), &config())?.to_yaml();
            super::write_out(format_args!("{yaml}"));
        }
    }
    Ok(())
}

/// Runs a credential command.
pub async fn run(command: CredsCommand) -> Result<()> {
    let CredsCommand::Mint(args) = command;
    let permissions = if args.push { Permissions::PushPull } else { Permissions::Pull };
    let config = args.config.load()?;
    let name = RepositoryName::parse(&args.repo)?;
    let minted = match open(&config, &args.repo).await {
        Ok(opened) => match opened.registry.generate_credentials(&opened.id, permissions, args.ttl).await {
            Ok(creds) => Some((creds, opened.endpoint)),
            Err(Error::Unsupported { .. }) if is_proxied(&config, &name).await? => None,
            Err(err) => return Err(err),
        },
        Err(Error::Unsupported { .. }) if is_proxied(&config, &name).await? => None,
        Err(err) => return Err(err),
    };
    let (creds, endpoint) = match minted {
        Some(minted) => minted,
        None => {
            // The route's registry has only static credentials (a generic registry or a connection): they are
            // never handed out. The client gets credentials for this proxy instead, scoped the same way.
            eprintln!(
                "regbridge: {} is served through this proxy by a registry that cannot mint scoped credentials; \
                 these are credentials for the proxy at {}",
                args.repo,
                server_url(&config)
            );
            let creds = local_registry(&config)?.proxy_credentials(&name, permissions, args.ttl)?;
            (creds, server_url(&config))
        }
    };
    let server = ServerAddress::parse(&endpoint)
        .map_err(|e| Error::bad_input(format!("the route's registry endpoint {endpoint:?}: {e}")))?;
    print(&creds, &server, &args)
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

    #[test]
    fn quoting_and_names() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(secret_name_for("Team/App_1"), "regbridge-team-app-1");
    }
}
