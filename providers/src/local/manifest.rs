//! Validation of pushed manifests: size, JSON shape, media type, and what they reference.
//!
//! The stored bytes are the client's bytes; parsing only extracts the descriptors the registry checks
//! (image-spec `manifest.md`, `image-index.md`; Docker image manifest v2.2). The four formats share their
//! descriptor shape, so one lenient set of serde types reads them all.

use std::collections::BTreeMap;

use regbridge::oci::{Digest, media_types};
use regbridge::{Error, OciErrorCode, Result};
use serde::Deserialize;

use super::storage::ReferrerDescriptor;

/// [`regbridge::oci::MAX_MANIFEST_BYTES`] as a length.
pub const MAX_MANIFEST_BYTES: usize = regbridge::oci::MAX_MANIFEST_BYTES as usize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    schema_version: Option<u64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    urls: Vec<String>,
}

/// What a valid manifest references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The effective media type.
    pub media_type: String,
    /// Blobs that must exist in the repository (config and layers; foreign layers with `urls` excluded).
    pub blobs: Vec<Digest>,
    /// Manifests that must exist in the repository (entries of an index).
    pub manifests: Vec<Digest>,
    /// The `subject`'s digest.
    pub subject: Option<Digest>,
    /// `artifactType`, or the config's media type for image manifests without one.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ParsedManifest {
    /// The descriptor the referrers API lists for this manifest.
    pub fn referrer(&self, digest: &Digest, size: u64) -> ReferrerDescriptor {
        ReferrerDescriptor {
            media_type: self.media_type.clone(),
            digest: digest.clone(),
            size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(OciErrorCode::ManifestInvalid, message)
}

fn digest_of(d: &Descriptor, field: &str) -> Result<Digest> {
    Digest::parse(&d.digest).map_err(|e| invalid(format!("{field}: {e}")))
}

/// Validates a manifest pushed with `Content-Type` `content_type`.
pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<ParsedManifest> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(Error::TooLarge {
            what: "manifest".into(),
            size: bytes.len() as u64,
            limit: MAX_MANIFEST_BYTES as u64,
        });
    }
    let doc: Document = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("the manifest is not a valid JSON manifest: {e}")))?;
    match doc.schema_version {
        Some(2) => {}
        Some(1) => return Err(invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")),
        other => return Err(invalid(format!("schemaVersion must be 2, got {other:?}"))),
    }
    let header = content_type.map(media_types::essence).filter(|t| media_types::is_manifest(t));
    let media_type = match (doc.media_type.as_deref(), header) {
        (Some(body), Some(header)) if body != header => {
            return Err(invalid(format!("the body's mediaType {body} differs from the Content-Type {header}")));
        }
        (Some(body), _) => body.to_owned(),
        (None, Some(header)) => header.to_owned(),
        (None, None) if doc.manifests.is_some() => media_types::OCI_INDEX.to_owned(),
        (None, None) => media_types::OCI_MANIFEST.to_owned(),
    };
    if !media_types::is_manifest(&media_type) {
        return Err(invalid(format!(
            "unsupported manifest media type {media_type:?}; use one of {}",
            media_types::MANIFEST_TYPES.join(", ")
        )));
    }
    let subject = doc.subject.as_ref().map(|s| digest_of(s, "subject")).transpose()?;
    let mut parsed = ParsedManifest {
        media_type: media_type.clone(),
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type: doc.artifact_type.clone(),
        annotations: doc.annotations,
    };
    if media_types::is_index(&media_type) {
        let entries = doc.manifests.ok_or_else(|| invalid("an index needs a \"manifests\" array"))?;
        for (i, m) in entries.iter().enumerate() {
            parsed.manifests.push(digest_of(m, &format!("manifests[{i}]"))?);
        }
    } else {
        let config = doc.config.ok_or_else(|| invalid("an image manifest needs a \"config\" descriptor"))?;
        let layers = doc.layers.ok_or_else(|| invalid("an image manifest needs a \"layers\" array"))?;
        parsed.blobs.push(digest_of(&config, "config")?);
        if parsed.artifact_type.is_none() {
            parsed.artifact_type = config.media_type.clone();
        }
        for (i, layer) in layers.iter().enumerate() {
            let digest = digest_of(layer, &format!("layers[{i}]"))?;
            // Foreign layers (with `urls`) live elsewhere by design; the registry need not hold them.
            if layer.urls.is_empty() {
                parsed.blobs.push(digest);
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{D}","size":2}},"layers":[{{"mediaType":"x","digest":"{D}","size":2}}]{extra}}}"#,
            media_types::OCI_MANIFEST,
            media_types::OCI_EMPTY
        )
    }

    #[test]
    fn image_manifest_references() {
        let p = parse(Some(media_types::OCI_MANIFEST), image("").as_bytes()).unwrap();
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.artifact_type.as_deref(), Some(media_types::OCI_EMPTY));
        let with_subject =
            image(&format!(r#","subject":{{"mediaType":"x","digest":"{D}","size":1}},"artifactType":"a/b""#));
        let p = parse(None, with_subject.as_bytes()).unwrap();
        assert_eq!(p.subject.unwrap().to_string(), D);
        assert_eq!(p.artifact_type.as_deref(), Some("a/b"));
    }

    #[test]
    fn index_references_manifests() {
        let body = format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"m","digest":"{D}","size":1}}]}}"#);
        let p = parse(Some(media_types::DOCKER_MANIFEST_LIST), body.as_bytes()).unwrap();
        assert_eq!(p.media_type, media_types::DOCKER_MANIFEST_LIST);
        assert_eq!(p.manifests.len(), 1);
        assert!(p.blobs.is_empty());
    }

    #[test]
    fn rejections() {
        let too_big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert_eq!(parse(None, &too_big).unwrap_err().status(), 413);
        let cases = [
            ("not json".to_string(), None, "not a valid JSON"),
            (r#"{"schemaVersion":1}"#.into(), None, "schema 1"),
            (image(""), Some(media_types::DOCKER_MANIFEST), "differs from the Content-Type"),
            (r#"{"schemaVersion":2,"mediaType":"text/plain"}"#.into(), None, "unsupported manifest media type"),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#.into(),
                None,
                "config",
            ),
            (image("").replace(D, "sha256:abc"), None, "config: invalid digest"),
        ];
        for (body, ct, why) in cases {
            let err = parse(ct, body.as_bytes()).unwrap_err();
            assert_eq!(err.code(), OciErrorCode::ManifestInvalid, "{body}");
            assert!(err.to_string().contains(why), "{body}: {err}");
        }
    }
}
