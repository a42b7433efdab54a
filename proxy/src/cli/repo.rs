//! `regbridge repo create|get|delete NAME` and `regbridge repo list`.

use regbridge::{DynArtifactRegistry, Error, Page, Result};
use serde::Serialize;

use super::backend::Backend;
use super::context::{ConfigArgs, local_registry};
use super::output::{OutputArgs, Row, print_list};
use super::print_json;
use crate::config::ServeConfig;
use crate::routing::{Route, RoutingTable, Target};

/// Repository commands.
#[derive(clap::Subcommand)]
pub enum RepoCommand {
    /// Create NAME (idempotent: an existing repository is returned unchanged). Prints the repository.
    Create(RepoArgs),
    /// Print the repository NAME as JSON; exit code 3 when it does not exist.
    Get(RepoArgs),
    /// Delete NAME and everything in it.
    Delete(RepoArgs),
    /// List the repositories of every route, by client-visible name (the route's prefix mapped back):
    /// route by route, longest prefix first, each in its provider's order.
    List(ListArgs),
}

/// The flags of `repo list`.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Only names starting with this client-visible prefix (`team/`).
    #[arg(long)]
    prefix: Option<String>,
    /// Print at most this many repositories.
    #[arg(long)]
    limit: Option<u32>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    config: ConfigArgs,
}

/// A repository as `repo list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRepository {
    /// The client-visible name.
    pub name: String,
    /// Where clients pull from, without scheme.
    pub uri: String,
    /// When it was created, where the provider knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The route serving it (its label).
    pub route: String,
}

impl Row for ListedRepository {
    fn headers() -> &'static [&'static str] {
        &["name", "uri", "created", "route"]
    }
    fn cells(&self) -> Vec<String> {
        let created = self.created_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).unwrap_or_default();
        vec![self.name.clone(), self.uri.clone(), created, self.route.clone()]
    }
}

/// One page of one route's listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteRepositoryPage {
    /// The repositories, by client-visible name.
    pub repositories: Vec<ListedRepository>,
    /// The token for the route's next page, `None` on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The upstream prefix to list for the client-visible `prefix` on `route`: `Some(None)` for the whole
/// route, `Some(Some(p))` for names starting with `p` at the provider, `None` when no name of the route
/// can start with `prefix`.
fn upstream_prefix(route: &Route, provider_prefix: &str, prefix: Option<&str>) -> Option<Option<String>> {
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
        return Some(None);
    };
    let rest = if route.prefix.is_empty() {
        prefix
    } else if let Some(rest) = prefix.strip_prefix(route.prefix.as_str()) {
        match rest.strip_prefix('/') {
            Some(rest) => rest,
            // `team` (or `team` + nothing) covers the route `team`; `teamx` covers none of it.
            None if rest.is_empty() => return Some(None),
            None => return None,
        }
    } else if route.prefix.starts_with(prefix) {
        // `te` covers every name of the route `team`.
        return Some(None);
    } else {
        return None;
    };
    let provider_prefix = provider_prefix.trim_matches('/');
    Some(Some(if provider_prefix.is_empty() { rest.to_owned() } else { format!("{provider_prefix}/{rest}") }))
}

/// One page of the repositories of route `index` of `routes` whose client-visible name starts with
/// `prefix`, by client-visible name. Names the route's provider holds that another route serves (a local
/// repository under a cloud route's prefix) are left out, so each repository is listed once, under the
/// route a client reaches it through. A route to a registry connection is `Unsupported`.
pub async fn list_route_repositories(
    config: &ServeConfig,
    routes: &RoutingTable,
    index: usize,
    prefix: Option<&str>,
    page: Page,
) -> Result<RouteRepositoryPage> {
    let route = routes.routes().get(index).ok_or_else(|| Error::bad_input(format!("there is no route {index}")))?;
    let provider: DynArtifactRegistry = match &route.target {
        Target::Local => std::sync::Arc::new(local_registry(config)?),
        Target::Upstream(upstream) => upstream.provider.clone(),
        Target::Connection(_) => {
            return Err(Error::unsupported("listing the repositories of a registry connection", &route.label));
        }
    };
    let upstream = match route.target {
        // Local names are client-visible names already: the route's prefix is part of them.
        Target::Local => prefix.filter(|p| !p.is_empty()).map(str::to_owned),
        _ => match upstream_prefix(route, &provider.upstream_repository_prefix(), prefix) {
            Some(upstream) => upstream,
            None => return Ok(RouteRepositoryPage::default()),
        },
    };
    let found = provider.list_repositories(upstream.as_deref(), page).await?;
    let repositories = found
        .repositories
        .into_iter()
        .filter_map(|r| {
            let name = RoutingTable::client_name(route, &r.name)?;
            let parsed = regbridge::oci::RepositoryName::parse(&name).ok()?;
            let served_here = routes.resolve(&parsed).is_ok_and(|resolved| resolved.index == index);
            let wanted = prefix.is_none_or(|p| name.starts_with(p));
            (served_here && wanted).then(|| ListedRepository {
                name,
                uri: r.uri,
                created_at: r.created_at,
                route: route.label.clone(),
            })
        })
        .collect();
    Ok(RouteRepositoryPage { repositories, next: found.next })
}

/// Every route's repositories, following each route's pages, until `limit` are found. A route that cannot
/// list (a registry connection, a provider without listing) is named on stderr and skipped; any other
/// failure fails the command, since a partial listing would look complete.
async fn list_all(config: &ServeConfig, prefix: Option<&str>, limit: Option<u32>) -> Result<Vec<ListedRepository>> {
    let routes = crate::server::build_routes(&config.routes).await?;
    let mut out = Vec::new();
    let wanted = limit.map(|l| l as usize);
    for index in 0..routes.routes().len() {
        let mut page = Page::default();
        loop {
            if wanted.is_some_and(|w| out.len() >= w) {
                return Ok(out);
            }
            page.limit = wanted.map(|w| (w - out.len()) as u32);
            let found = match list_route_repositories(config, &routes, index, prefix, page.clone()).await {
                Err(Error::Unsupported { .. }) => {
                    eprintln!("note: {} cannot list its repositories; skipped", routes.routes()[index].label);
                    break;
                }
                other => other?,
            };
            out.extend(found.repositories);
            match found.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
    }
    if let Some(w) = wanted {
        out.truncate(w);
    }
    Ok(out)
}

/// A repository and the configuration that routes it.
#[derive(clap::Args)]
pub struct RepoArgs {
    /// The client-visible repository name (`team/app`); the route serving it decides the provider.
    name: String,
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs a repository command.
pub async fn run(command: RepoCommand) -> Result<()> {
    match command {
        RepoCommand::Create(args) => {
            print_json(&Backend::select(&args.config).await?.create_repository(&args.name).await?);
        }
        RepoCommand::Get(args) => {
            print_json(&Backend::select(&args.config).await?.get_repository(&args.name).await?);
        }
        RepoCommand::Delete(args) => {
            let at = Backend::select(&args.config).await?.delete_repository(&args.name).await?;
            eprintln!("deleted {} ({at})", args.name);
        }
        RepoCommand::List(args) => {
            let listed = list_all(&args.config.load()?, args.prefix.as_deref(), args.limit).await?;
            print_list(&listed, args.output.output);
        }
    }
    Ok(())
}
