//! The AWS SDK clients the ECR provider calls, and the one mapping from ECR and STS errors to
//! [`regbridge::Error`].

use aws_config::SdkConfig;
use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::operation::RequestId;
use regbridge::{Error, Resource};

/// The provider name used in `Upstream` errors.
pub(crate) const PROVIDER: &str = "ecr";

/// ECR and STS clients sharing one SDK configuration and endpoint overrides.
#[derive(Clone, Debug)]
pub(crate) struct EcrClient {
    pub(crate) ecr: aws_sdk_ecr::Client,
    pub(crate) sts: aws_sdk_sts::Client,
    sdk: SdkConfig,
    ecr_endpoint: Option<String>,
}

impl EcrClient {
    pub(crate) fn new(sdk: &SdkConfig, ecr_endpoint: Option<&str>, sts_endpoint: Option<&str>) -> Self {
        let mut sts = aws_sdk_sts::config::Builder::from(sdk);
        if let Some(url) = sts_endpoint {
            sts = sts.endpoint_url(url);
        }
        Self {
            ecr: aws_sdk_ecr::Client::from_conf(Self::ecr_config(sdk, ecr_endpoint).build()),
            sts: aws_sdk_sts::Client::from_conf(sts.build()),
            sdk: sdk.clone(),
            ecr_endpoint: ecr_endpoint.map(str::to_owned),
        }
    }

    fn ecr_config(sdk: &SdkConfig, endpoint: Option<&str>) -> aws_sdk_ecr::config::Builder {
        let mut b = aws_sdk_ecr::config::Builder::from(sdk);
        if let Some(url) = endpoint {
            b = b.endpoint_url(url);
        }
        b
    }

    /// An ECR client for `region` with the same credentials, settings and endpoint override (replica
    /// repositories in other regions).
    pub(crate) fn ecr_in(&self, region: &str) -> aws_sdk_ecr::Client {
        let conf = Self::ecr_config(&self.sdk, self.ecr_endpoint.as_deref())
            .region(aws_sdk_ecr::config::Region::new(region.to_owned()));
        aws_sdk_ecr::Client::from_conf(conf.build())
    }

    /// An ECR client that signs with `credentials` (an assumed role's session) instead of the base chain.
    pub(crate) fn ecr_with(&self, credentials: aws_sdk_ecr::config::Credentials) -> aws_sdk_ecr::Client {
        let conf = Self::ecr_config(&self.sdk, self.ecr_endpoint.as_deref()).credentials_provider(credentials);
        aws_sdk_ecr::Client::from_conf(conf.build())
    }
}

/// Maps an ECR error: `RepositoryNotFoundException` → `NotFound`, access errors → `Denied`, expired or
/// unknown credentials → `Unauthenticated`, throttling → `TooManyRequests`, anything else → `Upstream` with
/// the operation, the AWS error code and message and the request id.
pub(crate) fn map_ecr_error<E>(operation: &str, name: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    SdkError<E, HttpResponse>: RequestId,
{
    map_error(operation, name, err)
}

/// Maps an STS error the same way as [`map_ecr_error`].
pub(crate) fn map_sts_error<E>(operation: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    SdkError<E, HttpResponse>: RequestId,
{
    map_error(operation, "", err)
}

fn map_error<E>(operation: &str, name: &str, err: SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    SdkError<E, HttpResponse>: RequestId,
{
    let request_id = err.request_id().map(|id| format!(" (request id {id})")).unwrap_or_default();
    let status = match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => status_of(&err),
        _ => None,
    };
    let Some(code) = err.code().map(str::to_owned) else {
        let message = format!("{operation} failed{request_id}: {}", aws_sdk_ecr::error::DisplayErrorContext(&err));
        return Error::Upstream { provider: PROVIDER.into(), status, message, source: Some(Box::new(err)) };
    };
    let text = format!("{operation}: {code}: {}{request_id}", err.message().unwrap_or_default());
    let what = if name.is_empty() { operation.to_owned() } else { name.to_owned() };
    match code.as_str() {
        "RepositoryNotFoundException" => {
            Error::NotFound { resource: Resource::Repository, name: what, source: Some(text.into()) }
        }
        "ImageNotFoundException" => {
            Error::NotFound { resource: Resource::Manifest, name: what, source: Some(text.into()) }
        }
        "LayersNotFoundException" | "LayerInaccessibleException" => {
            Error::NotFound { resource: Resource::Blob, name: what, source: Some(text.into()) }
        }
        "AccessDenied" | "AccessDeniedException" => Error::Denied { message: text },
        "ExpiredToken"
        | "ExpiredTokenException"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch" => Error::Unauthenticated { message: text },
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => {
            Error::TooManyRequests { message: text, retry_after: None }
        }
        "InvalidParameterException" | "ValidationError" | "ValidationException" => Error::bad_input(text),
        _ => Error::Upstream { provider: PROVIDER.into(), status, message: text, source: None },
    }
}

fn status_of<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}
