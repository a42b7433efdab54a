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
use crate::pipeline::request::Ctx;

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
    check_foreign_urls(&bytes, &ctx.state.config.manifest_url_prefixes)?;
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

/// Refuses a manifest whose descriptors (`config`, `layers`, `manifests`, `blobs`, `subject`) carry `urls`
/// (foreign layers) outside the configured prefixes: a client would be sent to fetch them from there.
fn check_foreign_urls(bytes: &[u8], allowed: &[String]) -> Result<()> {
    // A manifest that is not JSON is refused by the store with its own message.
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Ok(()) };
    let single = ["config", "subject"].into_iter().filter_map(|k| doc.get(k));
    let lists = ["layers", "manifests", "blobs"].into_iter().filter_map(|k| doc.get(k)?.as_array()).flatten();
    for descriptor in single.chain(lists) {
        let urls = descriptor.get("urls").and_then(|u| u.as_array()).into_iter().flatten();
        for url in urls {
            let url = url.as_str().unwrap_or_default();
            if !allowed.iter().any(|prefix| url.starts_with(prefix.as_str())) {
                let shown: String = url.chars().take(200).collect();
                return Err(Error::invalid(
                    OciErrorCode::ManifestInvalid,
                    format!(
                        "the manifest points a layer at {shown:?}, which is not an allowed foreign-layer URL \
                         (configure [manifests] allowed_urls)"
                    ),
                ));
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_urls_need_an_allowed_prefix() {
        let layer = |urls: &str| {
            format!(
                r#"{{"schemaVersion":2,"layers":[{{"mediaType":"x","digest":"sha256:00","size":1,"urls":{urls}}}]}}"#
            )
        };
        let allowed = vec!["https://mcr.microsoft.com/".to_owned()];
        assert!(check_foreign_urls(layer("[]").as_bytes(), &[]).is_ok());
        assert!(check_foreign_urls(br#"{"schemaVersion":2,"layers":[{"size":1}]}"#, &[]).is_ok());
        let err = check_foreign_urls(layer(r#"["https://evil.example/x"]"#).as_bytes(), &allowed).unwrap_err();
        assert_eq!(err.code(), OciErrorCode::ManifestInvalid);
        assert!(
            check_foreign_urls(layer(r#"["https://mcr.microsoft.com/l"]"#).as_bytes(), &[]).is_err(),
            "empty: none"
        );
        assert!(check_foreign_urls(layer(r#"["https://mcr.microsoft.com/l"]"#).as_bytes(), &allowed).is_ok());
        let config = br#"{"config":{"urls":["http://x"]}}"#;
        assert!(check_foreign_urls(config, &allowed).is_err());
    }
}
