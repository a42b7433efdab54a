//! Manifests read with `BatchGetImage`: the media types it documents, its per-image `failures` mapped to
//! errors, and the cases it cannot answer faithfully (then the registry's `/v2/` API is asked).
//!
//! See <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_BatchGetImage.html> and
//! <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageFailure.html>.

use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::types::{Image, ImageFailure, ImageFailureCode};
use regbridge::error::OciErrorCode;
use regbridge::oci::media_types::{DOCKER_MANIFEST, MANIFEST_TYPES, OCI_MANIFEST};
use regbridge::oci::{Digest, Reference};
use regbridge::{Error, Manifest, Resource, Result};

use super::client::PROVIDER;

/// The `acceptedMediaTypes` sent: of the values the API reference lists (Docker schema 1, Docker schema 2,
/// OCI image manifest), those regbridge serves. Indexes and manifest lists are not listed, so they are
/// read through the registry API instead ([`from_output`] says when).
pub const ACCEPTED_MEDIA_TYPES: [&str; 2] = [DOCKER_MANIFEST, OCI_MANIFEST];

/// The manifest `BatchGetImage` answered for `reference` in `name`, `Ok(None)` when its answer is not the
/// stored manifest (ECR converted it, as it may an index or manifest list when the accepted types do not
/// include its type: the bytes then do not hash to the image's digest) and the registry API must be asked,
/// or the error its `failures` entry (or its silence) stands for.
pub fn from_output(out: &BatchGetImageOutput, name: &str, reference: &Reference) -> Result<Option<Manifest>> {
    match (out.images().first(), out.failures().first()) {
        (Some(image), _) => Ok(stored_manifest(image, reference)),
        (None, Some(failure)) => Err(failure_error(failure, name, reference)),
        (None, None) => Err(Error::not_found(Resource::Manifest, format!("{name}:{reference}"))),
    }
}

fn stored_manifest(image: &Image, reference: &Reference) -> Option<Manifest> {
    let bytes = image.image_manifest()?.as_bytes().to_vec();
    let stored = reference
        .digest()
        .cloned()
        .or_else(|| image.image_id().and_then(|id| id.image_digest()).and_then(|d| Digest::parse(d).ok()));
    let digest = match stored {
        Some(stored) => {
            let actual = Digest::of(stored.algorithm(), &bytes);
            (actual == stored).then_some(actual)?
        }
        None => Digest::sha256(&bytes),
    };
    let media_type = image
        .image_manifest_media_type()
        .map(str::to_owned)
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("mediaType").and_then(|m| m.as_str()).map(str::to_owned))
        })
        .unwrap_or_else(|| MANIFEST_TYPES[0].to_owned());
    Some(Manifest { media_type, digest, bytes })
}

/// The error a `BatchGetImage` failure stands for: throttled or unavailable upstreams (pull-through cache
/// rules) are 429 / 503, refused access (the upstream's, or the repository's KMS key) 403, missing or
/// inaccessible (for example archived) images 404, malformed references 400. The reason ECR gave is kept.
pub fn failure_error(failure: &ImageFailure, name: &str, reference: &Reference) -> Error {
    let what = format!("{name}:{reference}");
    let code = failure.failure_code().map_or("(no code)", ImageFailureCode::as_str);
    let reason = failure.failure_reason().unwrap_or("no reason given");
    let text = format!("BatchGetImage of {what}: {code}: {reason}");
    match failure.failure_code() {
        Some(ImageFailureCode::ImageNotFound) => {
            Error::NotFound { resource: Resource::Manifest, name: what, source: Some(text.into()) }
        }
        Some(c) if c.as_str() == "ImageInaccessible" => {
            Error::NotFound { resource: Resource::Manifest, name: what, source: Some(text.into()) }
        }
        Some(ImageFailureCode::UpstreamTooManyRequests) => Error::TooManyRequests { message: text, retry_after: None },
        Some(ImageFailureCode::UpstreamUnavailable) => {
            Error::Upstream { provider: PROVIDER.into(), status: Some(503), message: text, source: None }
        }
        Some(ImageFailureCode::UpstreamAccessDenied) => Error::Denied { message: text },
        Some(ImageFailureCode::KmsError) => {
            Error::Denied { message: format!("{text} (the repository's KMS key must allow kms:Decrypt to the puller)") }
        }
        Some(ImageFailureCode::InvalidImageDigest) => Error::invalid(OciErrorCode::DigestInvalid, text),
        Some(ImageFailureCode::InvalidImageTag) => Error::invalid(OciErrorCode::TagInvalid, text),
        Some(ImageFailureCode::ImageTagDoesNotMatchDigest | ImageFailureCode::MissingDigestAndTag) => {
            Error::bad_input(text)
        }
        _ => Error::Upstream { provider: PROVIDER.into(), status: None, message: text, source: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::types::ImageIdentifier;

    fn failure(code: &str) -> ImageFailure {
        ImageFailure::builder().failure_code(ImageFailureCode::from(code)).failure_reason("stubbed reason").build()
    }

    #[test]
    fn failures_map_to_statuses_with_the_reason() {
        let tag = Reference::parse("v1").unwrap();
        for (code, status) in [
            ("UpstreamTooManyRequests", 429),
            ("UpstreamUnavailable", 503),
            ("UpstreamAccessDenied", 403),
            ("KmsError", 403),
            ("ImageInaccessible", 404),
            ("ImageNotFound", 404),
            ("InvalidImageDigest", 400),
            ("InvalidImageTag", 400),
            ("ImageTagDoesNotMatchDigest", 400),
            ("MissingDigestAndTag", 400),
            ("SomethingNew", 502),
        ] {
            let err = failure_error(&failure(code), "team/app", &tag);
            assert_eq!(err.status(), status, "{code}: {err:?}");
            let shown = format!("{err} {:?}", err);
            assert!(shown.contains(code) && shown.contains("stubbed reason"), "{code}: {shown}");
        }
    }

    #[test]
    fn a_converted_manifest_is_not_taken_for_the_stored_one() {
        let bytes = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let own = Digest::sha256(bytes.as_bytes()).to_string();
        let image = |digest: &str| {
            Image::builder()
                .image_id(ImageIdentifier::builder().image_tag("v1").image_digest(digest).build())
                .image_manifest(bytes)
                .build()
        };
        let tag = Reference::parse("v1").unwrap();
        let got = stored_manifest(&image(&own), &tag).unwrap();
        assert_eq!((got.media_type.as_str(), got.digest.to_string()), (OCI_MANIFEST, own.clone()));
        let index = Digest::sha256(b"the index").to_string();
        assert!(stored_manifest(&image(&index), &tag).is_none());
        assert!(stored_manifest(&image(&own), &Reference::parse(&index).unwrap()).is_none());
    }
}
