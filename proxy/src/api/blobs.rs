//! `/v2/<name>/blobs/<digest>`: GET (whole or a `Range`), HEAD, DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};

use super::hv;
use crate::pipeline::request::Ctx;

/// GET or HEAD of a blob.
pub async fn get(
    ctx: &Ctx,
    repo: &RepositoryName,
    digest: &Digest,
    headers: &HeaderMap,
    with_body: bool,
) -> Result<Response> {
    let storage = &ctx.state.storage;
    let common = |b: axum::http::response::Builder| {
        b.header(header::CONTENT_TYPE, "application/octet-stream")
            .header("Docker-Content-Digest", hv(&digest.to_string()))
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::ETAG, hv(&format!("\"{digest}\"")))
    };
    if !with_body {
        let size = storage
            .blob_size(repo, digest)
            .await?
            .ok_or_else(|| Error::not_found(Resource::Blob, digest.to_string()))?;
        let response = common(Response::builder().status(StatusCode::OK)).header(header::CONTENT_LENGTH, size);
        return Ok(response.body(Body::empty()).expect("valid response"));
    }
    let range = crate::ranges::request_range(headers)?;
    let read = match storage.read_blob(repo, digest, range).await {
        Ok(read) => read,
        Err(err @ Error::InvalidInput { code: OciErrorCode::RangeInvalid, .. }) => {
            let size = storage.blob_size(repo, digest).await?.unwrap_or(0);
            let body = serde_json::to_vec(&err.to_envelope()).expect("envelope serialises");
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, hv(&crate::ranges::unsatisfiable(size))),
                    (header::CONTENT_TYPE, hv("application/json")),
                ],
                body,
            )
                .into_response());
        }
        Err(err) => return Err(err),
    };
    let response = match read.range {
        Some((start, end)) => common(Response::builder().status(StatusCode::PARTIAL_CONTENT))
            .header(header::CONTENT_RANGE, hv(&crate::ranges::partial(start, end, read.size)))
            .header(header::CONTENT_LENGTH, end - start + 1),
        None => common(Response::builder().status(StatusCode::OK)).header(header::CONTENT_LENGTH, read.size),
    };
    Ok(response.body(Body::from_stream(read.body)).expect("valid response"))
}

/// DELETE: the blob leaves this repository (its content stays while others use it).
pub async fn delete(ctx: &Ctx, repo: &RepositoryName, digest: &Digest) -> Result<Response> {
    ctx.state.storage.delete_blob(repo, digest).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
