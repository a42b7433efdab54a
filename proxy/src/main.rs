//! The `regbridge` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regbridge::Secret;
use regbridge_proxy::config_file::FileConfig;
use regbridge_proxy::{ServeConfig, Server};

/// One API over ECR, Artifact Registry, ACR and a local registry, and an OCI proxy in front of them.
#[derive(Parser)]
#[command(name = "regbridge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server: an authenticated OCI registry on local disk, and a proxy to the upstream
    /// registries a --config file routes to.
    ///
    /// On the first start with an empty data directory, an `admin` user is created with a random password
    /// (or REGBRIDGE_ADMIN_PASSWORD), printed once and stored in DATA_DIR/admin-password (mode 0600).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file: users, routes to upstream registries, and the settings below
    /// (see fixtures/config/regbridge.toml). Flags and REGBRIDGE_* variables override it.
    #[arg(long, short, env = "REGBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "REGBRIDGE_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory for blobs, manifests, keys and users [default: regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The URL clients use to reach this server, when it differs from the Host they send
    /// (behind a load balancer), e.g. https://registry.example.com.
    #[arg(long, env = "REGBRIDGE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Let clients without credentials pull (pushing always needs credentials).
    #[arg(long, env = "REGBRIDGE_ANONYMOUS_PULL")]
    anonymous_pull: bool,
    /// PEM certificate to serve HTTPS with (needs --tls-key).
    #[arg(long, env = "REGBRIDGE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "REGBRIDGE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The configuration: defaults, then the file, then flags and environment variables.
    fn into_config(self) -> Result<ServeConfig, regbridge::Error> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let defaults = ServeConfig::new();
        let public_url = self.public_url.or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(regbridge::Error::bad_input(format!(
                "the public URL must start with http:// or https://, got {url:?}"
            )));
        }
        Ok(ServeConfig {
            listen: self.listen.or(file.listen).unwrap_or(defaults.listen),
            public_url,
            data_dir: self.data_dir.or(file.data_dir).unwrap_or(defaults.data_dir),
            anonymous_pull: self.anonymous_pull || file.anonymous_pull.unwrap_or(false),
            tls: self.tls_cert.zip(self.tls_key).or(file.tls.map(|t| (t.cert, t.key))),
            users: file.users,
            routes: file.routes,
            ..defaults
        })
    }
}

/// glibc's allocator keeps freed memory in per-thread arenas; with tokio's blocking threads writing
/// uploads and reading blobs, that grew the server's resident memory run after run. mimalloc returns it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("REGBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let initial = std::env::var("REGBRIDGE_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()).map(Secret::new);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let server = Server::bind_async(config, initial).await?;
        server.run().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
