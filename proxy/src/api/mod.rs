//! The local registry's handlers (step 5 of the [pipeline](crate::pipeline)), the token endpoint and the
//! admin API.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod blobs;
pub(crate) mod caller;
pub(crate) mod inspect;
mod listing;
pub(crate) mod manage;
mod manifests;
pub(crate) mod openapi;
pub(crate) mod problem;
pub(crate) mod routing;
pub(crate) mod token;
mod uploads;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use regbridge::{Error, Result};

use crate::pipeline::request::Ctx;
use crate::pipeline::target::OciRoute;

/// Step 5 for the local registry: the endpoint's handler. Authorization is done.
pub(crate) async fn handle(ctx: &Ctx, route: &OciRoute, parts: &Parts, body: Body) -> Result<Response> {
    let headers = &parts.headers;
    match (route, &parts.method) {
        (OciRoute::Catalog, &Method::GET) => listing::catalog(ctx).await,
        (OciRoute::Tags(repo), &Method::GET) => listing::tags(ctx, repo).await,
        (OciRoute::Referrers(repo, digest), &Method::GET) => listing::referrers(ctx, repo, digest).await,
        (OciRoute::Manifest(repo, reference), &Method::GET) => manifests::get(ctx, repo, reference, true).await,
        (OciRoute::Manifest(repo, reference), &Method::HEAD) => manifests::get(ctx, repo, reference, false).await,
        (OciRoute::Manifest(repo, reference), &Method::PUT) => {
            manifests::put(ctx, repo, reference, headers, body).await
        }
        (OciRoute::Manifest(repo, reference), &Method::DELETE) => manifests::delete(ctx, repo, reference).await,
        (OciRoute::Blob(repo, digest), &Method::GET) => blobs::get(ctx, repo, digest, headers, true).await,
        (OciRoute::Blob(repo, digest), &Method::HEAD) => blobs::get(ctx, repo, digest, headers, false).await,
        (OciRoute::Blob(repo, digest), &Method::DELETE) => blobs::delete(ctx, repo, digest).await,
        (OciRoute::UploadStart(repo), &Method::POST) => uploads::start(ctx, repo, body).await,
        (OciRoute::Upload(repo, id), &Method::PATCH) => uploads::patch(ctx, repo, id, headers, body).await,
        (OciRoute::Upload(repo, id), &Method::PUT) => uploads::put(ctx, repo, id, body).await,
        (OciRoute::Upload(repo, id), &Method::GET) => uploads::status(ctx, repo, id).await,
        (OciRoute::Upload(repo, id), &Method::DELETE) => uploads::cancel(ctx, repo, id).await,
        (_, method) => Err(Error::unsupported(format!("{method} on this endpoint"), "regbridge")),
    }
}

/// A header value from a string we built (digests, numbers, URLs of our own).
pub(crate) fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A request body as the storage's byte stream.
pub(crate) fn body_stream(body: Body) -> regbridge_providers::local::storage::ByteStream {
    use futures_util::TryStreamExt;
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}
