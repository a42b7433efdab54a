//! The docker credential helper (`regbridge credential-helper ACTION`, or the binary installed as
//! `docker-credential-regbridge`).
//!
//! `get` answers for two kinds of hosts:
//! - **cloud registries** ([`hosts`]): ECR (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`), GAR
//!   (`LOCATION-docker.pkg.dev`, `gcr.io`) and ACR (`NAME.azurecr.io`) by pattern, or any host named in the
//!   configuration's `[[helper.hosts]]` (whose settings say how each cloud mints: role, service accounts,
//!   Entra ID identity, endpoint; see [`HelperHost`]). The login is registry-wide (docker asks per host),
//!   minted with the providers' own credential code and the ambient or configured cloud credentials
//!   ([`cloud`]: ECR's `GetAuthorizationToken`, a GAR access token, ACR's refresh token), and kept in a
//!   private cache until shortly before it expires ([`cache`]). With `--pull-only` the login can only
//!   pull (an ECR role's session limited by policy, a GAR pull service account's token); a cloud that
//!   cannot narrow its login (ECR without a role, GAR without a pull service account, ACR) is refused
//!   with an error saying what to configure, never answered with a login that can push.
//! - **this regbridge server** ([`this_server`]): a short-lived token signed with the server's key (read from
//!   the data directory, so the helper runs where the server's data is, as its operator) that works on
//!   every repository; or, for a server `regbridge login` stored, the server-wide credentials of its
//!   management API ([`logged_in_server`]), which for a member or robot carry exactly its rules. Clients
//!   then reach every route through the proxy.
//!
//! Other hosts get the protocol's "credentials not found" answer. Nothing is stored by `store`; `erase`
//! drops a cloud host's cached login; `list` names this server and the configured hosts; `version` prints
//! the version.

pub mod cache;
pub mod cloud;
pub mod hosts;

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use regbridge::auth::credential_helper::{CREDENTIALS_NOT_FOUND, parse_server_url};
use regbridge::auth::{HelperCredentials, ServerAddress};
use regbridge::{Error, Result};
use regbridge_providers::local::token::TokenKind;

use super::context::{ConfigArgs, server_signer, server_url};
use crate::config_file::{FileConfig, HelperHost};

pub use crate::manage::HELPER_USER;

/// The helper's arguments.
#[derive(clap::Args)]
pub struct HelperArgs {
    /// get, store, erase, list or version (the docker credential-helper protocol; input on stdin).
    #[arg(value_parser = ["get", "store", "erase", "list", "version"])]
    action: String,
    /// How long minted credentials live: `900s`, `15m`, `1h`.
    #[arg(long, env = "REGBRIDGE_HELPER_TTL", default_value = "15m", value_parser = super::creds::parse_ttl)]
    ttl: Duration,
    /// Mint credentials that may only pull (refused for a cloud host that cannot narrow its login).
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

/// The `[[helper.hosts]]` of the configuration file, if one is given.
fn configured_hosts(args: &HelperArgs) -> Result<Vec<HelperHost>> {
    match &args.config.config {
        Some(path) => Ok(FileConfig::load(path)?.helper.hosts),
        None => Ok(Vec::new()),
    }
}

/// The action's output, `None` for "credentials not found".
fn act(args: &HelperArgs) -> Result<Option<String>> {
    match args.action.as_str() {
        "version" => Ok(Some(format!("docker-credential-regbridge {}", env!("CARGO_PKG_VERSION")))),
        "get" => {
            let asked = parse_server_url(&stdin()?)?;
            if let Some(host) = hosts::settings_for(&asked, &configured_hosts(args)?) {
                let entry = cloud_login(&host, args.ttl, args.pull_only)?;
                let creds = HelperCredentials { server_url: asked, username: entry.username, secret: entry.secret };
                return Ok(Some(creds.to_json()));
            }
            Ok(this_server(args, &asked)?.map(|creds| creds.to_json()))
        }
        "erase" => {
            let asked = parse_server_url(&stdin()?)?;
            if let Some(host) = hosts::settings_for(&asked, &configured_hosts(args)?) {
                cache::Cache::from_env()?.remove(&host)?;
            }
            Ok(Some(String::new()))
        }
        "store" => {
            // Minted on demand, never stored: docker login has nothing to keep.
            let _ = stdin()?;
            Ok(Some(String::new()))
        }
        _ => {
            let config = args.config.load()?;
            let mut list = serde_json::Map::new();
            for host in configured_hosts(args)? {
                list.insert(host.host.clone(), cloud::username(&host.provider).into());
            }
            list.insert(server_url(&config), HELPER_USER.into());
            Ok(Some(serde_json::Value::Object(list).to_string()))
        }
    }
}

/// A cloud host's login (pull-only or not): the cached one while fresh, else a new one, cached.
fn cloud_login(host: &HelperHost, ttl: Duration, pull_only: bool) -> Result<cache::Entry> {
    let cache = cache::Cache::from_env()?;
    if let Some(entry) = cache.get(host, pull_only) {
        return Ok(entry);
    }
    let runtime = runtime()?;
    let entry = runtime.block_on(cloud::mint(host, ttl, pull_only))?;
    // A cache that cannot be written costs a mint next time, nothing else.
    if let Err(err) = cache.put(host, pull_only, &entry) {
        tracing::warn!("credential helper cache not written: {err}");
    }
    Ok(entry)
}

/// The answer for this regbridge server: a token valid on every repository, or `None` when `asked` is not
/// one of its addresses. The seam for answering for a remote server (through its management API) later.
fn this_server(args: &HelperArgs, asked: &str) -> Result<Option<HelperCredentials>> {
    if let Some(creds) = logged_in_server(args, asked)? {
        return Ok(Some(creds));
    }
    let (names, config) = own_addresses(args)?;
    let Ok(address) = ServerAddress::parse(asked) else { return Ok(None) };
    if !names.contains(&address) {
        return Ok(None);
    }
    let signer = server_signer(&config)?;
    // The operator of the data directory is its admin.
    let admin = crate::accounts::Principal::configured_admin(HELPER_USER);
    let (username, access, ttl) = crate::manage::server_grant(&admin, args.pull_only, args.ttl)?;
    let (token, _) = signer.sign(&username, None, TokenKind::Minted, access, ttl)?;
    Ok(Some(HelperCredentials { server_url: asked.to_owned(), username, secret: token }))
}

/// The answer for a server `regbridge login` stored, when `asked` is its address: server-wide credentials
/// from its management API (`POST /admin/v1/credentials/server`), so the helper works away from the
/// server's data directory.
fn logged_in_server(args: &HelperArgs, asked: &str) -> Result<Option<HelperCredentials>> {
    let Ok(address) = ServerAddress::parse(asked) else { return Ok(None) };
    let logins = super::remote::Logins::load()?;
    let Some(url) = logins.servers.keys().find(|url| ServerAddress::parse(url).is_ok_and(|a| a == address)) else {
        return Ok(None);
    };
    let api = super::remote::ApiClient::from_login(Some(url))?;
    let body = serde_json::json!({ "pullOnly": args.pull_only, "ttl": format!("{}s", args.ttl.as_secs()) });
    let runtime = runtime()?;
    let answer: serde_json::Value =
        runtime.block_on(api.call(reqwest::Method::POST, "/admin/v1/credentials/server", Some(&body)))?;
    let field = |name: &str| {
        answer[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::bad_input(format!("the server's answer has no {name}")))
    };
    Ok(Some(HelperCredentials {
        server_url: asked.to_owned(),
        username: field("username")?,
        secret: regbridge::Secret::new(field("secret")?),
    }))
}

/// A runtime for one call: the helper is a short-lived process with one thing to wait for.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| Error::internal("tokio runtime", e))
}
