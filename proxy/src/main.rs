//! The `regbridge` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regbridge::Secret;
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
    /// Run the registry server: an authenticated OCI registry on local disk.
    ///
    /// On the first start with an empty data directory, an `admin` user is created with a random password
    /// (or REGBRIDGE_ADMIN_PASSWORD), printed once and stored in DATA_DIR/admin-password (mode 0600).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "REGBRIDGE_LISTEN", default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Directory for blobs, manifests, keys and users.
    #[arg(long, env = "REGBRIDGE_DATA_DIR", default_value = "regbridge-data")]
    data_dir: PathBuf,
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
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        eprintln!("error: --public-url must start with http:// or https://, got {url:?}");
        return ExitCode::from(2);
    }
    let config = ServeConfig {
        listen: args.listen,
        public_url: args.public_url,
        data_dir: args.data_dir,
        anonymous_pull: args.anonymous_pull,
        tls: args.tls_cert.zip(args.tls_key),
        ..ServeConfig::new()
    };
    let initial = std::env::var("REGBRIDGE_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty()).map(Secret::new);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let server = Server::bind(config, initial)?;
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
