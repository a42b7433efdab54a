//! Lists: tags (`/v2/<name>/tags/list`), the catalog (`/v2/_catalog`), and referrers
//! (`/v2/<name>/referrers/<digest>`), with `n`/`last` pagination and `Link` headers.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use regbridge::auth::{Action, Scope};
use regbridge::oci::{Digest, RepositoryName, media_types};
use regbridge::{Error, Result};
use serde_json::json;

use super::hv;
use crate::pipeline::authorize::allowed;
use crate::pipeline::identity::Identity;
use crate::pipeline::request::Ctx;
use crate::pipeline::target::Params;
use crate::routing::{RoutingTable, Target, Upstream};

/// The largest page served, whatever `n` asks for.
const MAX_PAGE: usize = 10_000;

/// One page of `items` (sorted) after `last`, at most `n`, and whether more follow.
fn page(items: Vec<String>, params: &Params) -> (Vec<String>, Option<usize>, bool) {
    let mut rest: Vec<String> = match &params.last {
        Some(last) => items.into_iter().filter(|i| i.as_str() > last.as_str()).collect(),
        None => items,
    };
    let limit = params.n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let more = rest.len() > limit;
    rest.truncate(limit);
    (rest, params.n, more)
}

fn json_response(body: serde_json::Value, link: Option<String>) -> Response {
    let bytes = serde_json::to_vec(&body).expect("json serialises");
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, bytes.len());
    if let Some(link) = link {
        b = b.header(header::LINK, hv(&link));
    }
    b.body(Body::from(bytes)).expect("valid response")
}

fn next_link(path: &str, n: Option<usize>, items: &[String], more: bool) -> Option<String> {
    let last = items.last().filter(|_| more)?;
    let n = n.unwrap_or(items.len());
    let last: String = url::form_urlencoded::byte_serialize(last.as_bytes()).collect();
    Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""))
}

/// The tags of a repository.
pub async fn tags(ctx: &Ctx, repo: &RepositoryName) -> Result<Response> {
    let all = ctx.state.storage.list_tags(repo).await?;
    let (tags, n, more) = page(all, &ctx.params);
    let link = next_link(&format!("/v2/{repo}/tags/list"), n, &tags, more);
    Ok(json_response(json!({ "name": repo.as_str(), "tags": tags }), link))
}

/// The repositories the caller may pull.
pub async fn catalog(ctx: &Ctx) -> Result<Response> {
    let sees_all = match &ctx.identity {
        Identity::User(principal) => principal.is_admin(),
        Identity::Token(claims) => claims.access.iter().any(|a| a.kind == "registry" && a.name == "catalog"),
        Identity::Anonymous => false,
    };
    let mut names = Vec::new();
    for name in ctx.state.storage.list_repositories().await? {
        // A local repository whose name another route now serves is not reachable, so not listed.
        if let Ok(repo) = RepositoryName::parse(&name)
            && matches!(ctx.state.routes.resolve(&repo).map(|r| r.route.target.clone()), Ok(Target::Local))
        {
            names.push(name);
        }
    }
    for route in ctx.state.routes.routes() {
        if let Target::Upstream(upstream) = &route.target {
            for upstream_name in upstream_catalog(upstream).await? {
                if let Some(name) = RoutingTable::client_name(route, &upstream_name) {
                    names.push(name);
                }
            }
        }
    }
    names.sort();
    names.dedup();
    let mut visible = Vec::new();
    for name in names {
        if let Ok(repo) = RepositoryName::parse(&name)
            && (sees_all || allowed(&ctx.state, &ctx.identity, &repo, Action::Pull).await?)
        {
            visible.push(name);
        }
    }
    let (repositories, n, more) = page(visible, &ctx.params);
    let link = next_link("/v2/_catalog", n, &repositories, more);
    Ok(json_response(json!({ "repositories": repositories }), link))
}

/// How many catalog pages are read from one upstream, at most.
const MAX_UPSTREAM_PAGES: usize = 20;

/// Every repository an upstream lists, following its `Link` pages (bounded).
async fn upstream_catalog(upstream: &Upstream) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Catalog {
        #[serde(default)]
        repositories: Vec<String>,
    }
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_UPSTREAM_PAGES {
        let mut path = "/v2/_catalog?n=1000".to_owned();
        if let Some(last) = &last {
            path.push_str(&format!(
                "&last={}",
                url::form_urlencoded::byte_serialize(last.as_bytes()).collect::<String>()
            ));
        }
        let response = upstream.client.send(Method::GET, &path, HeaderMap::new(), None, &[Scope::Catalog]).await?;
        let status = response.status();
        if !status.is_success() {
            // Registries may refuse catalogs (many clouds do); their names are then simply not listed.
            tracing::debug!(%status, upstream = %upstream.provider, "upstream catalog unavailable");
            break;
        }
        let has_next = response.headers().contains_key(header::LINK);
        let page: Catalog = response.json().await.map_err(|e| Error::Upstream {
            provider: upstream.provider.to_string(),
            status: Some(status.as_u16()),
            message: format!("malformed catalog: {e}"),
            source: None,
        })?;
        last = page.repositories.last().cloned();
        out.extend(page.repositories);
        if !has_next || last.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The manifests whose subject is `digest`, as an OCI index; never 404.
pub async fn referrers(ctx: &Ctx, repo: &RepositoryName, digest: &Digest) -> Result<Response> {
    let mut list = ctx.state.storage.referrers(repo, digest).await?;
    let filter = &ctx.params.artifact_type;
    if let Some(wanted) = &filter {
        list.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
    }
    let body = json!({ "schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": list });
    let bytes = serde_json::to_vec(&body).expect("json serialises");
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media_types::OCI_INDEX)
        .header(header::CONTENT_LENGTH, bytes.len());
    if filter.is_some() {
        b = b.header("OCI-Filters-Applied", "artifactType");
    }
    Ok(b.body(Body::from(bytes)).expect("valid response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i:02}")).collect()
    }

    fn params(n: Option<usize>, last: Option<&str>) -> Params {
        Params { n, last: last.map(str::to_owned), ..Params::default() }
    }

    #[test]
    fn pagination() {
        let (p, n, more) = page(items(5), &params(Some(2), None));
        assert_eq!((p.clone(), n, more), (vec!["t00".to_string(), "t01".into()], Some(2), true));
        assert_eq!(next_link("/v2/a/tags/list", n, &p, more).unwrap(), "</v2/a/tags/list?n=2&last=t01>; rel=\"next\"");
        let (p, _, more) = page(items(5), &params(Some(2), Some("t03")));
        assert_eq!((p, more), (vec!["t04".to_string()], false));
        let (p, _, more) = page(items(5), &params(Some(0), None));
        assert!(p.is_empty() && more);
        assert_eq!(page(items(3), &Params::default()).0.len(), 3);
    }
}
