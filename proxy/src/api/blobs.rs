//! `/v2/<name>/blobs/<digest>`: GET (whole or a `Range`), HEAD, DELETE.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};

use super::hv;
use crate::pipeline::Ctx;

/// Parses `Range: bytes=START-[END]` (one range; suffix ranges `-N` are not supported and say so).
fn parse_range(headers: &HeaderMap) -> Result<Option<(u64, Option<u64>)>> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let bad = || {
        Error::invalid(
            OciErrorCode::RangeInvalid,
            "the Range header must be bytes=START-END or bytes=START- (one range)",
        )
    };
    let spec = value.to_str().map_err(|_| bad())?.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

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
    let range = parse_range(headers)?;
    let read = match storage.read_blob(repo, digest, range).await {
        Ok(read) => read,
        Err(err @ Error::InvalidInput { code: OciErrorCode::RangeInvalid, .. }) => {
            let size = storage.blob_size(repo, digest).await?.unwrap_or(0);
            let body = serde_json::to_vec(&err.to_envelope()).expect("envelope serialises");
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [
                    (header::CONTENT_RANGE, hv(&format!("bytes */{size}"))),
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
            .header(header::CONTENT_RANGE, hv(&format!("bytes {start}-{end}/{}", read.size)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Result<Option<(u64, Option<u64>)>> {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, v.parse().unwrap());
        parse_range(&h)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9").unwrap(), Some((0, Some(9))));
        assert_eq!(range("bytes=5-").unwrap(), Some((5, None)));
        for bad in ["bytes=-5", "bytes=9-1", "items=0-1", "bytes=a-b", "bytes=0-1,3-4"] {
            assert_eq!(range(bad).unwrap_err().code(), OciErrorCode::RangeInvalid, "{bad}");
        }
    }
}
