//! Forwarding requests for upstream routes: the client-visible name becomes the upstream name, the
//! request goes out with the provider's credentials, and the answer comes back with upstream names,
//! upstream hosts and upstream authentication taken out.

pub mod location;
mod recover;

use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, header};
use axum::response::Response;
use futures_util::TryStreamExt;
use regbridge::auth::{Action, Scope};
use regbridge::oci::RepositoryName;
use regbridge::{Error, Result};

use crate::api::hv;
use crate::pipeline::authorize::action_for;
use crate::pipeline::request::Ctx;
use crate::pipeline::target::{OciRoute, Params};
use crate::routing::{Target, Upstream};

/// How long a presigned blob URL from the provider is asked to live.
const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(600);

/// The provider's presigned URL for a blob, reused for half its validity (a URL handed out then still has
/// half its life for the client).
async fn download_url(upstream: &Upstream, repo: &str, digest: &regbridge::oci::Digest) -> Result<Option<url::Url>> {
    let key = digest.to_string();
    if let Some(url) = upstream.download_urls.get(repo, &key) {
        return Ok(Some(url));
    }
    let url = match upstream.provider.generate_blob_download_url(repo, digest, DOWNLOAD_URL_TTL).await {
        Ok(url) => url,
        // The blob can still be served through the registry API; a failed presign only costs the shortcut.
        Err(err) => {
            tracing::warn!(provider = %upstream.provider, error = %err, "no presigned blob URL; forwarding instead");
            None
        }
    };
    if let Some(url) = &url {
        upstream.download_urls.put(repo, &key, url.clone(), DOWNLOAD_URL_TTL / 2);
    }
    Ok(url)
}

/// Headers that belong to one connection (RFC 9110 section 7.6.1) and never cross the proxy, plus the
/// ones the proxy sets itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// The request headers that go upstream: everything but hop-by-hop headers and the client's credentials.
fn upstream_request_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        if !is_hop_by_hop(name) && name != header::AUTHORIZATION && name != header::COOKIE {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream name of a mount source the caller may read, when the same upstream serves it (a mount
/// across registries is impossible, so the client then gets a normal upload session).
fn upstream_mount_source(ctx: &Ctx, upstream: &Upstream) -> Option<String> {
    let from = ctx.grant.mount_from.as_ref()?;
    let resolved = ctx.state.routes.resolve(from).ok()?;
    match &resolved.route.target {
        Target::Upstream(u) if std::ptr::eq(u.as_ref(), upstream) => Some(resolved.upstream_name),
        Target::Connection(c) if c.is_current(upstream) => Some(resolved.upstream_name),
        _ => None,
    }
}

/// `path` with `query` appended (after `?`, or after `&` when `path` has a query already).
fn with_query(path: String, query: &str) -> String {
    match (query.is_empty(), path.contains('?')) {
        (true, _) => path,
        (false, true) => format!("{path}&{query}"),
        (false, false) => format!("{path}?{query}"),
    }
}

/// The upstream path and query of a request: built from the route's upstream name and the typed parts of
/// the request only (no text the client sent is copied into it), or for an upload session, from the
/// location the upstream handed out, which the pipeline verified the signature of.
///
/// Returns the path and query, and the upstream name of a mount's source when the request mounts one.
fn upstream_path(
    ctx: &Ctx,
    upstream: &Upstream,
    upstream_name: &str,
    route: &OciRoute,
) -> Result<(String, Option<String>)> {
    let query = ctx.params.to_query();
    let mut mount_from = None;
    let path = match route {
        OciRoute::Manifest(_, reference) => format!("/v2/{upstream_name}/manifests/{reference}"),
        OciRoute::Blob(_, digest) => format!("/v2/{upstream_name}/blobs/{digest}"),
        OciRoute::UploadStart(_) => {
            let mut path = format!("/v2/{upstream_name}/blobs/uploads/");
            if let (Some((digest, _)), Some(from)) = (&ctx.params.mount, upstream_mount_source(ctx, upstream)) {
                let mount = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("mount", &digest.to_string())
                    .append_pair("from", &from)
                    .finish();
                path = with_query(path, &mount);
                mount_from = Some(from);
            }
            with_query(path, &query)
        }
        OciRoute::Upload(_, id) => with_query(location::decode_upload_id(id)?, &query),
        OciRoute::Tags(_) => with_query(format!("/v2/{upstream_name}/tags/list"), &query),
        OciRoute::Referrers(_, digest) => with_query(format!("/v2/{upstream_name}/referrers/{digest}"), &query),
        OciRoute::Catalog => return Err(Error::bad_input("the catalog is not forwarded")),
    };
    Ok((path, mount_from))
}

/// The scopes the upstream request needs: the action on the upstream repository, and pull on a mount's
/// source (asked for at once rather than learnt from a refusal).
fn upstream_scopes(upstream_name: &str, action: Action, mount_from: Option<&str>) -> Result<Vec<Scope>> {
    let mut scopes = vec![Scope::for_action(RepositoryName::parse(upstream_name)?, action)];
    if let Some(from) = mount_from {
        scopes.push(Scope::for_action(RepositoryName::parse(from)?, Action::Pull));
    }
    Ok(scopes)
}

/// Forwards one request (authorized by the pipeline) to `upstream`, where the repository is `upstream_name`.
pub(crate) async fn forward(
    ctx: &Ctx,
    upstream: &Upstream,
    upstream_name: &str,
    route: &OciRoute,
    parts: &Parts,
    body: Body,
) -> Result<Response> {
    let method = &parts.method;
    let repo = route.repository().ok_or_else(|| Error::bad_input("only repository requests are forwarded"))?;
    let action = action_for(route, method).unwrap_or(Action::Pull);
    if let OciRoute::Blob(_, digest) = route
        && method == Method::GET
        && let Some(url) = download_url(upstream, upstream_name, digest).await?
    {
        return Ok(crate::api::blobs::redirect(&url, digest));
    }
    let (path, mount_from) = upstream_path(ctx, upstream, upstream_name, route)?;
    let mut headers = upstream_request_headers(&parts.headers);
    let names_a_manifest_type = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(regbridge::oci::media_types::is_manifest)));
    if matches!(route, OciRoute::Manifest(..)) && !names_a_manifest_type {
        // Registries take a client that accepts no manifest type (no Accept, or `*/*`) for a schema-1 client
        // (distribution answers 404 for OCI manifests); the local registry serves every type, and routes
        // should behave alike.
        headers.append(header::ACCEPT, hv(&regbridge::oci::media_types::manifest_accept_header()));
    }
    // A request announced as empty goes without a body, so the upstream client may replay it after an
    // authentication challenge (a stream can be sent only once).
    let empty = parts.headers.get(header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
        || !parts.headers.contains_key(header::CONTENT_LENGTH)
            && !parts.headers.contains_key(header::TRANSFER_ENCODING);
    let has_body = matches!(*method, Method::PUT | Method::PATCH | Method::POST) && !empty;
    let body = has_body.then(|| reqwest::Body::wrap_stream(body.into_data_stream()));
    let scopes = upstream_scopes(upstream_name, action, mount_from.as_deref())?;
    let started = std::time::Instant::now();
    let sent = if let OciRoute::Upload(..) = route {
        upstream.client.send_session(method.clone(), &path, headers.clone(), body, &scopes).await
    } else {
        upstream.client.send(method.clone(), &path, headers.clone(), body, &scopes).await
    };
    let provider = upstream.provider.to_string();
    crate::observe::upstream_latency(&provider, method.as_str(), started.elapsed());
    let response = sent?;
    let response = match route {
        OciRoute::Manifest(..) if method == Method::GET => {
            recover::buffered_manifest(&provider, method, response, refetch_upstream(upstream, path, headers, scopes))
                .await?
        }
        // A 200 is the whole blob whatever the client asked for, so it can always be checked.
        OciRoute::Blob(_, digest) if method == Method::GET => recover::resuming_blob(
            &provider,
            method,
            response,
            refetch_upstream(upstream, path, headers, scopes),
            Some(digest),
        ),
        _ => response,
    };
    respond(ctx, upstream, repo, upstream_name, route, method, response).await
}

/// Sends the same GET upstream again (from an offset, to resume a broken body).
fn refetch_upstream(upstream: &Upstream, path: String, headers: HeaderMap, scopes: Vec<Scope>) -> recover::Refetch {
    let client = upstream.client.clone();
    std::sync::Arc::new(move |offset| {
        let (client, path, mut headers, scopes) = (client.clone(), path.clone(), headers.clone(), scopes.clone());
        if let Some(offset) = offset {
            headers.insert(header::RANGE, crate::ranges::from_offset(offset));
        }
        Box::pin(async move { client.send(Method::GET, &path, headers, None, &scopes).await })
    })
}

/// Fetches a redirect's target again, without credentials (from an offset, to resume a broken body).
fn refetch_redirect(http: &reqwest::Client, provider: &str, target: url::Url) -> recover::Refetch {
    let (http, provider) = (http.clone(), provider.to_owned());
    std::sync::Arc::new(move |offset| {
        let mut request = http.get(target.clone());
        if let Some(offset) = offset {
            request = request.header(header::RANGE, crate::ranges::from_offset(offset));
        }
        let provider = provider.clone();
        Box::pin(async move {
            request.send().await.map_err(|e| Error::Upstream {
                provider,
                status: None,
                message: format!("following the blob redirect failed: {e}"),
                source: None,
            })
        })
    })
}

/// Turns the upstream's answer into ours.
async fn respond(
    ctx: &Ctx,
    upstream: &Upstream,
    repo: &RepositoryName,
    upstream_name: &str,
    route: &OciRoute,
    method: &Method,
    response: reqwest::Response,
) -> Result<Response> {
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        // The client was let in by us; the upstream refusing the proxy's own credentials is our failure.
        return Err(Error::Upstream {
            provider: upstream.provider.to_string(),
            status: Some(401),
            message: "the upstream registry refused the proxy's credentials for this route; check them".into(),
            source: None,
        });
    }
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.contains("json"));
    if status.is_server_error() && !is_json {
        // Clients expect an OCI error body; a proxy or load balancer in front of the upstream sends none.
        return Err(Error::Upstream {
            provider: upstream.provider.to_string(),
            status: Some(status.as_u16()),
            message: format!("the upstream registry answered {status}"),
            source: None,
        });
    }
    let mut out = Response::builder().status(status.as_u16());
    let base = &ctx.base_url;
    let upstream_prefix = format!("/v2/{upstream_name}/");
    let client_prefix = format!("/v2/{repo}/");
    let mut follow = None;
    for (name, value) in response.headers() {
        if is_hop_by_hop(name) || name == header::WWW_AUTHENTICATE || name == header::SET_COOKIE {
            continue;
        }
        if name == header::LOCATION {
            let Some(text) = value.to_str().ok() else { continue };
            let Ok(target) = upstream.client.base_url().join(text) else { continue };
            let same_origin = target.origin() == upstream.client.base_url().origin();
            let path_query = &target[url::Position::BeforePath..];
            // A 202 to an upload request names the session's URL wherever on the upstream's host it lives
            // (Artifact Registry keeps them under /artifacts-uploads/): it is signed like any other.
            let session = path_query.starts_with(&format!("{upstream_prefix}blobs/uploads/"))
                || matches!(route, OciRoute::UploadStart(_) | OciRoute::Upload(..)) && status == StatusCode::ACCEPTED;
            if same_origin && session {
                out = out.header(header::LOCATION, hv(&ctx.state.locations.sign(base, repo.as_str(), path_query)));
            } else if same_origin && let Some(rest) = path_query.strip_prefix(&upstream_prefix) {
                // Only a location that names one of this repository's endpoints is passed on, as ours.
                let rest = rest.split('?').next().unwrap_or_default();
                if OciRoute::parse(&format!("{repo}/{rest}")).is_ok() {
                    out = out.header(header::LOCATION, hv(&format!("{base}{client_prefix}{rest}")));
                }
            } else if matches!(route, OciRoute::Blob(..)) && !upstream.redirect_blobs && status.is_redirection() {
                follow = Some(target);
            } else {
                // A redirect to storage elsewhere (a presigned URL): the client goes there itself.
                out = out.header(header::LOCATION, value.clone());
            }
            continue;
        }
        if name == header::LINK {
            if let Some(link) = value.to_str().ok().and_then(|text| client_link(route, repo, text)) {
                out = out.header(header::LINK, hv(&link));
            }
            continue;
        }
        out = out.header(name.clone(), value.clone());
    }
    if let Some(target) = follow {
        // Fetched without the upstream's credentials: a presigned URL carries its own authorization.
        let provider = upstream.provider.to_string();
        let refetch = refetch_redirect(&ctx.state.http, &provider, target);
        let fetched = refetch(None).await?;
        let digest = match route {
            OciRoute::Blob(_, digest) => Some(digest),
            _ => None,
        };
        return Ok(stream_response(recover::resuming_blob(&provider, method, fetched, refetch, digest), method));
    }
    if matches!(route, OciRoute::Tags(_)) && status.is_success() && method == Method::GET {
        return tags_with_client_name(out, response, repo, upstream).await;
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(response.bytes_stream().map_err(std::io::Error::other))
    };
    Ok(out.body(body).expect("valid response"))
}

/// Our `Link` for the upstream's next-page link of a tag list: the client's path with the page's `n` and
/// `last`, typed (an upstream link is never passed on as it is). Other lists' links are dropped.
fn client_link(route: &OciRoute, repo: &RepositoryName, text: &str) -> Option<String> {
    let OciRoute::Tags(_) = route else { return None };
    let target = text.split_once('<')?.1.split_once('>')?.0;
    let query = target.split_once('?')?.1;
    let params = Params::parse(route, query).ok()?;
    Some(format!("</v2/{repo}/tags/list?{}>; rel=\"next\"", params.to_query()))
}

/// The largest tag list rewritten; a registry sending more is answered with an error, not buffered.
const MAX_TAG_LIST_BYTES: usize = 16 * 1024 * 1024;

/// A tag list names its repository; the client must see its own name, not the upstream's.
async fn tags_with_client_name(
    mut out: axum::http::response::Builder,
    response: reqwest::Response,
    repo: &RepositoryName,
    upstream: &Upstream,
) -> Result<Response> {
    let bad = |message: String| Error::Upstream {
        provider: upstream.provider.to_string(),
        status: Some(200),
        message,
        source: None,
    };
    if response.content_length().is_some_and(|n| n > MAX_TAG_LIST_BYTES as u64) {
        return Err(bad(format!("the tag list is larger than {MAX_TAG_LIST_BYTES} bytes")));
    }
    let bytes = response.bytes().await.map_err(|e| bad(format!("reading the tag list: {e}")))?;
    let mut list: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("the tag list is not JSON: {e}")))?;
    list["name"] = serde_json::Value::String(repo.to_string());
    let body = serde_json::to_vec(&list).expect("json serialises");
    if let Some(headers) = out.headers_mut() {
        headers.insert(header::CONTENT_LENGTH, body.len().into());
    }
    Ok(out.body(Body::from(body)).expect("valid response"))
}

/// A followed redirect's answer, with its status, content headers and streamed body.
fn stream_response(fetched: reqwest::Response, method: &Method) -> Response {
    let mut out = Response::builder().status(fetched.status().as_u16());
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::CONTENT_RANGE, header::ETAG] {
        if let Some(v) = fetched.headers().get(&name) {
            out = out.header(name, v.clone());
        }
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from_stream(fetched.bytes_stream().map_err(std::io::Error::other))
    };
    out.body(body).expect("valid response")
}
