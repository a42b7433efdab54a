//! The routes as they are listed, and their health: one probe per route, the code behind both
//! `regbridge check` (on this host, each route built on its own from the configuration) and
//! `GET /admin/v1/routes?health=true` (in the server, over the routes it serves).
//!
//! What is listed names a route and the registry host it reaches, never a credential: messages are the
//! providers' errors, which hold no secret (the providers' contract), and the advice is ours.

use std::path::Path;
use std::time::Duration;

use regbridge::auth::{Action, Scope};
use regbridge::oci::RepositoryName;
use regbridge::{Error, Resource, Result};
use serde::{Deserialize, Serialize};

use crate::config_file::RouteConfig;
use crate::connections::ConnectionStore;
use crate::routing::{Route, Target, Upstream};

/// One route: what serves which names, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    /// How messages name the route: `route 2 (generic "hub")`.
    pub label: String,
    /// The client-visible repository prefix; empty for the default route.
    pub prefix: String,
    /// `local`, `generic`, `ecr`, `gar` or `acr`.
    pub provider: String,
    /// The registry the route reaches, as `host[:port]`; none for the local registry, or when it is not
    /// known (a registry connection that does not exist, a cloud route that could not be built).
    pub registry: Option<String>,
    /// The registry connection a `generic` route uses, when it uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The route's health, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// The outcome of probing one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Whether the route's control plane and registry answered.
    pub ok: bool,
    /// What answered, or what failed (naming the registry host).
    pub message: String,
    /// What to do about a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

impl RouteStatus {
    /// True unless its health was probed and failed.
    pub fn is_ok(&self) -> bool {
        self.health.as_ref().is_none_or(|h| h.ok)
    }
}

/// What a probe needs besides the route.
pub struct ProbeContext<'a> {
    /// The data directory: the local registry's storage, and where the connections are stored.
    pub data_dir: &'a Path,
    /// The registry connections; `None` when the data directory holds none (a route using one fails).
    pub connections: Option<&'a ConnectionStore>,
    /// How long each route may take.
    pub timeout: Duration,
}

/// The longest a probe may be given through the management API: the routes are probed at the same time, so
/// this bounds the answer's wait too (the CLI waits 120 s for any answer).
pub const MAX_API_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository a check mints credentials for: never pushed to, and named so an operator recognises it.
const PROBE_REPOSITORY: &str = "regbridge-check";

/// The provider of the built `route`, as configured in `configs` (matched by prefix, which is unique).
pub fn provider_of(route: &Route, configs: &[RouteConfig]) -> String {
    match &route.target {
        Target::Local => "local".into(),
        Target::Connection(_) => "generic".into(),
        Target::Upstream(_) => configs
            .iter()
            .find(|c| c.prefix.trim_matches('/') == route.prefix)
            .map_or_else(|| "generic".into(), |c| c.provider.clone()),
    }
}

/// `host[:port]` of a URL.
fn host_of(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => url.as_str().to_owned(),
    }
}

/// `host[:port]` of `address`, a URL or a bare `host[:port]`.
fn host_of_text(address: &str) -> String {
    let with_scheme = if address.contains("://") { address.to_owned() } else { format!("https://{address}") };
    url::Url::parse(&with_scheme).map_or_else(|_| address.to_owned(), |u| host_of(&u))
}

/// The host the configuration of a route that could not be built names: its registry, or for a cloud route
/// the service it had to reach to be built (ECR without an account asks STS whose credentials they are).
fn configured_host(r: &RouteConfig) -> Option<String> {
    if let Some(registry) = &r.registry {
        return Some(host_of_text(registry));
    }
    match (r.provider.as_str(), &r.account, &r.region) {
        ("ecr", Some(account), Some(region)) => return Some(format!("{account}.dkr.ecr.{region}.amazonaws.com")),
        ("ecr", None, _) => {
            let region = r.region.as_deref().unwrap_or("us-east-1");
            return Some(r.endpoint.as_deref().map_or_else(|| format!("sts.{region}.amazonaws.com"), host_of_text));
        }
        _ => {}
    }
    #[cfg(feature = "gar")]
    if r.provider == "gar"
        && let Some(gar) = &r.gar
    {
        if let Some(endpoint) = &gar.registry_endpoint {
            return Some(host_of_text(endpoint));
        }
        if let Some(location) = &gar.location {
            return Some(format!("{location}-docker.pkg.dev"));
        }
    }
    #[cfg(feature = "acr")]
    if r.provider == "acr"
        && let Some(acr) = &r.acr
    {
        if let Some(endpoint) = &acr.registry_endpoint {
            return Some(host_of_text(endpoint));
        }
        if let Some(name) = &acr.registry_name {
            return Some(format!("{name}.azurecr.io"));
        }
    }
    None
}

/// A route of the configuration that could not be built: failed with `err`, the cause named.
pub fn unbuilt(index: usize, r: &RouteConfig, err: &Error) -> RouteStatus {
    let registry = configured_host(r);
    let label = crate::route_build::route_label(index, r);
    let health = failure(&r.provider, registry.as_deref(), err, Some(&label));
    RouteStatus {
        label,
        prefix: r.prefix.trim_matches('/').to_owned(),
        provider: r.provider.clone(),
        health: Some(health),
        registry,
        connection: r.connection.clone(),
    }
}

/// The failed health for `err` on a route of `provider` to `host`: the message names the host. Build errors
/// start with the route's `label`, which the line starts with already.
fn failure(provider: &str, host: Option<&str>, err: &Error, label: Option<&str>) -> Health {
    let mut text = err.to_string();
    if let Some(rest) = label.and_then(|l| text.strip_prefix(&format!("{l}: "))) {
        text = rest.to_owned();
    }
    let message = match host {
        Some(host) if !text.contains(host) => format!("{host}: {text}"),
        _ => text,
    };
    Health { ok: false, message, advice: Some(advice(provider, host, err)) }
}

/// What to do about a failure, by kind and provider (`connection` for a route to a registry connection): the
/// likely cause.
fn advice(provider: &str, host: Option<&str>, err: &Error) -> String {
    let host = host.unwrap_or("the registry");
    let text = match (err, provider) {
        (Error::Unauthenticated { .. }, "ecr") => {
            "the AWS credentials are missing or refused: check AWS_* variables, the profile or the instance role \
             (and username/password_env when the route gives an access key)"
        }
        (Error::Unauthenticated { .. }, "gar") => {
            "Application Default Credentials are missing or refused: check GOOGLE_APPLICATION_CREDENTIALS, \
             `gcloud auth application-default login` or the metadata server"
        }
        (Error::Unauthenticated { .. }, "acr") => {
            "the Entra ID credentials are missing or refused: check AZURE_* variables, or the managed or \
             workload identity"
        }
        (Error::Unauthenticated { .. }, "connection") => {
            "the registry refused the connection's credentials: update them with `regbridge registry update`"
        }
        (Error::Unauthenticated { .. }, _) => {
            "the registry refused the credentials: check the route's username and password (or password_env)"
        }
        (Error::Denied { .. }, "ecr") => {
            "the AWS identity lacks permissions: allow ecr:GetAuthorizationToken and pulls (and sts:AssumeRole on \
             the route's roles)"
        }
        (Error::Denied { .. }, "gar") => {
            "the Google identity lacks permissions: grant roles/artifactregistry.reader on the repository (and \
             token creation on the route's service accounts)"
        }
        (Error::Denied { .. }, "acr") => {
            "the Azure identity lacks permissions: assign AcrPull on the registry (and the rights to manage \
             scope maps and tokens)"
        }
        (Error::Denied { .. }, _) => "grant the route's identity access to the registry, or activate its connection",
        (Error::NotFound { .. }, "ecr") => "check the route's account and region",
        (Error::NotFound { .. }, "gar") => "check the route's project, location and repository",
        (Error::NotFound { .. }, "acr") => "check the route's subscription, resource group and registry name",
        (Error::NotFound { .. }, "connection") => {
            "create the registry connection, or name an existing one in the route's `connection =`"
        }
        (Error::NotFound { .. }, _) => "check the registry and the route's upstream_prefix",
        // A cloud route that cannot be built failed to load its credentials or to reach its control plane.
        (Error::InvalidInput { .. }, "ecr") => {
            "check the route's region and account, and the AWS credentials (AWS_* variables, profile, instance \
             role): without an account, building the route asks STS whose credentials they are"
        }
        (Error::InvalidInput { .. }, "gar") => {
            "check the route's project, location and repository, and Application Default Credentials \
             (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, the metadata server)"
        }
        (Error::InvalidInput { .. }, "acr") => {
            "check the route's subscription, resource group and registry name, and the Entra ID credentials \
             (AZURE_* variables, managed or workload identity)"
        }
        (Error::InvalidInput { .. }, _) => "fix the route's settings",
        (Error::Upstream { status: None, .. }, _) => {
            return format!("check that {host} is the registry and is reachable from here (DNS, firewall, proxy)");
        }
        (Error::Upstream { status: Some(_), .. }, _) => {
            return format!("{host} is failing: see its status, and retry later");
        }
        _ => "see the message",
    };
    text.to_owned()
}

/// The listing of the built `route` (no health): the registry it reaches, looked up in `connections` for a
/// route to a registry connection.
pub async fn describe(route: &Route, provider: &str, connections: Option<&ConnectionStore>) -> RouteStatus {
    let (registry, connection) = match &route.target {
        Target::Local => (None, None),
        Target::Upstream(upstream) => (Some(host_of(upstream.client.base_url())), None),
        Target::Connection(c) => {
            let registry = match connections {
                Some(store) => {
                    let name = c.name().to_owned();
                    store.run(move |s| s.find_by_name(&name)).await.ok().flatten().map(|found| found.registry)
                }
                None => None,
            };
            (registry, Some(c.name().to_owned()))
        }
    };
    RouteStatus {
        label: route.label.clone(),
        prefix: route.prefix.trim_matches('/').to_owned(),
        provider: provider.to_owned(),
        registry,
        connection,
        health: None,
    }
}

/// The built `route` with its health: its registry reached within the context's timeout.
pub async fn check(route: &Route, provider: &str, ctx: &ProbeContext<'_>) -> RouteStatus {
    let mut status = describe(route, provider, ctx.connections).await;
    let outcome = match tokio::time::timeout(ctx.timeout, probe(&route.target, ctx)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Upstream {
            provider: route.label.clone(),
            status: None,
            message: format!("no answer within {} s", ctx.timeout.as_secs()),
            source: None,
        }),
    };
    status.health = Some(match outcome {
        Ok(what) => Health { ok: true, message: what, advice: None },
        Err(err) => {
            // A connection's failures have their own causes (missing, inactive, its stored credentials).
            let kind = if matches!(route.target, Target::Connection(_)) { "connection" } else { provider };
            failure(kind, status.registry.as_deref(), &err, None)
        }
    });
    status
}

/// Reaches one route. An upstream: its `/v2/` endpoint through the route's own client, asking for pull
/// access to a probe repository; a cloud route's client mints credentials for it first (STS, IAM
/// Credentials, an ACR token), so the control plane is reached too, and whatever was minted is cleaned up
/// afterwards. A route to a registry connection: the same, with the upstream built from the stored
/// connection, which must exist and be active.
async fn probe(target: &Target, ctx: &ProbeContext<'_>) -> Result<String> {
    match target {
        Target::Local if ctx.data_dir.join("signing.key").is_file() => {
            Ok(format!("local storage in {}", ctx.data_dir.display()))
        }
        Target::Local => Ok(format!(
            "local storage in {}, which `regbridge serve` creates on its first start",
            ctx.data_dir.display()
        )),
        Target::Upstream(upstream) => ping(upstream).await,
        Target::Connection(route) => {
            let Some(store) = ctx.connections else {
                return Err(Error::not_found(
                    Resource::Other,
                    format!(
                        "registry connection {:?}, which this route uses: {} holds no registry connections; \
                         create it with `regbridge registry add --name {} --registry HOST ...`",
                        route.name(),
                        ctx.data_dir.display(),
                        route.name()
                    ),
                ));
            };
            let upstream = route.upstream(store).await?;
            ping(&upstream).await.map(|what| format!("{what} with the registry connection {:?}", route.name()))
        }
    }
}

/// `/v2/` of `upstream` with pull access to the probe repository.
async fn ping(upstream: &Upstream) -> Result<String> {
    let prefix = upstream.provider.upstream_repository_prefix();
    let prefix = prefix.trim_matches('/');
    let repository =
        if prefix.is_empty() { PROBE_REPOSITORY.to_owned() } else { format!("{prefix}/{PROBE_REPOSITORY}") };
    let scope = Scope::for_action(RepositoryName::parse(&repository)?, Action::Pull);
    let reached = upstream.client.ping(&[scope]).await;
    if let Err(err) = upstream.provider.cleanup_credentials(&repository).await {
        tracing::warn!(error = %err, "could not clean up the check's credentials");
    }
    reached.map(|()| format!("{} answered /v2/", upstream.client.base_url()))
}

/// Every route of `configs`, each built on its own, with its health: a route that cannot be built fails
/// alone, with its error. Routes are built and probed at the same time, each within the context's
/// timeout, so the whole check takes about one timeout however many routes hang. Routes that cannot be
/// served together (duplicate or nested prefixes) add one failed entry, `routing table`.
pub async fn check_configured(configs: &[RouteConfig], ctx: &ProbeContext<'_>) -> Vec<RouteStatus> {
    if configs.is_empty() {
        let table = crate::routing::RoutingTable::local_only();
        return vec![check(&table.routes()[0], "local", ctx).await];
    }
    let each = configs.iter().enumerate().map(|(i, r)| async move {
        let built =
            tokio::time::timeout(ctx.timeout, crate::route_build::build_route(i, r)).await.unwrap_or_else(|_| {
                Err(Error::Upstream {
                    provider: r.provider.clone(),
                    status: None,
                    message: format!("building the route took more than {} s", ctx.timeout.as_secs()),
                    source: None,
                })
            });
        match built {
            Ok(route) => (check(&route, &r.provider, ctx).await, Some(route)),
            Err(err) => (unbuilt(i, r, &err), None),
        }
    });
    let (mut out, built): (Vec<RouteStatus>, Vec<Option<Route>>) =
        futures_util::future::join_all(each).await.into_iter().unzip();
    if let Err(err) = crate::routing::RoutingTable::new(built.into_iter().flatten().collect()) {
        out.push(RouteStatus {
            label: "routing table".into(),
            prefix: String::new(),
            provider: String::new(),
            registry: None,
            connection: None,
            health: Some(Health { ok: false, message: err.to_string(), advice: Some(advice("", None, &err)) }),
        });
    }
    out
}

/// Every route of `routes` (a server's, built), with its health when `health`; probed at the same time.
pub async fn check_built(
    routes: &crate::routing::RoutingTable,
    configs: &[RouteConfig],
    ctx: &ProbeContext<'_>,
    health: bool,
) -> Vec<RouteStatus> {
    // In the configuration's order, as `check_configured` answers (the table is longest prefix first).
    let mut ordered: Vec<&Route> = routes.routes().iter().collect();
    ordered.sort_by_key(|r| configs.iter().position(|c| c.prefix.trim_matches('/') == r.prefix));
    let each = ordered.into_iter().map(|route| async move {
        let provider = provider_of(route, configs);
        if health { check(route, &provider, ctx).await } else { describe(route, &provider, ctx.connections).await }
    });
    futures_util::future::join_all(each).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(toml: &str) -> RouteConfig {
        crate::config_file::FileConfig::parse(toml).unwrap().routes.remove(0)
    }

    #[test]
    fn a_route_that_cannot_be_built_names_its_host_once_and_the_cause() {
        let r = route("[[routes]]\nprefix = \"hub/\"\nprovider = \"generic\"\nregistry = \"http://reg.example:5001/\"");
        let err = Error::bad_input(format!(
            "{}: password_env names X, which is not set",
            crate::route_build::route_label(1, &r)
        ));
        let status = unbuilt(1, &r, &err);
        assert_eq!(status.label, "route 2 (generic \"hub/\")");
        assert_eq!(status.prefix, "hub");
        assert_eq!(status.registry.as_deref(), Some("reg.example:5001"));
        let health = status.health.unwrap();
        assert!(!health.ok);
        assert_eq!(health.message, "reg.example:5001: password_env names X, which is not set");
        assert_eq!(health.advice.as_deref(), Some("fix the route's settings"));
    }

    #[test]
    fn cloud_hosts_come_from_the_configuration() {
        let ecr = route("[[routes]]\nprovider = \"ecr\"\naccount = \"123456789012\"\nregion = \"eu-west-1\"");
        assert_eq!(configured_host(&ecr).as_deref(), Some("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
        let sts = route("[[routes]]\nprovider = \"ecr\"\nregion = \"eu-west-1\"");
        assert_eq!(configured_host(&sts).as_deref(), Some("sts.eu-west-1.amazonaws.com"));
        let gar = route(
            "[[routes]]\nprovider = \"gar\"\n[routes.gar]\nproject = \"p\"\nlocation = \"europe-west1\"\nrepository = \"r\"",
        );
        assert_eq!(configured_host(&gar).as_deref(), Some("europe-west1-docker.pkg.dev"));
        assert_eq!(configured_host(&route("[[routes]]\nprovider = \"local\"")), None);
    }

    #[test]
    fn advice_names_the_likely_cause_per_provider() {
        let unauthenticated = Error::Unauthenticated { message: "no".into() };
        assert!(advice("ecr", None, &unauthenticated).contains("AWS credentials"));
        assert!(advice("gar", None, &unauthenticated).contains("Application Default Credentials"));
        assert!(advice("acr", None, &unauthenticated).contains("Entra ID"));
        assert!(advice("connection", None, &unauthenticated).contains("registry update"));
        let missing = Error::not_found(Resource::Other, "connection");
        assert!(advice("connection", None, &missing).contains("create the registry connection"));
        let unreachable = Error::Upstream { provider: "p".into(), status: None, message: "m".into(), source: None };
        assert!(advice("generic", Some("reg.example"), &unreachable).contains("reg.example is the registry"));
    }
}
