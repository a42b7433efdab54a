//! Listing repositories across the routes, by client-visible name, in pages: `regbridge repo list` and
//! `GET /admin/v1/repositories`.

use regbridge::{DynArtifactRegistry, Error, Page, Result};
use serde::{Deserialize, Serialize};

use super::Manager;
use crate::routing::{Route, RoutingTable, Target};

/// A repository as `repo list` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// One page of the listing over every route: `next` continues it (`ROUTE:TOKEN`, opaque to callers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListPage {
    /// The repositories.
    #[schema(value_type = Vec<Object>)]
    pub repositories: Vec<ListedRepository>,
    /// The cursor of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl Manager<'_> {
    /// One page of the repositories of route `index` whose client-visible name starts with
    /// `prefix`, by client-visible name. Names the route's provider holds that another route serves (a local
    /// repository under a cloud route's prefix) are left out, so each repository is listed once, under the
    /// route a client reaches it through. A route to a registry connection is `Unsupported`.
    pub async fn list_route(&self, index: usize, prefix: Option<&str>, page: Page) -> Result<RouteRepositoryPage> {
        let routes = self.routes;
        let route = routes.routes().get(index).ok_or_else(|| Error::bad_input(format!("there is no route {index}")))?;
        let provider: DynArtifactRegistry = match &route.target {
            Target::Local => (self.local)()?,
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

    /// One page of at most `limit` repositories over every route, from `cursor` (a previous page's
    /// `next`). Routes that cannot list (registry connections) are skipped: `skipped` names them.
    pub async fn list_page(
        &self,
        prefix: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
        skipped: &mut Vec<String>,
    ) -> Result<ListPage> {
        let (mut index, mut after) = parse_cursor(cursor, self.routes.routes().len())?;
        let mut out = Vec::new();
        while index < self.routes.routes().len() {
            let page = Page { limit: Some((limit - out.len()) as u32), after: after.take() };
            let found = match self.list_route(index, prefix, page).await {
                Err(Error::Unsupported { .. }) => {
                    skipped.push(self.routes.routes()[index].label.clone());
                    index += 1;
                    continue;
                }
                other => other?,
            };
            out.extend(found.repositories);
            match found.next {
                Some(next) if out.len() >= limit => {
                    return Ok(ListPage { repositories: out, next: Some(format!("{index}:{next}")) });
                }
                Some(next) => after = Some(next),
                None => {
                    index += 1;
                    if out.len() >= limit && index < self.routes.routes().len() {
                        return Ok(ListPage { repositories: out, next: Some(format!("{index}:")) });
                    }
                }
            }
        }
        Ok(ListPage { repositories: out, next: None })
    }
}

/// The route index and provider token of a cursor; the start without one.
fn parse_cursor(cursor: Option<&str>, routes: usize) -> Result<(usize, Option<String>)> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else { return Ok((0, None)) };
    let invalid = || Error::bad_input("the page cursor is not one this server handed out: give a page's `next` as is");
    let (index, token) = cursor.split_once(':').ok_or_else(invalid)?;
    let index: usize = index.parse().map_err(|_| invalid())?;
    if index >= routes {
        return Err(invalid());
    }
    Ok((index, Some(token.to_owned()).filter(|t| !t.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_checked() {
        assert_eq!(parse_cursor(None, 2).unwrap(), (0, None));
        assert_eq!(parse_cursor(Some("1:abc"), 2).unwrap(), (1, Some("abc".into())));
        assert_eq!(parse_cursor(Some("1:"), 2).unwrap(), (1, None));
        for bad in ["2:x", "x", "-1:x", "99999999999999999999:x"] {
            assert!(parse_cursor(Some(bad), 2).is_err(), "{bad}");
        }
    }
}
