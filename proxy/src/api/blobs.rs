//! `/v2/<name>/blobs/<digest>`: GET (whole or a `Range`), HEAD, DELETE.
//!
//! A GET is answered with `307` to a URL presigned by the storage when it can presign one and redirects are
//! on ([`StorageConfig::blob_redirect`](crate::storage_config::StorageConfig::blob_redirect)): the client then fetches the bytes
//! (ranges included) from storage, and the registry serves only the redirect. The repository's access was
//! checked by the pipeline, and the handler checks that the repository has the blob before asking for a URL,
//! so a URL never reaches a client that could not read the blob through the registry. Clients do not send
//! their `Authorization` to another host, and the URL carries only the storage's own signature.

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
    if let Some(ttl) = ctx.state.config.storage.blob_redirect()
        && let Some(url) = download_url(ctx, repo, digest, range, ttl).await?
    {
        return Ok(redirect(&url, digest));
    }
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

/// The storage's presigned URL for blob `digest` of `repo`, valid for `ttl`; `None` when the storage has none
/// or the request is one streaming answers better (a range starting past the blob gets its 416 here).
/// `BLOB_UNKNOWN` when the repository does not have the blob, whatever the storage could sign.
async fn download_url(
    ctx: &Ctx,
    repo: &RepositoryName,
    digest: &Digest,
    range: Option<(u64, Option<u64>)>,
    ttl: std::time::Duration,
) -> Result<Option<url::Url>> {
    let storage = &ctx.state.storage;
    let size =
        storage.blob_size(repo, digest).await?.ok_or_else(|| Error::not_found(Resource::Blob, digest.to_string()))?;
    if range.is_some_and(|(start, _)| start >= size) {
        return Ok(None);
    }
    match storage.blob_download_url(digest, ttl).await {
        Ok(url) => Ok(url),
        // The registry can still stream the blob; a failed presign only costs the shortcut.
        Err(err) => {
            tracing::warn!(%repo, %digest, error = %err, "no presigned blob URL; streaming instead");
            Ok(None)
        }
    }
}

/// `307 Temporary Redirect` to `url` for blob `digest`: the client repeats its request there, method and
/// `Range` included (a 307, unlike a 302, may not change the method).
pub(crate) fn redirect(url: &url::Url, digest: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(header::LOCATION, hv(url.as_str()))
        .header("Docker-Content-Digest", hv(&digest.to_string()))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

/// DELETE: the blob leaves this repository (its content stays while others use it).
pub async fn delete(ctx: &Ctx, repo: &RepositoryName, digest: &Digest) -> Result<Response> {
    ctx.state.storage.delete_blob(repo, digest).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
