//! [`GarRegistryBuilder`]: Artifact Registry settings from the environment or `with_*` calls, validated at
//! `build()`.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use google_cloud_auth::credentials::Credentials as GoogleCredentials;
use regbridge::{AuthMethod, Credentials, Error, Permissions, Result};
use url::Url;

use super::client::GarApi;
use super::credential::ReadCredentials;
use super::{GarRegistry, credential};
use crate::http::{Backoff, ClientOptions, RestClient, TokenCache, UpstreamClient};

/// The Artifact Registry API.
pub const DEFAULT_API_ENDPOINT: &str = "https://artifactregistry.googleapis.com";
/// The IAM Credentials API.
pub const DEFAULT_IAM_CREDENTIALS_ENDPOINT: &str = "https://iamcredentials.googleapis.com";
/// How long a long-running operation (repository creation, image deletion) is waited for by default.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds a [`GarRegistry`].
///
/// Settings come from [`from_env`](Self::from_env) and/or the `with_*` methods; [`build`](Self::build)
/// validates them (errors name the bad setting). The caller's credentials are Application Default
/// Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, the gcloud ADC file, or the metadata server) unless
/// [`with_credentials`](Self::with_credentials) supplies others; nothing is fetched before the first call.
#[derive(Clone, Default)]
pub struct GarRegistryBuilder {
    project: Option<String>,
    location: Option<String>,
    repository: Option<String>,
    pull_service_account: Option<String>,
    push_service_account: Option<String>,
    api_endpoint: Option<String>,
    iam_credentials_endpoint: Option<String>,
    registry_endpoint: Option<String>,
    credentials: Option<GoogleCredentials>,
    options: ClientOptions,
    backoff: Option<Backoff>,
    operation_timeout: Option<Duration>,
}

impl fmt::Debug for GarRegistryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GarRegistryBuilder")
            .field("project", &self.project)
            .field("location", &self.location)
            .field("repository", &self.repository)
            .field("pull_service_account", &self.pull_service_account)
            .field("push_service_account", &self.push_service_account)
            .field("api_endpoint", &self.api_endpoint)
            .field("iam_credentials_endpoint", &self.iam_credentials_endpoint)
            .field("registry_endpoint", &self.registry_endpoint)
            .field("credentials", &self.credentials.as_ref().map(|_| "<custom>"))
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

impl GarRegistryBuilder {
    /// An empty builder: project, location and repository must be set before `build()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Settings from the environment: `REGBRIDGE_GAR_PROJECT` (else `GOOGLE_CLOUD_PROJECT`),
    /// `REGBRIDGE_GAR_LOCATION`, `REGBRIDGE_GAR_REPOSITORY`, `REGBRIDGE_GAR_PULL_SERVICE_ACCOUNT`,
    /// `REGBRIDGE_GAR_PUSH_SERVICE_ACCOUNT`, `REGBRIDGE_GAR_API_ENDPOINT`,
    /// `REGBRIDGE_GAR_IAM_CREDENTIALS_ENDPOINT` and `REGBRIDGE_GAR_REGISTRY_ENDPOINT`.
    pub fn from_env() -> Self {
        Self {
            project: env(&["REGBRIDGE_GAR_PROJECT", "GOOGLE_CLOUD_PROJECT"]),
            location: env(&["REGBRIDGE_GAR_LOCATION"]),
            repository: env(&["REGBRIDGE_GAR_REPOSITORY"]),
            pull_service_account: env(&["REGBRIDGE_GAR_PULL_SERVICE_ACCOUNT"]),
            push_service_account: env(&["REGBRIDGE_GAR_PUSH_SERVICE_ACCOUNT"]),
            api_endpoint: env(&["REGBRIDGE_GAR_API_ENDPOINT"]),
            iam_credentials_endpoint: env(&["REGBRIDGE_GAR_IAM_CREDENTIALS_ENDPOINT"]),
            registry_endpoint: env(&["REGBRIDGE_GAR_REGISTRY_ENDPOINT"]),
            ..Self::default()
        }
    }

    /// The project id owning the repository (`my-project`).
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The repository's location (`europe-west1`, `us`).
    pub fn with_location(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The GAR repository id (`images`); it is created as a `DOCKER` repository when missing.
    pub fn with_repository(mut self, repository: impl Into<String>) -> Self {
        self.repository = Some(repository.into());
        self
    }

    /// The service account whose tokens are minted for `Pull` credentials.
    pub fn with_pull_service_account(mut self, email: impl Into<String>) -> Self {
        self.pull_service_account = Some(email.into());
        self
    }

    /// The service account whose tokens are minted for `PushPull` credentials.
    pub fn with_push_service_account(mut self, email: impl Into<String>) -> Self {
        self.push_service_account = Some(email.into());
        self
    }

    /// Override of the Artifact Registry API URL (tests, private endpoints). Alias of
    /// [`with_api_endpoint`](Self::with_api_endpoint), named like the other providers' builders.
    pub fn with_endpoint(self, url: impl Into<String>) -> Self {
        self.with_api_endpoint(url)
    }

    /// Override of the Artifact Registry API URL (default `https://artifactregistry.googleapis.com`).
    pub fn with_api_endpoint(mut self, url: impl Into<String>) -> Self {
        self.api_endpoint = Some(url.into());
        self
    }

    /// Override of the IAM Credentials API URL (default `https://iamcredentials.googleapis.com`).
    pub fn with_iam_credentials_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_credentials_endpoint = Some(url.into());
        self
    }

    /// Override of the registry URL (default `https://{location}-docker.pkg.dev`).
    pub fn with_registry_endpoint(mut self, url: impl Into<String>) -> Self {
        self.registry_endpoint = Some(url.into());
        self
    }

    /// The caller's credentials instead of Application Default Credentials (tests inject a fake provider
    /// with `Credentials::from(provider)`).
    pub fn with_credentials(mut self, credentials: GoogleCredentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// Timeouts and attempts of the REST and `/v2/` clients.
    pub fn with_options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// The wait between attempts of throttled or failed calls (tests use short waits).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// How long long-running operations are polled before giving up (default 120 s).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = Some(timeout);
        self
    }

    /// A registry-wide login, as a docker credential helper hands out (docker asks per host, and a Google
    /// access token is good on every Artifact Registry host): Basic `oauth2accesstoken` / access token.
    ///
    /// - `PushPull`: a token of the push service account (`generateAccessToken`, lifetime the TTL clamped
    ///   to 1..=3600 s, expiring at its `expireTime`); without one, the caller's own token, taken to live
    ///   [`CALLER_TOKEN_LIFETIME`](super::credential::CALLER_TOKEN_LIFETIME) at most (its expiry is not
    ///   reported).
    /// - `Pull`: a token of the pull service account, and nothing else: a token carries every permission of
    ///   its principal and Google cannot narrow one to pulls, so without a pull service account this is
    ///   refused (`InvalidInput`) rather than answered with a token that can push.
    ///
    /// Only the service accounts, the IAM Credentials endpoint, the credentials and the client options are
    /// used (no project, location or repository is needed).
    pub async fn registry_credentials(self, permissions: Permissions, ttl: Duration) -> Result<Credentials> {
        let email = match permissions {
            Permissions::Pull => Some(self.pull_service_account.clone().ok_or_else(|| {
                Error::bad_input(
                    "a pull-only GAR login needs a pull service account (one with roles/artifactregistry.reader \
                     only): an access token carries every permission of its principal, and Google cannot narrow \
                     it to pulls; set it (pull_service_account in [[helper.hosts]], with_pull_service_account), \
                     or ask without pull-only",
                )
            })?),
            Permissions::PushPull => self.push_service_account.clone(),
        };
        let iam = url_setting(
            "IAM Credentials endpoint",
            self.iam_credentials_endpoint.as_deref().unwrap_or(DEFAULT_IAM_CREDENTIALS_ENDPOINT),
        )?;
        let api = url_setting("API endpoint", self.api_endpoint.as_deref().unwrap_or(DEFAULT_API_ENDPOINT))?;
        let mut rest = RestClient::new(super::PROVIDER, &self.options)?;
        if let Some(b) = self.backoff {
            rest = rest.with_backoff(b);
        }
        // Only IAM Credentials calls and the caller's own token are used: no repository is named.
        let api = GarApi::new(rest, caller_credentials(self.credentials)?, api, iam, "-", "-", "-");
        let (password, expires_at) = match email {
            Some(email) => api.generate_access_token(&email, credential::lifetime_secs(ttl)).await?,
            None => {
                let lifetime = ttl.min(credential::CALLER_TOKEN_LIFETIME);
                (api.caller_token().await?.0, Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or_default())
            }
        };
        Ok(Credentials { auth_method: AuthMethod::Basic, username: credential::USERNAME.into(), password, expires_at })
    }

    /// Validates the settings and builds the provider. No request is made.
    pub fn build(self) -> Result<GarRegistry> {
        let project = required("project", self.project, "with_project or REGBRIDGE_GAR_PROJECT")?;
        if !valid_project(&project) {
            return Err(Error::bad_input(format!(
                "GAR project {project:?} is not a project id (6 to 30 lowercase letters, digits and hyphens, \
                 starting with a letter)"
            )));
        }
        let location = required("location", self.location, "with_location or REGBRIDGE_GAR_LOCATION")?;
        if !valid_location(&location) {
            return Err(Error::bad_input(format!("GAR location {location:?} is not a location like europe-west1")));
        }
        let repository = required("repository", self.repository, "with_repository or REGBRIDGE_GAR_REPOSITORY")?;
        if !valid_repository(&repository) {
            return Err(Error::bad_input(format!(
                "GAR repository {repository:?} is not a repository id (up to 63 lowercase letters, digits and \
                 hyphens, starting with a letter)"
            )));
        }
        for (setting, email) in
            [("pull service account", &self.pull_service_account), ("push service account", &self.push_service_account)]
        {
            if let Some(email) = email
                && !(email.contains('@') && email.contains('.') && !email.contains(['/', ':', ' ']))
            {
                return Err(Error::bad_input(format!(
                    "GAR {setting} {email:?} is not a service account e-mail like \
                     puller@{project}.iam.gserviceaccount.com"
                )));
            }
        }
        let api = url_setting("API endpoint", self.api_endpoint.as_deref().unwrap_or(DEFAULT_API_ENDPOINT))?;
        let iam = url_setting(
            "IAM Credentials endpoint",
            self.iam_credentials_endpoint.as_deref().unwrap_or(DEFAULT_IAM_CREDENTIALS_ENDPOINT),
        )?;
        let registry = match &self.registry_endpoint {
            Some(u) => url_setting("registry endpoint", u)?,
            None => url_setting("registry endpoint", &format!("https://{location}-docker.pkg.dev"))?,
        };
        if registry.path() != "/" || registry.query().is_some() {
            return Err(Error::bad_input(format!("GAR registry endpoint {registry} must have no path or query")));
        }
        let caller = caller_credentials(self.credentials)?;
        let mut rest = RestClient::new(super::PROVIDER, &self.options)?;
        if let Some(b) = self.backoff {
            rest = rest.with_backoff(b);
        }
        let api = Arc::new(GarApi::new(rest, caller, api, iam, &project, &location, &repository));
        let display = format!("Gar({project}/{location}/{repository})");
        let read = ReadCredentials {
            api: api.clone(),
            email: self.pull_service_account.clone().or_else(|| self.push_service_account.clone()),
            cache: TokenCache::new(),
        };
        let mut data = UpstreamClient::new(registry.clone(), display.clone(), Arc::new(read), self.options)?;
        if let Some(b) = self.backoff {
            data = data.with_backoff(b);
        }
        Ok(GarRegistry {
            project,
            location,
            repository,
            display,
            pull_service_account: self.pull_service_account,
            push_service_account: self.push_service_account,
            registry_endpoint: registry.as_str().trim_end_matches('/').to_owned(),
            api,
            data,
            operation_timeout: self.operation_timeout.unwrap_or(DEFAULT_OPERATION_TIMEOUT),
            pending: Mutex::new(HashSet::new()),
        })
    }
}

/// The given credentials, else Application Default Credentials.
fn caller_credentials(given: Option<GoogleCredentials>) -> Result<GoogleCredentials> {
    match given {
        Some(c) => Ok(c),
        None => google_cloud_auth::credentials::Builder::default().build().map_err(|e| Error::Unauthenticated {
            message: format!(
                "cannot load Google Application Default Credentials: {e}; run `gcloud auth application-default \
                 login` or set GOOGLE_APPLICATION_CREDENTIALS"
            ),
        }),
    }
}

fn required(setting: &str, value: Option<String>, how: &str) -> Result<String> {
    let value = value.map(|v| v.trim().to_owned()).unwrap_or_default();
    if value.is_empty() {
        return Err(Error::bad_input(format!("GAR {setting} is not set: call {how}")));
    }
    Ok(value)
}

fn url_setting(setting: &str, url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| Error::bad_input(format!("GAR {setting} {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::bad_input(format!("GAR {setting} {url:?} must be an http or https URL with a host")));
    }
    Ok(parsed)
}

fn lower_alnum_hyphen(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_project(p: &str) -> bool {
    (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && lower_alnum_hyphen(p)
}

fn valid_location(l: &str) -> bool {
    !l.is_empty() && l.starts_with(|c: char| c.is_ascii_lowercase()) && !l.ends_with('-') && lower_alnum_hyphen(l)
}

fn valid_repository(r: &str) -> bool {
    (1..=63).contains(&r.len())
        && r.starts_with(|c: char| c.is_ascii_lowercase())
        && !r.ends_with('-')
        && !r.contains("--")
        && lower_alnum_hyphen(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_names() {
        assert!(valid_project("my-project-123") && !valid_project("short") && !valid_project("My-Project"));
        assert!(valid_location("europe-west1") && valid_location("us") && !valid_location("Europe"));
        assert!(valid_repository("images") && !valid_repository("1images") && !valid_repository("a_b"));
    }

    #[test]
    fn from_env_reads_the_documented_variables() {
        let vars = [
            ("REGBRIDGE_GAR_PROJECT", "env-project"),
            ("REGBRIDGE_GAR_LOCATION", "us-central1"),
            ("REGBRIDGE_GAR_REPOSITORY", "env-images"),
            ("REGBRIDGE_GAR_PULL_SERVICE_ACCOUNT", "pull@env-project.iam.gserviceaccount.com"),
            ("REGBRIDGE_GAR_PUSH_SERVICE_ACCOUNT", "push@env-project.iam.gserviceaccount.com"),
            ("REGBRIDGE_GAR_API_ENDPOINT", "http://127.0.0.1:1"),
            ("REGBRIDGE_GAR_IAM_CREDENTIALS_ENDPOINT", "http://127.0.0.1:2"),
            ("REGBRIDGE_GAR_REGISTRY_ENDPOINT", "http://127.0.0.1:3"),
        ];
        // SAFETY: no other test of this binary reads or writes these REGBRIDGE_GAR_* variables.
        unsafe {
            for (k, v) in vars {
                std::env::set_var(k, v);
            }
        }
        let b = GarRegistryBuilder::from_env();
        unsafe {
            for (k, _) in vars {
                std::env::remove_var(k);
            }
        }
        assert_eq!(b.project.as_deref(), Some("env-project"));
        assert_eq!(b.location.as_deref(), Some("us-central1"));
        assert_eq!(b.repository.as_deref(), Some("env-images"));
        assert_eq!(b.pull_service_account.as_deref(), Some("pull@env-project.iam.gserviceaccount.com"));
        assert_eq!(b.push_service_account.as_deref(), Some("push@env-project.iam.gserviceaccount.com"));
        assert_eq!(b.api_endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(b.iam_credentials_endpoint.as_deref(), Some("http://127.0.0.1:2"));
        assert_eq!(b.registry_endpoint.as_deref(), Some("http://127.0.0.1:3"));
    }
}
