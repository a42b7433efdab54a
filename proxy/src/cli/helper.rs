//! The docker credential helper (`regbridge credential-helper ACTION`, or the binary installed as
//! `docker-credential-regbridge`).
//!
//! `get` answers for this regbridge server only: it mints a short-lived token signed with the server's key
//! (read from the data directory, so the helper runs where the server's data is, as its operator) that
//! works on every repository, and prints it as `{ServerURL, Username, Secret}`. Clients then reach every
//! route through the proxy; the cloud registries' own credentials never leave it. Other servers get the
//! protocol's "credentials not found" answer. Nothing is stored, so `store` and `erase` succeed without
//! doing anything, and `list` names this server.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use regbridge::auth::credential_helper::{CREDENTIALS_NOT_FOUND, parse_server_url};
use regbridge::auth::{HelperCredentials, ServerAddress};
use regbridge::{Error, Result};
use regbridge_providers::local::token::{Access, TokenKind};

use super::context::{ConfigArgs, server_signer, server_url};

/// The user name of helper tokens (never a configured user, so Basic logins with it are token logins).
pub const HELPER_USER: &str = "regbridge-credential-helper";

/// The helper's arguments.
#[derive(clap::Args)]
pub struct HelperArgs {
    /// get, store, erase or list (the docker credential-helper protocol; input on stdin).
    #[arg(value_parser = ["get", "store", "erase", "list"])]
    action: String,
    /// How long minted credentials live: `900s`, `15m`, `1h`.
    #[arg(long, env = "REGBRIDGE_HELPER_TTL", default_value = "15m", value_parser = super::creds::parse_ttl)]
    ttl: Duration,
    /// Mint credentials that may only pull.
    #[arg(long, env = "REGBRIDGE_HELPER_PULL_ONLY", value_parser = super::boolish(), action = clap::ArgAction::SetTrue)]
    pull_only: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

/// The binary invoked as `docker-credential-regbridge ACTION`: the same helper, settings from the
/// environment.
pub fn main_as_docker_helper(args: Vec<std::ffi::OsString>) -> ExitCode {
    use clap::Parser;
    #[derive(clap::Parser)]
    #[command(name = "docker-credential-regbridge", version, about = "Docker credential helper for regbridge")]
    struct AsHelper {
        #[command(flatten)]
        args: HelperArgs,
    }
    run(AsHelper::parse_from(args).args)
}

/// The addresses clients may know this server by.
fn own_addresses(args: &HelperArgs) -> Result<(Vec<ServerAddress>, crate::ServeConfig)> {
    let config = args.config.load()?;
    let mut names = vec![ServerAddress::parse(&server_url(&config))?];
    let port = config.listen.port();
    if config.listen.ip().is_loopback() || config.listen.ip().is_unspecified() {
        for host in ["127.0.0.1", "localhost"] {
            names.push(ServerAddress::parse(&format!("{host}:{port}"))?);
        }
    }
    Ok((names, config))
}

fn stdin() -> Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| Error::internal("read stdin", e))?;
    Ok(input)
}

/// Runs one helper action.
pub fn run(args: HelperArgs) -> ExitCode {
    match act(&args) {
        Ok(Some(out)) => {
            outln!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => {
            // The protocol's answer for an unknown server: this message on stdout, exit 1.
            outln!("{CREDENTIALS_NOT_FOUND}");
            ExitCode::FAILURE
        }
        Err(err) => {
            outln!("{err}");
            super::fail(&err)
        }
    }
}

/// The action's output, `None` for "credentials not found".
fn act(args: &HelperArgs) -> Result<Option<String>> {
    let (names, config) = own_addresses(args)?;
    match args.action.as_str() {
        "get" => {
            let asked = parse_server_url(&stdin()?)?;
            let Ok(address) = ServerAddress::parse(&asked) else { return Ok(None) };
            if !names.contains(&address) {
                return Ok(None);
            }
            let signer = server_signer(&config)?;
            let actions: &[&str] = if args.pull_only { &["pull"] } else { &["pull", "push", "delete"] };
            let access = vec![Access::every_repository(actions)];
            let (token, _) = signer.sign(HELPER_USER, None, TokenKind::Minted, access, args.ttl)?;
            let creds = HelperCredentials { server_url: asked, username: HELPER_USER.into(), secret: token };
            Ok(Some(creds.to_json()))
        }
        "store" | "erase" => {
            // Minted on demand, never stored: docker login and logout have nothing to keep or forget.
            let _ = stdin()?;
            Ok(Some(String::new()))
        }
        _ => {
            let list: serde_json::Map<String, serde_json::Value> =
                [(server_url(&config), serde_json::Value::String(HELPER_USER.into()))].into_iter().collect();
            Ok(Some(serde_json::Value::Object(list).to_string()))
        }
    }
}
