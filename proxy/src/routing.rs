//! The routing table: which provider serves a client-visible repository name.
//!
//! Each route owns a prefix. The empty prefix is the default route (at most one); other prefixes must be
//! distinct and not nested, so a name matches at most one of them, and that one wins over the default:
//! longest prefix wins, and no two routes ever compete for a name at the same length.

use std::sync::Arc;

use regbridge::oci::RepositoryName;
use regbridge::{DynArtifactRegistry, Error, Resource, Result};
use regbridge_providers::http::UpstreamClient;

/// An upstream registry behind a route.
#[derive(Debug)]
pub struct Upstream {
    /// The provider (its `upstream_repository_prefix` maps names; it may presign blob URLs).
    pub provider: DynArtifactRegistry,
    /// The `/v2/` client with the provider's credentials.
    pub client: UpstreamClient,
    /// Pass the upstream's blob redirects to clients (true) or follow them and stream the bytes.
    pub redirect_blobs: bool,
    /// Presigned blob URLs from the provider, reused for part of their validity.
    pub download_urls: DownloadUrlCache,
}

/// Presigned download URLs by (upstream repository, digest), each kept until a deadline.
#[derive(Debug, Default)]
pub struct DownloadUrlCache {
    urls: std::sync::Mutex<std::collections::HashMap<(String, String), (url::Url, std::time::Instant)>>,
}

/// Entries kept at most; the cache starts over beyond it.
const DOWNLOAD_URL_ENTRIES: usize = 10_000;

impl DownloadUrlCache {
    /// The cached URL for `digest` of `repo`, while it is still good.
    pub fn get(&self, repo: &str, digest: &str) -> Option<url::Url> {
        let urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        urls.get(&(repo.to_owned(), digest.to_owned()))
            .filter(|(_, until)| std::time::Instant::now() < *until)
            .map(|(u, _)| u.clone())
    }

    /// Keeps `url` for `keep`.
    pub fn put(&self, repo: &str, digest: &str, url: url::Url, keep: std::time::Duration) {
        let mut urls = self.urls.lock().unwrap_or_else(|e| e.into_inner());
        if urls.len() >= DOWNLOAD_URL_ENTRIES {
            urls.clear();
        }
        urls.insert((repo.to_owned(), digest.to_owned()), (url, std::time::Instant::now() + keep));
    }
}

/// What serves a route.
#[derive(Debug, Clone)]
pub enum Target {
    /// The embedded local registry.
    Local,
    /// A registry reached through the proxy.
    Upstream(Arc<Upstream>),
    /// A registry reached through the proxy with a stored registry connection, looked up per request.
    Connection(Arc<crate::connections::ConnectionRoute>),
}

impl Target {
    /// The repository path prefix at the provider, without surrounding slashes; `None` for the local
    /// registry.
    fn upstream_prefix(&self) -> Option<String> {
        match self {
            Target::Local => None,
            Target::Upstream(u) => Some(u.provider.upstream_repository_prefix().trim_matches('/').to_owned()),
            Target::Connection(c) => Some(c.upstream_prefix().to_owned()),
        }
    }
}

/// One route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Client-visible prefix, without surrounding slashes; empty for the default route.
    pub prefix: String,
    /// What serves it.
    pub target: Target,
    /// A short description for messages (`route 2 (generic 127.0.0.1:5001)`).
    pub label: String,
}

/// A name resolved to its route.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    /// The route.
    pub route: &'a Route,
    /// Its index in [`RoutingTable::routes`].
    pub index: usize,
    /// The repository name at the provider: the route's prefix replaced by the provider's upstream prefix.
    pub upstream_name: String,
}

/// The routes, longest prefix first.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    routes: Vec<Route>,
}

impl RoutingTable {
    /// Validates and orders `routes`. Duplicate or nested prefixes are errors naming both routes.
    pub fn new(mut routes: Vec<Route>) -> Result<Self> {
        for r in &mut routes {
            r.prefix = r.prefix.trim_matches('/').to_owned();
            if !r.prefix.is_empty() {
                RepositoryName::parse(&r.prefix)
                    .map_err(|e| Error::bad_input(format!("{}: invalid prefix {:?}: {e}", r.label, r.prefix)))?;
            }
        }
        for (i, a) in routes.iter().enumerate() {
            for b in &routes[i + 1..] {
                let nested = |x: &str, y: &str| !x.is_empty() && y.starts_with(x) && y[x.len()..].starts_with('/');
                if a.prefix == b.prefix {
                    return Err(Error::bad_input(format!(
                        "{} and {} both serve the prefix {:?}; give each route its own prefix",
                        a.label, b.label, a.prefix
                    )));
                }
                if nested(&a.prefix, &b.prefix) || nested(&b.prefix, &a.prefix) {
                    return Err(Error::bad_input(format!(
                        "{} (prefix {:?}) and {} (prefix {:?}) overlap; prefixes must not contain one another",
                        a.label, a.prefix, b.label, b.prefix
                    )));
                }
            }
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self { routes })
    }

    /// The table with only the local registry, serving every name.
    pub fn local_only() -> Self {
        Self { routes: vec![Route { prefix: String::new(), target: Target::Local, label: "route 1 (local)".into() }] }
    }

    /// The routes, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route serving `name`, and the name at its provider; `NAME_UNKNOWN` when no route serves it.
    pub fn resolve(&self, name: &RepositoryName) -> Result<Resolved<'_>> {
        let name = name.as_str();
        for (index, route) in self.routes.iter().enumerate() {
            let rest = if route.prefix.is_empty() {
                Some(name)
            } else {
                name.strip_prefix(route.prefix.as_str()).and_then(|r| r.strip_prefix('/'))
            };
            let Some(rest) = rest else { continue };
            let upstream_name = match route.target.upstream_prefix() {
                None => name.to_owned(),
                Some(prefix) if prefix.is_empty() => rest.to_owned(),
                Some(prefix) => format!("{prefix}/{rest}"),
            };
            return Ok(Resolved { route, index, upstream_name });
        }
        Err(Error::not_found(Resource::Repository, format!("{name} (no route serves this name)")))
    }

    /// The client-visible name of `upstream_name` of `route` (the inverse of [`resolve`](Self::resolve)), or
    /// `None` when the upstream name is outside the provider's prefix.
    pub fn client_name(route: &Route, upstream_name: &str) -> Option<String> {
        let rest = match route.target.upstream_prefix() {
            None => return Some(upstream_name.to_owned()),
            Some(prefix) if prefix.is_empty() => upstream_name,
            Some(prefix) => upstream_name.strip_prefix(prefix.as_str())?.strip_prefix('/')?,
        };
        Some(if route.prefix.is_empty() { rest.to_owned() } else { format!("{}/{rest}", route.prefix) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(prefix: &str, n: usize) -> Route {
        Route { prefix: prefix.into(), target: Target::Local, label: format!("route {n} (local)") }
    }

    #[test]
    fn validation_names_both_routes() {
        let err = RoutingTable::new(vec![local("a", 1), local("a/", 2)]).unwrap_err().to_string();
        assert!(err.contains("route 1 (local) and route 2 (local) both serve"), "{err}");
        let err = RoutingTable::new(vec![local("a", 1), local("a/b", 2)]).unwrap_err().to_string();
        assert!(err.contains("overlap"), "{err}");
        let err = RoutingTable::new(vec![local("", 1), local("", 2)]).unwrap_err().to_string();
        assert!(err.contains("both serve"), "{err}");
        let err = RoutingTable::new(vec![local("Bad", 1)]).unwrap_err().to_string();
        assert!(err.contains("invalid prefix"), "{err}");
        RoutingTable::new(vec![local("", 1), local("a", 2), local("ab", 3), local("b/c", 4)]).unwrap();
    }

    #[test]
    fn download_urls_are_kept_until_their_deadline() {
        let cache = DownloadUrlCache::default();
        let url: url::Url = "https://bucket.example/blob?sig=1".parse().unwrap();
        cache.put("r", "sha256:a", url.clone(), std::time::Duration::from_secs(60));
        assert_eq!(cache.get("r", "sha256:a"), Some(url.clone()));
        assert_eq!(cache.get("r", "sha256:b"), None);
        assert_eq!(cache.get("other", "sha256:a"), None);
        cache.put("r", "sha256:c", url, std::time::Duration::ZERO);
        assert_eq!(cache.get("r", "sha256:c"), None, "expired");
    }

    #[test]
    fn longest_prefix_wins() {
        let table = RoutingTable::new(vec![local("", 1), local("team", 2)]).unwrap();
        let name = |s: &str| RepositoryName::parse(s).unwrap();
        assert_eq!(table.resolve(&name("team/app")).unwrap().route.label, "route 2 (local)");
        assert_eq!(table.resolve(&name("teams/app")).unwrap().route.label, "route 1 (local)");
        assert_eq!(table.resolve(&name("team")).unwrap().route.label, "route 1 (local)");
        let only = RoutingTable::new(vec![local("team", 1)]).unwrap();
        assert_eq!(only.resolve(&name("other/app")).unwrap_err().code(), regbridge::OciErrorCode::NameUnknown);
    }
}
