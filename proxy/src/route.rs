//! Turns the path after `/v2/` into an [`OciRoute`]. Repository names contain slashes, so the name is
//! whatever precedes the endpoint's fixed suffix (distribution-spec `spec.md`, "Endpoints").

use regbridge::oci::{Digest, Reference, RepositoryName};
use regbridge::{Error, OciErrorCode, Resource, Result};

/// One endpoint of the distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRoute {
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, String),
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, Digest),
}

impl OciRoute {
    /// Parses `rest`, the path after `/v2/`.
    pub fn parse(rest: &str) -> Result<Self> {
        if rest == "_catalog" {
            return Ok(OciRoute::Catalog);
        }
        let unknown = || Error::not_found(Resource::Other, format!("/v2/{rest}"));
        let name = |segments: &[&str]| RepositoryName::parse(&segments.join("/"));
        let segments: Vec<&str> = rest.split('/').collect();
        let n = segments.len();
        if n >= 3 && segments[n - 3] == "blobs" && segments[n - 2] == "uploads" {
            let repo = name(&segments[..n - 3])?;
            return Ok(if segments[n - 1].is_empty() {
                OciRoute::UploadStart(repo)
            } else {
                OciRoute::Upload(repo, segments[n - 1].to_owned())
            });
        }
        if n >= 2 && segments[n - 2] == "blobs" && segments[n - 1] == "uploads" {
            return Ok(OciRoute::UploadStart(name(&segments[..n - 2])?));
        }
        if n >= 3 && segments[n - 2] == "tags" && segments[n - 1] == "list" {
            return Ok(OciRoute::Tags(name(&segments[..n - 2])?));
        }
        if n < 3 {
            return Err(unknown());
        }
        let (repo, kind, last) = (&segments[..n - 2], segments[n - 2], segments[n - 1]);
        match kind {
            "manifests" => Ok(OciRoute::Manifest(name(repo)?, Reference::parse(last)?)),
            "blobs" => Ok(OciRoute::Blob(name(repo)?, Digest::parse(last)?)),
            "referrers" => Ok(OciRoute::Referrers(
                name(repo)?,
                Digest::parse(last).map_err(|e| Error::invalid(OciErrorCode::DigestInvalid, e.to_string()))?,
            )),
            _ => Err(unknown()),
        }
    }

    /// The repository the route acts on.
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            OciRoute::Catalog => None,
            OciRoute::Manifest(r, _)
            | OciRoute::Blob(r, _)
            | OciRoute::UploadStart(r)
            | OciRoute::Upload(r, _)
            | OciRoute::Tags(r)
            | OciRoute::Referrers(r, _) => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn routes() {
        let repo = |s: &str| RepositoryName::parse(s).unwrap();
        assert_eq!(OciRoute::parse("_catalog").unwrap(), OciRoute::Catalog);
        assert_eq!(
            OciRoute::parse("a/b/manifests/v1").unwrap(),
            OciRoute::Manifest(repo("a/b"), Reference::parse("v1").unwrap())
        );
        assert_eq!(
            OciRoute::parse(&format!("a/blobs/{D}")).unwrap(),
            OciRoute::Blob(repo("a"), Digest::parse(D).unwrap())
        );
        assert_eq!(OciRoute::parse("a/b/blobs/uploads/").unwrap(), OciRoute::UploadStart(repo("a/b")));
        assert_eq!(OciRoute::parse("a/blobs/uploads").unwrap(), OciRoute::UploadStart(repo("a")));
        assert_eq!(OciRoute::parse("a/blobs/uploads/xyz").unwrap(), OciRoute::Upload(repo("a"), "xyz".into()));
        assert_eq!(OciRoute::parse("tags/tags/list").unwrap(), OciRoute::Tags(repo("tags")));
        assert_eq!(
            OciRoute::parse("manifests/manifests/x").unwrap(),
            OciRoute::Manifest(repo("manifests"), Reference::parse("x").unwrap())
        );
        assert_eq!(
            OciRoute::parse(&format!("r/referrers/{D}")).unwrap(),
            OciRoute::Referrers(repo("r"), Digest::parse(D).unwrap())
        );
    }

    #[test]
    fn bad_paths() {
        assert_eq!(OciRoute::parse("../x/manifests/v1").unwrap_err().code(), OciErrorCode::NameInvalid);
        assert_eq!(OciRoute::parse("A/manifests/v1").unwrap_err().code(), OciErrorCode::NameInvalid);
        assert_eq!(OciRoute::parse("a/blobs/sha256:12").unwrap_err().code(), OciErrorCode::DigestInvalid);
        assert_eq!(OciRoute::parse("a/manifests/-bad").unwrap_err().code(), OciErrorCode::TagInvalid);
        assert_eq!(OciRoute::parse("a/whatever").unwrap_err().status(), 404);
        assert_eq!(OciRoute::parse("").unwrap_err().status(), 404);
    }
}
