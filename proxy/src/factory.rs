//! Building any provider from the route configuration the server uses, or from a URL.
//!
//! This is the one code path from configuration to provider: `regbridge serve` builds its routing table
//! with it ([`crate::server::build_routes`]), and a control plane calls it to get the same provider the
//! server would use, without copying the server's glue.
//!
//! ```no_run
//! # async fn demo() -> regbridge::Result<()> {
//! use regbridge_proxy::factory::{self, ProviderUrl};
//!
//! // From a URL: account 123456789012, region us-east-1, repositories under team/.
//! let ecr = factory::provider_from_url("ecr://123456789012/us-east-1/team", "").await?;
//! // From the same `[[routes]]` table `regbridge serve --config` reads.
//! let config = regbridge_proxy::config_file::FileConfig::parse(
//!     "[[routes]]\nprovider = \"generic\"\nregistry = \"https://registry.example.com\"",
//! )?;
//! let generic = factory::provider(&config.routes[0]).await?;
//! // The embedded registry of a server's data directory, reachable at its public URL.
//! let local = factory::local_provider(std::path::Path::new("/var/lib/regbridge"), "https://registry.example.com")?;
//! # let _ = (ecr, generic, local, "local:///x".parse::<ProviderUrl>());
//! # Ok(()) }
//! ```
//!
//! Credentials never go in the configuration URL: ECR's come from the standard AWS chain (`AWS_*`
//! variables, profiles, instance roles), GAR's from Application Default Credentials, ACR's from Entra ID
//! (`AZURE_*` variables, managed or workload identity), and a generic registry's from `username` and
//! `password_env` in its route.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use regbridge::{DynArtifactRegistry, Error, Result};
use regbridge_providers::generic::{GenericRegistry, GenericRegistryBuilder};
use regbridge_providers::http::ClientOptions;
use regbridge_providers::local::{LocalRegistry, TokenSigner};

use crate::config_file::RouteConfig;

/// Where credentials come from, for the error refusing them in a URL.
const CREDENTIALS_HELP: &str = "credentials do not go in the URL: ECR takes the standard AWS chain (AWS_* \
     variables, profiles, instance roles), GAR Application Default Credentials, ACR Entra ID (AZURE_* \
     variables, managed or workload identity), and a generic registry username and password_env in its \
     [[routes]] entry";

/// The provider of `route`, for every provider but `local` (whose repositories live in a data directory:
/// see [`local_provider`]) and generic routes to a registry connection (stored in the server's database).
///
/// Cloud providers load credentials and may look up their account, hence `async`.
pub async fn provider(route: &RouteConfig) -> Result<DynArtifactRegistry> {
    match route.provider.as_str() {
        "generic" => Ok(Arc::new(generic(route)?)),
        "ecr" | "gar" | "acr" => crate::cloud::provider(route).await,
        "local" => Err(Error::bad_input(
            "a local route's provider lives in a data directory: use factory::local_provider(DATA_DIR, URL)",
        )),
        other => Err(Error::bad_input(format!("unknown provider {other:?}; use local, generic, ecr, gar or acr"))),
    }
}

/// The provider a URL names (see [`ProviderUrl`]); `local_endpoint` is the URL clients reach a `local:`
/// registry at (ignored for the other schemes).
pub async fn provider_from_url(url: &str, local_endpoint: &str) -> Result<DynArtifactRegistry> {
    match url.parse::<ProviderUrl>()? {
        ProviderUrl::Local { data_dir } => Ok(Arc::new(local_provider(&data_dir, local_endpoint)?)),
        ProviderUrl::Route(route) => provider(&route).await,
    }
}

/// The embedded registry of the server data directory `data_dir` (`storage/` and `signing.key`), reachable
/// at `endpoint`. Credentials it mints are signed with the server's key, so that server accepts them.
///
/// Only `regbridge serve` creates a data directory: a directory without `signing.key` is an error here,
/// not a new key whose credentials the server would reject.
pub fn local_provider(data_dir: &Path, endpoint: &str) -> Result<LocalRegistry> {
    let path = data_dir.join("signing.key");
    let signer = match std::fs::read(&path) {
        Ok(key) => TokenSigner::new(&key)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::bad_input(format!(
                "{} is not a regbridge data directory (it has no signing.key): give the server's data directory; \
                 only `regbridge serve` creates one",
                data_dir.display()
            )));
        }
        Err(e) => return Err(Error::internal(format!("read signing key {}", path.display()), e)),
    };
    let storage = crate::storage_config::open_storage(
        &crate::storage_config::StorageConfig::default(),
        data_dir,
        regbridge_providers::local::fs::DEFAULT_UPLOAD_EXPIRY,
    )?;
    Ok(LocalRegistry::new(storage, signer, endpoint))
}

/// The upstream client options of a route (its `idle_timeout`).
pub(crate) fn client_options(r: &RouteConfig) -> ClientOptions {
    let mut options = ClientOptions::default();
    if let Some(timeout) = r.idle_timeout {
        options.idle_timeout = crate::values::at_least_a_second(timeout);
    }
    options
}

/// The provider of a `generic` route with its own `registry` (not a `connection`).
pub fn generic(r: &RouteConfig) -> Result<GenericRegistry> {
    if r.connection.is_some() {
        return Err(Error::bad_input(
            "a route to a registry connection is resolved by the server per request; give registry = \"host[:port]\"",
        ));
    }
    let registry = r
        .registry
        .as_deref()
        .ok_or_else(|| Error::bad_input("a generic route needs registry = \"host[:port]\" or connection = \"NAME\""))?;
    let mut builder =
        GenericRegistryBuilder::new(registry).with_prefix(&r.upstream_prefix).with_options(client_options(r));
    match (&r.username, r.upstream_password()?) {
        (Some(user), Some(password)) => builder = builder.with_credentials(user, password),
        (None, None) => {}
        _ => return Err(Error::bad_input("give both username and password, or neither")),
    }
    builder.build()
}

/// A provider named by a URL:
///
/// | URL | provider |
/// | --- | --- |
/// | `ecr://ACCOUNT/REGION[/prefix]` | ECR in a 12-digit account and a region, repositories under `prefix/` |
/// | `gar://PROJECT/LOCATION/REPOSITORY` | a GAR Docker repository |
/// | `acr://NAME[.azurecr.io][/prefix]` | an ACR registry (subscription and resource group from `REGBRIDGE_ACR_*`) |
/// | `local:///path/to/data` | the embedded registry of a server data directory |
/// | `https://host[:port][/prefix]` (or `http://`) | any OCI registry |
///
/// Parsing is strict: a wrong number of segments, an invalid account id, region or name, a query, a
/// fragment, an unknown scheme or credentials in the URL are errors that say what to write instead.
#[derive(Debug, Clone)]
pub enum ProviderUrl {
    /// `local:///path`: the data directory.
    Local {
        /// The server data directory (`storage/`, `signing.key`).
        data_dir: PathBuf,
    },
    /// Any other scheme: the route `regbridge serve` would have for it, with an empty client prefix.
    Route(Box<RouteConfig>),
}

impl FromStr for ProviderUrl {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self> {
        let shown = redacted(input);
        let bad = |why: String| Error::bad_input(format!("provider URL {shown:?}: {why}"));
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| bad("expected SCHEME://...; schemes: ecr, gar, acr, local, https, http".into()))?;
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed".into()));
        }
        if rest.contains(char::is_whitespace) || rest.contains('%') || rest.chars().any(|c| c.is_control()) {
            return Err(bad("whitespace, control characters and percent-encoding are not allowed".into()));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.contains('@') {
            return Err(bad(CREDENTIALS_HELP.into()));
        }
        let mut route = RouteConfig::local();
        match scheme {
            "local" => {
                let path = rest
                    .strip_prefix('/')
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| bad("write local:///absolute/path/to/data (three slashes, no host)".into()))?;
                return Ok(Self::Local { data_dir: PathBuf::from(format!("/{path}")) });
            }
            "ecr" => ecr(&mut route, rest).map_err(bad)?,
            "gar" => gar(&mut route, rest).map_err(bad)?,
            "acr" => acr(&mut route, rest).map_err(bad)?,
            "https" | "http" => {
                if authority.is_empty() {
                    return Err(bad("the registry host is missing".into()));
                }
                let prefix = rest[authority.len()..].trim_matches('/');
                check_prefix(prefix).map_err(bad)?;
                route.provider = "generic".into();
                route.registry = Some(format!("{scheme}://{authority}"));
                // The upstream client's own check of the host and port, so a bad one is refused now.
                regbridge_providers::generic::normalize_registry_url(&format!("{scheme}://{authority}"))
                    .map_err(|e| bad(e.to_string()))?;
                route.upstream_prefix = prefix.into();
            }
            other => {
                return Err(bad(format!("unknown scheme {other:?}; use ecr, gar, acr, local, https or http")));
            }
        }
        Ok(Self::Route(Box::new(route)))
    }
}

/// `input` with any `user:password@` of its authority replaced, for messages.
fn redacted(input: &str) -> String {
    let (scheme, rest) = input.split_once("://").unwrap_or(("", input));
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://<credentials>{}", &rest[at..]),
        None => input.to_owned(),
    }
}

/// The `/`-separated segments after `scheme://`, none empty.
fn segments(rest: &str) -> std::result::Result<Vec<&str>, String> {
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("empty path segment".into());
    }
    Ok(parts)
}

/// A repository prefix: lowercase OCI path components.
fn check_prefix(prefix: &str) -> std::result::Result<(), String> {
    if prefix.is_empty() {
        return Ok(());
    }
    regbridge::oci::RepositoryName::parse(prefix)
        .map(|_| ())
        .map_err(|_| format!("invalid prefix {prefix:?}: use lowercase letters, digits and . _ - between slashes"))
}

/// `ecr://ACCOUNT/REGION[/prefix...]`.
fn ecr(route: &mut RouteConfig, rest: &str) -> std::result::Result<(), String> {
    let parts = segments(rest)?;
    let [account, region, prefix @ ..] = parts.as_slice() else {
        return Err("write ecr://ACCOUNT/REGION[/prefix] (e.g. ecr://123456789012/us-east-1/team)".into());
    };
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid AWS account id {account:?}: it has 12 digits"));
    }
    let words: Vec<&str> = region.split('-').collect();
    let region_ok = words.len() >= 3
        && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && words.last().is_some_and(|w| w.bytes().all(|b| b.is_ascii_digit()));
    if !region_ok {
        return Err(format!("invalid AWS region {region:?} (e.g. us-east-1)"));
    }
    let prefix = prefix.join("/");
    check_prefix(&prefix)?;
    route.provider = "ecr".into();
    route.account = Some((*account).into());
    route.region = Some((*region).into());
    route.upstream_prefix = prefix;
    Ok(())
}

/// `gar://PROJECT/LOCATION/REPOSITORY`.
fn gar(route: &mut RouteConfig, rest: &str) -> std::result::Result<(), String> {
    let parts = segments(rest)?;
    let [project, location, repository] = parts.as_slice() else {
        return Err(if parts.len() > 3 {
            "a GAR repository is the namespace of its images and takes no prefix: write \
             gar://PROJECT/LOCATION/REPOSITORY"
                .into()
        } else {
            "write gar://PROJECT/LOCATION/REPOSITORY (e.g. gar://my-project/europe-west1/images)".into()
        });
    };
    // Project ids: 6-30 lowercase letters, digits and hyphens, starting with a letter; domain-scoped
    // projects (`example.com:proj`) have a colon.
    let project_ok = (6..=63).contains(&project.len())
        && project.starts_with(|c: char| c.is_ascii_lowercase())
        && project.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b));
    if !project_ok {
        return Err(format!("invalid Google Cloud project id {project:?}"));
    }
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !word(location) {
        return Err(format!("invalid location {location:?} (e.g. europe-west1, us)"));
    }
    if !word(repository) || !repository.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("invalid repository id {repository:?}: lowercase letters, digits and hyphens"));
    }
    route.provider = "gar".into();
    #[cfg(feature = "gar")]
    {
        route.gar = Some(crate::cloud::gar::Settings {
            project: Some((*project).into()),
            location: Some((*location).into()),
            repository: Some((*repository).into()),
            ..Default::default()
        });
    }
    Ok(())
}

/// `acr://NAME[.azurecr.io][/prefix...]`.
fn acr(route: &mut RouteConfig, rest: &str) -> std::result::Result<(), String> {
    let parts = segments(rest)?;
    let (host, prefix) = parts.split_first().ok_or("write acr://NAME[/prefix]")?;
    let name = host.strip_suffix(".azurecr.io").unwrap_or(host);
    // Registry names: 5-50 alphanumeric characters (Azure's rule).
    if !(5..=50).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(format!(
            "invalid ACR registry name {name:?}: 5 to 50 letters and digits (write acr://NAME or acr://NAME.azurecr.io)"
        ));
    }
    let prefix = prefix.join("/");
    check_prefix(&prefix)?;
    route.provider = "acr".into();
    route.upstream_prefix = prefix;
    #[cfg(feature = "acr")]
    {
        route.acr =
            Some(crate::cloud::acr::Settings { registry_name: Some(name.to_ascii_lowercase()), ..Default::default() });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
