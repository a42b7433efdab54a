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

/// Repository names read from storage per request while filling a catalog page the caller sees only
/// part of, at most: beyond it the page is cut short (with a `Link` when it has an entry to continue
/// after), so one request never reads the whole registry. Only a caller who may see none of more than
/// this many names in a row sees fewer names than it may.
const MAX_SCANNED: usize = 100_000;

/// Names read from storage at once while filling a catalog page.
const SCAN_BATCH: usize = 1000;

/// The page size asked for: `n`, at most [`MAX_PAGE`], which is also the default.
fn limit(params: &Params) -> usize {
    params.n.unwrap_or(MAX_PAGE).min(MAX_PAGE)
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
    let page = ctx.state.storage.list_tags_page(repo, ctx.params.last.as_deref(), limit(&ctx.params)).await?;
    let link = next_link(&format!("/v2/{repo}/tags/list"), ctx.params.n, &page.names, page.more);
    Ok(json_response(json!({ "name": repo.as_str(), "tags": page.names }), link))
}

/// The repositories the caller may pull: the local ones no other route serves, and the upstream routes'
/// catalogs, merged in order and filtered by permission. Local names are read from storage a page at a
/// time from `last` until the page is full (or [`MAX_SCANNED`] were read).
pub async fn catalog(ctx: &Ctx) -> Result<Response> {
    let sees_all = match &ctx.identity {
        Identity::User(principal) => principal.is_admin(),
        Identity::Token(claims) => claims.access.iter().any(|a| a.kind == "registry" && a.name == "catalog"),
        Identity::Anonymous => false,
    };
    let limit = limit(&ctx.params);
    if limit == 0 {
        // An empty page has no entry to continue after: no `Link`, and nothing to read.
        return Ok(json_response(json!({ "repositories": [] }), None));
    }
    let after = ctx.params.last.as_deref();
    let mut upstream_names = Vec::new();
    for route in ctx.state.routes.routes() {
        if let Target::Upstream(upstream) = &route.target {
            for upstream_name in upstream_catalog(upstream).await? {
                if let Some(name) = RoutingTable::client_name(route, &upstream_name)
                    && after.is_none_or(|a| name.as_str() > a)
                {
                    upstream_names.push(name);
                }
            }
        }
    }
    upstream_names.sort();
    upstream_names.dedup();
    let mut upstream_names = upstream_names.into_iter().peekable();

    // One more than the page, to know whether more follow.
    let mut visible = Vec::new();
    let mut cursor = after.map(str::to_owned);
    let mut scanned = 0usize;
    // The page and one more at first; doubled while the caller sees few of the names read.
    let mut batch = (limit + 1).min(SCAN_BATCH);
    let cut_short = loop {
        let local = ctx.state.storage.list_repositories_page(cursor.as_deref(), batch).await?;
        batch = (batch * 2).min(SCAN_BATCH);
        scanned += local.names.len();
        // The names up to the batch's last one (all of them after the last batch), in order.
        let end = local.names.last().filter(|_| local.more).cloned();
        let mut names = Vec::new();
        for name in local.names {
            // A local repository whose name another route now serves is not reachable, so not listed.
            if let Ok(repo) = RepositoryName::parse(&name)
                && matches!(ctx.state.routes.resolve(&repo).map(|r| r.route.target.clone()), Ok(Target::Local))
            {
                names.push(name);
            }
        }
        while let Some(name) = upstream_names.next_if(|n| end.as_ref().is_none_or(|end| n <= end)) {
            names.push(name);
        }
        names.sort();
        names.dedup();
        for name in names {
            if visible.len() > limit {
                break;
            }
            if let Ok(repo) = RepositoryName::parse(&name)
                && (sees_all || allowed(&ctx.state, &ctx.identity, &repo, Action::Pull).await?)
            {
                visible.push(name);
            }
        }
        match end {
            _ if visible.len() > limit => break false,
            None => break false,
            Some(_) if scanned >= MAX_SCANNED => break true,
            Some(end) => cursor = Some(end),
        }
    };
    let more = visible.len() > limit || cut_short;
    visible.truncate(limit);
    let link = next_link("/v2/_catalog", ctx.params.n, &visible, more);
    Ok(json_response(json!({ "repositories": visible }), link))
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

    fn params(n: Option<usize>, last: Option<&str>) -> Params {
        Params { n, last: last.map(str::to_owned), ..Params::default() }
    }

    #[test]
    fn page_sizes_and_links() {
        assert_eq!(limit(&params(Some(2), None)), 2);
        assert_eq!(limit(&params(Some(0), None)), 0);
        assert_eq!(limit(&params(Some(usize::MAX), None)), MAX_PAGE);
        assert_eq!(limit(&Params::default()), MAX_PAGE);
        let page = ["t00".to_string(), "t01".into()];
        assert_eq!(
            next_link("/v2/a/tags/list", Some(2), &page, true).unwrap(),
            "</v2/a/tags/list?n=2&last=t01>; rel=\"next\""
        );
        assert_eq!(
            next_link("/v2/a/tags/list", None, &page, true).unwrap(),
            "</v2/a/tags/list?n=2&last=t01>; rel=\"next\""
        );
        assert_eq!(next_link("/v2/a/tags/list", Some(2), &page, false), None);
        assert_eq!(next_link("/v2/a/tags/list", Some(0), &[], true), None);
    }
}
