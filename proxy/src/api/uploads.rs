//! `/v2/<name>/blobs/uploads/`: monolithic (`POST ?digest=`), POST then PUT, chunked and streamed PATCH,
//! status, cancel, and cross-repository mounts (distribution-spec `spec.md`, "Pushing blobs").

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, OciErrorCode, Result};

use super::{body_stream, hv};
use crate::pipeline::request::Ctx;

/// 202 with the upload's location and the range received so far.
fn accepted(ctx: &Ctx, repo: &RepositoryName, id: &str, size: u64, status: StatusCode) -> Response {
    // distribution answers "0-0" for an empty upload; clients parse either that or 0-(size-1).
    let end = size.saturating_sub(1);
    Response::builder()
        .status(status)
        .header(header::LOCATION, hv(&format!("{}/v2/{repo}/blobs/uploads/{id}", ctx.base_url)))
        .header(header::RANGE, hv(&format!("0-{end}")))
        .header("Docker-Upload-UUID", hv(id))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

/// 201 for a stored blob.
fn created(ctx: &Ctx, repo: &RepositoryName, digest: &Digest) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, hv(&format!("{}/v2/{repo}/blobs/{digest}", ctx.base_url)))
        .header("Docker-Content-Digest", hv(&digest.to_string()))
        .header(header::CONTENT_LENGTH, 0)
        .body(Body::empty())
        .expect("valid response")
}

/// POST: a mount, a monolithic upload, or the start of an upload session.
pub async fn start(ctx: &Ctx, repo: &RepositoryName, body: Body) -> Result<Response> {
    let storage = &ctx.state.storage;
    storage.create_repository(repo, ctx.identity.account()).await?;
    // The pipeline keeps the mount source only when the caller may read it; a source it may not read, or
    // that lacks the blob, falls back to a normal upload.
    if let (Some((digest, _)), Some(from)) = (&ctx.params.mount, &ctx.grant.mount_from)
        && storage.mount_blob(repo, from, digest).await?
    {
        return Ok(created(ctx, repo, digest));
    }
    let id = storage.start_upload(repo).await?;
    if let Some(digest) = &ctx.params.digest {
        storage.append_upload(repo, &id, None, body_stream(body)).await?;
        storage.finish_upload(repo, &id, digest).await?;
        return Ok(created(ctx, repo, digest));
    }
    Ok(accepted(ctx, repo, &id, 0, StatusCode::ACCEPTED))
}

/// PATCH: appends a chunk (with `Content-Range`, which must start where the upload ends) or a stream.
pub async fn patch(ctx: &Ctx, repo: &RepositoryName, id: &str, headers: &HeaderMap, body: Body) -> Result<Response> {
    let range = crate::ranges::chunk_range(headers)?;
    // The storage checks the chunk against its range and keeps nothing of a chunk it refuses.
    let size = ctx.state.storage.append_upload(repo, id, range, body_stream(body)).await?;
    Ok(accepted(ctx, repo, id, size, StatusCode::ACCEPTED))
}

/// PUT `?digest=`: the last chunk (possibly empty), then verification.
pub async fn put(ctx: &Ctx, repo: &RepositoryName, id: &str, body: Body) -> Result<Response> {
    let digest = ctx.params.digest.as_ref().ok_or_else(|| {
        Error::invalid(
            OciErrorCode::DigestInvalid,
            "closing an upload needs ?digest=<algorithm>:<hex> of the whole blob",
        )
    })?;
    let storage = &ctx.state.storage;
    storage.append_upload(repo, id, None, body_stream(body)).await?;
    storage.finish_upload(repo, id, digest).await?;
    Ok(created(ctx, repo, digest))
}

/// GET: 204 with the range received so far.
pub async fn status(ctx: &Ctx, repo: &RepositoryName, id: &str) -> Result<Response> {
    let size = ctx.state.storage.upload_size(repo, id).await?;
    Ok(accepted(ctx, repo, id, size, StatusCode::NO_CONTENT))
}

/// DELETE: cancels the upload.
pub async fn cancel(ctx: &Ctx, repo: &RepositoryName, id: &str) -> Result<Response> {
    ctx.state.storage.cancel_upload(repo, id).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(Body::empty()).expect("valid response"))
}
