//! [`GenericRegistryBuilder`]: the registry URL validated and normalised, credentials, prefix.

use std::net::IpAddr;
use std::sync::Arc;

use regbridge::oci::RepositoryName;
use regbridge::{Error, Result, Secret};
use url::{Host, Url};

use super::GenericRegistry;
use crate::http::{ClientOptions, StaticCredentials, UpstreamClient};

/// Builds a [`GenericRegistry`].
///
/// ```
/// # use regbridge_providers::generic::GenericRegistryBuilder;
/// # use regbridge::Secret;
/// let reg = GenericRegistryBuilder::new("ghcr.io")
///     .with_credentials("robot", Secret::new("token"))
///     .with_prefix("my-org")
///     .build()
///     .unwrap();
/// assert_eq!(reg.to_string(), "Generic(ghcr.io)");
/// ```
#[derive(Debug, Clone)]
pub struct GenericRegistryBuilder {
    url: String,
    credentials: StaticCredentials,
    prefix: String,
    options: ClientOptions,
}

impl GenericRegistryBuilder {
    /// A builder for the registry at `url`: a host (`ghcr.io`, `127.0.0.1:5000`), optionally with its
    /// scheme (`https://myregistry.azurecr.io`, `http://127.0.0.1:5000`). Checked by [`build`](Self::build).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            credentials: StaticCredentials::anonymous(),
            prefix: String::new(),
            options: ClientOptions::default(),
        }
    }

    /// The username and password (or token) to use with the registry. Without them, access is anonymous.
    pub fn with_credentials(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.credentials = StaticCredentials::new(username, password);
        self
    }

    /// The path prefix of this provider's repositories in the registry (`my-org`, `team/apps`).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Timeouts and retries of the upstream client.
    pub fn with_options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Checks the URL and the prefix and builds the provider.
    pub fn build(self) -> Result<GenericRegistry> {
        let url = normalize_registry_url(&self.url)?;
        let prefix = self.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            RepositoryName::parse(&prefix).map_err(|e| {
                Error::bad_input(format!("invalid repository prefix {prefix:?} for registry {url}: {e}"))
            })?;
        }
        let host = display_host(&url);
        let client = UpstreamClient::new(
            url.clone(),
            format!("Generic({host})"),
            Arc::new(self.credentials.clone()),
            self.options,
        )?;
        Ok(GenericRegistry { url, host, prefix, credentials: self.credentials, client })
    }
}

/// Validates and normalises a registry URL as people write it.
///
/// Accepted: `ghcr.io`, `127.0.0.1:5000`, `http://127.0.0.1:5000`, `https://myregistry.azurecr.io`, and a
/// trailing `/`. The scheme defaults to `https`, except for loopback hosts (`127.0.0.0/8`, `localhost`,
/// `[::1]`), which default to `http` as local test registries serve it. Rejected, with a message saying
/// what to write instead: a path (`https://host/path/`, `host/path`: repositories go in the prefix), a
/// query or fragment, user-info (credentials go in `with_credentials`), another scheme, an empty string.
/// The result has no path (`Url` shows it as `/`), a lower-case host and no default port.
pub fn normalize_registry_url(input: &str) -> Result<Url> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(Error::bad_input("the registry URL is empty: write the registry as a host, such as ghcr.io"));
    }
    let (explicit_scheme, rest) = match trimmed.split_once("://") {
        Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
        None => (None, trimmed),
    };
    if let Some(scheme) = &explicit_scheme
        && scheme != "http"
        && scheme != "https"
    {
        return Err(Error::bad_input(format!(
            "the registry URL {input:?} has scheme {scheme:?}: write it as https://host or http://host, or \
             just the host, such as ghcr.io"
        )));
    }
    if rest.trim_matches('/').is_empty() {
        return Err(Error::bad_input(format!("the registry URL {input:?} has no host: write a host such as ghcr.io")));
    }
    // Parsed once as http to find the host, then the scheme is settled from it.
    let mut url = Url::parse(&format!("{}://{rest}", explicit_scheme.as_deref().unwrap_or("http"))).map_err(|e| {
        Error::bad_input(format!("the registry URL {input:?} is not a URL ({e}): write a host such as ghcr.io"))
    })?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    if host.is_empty() {
        return Err(Error::bad_input(format!("the registry URL {input:?} has no host: write a host such as ghcr.io")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::bad_input(format!(
            "write the registry as {authority}, without user name or password in it: give the credentials \
             separately (with_credentials)"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::bad_input(format!(
            "write the registry as {authority}, without a query or fragment: {input:?} has one"
        )));
    }
    if url.path() != "/" {
        let path = url.path().trim_matches('/').to_owned();
        return Err(Error::bad_input(format!(
            "write the registry as {authority}, without a path: {input:?} has the path /{path}; repositories \
             under it go in the route's repository prefix ({path})"
        )));
    }
    if explicit_scheme.is_none() && !is_loopback(&url) {
        url.set_scheme("https").map_err(|_| Error::bad_input(format!("cannot use https for {input:?}")))?;
    }
    Ok(url)
}

/// True for `127.0.0.0/8`, `::1` and `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `host[:port]` as shown in `Display` and errors.
fn display_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_port_443_is_dropped() {
        assert_eq!(normalize_registry_url("https://GHCR.io:443/").unwrap().as_str(), "https://ghcr.io/");
        assert_eq!(normalize_registry_url("ghcr.io:443").unwrap().as_str(), "https://ghcr.io/");
    }
}
