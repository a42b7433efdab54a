//! Reads of manifests and blob sizes through [`UpstreamClient`], for the trait's read methods.

use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, Method, StatusCode};
use regbridge::auth::{Action, Scope};
use regbridge::oci::media_types::{essence, manifest_accept_header};
use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{Error, Manifest, ManifestDescriptor, Result};

use super::UpstreamClient;

pub use regbridge::oci::MAX_MANIFEST_BYTES;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

impl UpstreamClient {
    /// Convenience: GET of a manifest with the Accept header of all manifest types; maps 404 to Ok(None).
    ///
    /// The bytes are checked against the digest asked for (or else the `Docker-Content-Digest` the
    /// registry sent): a mismatch is `Error::DigestInvalid`. Other failures are mapped by
    /// [`response_error`](Self::response_error).
    pub async fn get_manifest(
        &self,
        repository: &str,
        reference: &regbridge::oci::Reference,
    ) -> regbridge::Result<Option<regbridge::Manifest>> {
        let (path, scope) = manifest_path(repository, reference)?;
        let response = self.send(Method::GET, &path, accept_manifests(), None, &scope).await?;
        let what = format!("GET {path}");
        let Some(mut response) = self.found(&what, response).await? else { return Ok(None) };
        let media_type = content_type(response.headers());
        let expected = expected_digest(reference, response.headers());
        if let Some(len) = header_u64(response.headers(), CONTENT_LENGTH.as_str())
            && len > MAX_MANIFEST_BYTES
        {
            return Err(Error::TooLarge { what: "manifest".into(), size: len, limit: MAX_MANIFEST_BYTES });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.body_error(&what, e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > MAX_MANIFEST_BYTES {
                let size = bytes.len() as u64;
                return Err(Error::TooLarge { what: "manifest".into(), size, limit: MAX_MANIFEST_BYTES });
            }
        }
        let digest = match expected {
            Some(expected) => {
                let actual = Digest::of(expected.algorithm(), &bytes);
                if actual != expected {
                    return Err(Error::DigestInvalid { expected: expected.to_string(), actual: actual.to_string() });
                }
                actual
            }
            None => Digest::sha256(&bytes),
        };
        Ok(Some(Manifest { media_type, digest, bytes }))
    }

    /// Convenience: HEAD of a manifest with the Accept header of all manifest types; maps 404 to Ok(None).
    ///
    /// When the registry's answer lacks the digest (`Docker-Content-Digest`, for a tag) or the size, the
    /// manifest is read with [`get_manifest`](Self::get_manifest) instead, so the two always agree.
    pub async fn head_manifest(
        &self,
        repository: &str,
        reference: &regbridge::oci::Reference,
    ) -> regbridge::Result<Option<regbridge::ManifestDescriptor>> {
        let (path, scope) = manifest_path(repository, reference)?;
        let response = self.send(Method::HEAD, &path, accept_manifests(), None, &scope).await?;
        let Some(response) = self.found(&format!("HEAD {path}"), response).await? else { return Ok(None) };
        let headers = response.headers();
        let digest = expected_digest(reference, headers);
        let size = header_u64(headers, CONTENT_LENGTH.as_str());
        let has_type = headers.contains_key(CONTENT_TYPE);
        match (digest, size) {
            (Some(digest), Some(size)) if has_type => {
                Ok(Some(ManifestDescriptor { media_type: content_type(headers), digest, size }))
            }
            _ => Ok(self.get_manifest(repository, reference).await?.map(|m| ManifestDescriptor::from(&m))),
        }
    }

    /// Convenience: HEAD of a blob; its size, or `None` on 404.
    ///
    /// A registry that redirects blobs to storage answers with a 3xx: the `Location` is then asked with
    /// `HEAD`, once and without this registry's credentials (they are not the storage's to see).
    pub async fn head_blob(&self, repository: &str, digest: &regbridge::oci::Digest) -> regbridge::Result<Option<u64>> {
        let name = RepositoryName::parse(repository)?;
        let path = format!("/v2/{name}/blobs/{digest}");
        let what = format!("HEAD {path}");
        let response = self.send(Method::HEAD, &path, HeaderMap::new(), None, &pull_scope(&name)).await?;
        let response = if response.status().is_redirection() {
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| response.url().join(l).ok())
                .ok_or_else(|| self.upstream(&what, Some(response.status().as_u16()), "redirect without Location"))?;
            self.http().head(location).send().await.map_err(|e| self.body_error(&what, e))?
        } else {
            response
        };
        let Some(response) = self.found(&what, response).await? else { return Ok(None) };
        header_u64(response.headers(), CONTENT_LENGTH.as_str())
            .map(Some)
            .ok_or_else(|| self.upstream(&what, Some(200), "the answer has no Content-Length"))
    }

    /// `Some(response)` for 2xx, `None` for 404, the mapped error otherwise (a redirect included: these
    /// reads do not expect one).
    async fn found(&self, what: &str, response: reqwest::Response) -> Result<Option<reqwest::Response>> {
        match response.status() {
            s if s.is_success() => Ok(Some(response)),
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_redirection() => Err(self.upstream(what, Some(s.as_u16()), "unexpected redirect")),
            _ => Err(self.response_error(what, response).await),
        }
    }

    fn upstream(&self, what: &str, status: Option<u16>, why: &str) -> Error {
        Error::Upstream {
            provider: self.provider().to_owned(),
            status,
            message: format!("{what}: {why}"),
            source: None,
        }
    }

    fn body_error(&self, what: &str, e: reqwest::Error) -> Error {
        Error::Upstream {
            provider: self.provider().to_owned(),
            status: None,
            message: format!("{what}: the connection failed"),
            source: Some(Box::new(e.without_url())),
        }
    }
}

fn manifest_path(repository: &str, reference: &Reference) -> Result<(String, [Scope; 1])> {
    let name = RepositoryName::parse(repository)?;
    Ok((format!("/v2/{name}/manifests/{reference}"), pull_scope(&name)))
}

fn pull_scope(name: &RepositoryName) -> [Scope; 1] {
    [Scope::for_action(name.clone(), Action::Pull)]
}

fn accept_manifests() -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&manifest_accept_header()) {
        headers.insert(ACCEPT, value);
    }
    headers
}

/// The media type without parameters; registries add `charset` to some.
fn content_type(headers: &HeaderMap) -> String {
    essence(headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default()).to_owned()
}

/// The digest a manifest must have: the one asked for, else the one the registry states.
fn expected_digest(reference: &Reference, headers: &HeaderMap) -> Option<Digest> {
    reference.digest().cloned().or_else(|| {
        headers.get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()).and_then(|v| Digest::parse(v.trim()).ok())
    })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
