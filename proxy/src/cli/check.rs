//! `regbridge check`: every route's control plane and registry reached, one line per route.

use std::io::IsTerminal;
use std::time::Duration;

use regbridge::auth::{Action, Scope};
use regbridge::oci::RepositoryName;
use regbridge::{Error, Result};

use super::context::ConfigArgs;
use crate::routing::Target;

/// The flags of `check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Seconds to wait for each route.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
    #[command(flatten)]
    config: ConfigArgs,
}

/// What to do about a failure, by kind.
fn advice(err: &Error) -> &'static str {
    match err {
        Error::Unauthenticated { .. } => "check the route's credentials (username/password, or the cloud's)",
        Error::Denied { .. } => "grant the route's identity access to the registry",
        Error::NotFound { .. } => "check the registry name, project, location or account in the route",
        Error::InvalidInput { .. } => "fix the route's settings",
        Error::Upstream { status: None, .. } => "check the registry URL and that it is reachable from here",
        _ => "see the message",
    }
}

/// The repository a check mints credentials for: never pushed to, and named so an operator recognises it.
const PROBE_REPOSITORY: &str = "regbridge-check";

/// Reaches one upstream route: its `/v2/` endpoint through the route's own client, asking for pull access to
/// a probe repository. A cloud route's client mints credentials for it first (STS, IAM Credentials, an ACR
/// token), so the control plane is reached too; whatever was minted is cleaned up afterwards.
async fn probe(target: &Target, data_dir: &std::path::Path) -> Result<String> {
    match target {
        Target::Local if data_dir.join("signing.key").is_file() => {
            Ok(format!("local storage in {}", data_dir.display()))
        }
        Target::Local => {
            Ok(format!("local storage in {}, which `regbridge serve` creates on its first start", data_dir.display()))
        }
        Target::Connection(_) => Ok("a registry connection (check it with `regbridge registry validate`)".into()),
        Target::Upstream(upstream) => {
            let prefix = upstream.provider.upstream_repository_prefix();
            let prefix = prefix.trim_matches('/');
            let repository =
                if prefix.is_empty() { PROBE_REPOSITORY.to_owned() } else { format!("{prefix}/{PROBE_REPOSITORY}") };
            let scope = Scope::for_action(RepositoryName::parse(&repository)?, Action::Pull);
            let reached = upstream.client.ping(&[scope]).await;
            if let Err(err) = upstream.provider.cleanup_credentials(&repository).await {
                tracing::warn!(error = %err, "could not clean up the check's credentials");
            }
            reached.map(|()| format!("{} answered /v2/", upstream.client.base_url()))
        }
    }
}

/// Loads the configuration and checks every route; fails when any route fails.
pub async fn run(args: CheckArgs) -> Result<()> {
    let config = args.config.load()?;
    let routes = crate::server::build_routes(&config.routes).await?;
    let terminal = std::io::stderr().is_terminal();
    let total = routes.routes().len();
    let mut failed = 0;
    for (i, route) in routes.routes().iter().enumerate() {
        if terminal {
            eprint!("\rchecking {}/{total}...", i + 1);
        }
        let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), probe(&route.target, &config.data_dir))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Upstream {
                    provider: route.label.clone(),
                    status: None,
                    message: format!("no answer within {} s", args.timeout),
                    source: None,
                })
            });
        if terminal {
            eprint!("\r");
        }
        match outcome {
            Ok(what) => outln!("{}: ok ({what})", route.label),
            Err(err) => {
                failed += 1;
                outln!("{}: FAILED: {err}; {}", route.label, advice(&err));
            }
        }
    }
    if failed > 0 {
        return Err(Error::Upstream {
            provider: "check".into(),
            status: None,
            message: format!("{failed} of {total} routes failed"),
            source: None,
        });
    }
    Ok(())
}
