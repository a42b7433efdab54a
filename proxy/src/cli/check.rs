//! `regbridge check`: every route's control plane and registry reached, one line per route.

use std::io::IsTerminal;
use std::time::Duration;

use regbridge::{Error, Result};

use super::context::{ConfigArgs, local_registry};
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

/// Reaches one upstream route: its `/v2/` endpoint through the provider's client (authentication
/// included); for cloud providers that needs credentials, so the control plane is reached too.
async fn probe(target: &Target) -> Result<String> {
    match target {
        Target::Local => Ok("local storage".into()),
        Target::Connection(_) => Ok("a registry connection (check it with `regbridge registry validate`)".into()),
        Target::Upstream(upstream) => {
            let response = upstream
                .client
                .send(axum::http::Method::GET, "/v2/", axum::http::HeaderMap::new(), None, "registry:catalog:*")
                .await?;
            let status = response.status();
            if status.is_success() {
                Ok(format!("{} answered /v2/", upstream.client.base_url()))
            } else {
                Err(upstream.client.response_error("GET /v2/", response).await)
            }
        }
    }
}

/// Loads the configuration and checks every route; fails when any route fails.
pub async fn run(args: CheckArgs) -> Result<()> {
    let config = args.config.load()?;
    local_registry(&config)?;
    let routes = crate::server::build_routes(&config.routes).await?;
    let terminal = std::io::stderr().is_terminal();
    let total = routes.routes().len();
    let mut failed = 0;
    for (i, route) in routes.routes().iter().enumerate() {
        if terminal {
            eprint!("\rchecking {}/{total}...", i + 1);
        }
        let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), probe(&route.target))
            .await
            .unwrap_or_else(|_| Err(Error::bad_input(format!("no answer within {} s", args.timeout))));
        if terminal {
            eprint!("\r");
        }
        match outcome {
            Ok(what) => println!("{}: ok ({what})", route.label),
            Err(err) => {
                failed += 1;
                println!("{}: FAILED: {err}; {}", route.label, advice(&err));
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
