//! `regbridge login URL` and `regbridge logout [URL]`: an API token of a server, stored for the commands
//! that then go through its management API (see [`super::backend`]).

use std::time::Duration;

use regbridge::{Error, Result, Secret};

use super::remote::{ApiClient, Login, Logins, normalize_url};

/// The flags of `login`.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// The server: `https://registry.example.com`, or `HOST:PORT` (https, http for loopback addresses).
    url: String,
    /// The user to log in as.
    #[arg(long, short, default_value = "admin")]
    username: String,
    /// Read the password from standard input (else from REGBRIDGE_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
    /// How long the stored token lives: `12h` (the default), up to `7d`.
    #[arg(long, value_parser = super::creds::parse_ttl)]
    ttl: Option<Duration>,
    /// Do not make this server the default of later commands.
    #[arg(long)]
    no_default: bool,
}

/// The flags of `logout`.
#[derive(clap::Args)]
pub struct LogoutArgs {
    /// The server to forget [default: the default server].
    url: Option<String>,
}

/// Logs in: exchanges the password for an API token and stores the token (never the password).
pub async fn login(args: LoginArgs) -> Result<()> {
    let password = if args.password_stdin {
        super::outcome::read_secret(&mut std::io::stdin(), "--password-stdin")
            .map_err(|f| Error::bad_input(f.message))?
    } else {
        std::env::var("REGBRIDGE_PASSWORD").map(Secret::new).map_err(|_| {
            Error::bad_input("give the password on standard input with --password-stdin, or in REGBRIDGE_PASSWORD")
        })?
    };
    if password.expose().is_empty() {
        return Err(Error::bad_input("the password is empty"));
    }
    let api = ApiClient::with_password(&args.url, &args.username, password)?;
    let body = args.ttl.map(|ttl| serde_json::json!({ "ttl": format!("{}s", ttl.as_secs()) }));
    let login: Login = api
        .call(reqwest::Method::POST, "/admin/v1/tokens", Some(&body.unwrap_or_else(|| serde_json::json!({}))))
        .await?;
    let base = api.base().to_owned();
    let mut logins = Logins::load()?;
    let expires = login.expires_at;
    logins.servers.insert(base.clone(), login);
    if !args.no_default {
        logins.default = Some(base.clone());
    }
    logins.save()?;
    eprintln!("logged in to {base} as {} until {expires} (stored in {})", args.username, Logins::path()?.display());
    Ok(())
}

/// Forgets a server's token.
pub async fn logout(args: LogoutArgs) -> Result<()> {
    let mut logins = Logins::load()?;
    let base = match &args.url {
        Some(url) => normalize_url(url)?,
        None => logins.default.clone().ok_or_else(|| Error::bad_input("not logged in to any server"))?,
    };
    if logins.servers.remove(&base).is_none() {
        return Err(Error::not_found(regbridge::Resource::Other, format!("a login to {base}")));
    }
    if logins.default.as_deref() == Some(base.as_str()) {
        logins.default = None;
    }
    logins.save()?;
    eprintln!("logged out of {base}");
    Ok(())
}
