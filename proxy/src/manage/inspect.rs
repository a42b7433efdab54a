//! What Docker's `DistributionInspect` holds for a manifest on any route: its descriptor (media type,
//! digest, size) and, for an index or manifest list, the platforms of its entries. Behind
//! `regbridge inspect NAME[:TAG|@DIGEST]` and `GET /admin/v1/inspect?reference=...`.
//!
//! The manifest is read from the route that serves the name: the local storage, or the route's own
//! upstream client (with a pull scope only). Whatever the source, the bytes are bounded by
//! [`MAX_MANIFEST_BYTES`] and checked against the digest asked for and the digest the source states.

use regbridge::oci::media_types::is_index;
use regbridge::oci::{Digest, MAX_MANIFEST_BYTES, Reference, RepositoryName};
use regbridge::{ArtifactRegistry, Error, Manifest, Resource, Result};
use regbridge_providers::http::UpstreamClient;
use serde::{Deserialize, Serialize};

use super::Manager;
use crate::connections::ConnectionStore;
use crate::routing::Target;

/// The longest reference echoed in an error message: the rest of a hostile one is cut.
const ECHO_MAX: usize = 300;

/// The answer of `inspect`: the manifest a reference names and, for an index, the platforms it serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The client-visible repository name.
    pub name: String,
    /// The tag or digest asked for.
    pub reference: String,
    /// The route serving the name (its label).
    pub route: String,
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// For an index or manifest list, the platforms of its entries that state one, in the index's order;
    /// empty for a single-platform manifest.
    pub platforms: Vec<Platform>,
}

/// An OCI content descriptor, as in the image-spec (`descriptor.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type (`application/vnd.oci.image.index.v1+json`, ...).
    pub media_type: String,
    /// The digest of the manifest's bytes (`sha256:...`).
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
}

/// A platform of an index entry, with the image-spec's field names (`image-index.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Platform {
    /// The CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// The operating system (`linux`, `windows`).
    pub os: String,
    /// The operating system's version (Windows images).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// The CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    /// `os/architecture[/variant]`, as docker prints platforms.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

/// The part of an index read here; lenient, so OCI indexes and Docker manifest lists both parse, and
/// entries without a platform (attestations) are kept out of the platforms rather than failing.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    platform: Option<Platform>,
}

/// `NAME[:TAG|@DIGEST]` (`latest` when neither is given) as a repository name and a reference. NAME is the
/// client-visible name on this server, without a registry host.
pub fn parse_reference(text: &str) -> Result<(RepositoryName, Reference)> {
    let bad = |why: String| {
        let shown: String = text.chars().take(ECHO_MAX).collect();
        let why: String = why.chars().take(ECHO_MAX).collect();
        Error::bad_input(format!("{shown:?} is not a reference NAME[:TAG|@DIGEST] (such as team/app:v1): {why}"))
    };
    if text.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let (name, reference) = match text.split_once('@') {
        Some((name, digest)) => {
            if name.rsplit('/').next().is_some_and(|last| last.contains(':')) {
                return Err(bad("give a tag or a digest, not both".into()));
            }
            let digest = Digest::parse(digest).map_err(|e| bad(format!("the digest: {e}")))?;
            (name, Reference::Digest(digest))
        }
        None => match text.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => {
                (name, Reference::parse(tag).map_err(|e| bad(format!("the tag: {e}")))?)
            }
            _ => (text, Reference::parse("latest").expect("latest is a tag")),
        },
    };
    if name.contains(':') {
        return Err(bad("NAME is the repository on this server, without a registry host or port".into()));
    }
    let name = RepositoryName::parse(name).map_err(|e| bad(format!("the name: {e}")))?;
    Ok((name, reference))
}

/// Checks `manifest` read for `reference`: at most [`MAX_MANIFEST_BYTES`], its bytes of the digest asked
/// for (a digest reference) and of the digest its source stated (a tag), so a registry cannot describe
/// other bytes than it served.
fn verify(reference: &Reference, manifest: &Manifest) -> Result<()> {
    let size = manifest.bytes.len() as u64;
    if size > MAX_MANIFEST_BYTES {
        return Err(Error::TooLarge { what: "manifest".into(), size, limit: MAX_MANIFEST_BYTES });
    }
    let stated = std::iter::once(&manifest.digest).chain(reference.digest());
    for expected in stated {
        let actual = Digest::of(expected.algorithm(), &manifest.bytes);
        if &actual != expected {
            return Err(Error::DigestInvalid { expected: expected.to_string(), actual: actual.to_string() });
        }
    }
    Ok(())
}

/// A digest mismatch is the source's fault, not the caller's: an upstream error (502, exit 1) naming the
/// route, so nobody takes the description of other bytes for the one asked.
fn untrusted(err: Error, route: &str) -> Error {
    match err {
        Error::DigestInvalid { expected, actual } => Error::Upstream {
            provider: route.to_owned(),
            status: None,
            message: format!("the registry served a manifest of digest {actual} for {expected}: not trusted"),
            source: None,
        },
        other => other,
    }
}

/// The descriptor and platforms of a verified manifest. The media type is the one it was served with, else
/// the one its body states.
fn describe(manifest: &Manifest, route: &str) -> Result<(Descriptor, Vec<Platform>)> {
    let body_type =
        || serde_json::from_slice::<Index>(&manifest.bytes).ok().and_then(|i| i.media_type).unwrap_or_default();
    let media_type = if manifest.media_type.is_empty() { body_type() } else { manifest.media_type.clone() };
    let platforms = if is_index(&media_type) {
        let index: Index = serde_json::from_slice(&manifest.bytes).map_err(|e| Error::Upstream {
            provider: route.to_owned(),
            status: None,
            message: format!("the index {} is not a valid index: {e}", manifest.digest),
            source: None,
        })?;
        index.manifests.into_iter().filter_map(|e| e.platform).collect()
    } else {
        Vec::new()
    };
    let size = manifest.bytes.len() as u64;
    Ok((Descriptor { media_type, digest: manifest.digest.to_string(), size }, platforms))
}

/// The manifest `reference` of `repository` through an upstream's `/v2/` client (pull scope only; bounded
/// and digest-checked by the client as well).
async fn fetch(client: &UpstreamClient, repository: &str, reference: &Reference) -> Result<Manifest> {
    client
        .get_manifest(repository, reference)
        .await?
        .ok_or_else(|| Error::not_found(Resource::Manifest, format!("{repository}:{reference} upstream")))
}

impl Manager<'_> {
    /// Inspects `reference` (`NAME[:TAG|@DIGEST]`, client-visible) on the route that serves it. A route to
    /// a registry connection finds the connection in `connections`, opened only for such a route.
    pub async fn inspect(
        &self,
        reference: &str,
        connections: impl FnOnce() -> Result<ConnectionStore>,
    ) -> Result<Inspection> {
        let (name, asked) = parse_reference(reference)?;
        let resolved = self.routes.resolve(&name)?;
        let id = &resolved.upstream_name;
        let manifest = match &resolved.route.target {
            Target::Local => (self.local)()?.get_manifest(id, &asked).await,
            Target::Upstream(upstream) => fetch(&upstream.client, id, &asked).await,
            Target::Connection(route) => fetch(&route.upstream(&connections()?).await?.client, id, &asked).await,
        };
        let route = &resolved.route.label;
        let manifest = manifest.and_then(|m| verify(&asked, &m).map(|()| m)).map_err(|e| untrusted(e, route))?;
        let (descriptor, platforms) = describe(&manifest, route)?;
        Ok(Inspection {
            name: name.as_str().to_owned(),
            reference: asked.to_string(),
            route: resolved.route.label.clone(),
            descriptor,
            platforms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_or_say_what_is_wrong() {
        let (name, r) = parse_reference("team/app:v1").unwrap();
        assert_eq!((name.as_str(), r.to_string().as_str()), ("team/app", "v1"));
        let (name, r) = parse_reference("team/app").unwrap();
        assert_eq!((name.as_str(), r.to_string().as_str()), ("team/app", "latest"));
        let digest = format!("sha256:{}", "a".repeat(64));
        let (_, r) = parse_reference(&format!("team/app@{digest}")).unwrap();
        assert_eq!(r.digest().unwrap().to_string(), digest);
        for (bad, why) in [
            ("", "empty"),
            ("Team/App:v1", "the name"),
            ("team/app:-v1", "the tag"),
            ("team/app@sha256:abc", "the digest"),
            (&format!("team/app:v1@{digest}") as &str, "not both"),
            ("127.0.0.1:5000/team/app:v1", "registry host"),
            ("../etc:x", "the name"),
        ] {
            let err = parse_reference(bad).unwrap_err();
            assert_eq!(crate::cli::exit_code(&err), 2, "{bad}");
            assert!(err.to_string().contains(why), "{bad}: {err}");
        }
        let long = format!("{}:x", "a/".repeat(5000));
        assert!(parse_reference(&long).unwrap_err().to_string().len() < 1000, "a hostile reference is cut");
    }

    fn manifest(media_type: &str, bytes: &[u8]) -> Manifest {
        Manifest { media_type: media_type.into(), digest: Digest::sha256(bytes), bytes: bytes.to_vec() }
    }

    #[test]
    fn what_was_fetched_is_verified() {
        let bytes = br#"{"schemaVersion":2}"#;
        let good = manifest("application/vnd.oci.image.manifest.v1+json", bytes);
        verify(&Reference::parse("v1").unwrap(), &good).unwrap();
        verify(&Reference::Digest(good.digest.clone()), &good).unwrap();
        let other = Reference::Digest(Digest::sha256(b"other"));
        assert!(matches!(verify(&other, &good), Err(Error::DigestInvalid { .. })));
        let lying = Manifest { digest: Digest::sha256(b"other"), ..good.clone() };
        assert!(matches!(verify(&Reference::parse("v1").unwrap(), &lying), Err(Error::DigestInvalid { .. })));
        let huge = manifest("application/vnd.oci.image.manifest.v1+json", &vec![b' '; MAX_MANIFEST_BYTES as usize + 1]);
        assert!(matches!(verify(&Reference::parse("v1").unwrap(), &huge), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn indexes_list_the_platforms_of_their_entries() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[{"mediaType":"m","digest":"sha256:a","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},
            {"mediaType":"m","digest":"sha256:b","size":1},
            {"mediaType":"m","digest":"sha256:c","size":1,"platform":{"architecture":"amd64","os":"windows","os.version":"10.0"}}]}"#;
        let (descriptor, platforms) = describe(&manifest("", index), "route 1").unwrap();
        assert_eq!(descriptor.media_type, "application/vnd.docker.distribution.manifest.list.v2+json");
        assert_eq!(descriptor.size, index.len() as u64);
        let shown: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["linux/arm/v7", "windows/amd64"]);
        assert_eq!(platforms[1].os_version.as_deref(), Some("10.0"));
        let err = describe(&manifest("application/vnd.oci.image.index.v1+json", b"[1]"), "route 1").unwrap_err();
        assert!(err.to_string().contains("not a valid index"), "{err}");
    }
}
