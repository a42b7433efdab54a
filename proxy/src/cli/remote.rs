//! The management API of a regbridge server, for the CLI on another host: the logins `regbridge login`
//! stores, and a client that sends each command to `/admin/v1/`.
//!
//! Logins live in `$XDG_CONFIG_HOME/regbridge/logins.json` (`~/.config/...` when unset), mode 0600:
//! `{"default": URL, "servers": {URL: {"user", "token", "expiresAt"}}}`. Only API tokens are stored, never a
//! password; a token authenticates to the management API alone, and expires (12 h unless `--ttl`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use regbridge::{Error, Resource, Result, Secret};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How long any call to the server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// One stored login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    /// Whom the token authenticates.
    pub user: String,
    /// The API token.
    pub token: Secret,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The logins file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Logins {
    /// The server commands go to when no `--server` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Logins by server URL.
    #[serde(default)]
    pub servers: BTreeMap<String, Login>,
}

impl Logins {
    /// Where the file lives.
    pub fn path() -> Result<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
            .ok_or_else(|| Error::bad_input("set HOME or XDG_CONFIG_HOME: the logins are stored under it"))?;
        Ok(base.join("regbridge").join("logins.json"))
    }

    /// The stored logins; none when the file does not exist.
    pub fn load() -> Result<Self> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::bad_input(format!("{} is not a logins file ({e}); delete it and log in again", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::internal(format!("read {}", path.display()), e)),
        }
    }

    /// Writes the file (mode 0600, its directory created 0700).
    pub fn save(&self) -> Result<()> {
        let path = Self::path()?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("create {}", dir.display()), e))?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::internal("logins", e))?;
        // A new file (0600 from its creation) renamed over the old one: a crash leaves either whole.
        let temp = path.with_extension(format!("json.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        regbridge_providers::local::write_private(&temp, &json)?;
        std::fs::rename(&temp, &path).map_err(|e| Error::internal(format!("replace {}", path.display()), e))
    }
}

/// `URL` as logins are keyed: scheme and host (and port), no trailing slash; `host:port` alone means https
/// unless it is a loopback address.
pub fn normalize_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        let loopback = url.starts_with("127.") || url.starts_with("localhost") || url.starts_with("[::1]");
        format!("{}://{url}", if loopback { "http" } else { "https" })
    };
    let parsed = url::Url::parse(&url).map_err(|e| Error::bad_input(format!("the server URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(Error::bad_input(format!("the server URL {url:?} must be http(s)://HOST[:PORT]")));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::bad_input("put no credentials in the server URL: give --username and --password-stdin"));
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        return Err(Error::bad_input(format!("the server URL {url:?} must have no path: give the server's root")));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A client of one server's management API.
pub struct ApiClient {
    base: String,
    auth: Auth,
    http: reqwest::Client,
}

enum Auth {
    Token(Secret),
    Basic(String, Secret),
}

impl ApiClient {
    /// A client with the stored login for `server` (or the default server's).
    pub fn from_login(server: Option<&str>) -> Result<Self> {
        let logins = Logins::load()?;
        let base = match server {
            Some(url) => normalize_url(url)?,
            None => logins.default.clone().ok_or_else(|| Error::bad_input("no server: run `regbridge login URL`"))?,
        };
        let login = logins.servers.get(&base).ok_or_else(|| Error::Unauthenticated {
            message: format!("not logged in to {base}: run `regbridge login {base}`"),
        })?;
        if login.expires_at <= Utc::now() {
            return Err(Error::Unauthenticated {
                message: format!("the login to {base} expired at {}: run `regbridge login {base}`", login.expires_at),
            });
        }
        Self::new(base, Auth::Token(login.token.clone()))
    }

    /// A client that logs in with a user name and password (for `regbridge login`).
    pub fn with_password(base: &str, user: &str, password: Secret) -> Result<Self> {
        Self::new(normalize_url(base)?, Auth::Basic(user.to_owned(), password))
    }

    fn new(base: String, auth: Auth) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| Error::internal("HTTP client", e))?;
        Ok(Self { base, auth, http })
    }

    /// The server's URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Token(token) => request.bearer_auth(token.expose()),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password.expose())),
        }
    }

    /// Sends a request and answers the body text of a success; an error answer becomes the error its
    /// status means, with the server's message (so exit codes match the local commands').
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&serde_json::Value>) -> Result<String> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| Error::Upstream {
            provider: self.base.clone(),
            status: None,
            message: format!("cannot reach {}: {}", self.base, e.without_url()),
            source: None,
        })?;
        let status = response.status();
        let text = response.text().await.map_err(|e| Error::internal("read the server's answer", e.without_url()))?;
        if status.is_success() {
            return Ok(text);
        }
        Err(error_from(status.as_u16(), &text, &self.base))
    }

    /// [`send`](Self::send), the answer parsed as JSON.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T> {
        let text = self.send(method, path, body).await?;
        serde_json::from_str(&text).map_err(|e| Error::Upstream {
            provider: self.base.clone(),
            status: None,
            message: format!("the server's answer to {path} is not what this CLI expects ({e}); is it a regbridge server of the same version?"),
            source: None,
        })
    }
}

/// The error an API answer means: the status decides the kind, the body's first message is the text.
fn error_from(status: u16, body: &str, base: &str) -> Error {
    let message = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{base} answered {status}"));
    match status {
        400 | 413 | 422 => Error::bad_input(message),
        401 => Error::Unauthenticated { message },
        403 => Error::Denied { message },
        404 => Error::not_found(Resource::Other, message),
        409 => Error::AlreadyExists { resource: Resource::Other, name: message },
        429 => Error::TooManyRequests { message, retry_after: None },
        _ => Error::Upstream { provider: base.to_owned(), status: Some(status), message, source: None },
    }
}

/// `name` for a URL path, each segment percent-encoded (a name is validated by the server, but a hostile
/// `?` or `#` must not change which endpoint is asked).
pub fn path_segments(name: &str) -> String {
    name.split('/')
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(normalize_url("https://reg.example.com/").unwrap(), "https://reg.example.com");
        assert_eq!(normalize_url("127.0.0.1:5000").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(normalize_url("reg.example.com").unwrap(), "https://reg.example.com");
        assert!(normalize_url("https://u:p@reg.example.com").unwrap_err().to_string().contains("no credentials"));
        assert!(normalize_url("ftp://reg.example.com").is_err());
        assert!(normalize_url("https://reg.example.com/v2/").is_err());
        assert_eq!(path_segments("team/a?b#c"), "team/a%3Fb%23c");
    }

    #[test]
    fn errors_keep_the_servers_message_and_kind() {
        let body = r#"{"errors":[{"code":"NOT_FOUND","message":"repository team/x not found"}]}"#;
        let err = error_from(404, body, "http://h");
        assert_eq!(crate::cli::exit_code(&err), 3);
        assert!(err.to_string().contains("team/x"));
        assert_eq!(crate::cli::exit_code(&error_from(403, "", "http://h")), 4);
    }
}
