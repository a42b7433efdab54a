//! The one error type of regbridge, its mapping to HTTP statuses and OCI error codes, and the OCI error
//! envelope (distribution-spec `spec.md`, "Error Codes").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A boxed error kept as the `source` of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with regbridge's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of thing was missing or already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Resource {
    /// A repository (OCI `NAME_UNKNOWN`).
    Repository,
    /// A manifest or tag (OCI `MANIFEST_UNKNOWN`).
    Manifest,
    /// A blob (OCI `BLOB_UNKNOWN`).
    Blob,
    /// A blob upload session (OCI `BLOB_UPLOAD_UNKNOWN`).
    Upload,
    /// Anything else: a credential, a connection, a route.
    Other,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Repository => "repository",
            Resource::Manifest => "manifest",
            Resource::Blob => "blob",
            Resource::Upload => "upload",
            Resource::Other => "resource",
        })
    }
}

/// Every error regbridge returns. Each variant carries enough context to say what to fix.
///
/// [`Error::status`] and [`Error::code`] are the one place that maps a variant to an HTTP status and an
/// OCI error code; [`Error::to_envelope`] builds the JSON body clients expect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository, manifest, blob or upload does not exist.
    #[error("{resource} not found: {name}")]
    NotFound {
        /// What kind of thing is missing.
        resource: Resource,
        /// Its name, digest or id.
        name: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The thing to create is already there (only where creating is not idempotent).
    #[error("{resource} already exists: {name}")]
    AlreadyExists {
        /// What kind of thing exists.
        resource: Resource,
        /// Its name.
        name: String,
    },
    /// The caller's input is malformed. `code` says which OCI code applies (`NAME_INVALID`, `TAG_INVALID`,
    /// `MANIFEST_INVALID`, `RANGE_INVALID`, ...).
    #[error("{message}")]
    InvalidInput {
        /// The OCI error code for this kind of bad input.
        code: OciErrorCode,
        /// What was wrong and how to fix it.
        message: String,
    },
    /// A body is larger than the limit regbridge accepts.
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// What was too large ("manifest").
        what: String,
        /// Its size, as far as known.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// No or invalid credentials.
    #[error("authentication required: {message}")]
    Unauthenticated {
        /// Why the credentials were not accepted (never the credentials themselves).
        message: String,
    },
    /// Authenticated, but not allowed to do this.
    #[error("access denied: {message}")]
    Denied {
        /// What was refused.
        message: String,
    },
    /// The provider cannot do this operation at all.
    #[error("{operation} is not supported by {provider}")]
    Unsupported {
        /// The operation, e.g. `create_repository`.
        operation: String,
        /// The provider, e.g. `generic(ghcr.io)`.
        provider: String,
    },
    /// Content did not match the digest it was given under.
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestInvalid {
        /// The digest the client named.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The caller or an upstream is rate limited.
    #[error("too many requests: {message}")]
    TooManyRequests {
        /// Details, such as the upstream's message.
        message: String,
        /// How long to wait, when known.
        retry_after: Option<Duration>,
    },
    /// An upstream registry or cloud API failed in a way none of the variants above describes.
    #[error("{provider} upstream error{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Upstream {
        /// The provider that made the call.
        provider: String,
        /// The upstream HTTP status, when there was one.
        status: Option<u16>,
        /// What failed, including the upstream's request id where it gave one.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A failure inside regbridge (storage I/O, a broken invariant).
    #[error("internal error: {message}")]
    Internal {
        /// What failed.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// `NotFound` with no source.
    pub fn not_found(resource: Resource, name: impl Into<String>) -> Self {
        Error::NotFound { resource, name: name.into(), source: None }
    }

    /// `InvalidInput` with the given OCI code.
    pub fn invalid(code: OciErrorCode, message: impl Into<String>) -> Self {
        Error::InvalidInput { code, message: message.into() }
    }

    /// `InvalidInput` for malformed input that is not an OCI object (a config file, a header, a setting);
    /// it carries the generic `UNKNOWN` code and answers 400.
    pub fn bad_input(message: impl Into<String>) -> Self {
        Error::InvalidInput { code: OciErrorCode::Unknown, message: message.into() }
    }

    /// `Unsupported` for `operation` on `provider`.
    pub fn unsupported(operation: impl Into<String>, provider: impl fmt::Display) -> Self {
        Error::Unsupported { operation: operation.into(), provider: provider.to_string() }
    }

    /// `Internal` wrapping an underlying error.
    pub fn internal(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal { message: message.into(), source: Some(source.into()) }
    }

    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } => 409,
            Error::InvalidInput { code: OciErrorCode::RangeInvalid, .. } => 416,
            Error::InvalidInput { .. } | Error::DigestInvalid { .. } => 400,
            Error::TooLarge { .. } => 413,
            Error::Unauthenticated { .. } => 401,
            Error::Denied { .. } => 403,
            Error::Unsupported { .. } => 405,
            Error::TooManyRequests { .. } => 429,
            // An upstream that says it is unavailable stays so (clients retry a 503), anything else is 502.
            Error::Upstream { status: Some(503), .. } => 503,
            Error::Upstream { .. } => 502,
            Error::Internal { .. } => 500,
        }
    }

    /// The OCI error code for this error.
    pub fn code(&self) -> OciErrorCode {
        match self {
            Error::NotFound { resource, .. } => match resource {
                Resource::Repository => OciErrorCode::NameUnknown,
                Resource::Manifest => OciErrorCode::ManifestUnknown,
                Resource::Blob => OciErrorCode::BlobUnknown,
                Resource::Upload => OciErrorCode::BlobUploadUnknown,
                Resource::Other => OciErrorCode::NameUnknown,
            },
            Error::AlreadyExists { .. } => OciErrorCode::Denied,
            Error::InvalidInput { code, .. } => *code,
            Error::TooLarge { .. } => OciErrorCode::SizeInvalid,
            Error::Unauthenticated { .. } => OciErrorCode::Unauthorized,
            Error::Denied { .. } => OciErrorCode::Denied,
            Error::Unsupported { .. } => OciErrorCode::Unsupported,
            Error::DigestInvalid { .. } => OciErrorCode::DigestInvalid,
            Error::TooManyRequests { .. } => OciErrorCode::TooManyRequests,
            Error::Upstream { .. } | Error::Internal { .. } => OciErrorCode::Unknown,
        }
    }

    /// The OCI error body for this error. Internal details (sources) are not included: they stay in logs.
    pub fn to_envelope(&self) -> OciErrorEnvelope {
        let detail = match self {
            Error::DigestInvalid { expected, actual } => {
                Some(serde_json::json!({ "expected": expected, "actual": actual }))
            }
            Error::TooLarge { size, limit, .. } => Some(serde_json::json!({ "size": size, "limit": limit })),
            _ => None,
        };
        OciErrorEnvelope::single(self.code(), self.to_string(), detail)
    }
}

/// The OCI error codes (distribution-spec "Error Codes"), plus `UNKNOWN` for server-side failures as the
/// reference registry uses it, `RANGE_INVALID` and `PAGINATION_NUMBER_INVALID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum OciErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    #[serde(rename = "TOOMANYREQUESTS")]
    TooManyRequests,
    /// Invalid tag (distribution's extension).
    TagInvalid,
    /// A requested range cannot be satisfied (distribution's extension).
    RangeInvalid,
    /// Invalid `n` for pagination (distribution's extension).
    PaginationNumberInvalid,
    /// An unknown server-side failure (distribution's extension).
    Unknown,
}

impl fmt::Display for OciErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_value(self).map_err(|_| fmt::Error)?;
        f.write_str(json.as_str().unwrap_or("UNKNOWN"))
    }
}

/// `{"errors":[{"code","message","detail"}]}`, the body of every OCI error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciErrorEnvelope {
    /// The errors; registries send one.
    pub errors: Vec<OciErrorItem>,
}

/// One entry of [`OciErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciErrorItem {
    /// The code.
    pub code: OciErrorCode,
    /// A message for people.
    #[serde(default)]
    pub message: String,
    /// Unstructured details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

impl OciErrorEnvelope {
    /// An envelope holding one error.
    pub fn single(code: OciErrorCode, message: impl Into<String>, detail: Option<serde_json::Value>) -> Self {
        Self { errors: vec![OciErrorItem { code, message: message.into(), detail }] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_maps_to_status_and_code() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (Error::not_found(Resource::Repository, "a"), 404, "NAME_UNKNOWN"),
            (Error::not_found(Resource::Manifest, "a:v1"), 404, "MANIFEST_UNKNOWN"),
            (Error::not_found(Resource::Blob, "sha256:x"), 404, "BLOB_UNKNOWN"),
            (Error::not_found(Resource::Upload, "u"), 404, "BLOB_UPLOAD_UNKNOWN"),
            (Error::AlreadyExists { resource: Resource::Other, name: "x".into() }, 409, "DENIED"),
            (Error::invalid(OciErrorCode::NameInvalid, "bad"), 400, "NAME_INVALID"),
            (Error::invalid(OciErrorCode::RangeInvalid, "bad"), 416, "RANGE_INVALID"),
            (Error::TooLarge { what: "manifest".into(), size: 5, limit: 4 }, 413, "SIZE_INVALID"),
            (Error::Unauthenticated { message: "m".into() }, 401, "UNAUTHORIZED"),
            (Error::Denied { message: "m".into() }, 403, "DENIED"),
            (Error::unsupported("create_repository", "generic(ghcr.io)"), 405, "UNSUPPORTED"),
            (Error::DigestInvalid { expected: "a".into(), actual: "b".into() }, 400, "DIGEST_INVALID"),
            (Error::TooManyRequests { message: "m".into(), retry_after: None }, 429, "TOOMANYREQUESTS"),
            (
                Error::Upstream { provider: "ecr".into(), status: Some(500), message: "m".into(), source: None },
                502,
                "UNKNOWN",
            ),
            (
                Error::Upstream { provider: "ecr".into(), status: Some(503), message: "m".into(), source: None },
                503,
                "UNKNOWN",
            ),
            (Error::internal("disk", std::io::Error::other("full")), 500, "UNKNOWN"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err}");
            assert_eq!(err.code().to_string(), code, "{err}");
            let body = serde_json::to_value(err.to_envelope()).unwrap();
            assert_eq!(body["errors"][0]["code"], code);
        }
    }

    #[test]
    fn envelope_parses_what_registries_send() {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let env: OciErrorEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(env.errors[0].code, OciErrorCode::ManifestUnknown);
        let digest = Error::DigestInvalid { expected: "sha256:a".into(), actual: "sha256:b".into() };
        let json = serde_json::to_string(&digest.to_envelope()).unwrap();
        assert!(json.contains("\"expected\":\"sha256:a\""), "{json}");
    }

    #[test]
    fn upstream_message_names_the_status() {
        let e = Error::Upstream { provider: "gar".into(), status: Some(503), message: "busy".into(), source: None };
        assert_eq!(e.to_string(), "gar upstream error (HTTP 503): busy");
    }
}
