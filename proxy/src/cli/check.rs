//! `regbridge check`: every route's control plane and registry reached, one line per route, on this host
//! (each route built from the configuration on its own) or through a server's management API
//! (`GET /admin/v1/routes?health=true`). Both run the probe of [`crate::manage::routes`], so they print
//! the same and exit the same: 1 when any route failed.

use std::io::IsTerminal;
use std::time::Duration;

use regbridge::{Error, Result};
use reqwest::Method;

use super::backend::Backend;
use super::context::ConfigArgs;
use super::output::{OutputFormat, Row, print_list};
use crate::connections::ConnectionStore;
use crate::connections::store::DB_FILE;
use crate::manage::routes::{MAX_API_TIMEOUT, ProbeContext, RouteStatus, check_configured};

/// The flags of `check`.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// How long each route may take: `20` (seconds), `20s`, `1m`. Routes are checked at the same time.
    #[arg(long, default_value = "20", value_parser = parse_timeout)]
    timeout: Duration,
    /// Output format: one line per route (the default), json or table.
    #[arg(long, short, value_enum)]
    output: Option<OutputFormat>,
    #[command(flatten)]
    config: ConfigArgs,
}

fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    let timeout = super::parse_duration(text, "timeout")?;
    if timeout < Duration::from_secs(1) {
        return Err("invalid timeout: give at least 1s".into());
    }
    Ok(timeout)
}

impl Row for RouteStatus {
    fn headers() -> &'static [&'static str] {
        &["route", "prefix", "provider", "registry", "status", "detail"]
    }

    fn cells(&self) -> Vec<String> {
        let (status, detail) = match &self.health {
            None => ("-".to_owned(), String::new()),
            Some(h) if h.ok => ("ok".to_owned(), h.message.clone()),
            Some(h) => ("FAILED".to_owned(), detail_of(h)),
        };
        let registry = match (&self.registry, &self.connection) {
            (Some(registry), _) => registry.clone(),
            (None, Some(connection)) => format!("connection {connection:?}"),
            (None, None) => "-".into(),
        };
        vec![self.label.clone(), self.prefix.clone(), self.provider.clone(), registry, status, detail]
    }
}

/// A failure's message and what to do about it.
fn detail_of(health: &crate::manage::routes::Health) -> String {
    match &health.advice {
        Some(advice) => format!("{}; {advice}", health.message),
        None => health.message.clone(),
    }
}

/// Checks every route, here or through the selected server; fails when any route fails.
pub async fn run(args: CheckArgs) -> Result<()> {
    let remote = Backend::remote(&args.config)?;
    if remote.is_some() && args.timeout > MAX_API_TIMEOUT {
        let most = MAX_API_TIMEOUT.as_secs();
        return Err(Error::bad_input(format!("through the management API, --timeout is at most {most}s")));
    }
    let terminal = std::io::stderr().is_terminal();
    if terminal {
        eprint!("checking the routes...");
    }
    let checked = match remote {
        Some(api) => {
            let path = format!("/admin/v1/routes?health=true&timeout={}s", args.timeout.as_secs());
            api.call::<Vec<RouteStatus>>(Method::GET, &path, None).await
        }
        None => check_here(&args).await,
    };
    if terminal {
        eprint!("\r{:22}\r", "");
    }
    let checked = checked?;
    match args.output {
        None => {
            for route in &checked {
                match &route.health {
                    Some(h) if h.ok => outln!("{}: ok ({})", route.label, h.message),
                    Some(h) => outln!("{}: FAILED: {}", route.label, detail_of(h)),
                    None => outln!("{}: not checked", route.label),
                }
            }
        }
        Some(format) => print_list(&checked, format),
    }
    let failed = checked.iter().filter(|r| !r.is_ok() || r.health.is_none()).count();
    if failed > 0 {
        return Err(Error::Upstream {
            provider: "check".into(),
            status: None,
            message: format!("{failed} of {} routes failed", checked.len()),
            source: None,
        });
    }
    Ok(())
}

/// The check on this host: the configuration's routes, each built on its own. The registry connections
/// are opened only when a route uses one and the data directory holds them: a check creates nothing.
async fn check_here(args: &CheckArgs) -> Result<Vec<RouteStatus>> {
    let config = args.config.load()?;
    let uses_connections = config.routes.iter().any(|r| r.connection.is_some());
    let connections = if uses_connections && config.data_dir.join(DB_FILE).is_file() {
        Some(ConnectionStore::open(&config.data_dir, config.connections_key.as_ref())?)
    } else {
        None
    };
    let ctx = ProbeContext { data_dir: &config.data_dir, connections: connections.as_ref(), timeout: args.timeout };
    Ok(check_configured(&config.routes, &ctx).await)
}
