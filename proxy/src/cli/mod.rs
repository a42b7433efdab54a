//! The `regbridge` command line: `serve`, and the commands that act on the configured routes from a shell
//! (`repo`, `access`, `creds`, `gc`, `check`) or for docker (`credential-helper`).
//!
//! Output for machines (JSON, or the format asked for) goes to stdout; messages go to stderr. Exit codes:
//! 0 success, 1 other failures, 2 usage errors and bad input, 3 not found, 4 authentication or
//! authorization failures (see [`exit_code`]).

/// `println!` for a command's output; see [`write_out`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod access;
mod accounts;
mod backend;
mod check;
mod configure_docker;
mod connections;
mod context;
mod creds;
mod docs;
mod gc;
mod helper;
mod inspect;
mod login;
mod migrate;
mod outcome;
pub mod output;
mod registry;
mod remote;
pub mod repo;
mod robots;
mod serve;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use regbridge::Error;

pub use context::ConfigArgs;

/// One API over ECR, Artifact Registry, ACR and a local registry, and an OCI proxy in front of them.
#[derive(Parser)]
#[command(name = "regbridge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr: `human` (the default on a terminal) or `json` (one object per line).
    #[arg(long, global = true, value_enum, env = "REGBRIDGE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server: an authenticated OCI registry on local disk, and a proxy to the upstream
    /// registries a --config file routes to.
    ///
    /// On the first start with an empty data directory, an `admin` user is created with a random password
    /// (or REGBRIDGE_ADMIN_PASSWORD), printed once and stored in DATA_DIR/admin-password (mode 0600).
    /// SIGTERM or Ctrl-C stops accepting connections and lets transfers in flight finish (--grace).
    Serve(serve::ServeArgs),
    /// Create, show or delete a repository at the provider of the route that serves its name.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Grant, revoke or list cross-account pull access to a repository (ECR repository policy, GAR IAM
    /// binding, ACR role assignment, local grant).
    #[command(subcommand)]
    Access(access::AccessCommand),
    /// Mint short-lived registry credentials for one repository.
    #[command(subcommand)]
    Creds(creds::CredsCommand),
    /// Delete blobs of the local storage that no manifest references (safe while pushes run); with
    /// --cloud, the expired ACR tokens and scope maps regbridge minted in the routes' registries.
    Gc(gc::GcArgs),
    /// Copy a registry's storage into another (a local one into object storage): every repository with its
    /// owner and grants, blob (streamed, each verified against its digest), manifest and tag. Resumable:
    /// run it again and it copies only what the destination is missing. Stop the servers first.
    Migrate(migrate::MigrateArgs),
    /// Reach every route's control plane and registry (here, or through the server logged in to); one line
    /// per route, exit 1 when any fails.
    Check(check::CheckArgs),
    /// Docker credential helper: `get` prints fresh short-lived credentials for this regbridge server, or a
    /// registry-wide login for an ECR, GAR or ACR host (cached under $XDG_CACHE_HOME/regbridge/helper).
    ///
    /// Point docker, podman or skopeo at it with `{"credHelpers": {"HOST:PORT": "regbridge"}}` in
    /// config.json and this binary on PATH as `docker-credential-regbridge`.
    CredentialHelper(helper::HelperArgs),
    /// Point docker's (and with --podman, podman's) credHelpers at docker-credential-regbridge for each
    /// HOST (default: this server), keeping every other setting of the config file.
    ConfigureDocker(configure_docker::ConfigureDockerArgs),
    /// Registry connections (add, list, get, update, validate, rm): stored credentials for generic upstream
    /// registries in the data directory (or a logged-in server's), usable by `generic` routes with
    /// `connection = "NAME"`.
    Registry(registry::RegistryArgs),
    /// Log in to a regbridge server's management API and store its token (not the password) in
    /// $XDG_CONFIG_HOME/regbridge/logins.json; then repo, access, creds, gc, users, robots and registry go
    /// to that server unless --config or --data-dir is given.
    Login(login::LoginArgs),
    /// Print what a manifest NAME[:TAG|@DIGEST] is on the route serving it: media type, digest, size, and
    /// the platforms of an index (what `docker buildx imagetools inspect` shows), as JSON or a table.
    Inspect(inspect::InspectArgs),
    /// Forget a server's stored token.
    Logout(login::LogoutArgs),
    /// Users (add, list, get, update, rm) in the data directory (or a logged-in server's): admins, or
    /// members with repository rules.
    Users(users::UsersArgs),
    /// Robot accounts `robot$NAME` (add, list, get, rotate, rm): repository rules, an expiry, a generated
    /// secret shown once.
    Robots(robots::RobotsArgs),
    /// Print the completion script for a shell (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the manual page (roff), or with --out DIR write one page per command into DIR.
    Man(docs::ManArgs),
}

/// Runs the command line (`args` as from `std::env::args_os`). Invoked as `docker-credential-regbridge`,
/// the binary is the credential helper.
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let invoked_as = args.first().and_then(|a| std::path::Path::new(a).file_name()).and_then(|n| n.to_str());
    if invoked_as.is_some_and(|n| n.starts_with("docker-credential-")) {
        init_logging(None);
        return helper::main_as_docker_helper(args);
    }
    let cli = Cli::parse_from(args);
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Repo(command) => block_on(repo::run(command)),
        Command::Access(command) => block_on(access::run(command)),
        Command::Creds(command) => block_on(creds::run(command)),
        Command::Gc(args) => gc::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Check(args) => block_on(check::run(args)),
        Command::CredentialHelper(args) => helper::run(args),
        Command::ConfigureDocker(args) => configure_docker::run(args),
        Command::Registry(args) => registry::run(args),
        Command::Login(args) => block_on(login::login(args)),
        Command::Logout(args) => block_on(login::logout(args)),
        Command::Inspect(args) => block_on(inspect::run(args)),
        Command::Users(args) => users::run(args),
        Command::Robots(args) => robots::run(args),
        Command::Completions(args) => docs::completions(args),
        Command::Man(args) => docs::man(args),
    }
}

/// The log format in use, so errors are printed in it too.
static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

fn init_logging(format: Option<LogFormat>) {
    use std::io::IsTerminal;
    let _ = LOG_FORMAT.set(format.unwrap_or(LogFormat::Human));
    let filter = tracing_subscriber::EnvFilter::try_from_env("REGBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Without log_internal_errors(false) a failed write (stderr is a pipe whose reader is gone) is reported
    // with eprintln!, which panics: the task logging "shutting down" died and SIGTERM was ignored.
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    let json = format == Some(LogFormat::Json);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

fn block_on(future: impl std::future::Future<Output = Result<(), Error>>) -> ExitCode {
    outcome::block_on(async { future.await.map(|()| 0).map_err(outcome::Failure::from) })
}

/// Prints `err` to stderr and answers its exit code.
fn fail(err: &Error) -> ExitCode {
    outcome::exit(Err(err.into()))
}

/// Prints an error message on stderr: `error: MESSAGE`, or under `--log-format json` one JSON object
/// (`{"level":"ERROR","message":...,"exit_code":N}`) that log collectors read like the log lines.
fn report(message: &str, exit_code: u8) {
    if LOG_FORMAT.get() == Some(&LogFormat::Json) {
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "message": message,
            "exit_code": exit_code,
        });
        eprintln!("{line}");
    } else {
        eprintln!("error: {message}");
    }
}

/// The message for `err`. A failure of this machine (I/O on the data directory) keeps its OS reason
/// ("create data directory /srv/reg: Permission denied (os error 13)"), which says what to fix; other
/// errors are their message alone, since an upstream's source error may carry URLs with signatures.
fn describe(err: &Error) -> String {
    match err {
        Error::Internal { message, source: Some(source) } => {
            let mut text = format!("{message}: {source}");
            let mut next = source.source();
            while let Some(cause) = next {
                text.push_str(&format!(": {cause}"));
                next = cause.source();
            }
            text
        }
        other => other.to_string(),
    }
}

/// The exit code for an error: 2 bad input or unsupported, 3 not found, 4 authentication or
/// authorization, 1 anything else.
pub fn exit_code(err: &Error) -> u8 {
    match err {
        Error::InvalidInput { .. }
        | Error::Unsupported { .. }
        | Error::DigestInvalid { .. }
        | Error::TooLarge { .. } => 2,
        Error::NotFound { .. } => 3,
        Error::Unauthenticated { .. } | Error::Denied { .. } => 4,
        _ => 1,
    }
}

/// Parses a duration flag as every setting is read ([`crate::values::parse_duration`]); `what` names it
/// in the error.
fn parse_duration(text: &str, what: &str) -> Result<std::time::Duration, String> {
    crate::values::parse_duration(text).map_err(|e| format!("invalid {what}: {e}"))
}

/// The parser of boolean flags that a `REGBRIDGE_*` variable can also set: `1/0`, `true/false`, `yes/no`,
/// `on/off` (clap's default takes only `true` and `false`, so `REGBRIDGE_ANONYMOUS_PULL=1` was refused).
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// Prints `value` as pretty JSON on stdout.
fn print_json(value: &impl serde::Serialize) {
    outln!("{}", serde_json::to_string_pretty(value).expect("JSON serialises"));
}

/// Writes a command's output to stdout. When the reader has gone (`regbridge creds mint ... | head -1`),
/// nobody wants the rest: the command ends quietly with exit 0, where `println!` would panic. Any other
/// write error ends it with exit 1.
fn write_out(output: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(output).and_then(|()| stdout.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}
