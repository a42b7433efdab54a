//! `/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use regbridge::oci::{Reference, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};
use regbridge_providers::local::manifest::MAX_MANIFEST_BYTES;
use regbridge_providers::local::store_manifest;

use super::hv;
use crate::pipeline::Ctx;

/// GET (with body) or HEAD of a manifest: exact bytes, type, length and digest.
pub async fn get(ctx: &Ctx, repo: &RepositoryName, reference: &Reference, with_body: bool) -> Result<Response> {
    let Some(m) = ctx.state.storage.get_manifest(repo, reference).await? else {
        if ctx.state.storage.repository(repo).await?.is_none() {
            return Err(Error::not_found(Resource::Repository, repo.as_str()));
        }
        return Err(Error::not_found(Resource::Manifest, format!("{repo}:{reference}")));
    };
    let digest = m.digest.to_string();
    let mut response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, hv(&m.media_type))
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header("Docker-Content-Digest", hv(&digest))
        .header(header::ETAG, hv(&format!("\"{digest}\"")));
    if let Some(subject) = &m.subject {
        response = response.header("OCI-Subject", hv(&subject.to_string()));
    }
    let body = if with_body { Body::from(m.bytes) } else { Body::empty() };
    Ok(response.body(body).expect("valid response"))
}

/// PUT: validates, stores byte for byte, tags.
pub async fn put(
    ctx: &Ctx,
    repo: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let bytes = read_manifest_body(body, announced).await?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    ctx.state.storage.create_repository(repo, ctx.identity.account()).await?;
    let (digest, subject) = store_manifest(ctx.state.storage.as_ref(), repo, reference, content_type, bytes).await?;
    let mut response = Response::builder()
        .status(StatusCode::CREATED)
        .header(header::LOCATION, hv(&format!("{}/v2/{repo}/manifests/{digest}", ctx.base_url)))
        .header("Docker-Content-Digest", hv(&digest.to_string()))
        .header(header::CONTENT_LENGTH, 0);
    if let Some(subject) = subject {
        response = response.header("OCI-Subject", hv(&subject.to_string()));
    }
    Ok(response.body(Body::empty()).expect("valid response"))
}

/// Bodies up to this size are read to the end before a 413 is sent, so the client, still sending, sees
/// the answer instead of a reset connection. Larger ones are refused at once.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Reads a manifest body of at most [`MAX_MANIFEST_BYTES`].
async fn read_manifest_body(body: Body, announced: Option<u64>) -> Result<Bytes> {
    let limit = MAX_MANIFEST_BYTES as u64;
    let too_large = |size: u64| Error::TooLarge { what: "manifest".into(), size, limit };
    if let Some(len) = announced.filter(|&len| len > DRAIN_LIMIT) {
        return Err(too_large(len));
    }
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut seen = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid(OciErrorCode::ManifestInvalid, format!("reading the body: {e}")))?;
        seen += chunk.len() as u64;
        if seen > DRAIN_LIMIT {
            break;
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit { Err(too_large(seen)) } else { Ok(buf.freeze()) }
}

/// DELETE by digest (the manifest and its tags) or by tag (the tag alone).
pub async fn delete(ctx: &Ctx, repo: &RepositoryName, reference: &Reference) -> Result<Response> {
    ctx.state.storage.delete_manifest(repo, reference).await?;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}
