//! `regbridge serve`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use regbridge::Secret;

use super::context::{ConfigArgs, UploadExpiryArgs};
use crate::values::at_least_a_second;
use crate::{ServeConfig, Server};

/// The flags of `serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Let clients without credentials pull (pushing always needs credentials).
    #[arg(long, env = "REGBRIDGE_ANONYMOUS_PULL", value_parser = super::boolish(), action = clap::ArgAction::SetTrue)]
    anonymous_pull: bool,
    /// PEM certificate to serve HTTPS with (needs --tls-key).
    #[arg(long, env = "REGBRIDGE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "REGBRIDGE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How long a connection may stay open with no request in flight and no bytes moving: `120` (seconds),
    /// `2m` [default: 120].
    #[arg(long, env = "REGBRIDGE_IDLE_TIMEOUT", value_parser = parse_timeout)]
    idle_timeout: Option<Duration>,
    /// How long a request body may send nothing before the request ends with 408: `60`, `1m` [default: 60].
    #[arg(long, env = "REGBRIDGE_BODY_READ_TIMEOUT", value_parser = parse_timeout)]
    body_read_timeout: Option<Duration>,
    /// Connections open at once; at the limit the longest-idle one makes room [default: 4096].
    #[arg(long, env = "REGBRIDGE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// How long transfers in flight may take to finish after SIGTERM or Ctrl-C: `30` (seconds), `2m`.
    #[arg(long, env = "REGBRIDGE_SHUTDOWN_GRACE", default_value = "30s", value_parser = parse_timeout)]
    grace: Duration,
    #[command(flatten)]
    upload_expiry: UploadExpiryArgs,
}

impl ServeArgs {
    /// The configuration: defaults, then the file, then flags and environment variables.
    fn into_config(self) -> Result<ServeConfig, regbridge::Error> {
        let base = self.upload_expiry.apply(self.config.load()?);
        Ok(ServeConfig {
            anonymous_pull: self.anonymous_pull || base.anonymous_pull,
            tls: self.tls_cert.zip(self.tls_key).or(base.tls),
            idle_timeout: self.idle_timeout.map_or(base.idle_timeout, at_least_a_second),
            body_read_timeout: self.body_read_timeout.map_or(base.body_read_timeout, at_least_a_second),
            max_connections: self.max_connections.unwrap_or(base.max_connections),
            ..base
        })
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    super::parse_duration(text, "duration")
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Runs the server until a stop signal.
pub fn run(args: ServeArgs) -> ExitCode {
    let grace = args.grace;
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => return super::fail(&e),
    };
    let initial = std::env::var("REGBRIDGE_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()).map(Secret::new);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let server = Server::bind_async(config, initial).await?;
        server.run_until(stop_signal(), grace).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(&e),
    }
}
