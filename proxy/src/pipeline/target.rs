//! Step 1 of the pipeline: the request's path and query as typed values. The path after `/v2/` becomes an
//! [`OciRoute`] (repository names contain slashes, so the name is whatever precedes the endpoint's fixed
//! suffix: distribution-spec `spec.md`, "Endpoints"), and the query parameters an endpoint uses become
//! [`Params`]. Nothing downstream looks at the raw path or query again, so no text a client sends reaches
//! an upstream URL except through these types.
//!
//! The path is parsed as sent, not percent-decoded: no name, reference, digest or upload id contains `%`,
//! so `%2f` or `%2e%2e` is simply invalid rather than a second spelling of `/` or `..`.

use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{Error, OciErrorCode, Resource, Result};

/// The longest upload id accepted (ids are ours: a UUID locally, a sealed upstream location on routes).
const MAX_UPLOAD_ID: usize = 8192;

/// Whether `id` has the shape of an upload id this server hands out (URL-safe base64 or a UUID).
fn valid_upload_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_UPLOAD_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

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
            let id = segments[n - 1];
            return Ok(if id.is_empty() {
                OciRoute::UploadStart(repo)
            } else if valid_upload_id(id) {
                OciRoute::Upload(repo, id.to_owned())
            } else {
                return Err(Error::not_found(Resource::Upload, id.chars().take(40).collect::<String>()));
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

    /// The endpoint's name, as metrics label it.
    pub fn endpoint(&self) -> &'static str {
        match self {
            OciRoute::Catalog => "catalog",
            OciRoute::Manifest(..) => "manifest",
            OciRoute::Blob(..) => "blob",
            OciRoute::UploadStart(_) | OciRoute::Upload(..) => "upload",
            OciRoute::Tags(_) => "tags",
            OciRoute::Referrers(..) => "referrers",
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

/// The query parameters the distribution API defines, typed. Everything else in a query is ignored: it
/// is never forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `n`: the page size of a list.
    pub n: Option<usize>,
    /// `last`: the list entry a page starts after (a tag for tag lists, a repository for the catalog).
    pub last: Option<String>,
    /// `digest`: the digest that closes an upload (monolithic POST, or the final PUT).
    pub digest: Option<Digest>,
    /// `mount` and `from`: a cross-repository mount request (both present and valid).
    pub mount: Option<(Digest, RepositoryName)>,
    /// `artifactType`: the referrers filter.
    pub artifact_type: Option<String>,
}

impl Params {
    /// Parses the query of a request to `route`. A parameter that is present but malformed is an error
    /// naming it, not silently dropped.
    pub fn parse(route: &OciRoute, query: &str) -> Result<Self> {
        let mut params = Params::default();
        let (mut mount, mut from) = (None, None);
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match (key.as_ref(), route) {
                ("n", OciRoute::Tags(_) | OciRoute::Catalog) if params.n.is_none() => {
                    params.n = Some(value.parse().map_err(|_| {
                        Error::invalid(
                            OciErrorCode::PaginationNumberInvalid,
                            format!("n must be a non-negative integer, got {:?}", clip(&value)),
                        )
                    })?);
                }
                ("last", OciRoute::Tags(_)) if params.last.is_none() => {
                    params.last = Some(Tag::parse(&value)?.to_string());
                }
                ("last", OciRoute::Catalog) if params.last.is_none() => {
                    params.last = Some(RepositoryName::parse(&value)?.to_string());
                }
                ("digest", OciRoute::UploadStart(_) | OciRoute::Upload(..)) if params.digest.is_none() => {
                    params.digest = Some(Digest::parse(&value)?);
                }
                ("mount", OciRoute::UploadStart(_)) if mount.is_none() => mount = Some(Digest::parse(&value)?),
                ("from", OciRoute::UploadStart(_)) if from.is_none() => from = Some(RepositoryName::parse(&value)?),
                ("artifactType", OciRoute::Referrers(..)) if params.artifact_type.is_none() => {
                    params.artifact_type = Some(media_type(&value)?);
                }
                _ => {}
            }
        }
        params.mount = mount.zip(from);
        Ok(params)
    }

    /// The query string of these parameters, for a request to an upstream registry (what the client sent,
    /// re-encoded from the typed values).
    pub fn to_query(&self) -> String {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        if let Some(n) = self.n {
            out.append_pair("n", &n.to_string());
        }
        if let Some(last) = &self.last {
            out.append_pair("last", last);
        }
        if let Some(digest) = &self.digest {
            out.append_pair("digest", &digest.to_string());
        }
        if let Some(artifact_type) = &self.artifact_type {
            out.append_pair("artifactType", artifact_type);
        }
        out.finish()
    }
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// A media type as RFC 6838 spells one (`type/subtype`, restricted characters), or `MANIFEST_INVALID`.
fn media_type(text: &str) -> Result<String> {
    let name = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
    };
    match text.split_once('/') {
        Some((t, sub)) if name(t) && name(sub) => Ok(text.to_owned()),
        _ => Err(Error::bad_input(format!("artifactType must be a media type (type/subtype), got {:?}", clip(text)))),
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
        // Percent-encoding is no second spelling of a path.
        assert_eq!(OciRoute::parse("a%2F..%2Fb/manifests/v1").unwrap_err().code(), OciErrorCode::NameInvalid);
        assert_eq!(OciRoute::parse("a/%2e%2e/b/manifests/v1").unwrap_err().code(), OciErrorCode::NameInvalid);
        assert_eq!(OciRoute::parse("a/manifests/%2e%2e").unwrap_err().code(), OciErrorCode::TagInvalid);
        assert_eq!(OciRoute::parse("a/blobs/uploads/x%2F..").unwrap_err().code(), OciErrorCode::BlobUploadUnknown);
        assert_eq!(OciRoute::parse("a/blobs/uploads/..").unwrap_err().code(), OciErrorCode::BlobUploadUnknown);
    }

    #[test]
    fn params() {
        let tags = OciRoute::Tags(RepositoryName::parse("a").unwrap());
        let p = Params::parse(&tags, "n=5&last=v1&x=%2F..&digest=sha256:00").unwrap();
        assert_eq!((p.n, p.last.as_deref(), p.digest.is_none()), (Some(5), Some("v1"), true));
        assert_eq!(p.to_query(), "n=5&last=v1");
        assert_eq!(Params::parse(&tags, "n=-1").unwrap_err().code(), OciErrorCode::PaginationNumberInvalid);
        assert!(Params::parse(&tags, "last=../../x").is_err());
        let start = OciRoute::UploadStart(RepositoryName::parse("a").unwrap());
        let p = Params::parse(&start, &format!("mount={D}&from=b/c")).unwrap();
        assert_eq!(p.mount.unwrap().1.as_str(), "b/c");
        assert_eq!(
            Params::parse(&start, &format!("mount={D}&from=..%2Fx")).unwrap_err().code(),
            OciErrorCode::NameInvalid
        );
        assert_eq!(Params::parse(&start, "digest=sha256:zz").unwrap_err().code(), OciErrorCode::DigestInvalid);
        let refs = OciRoute::Referrers(RepositoryName::parse("a").unwrap(), Digest::parse(D).unwrap());
        assert!(Params::parse(&refs, "artifactType=application/vnd.x%2Bjson").is_ok());
        assert!(Params::parse(&refs, "artifactType=../x").is_err());
    }
}
