//! The management API's one error shape, `{"errors":[{"code","message","detail"?}]}`, and its JSON answers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One entry of an error answer.
pub(crate) fn item(code: &str, message: &str, detail: Option<Value>) -> Value {
    match detail {
        Some(detail) => json!({ "code": code, "message": message, "detail": detail }),
        None => json!({ "code": code, "message": message }),
    }
}

/// An error answer: `{"errors":[...]}`.
pub(crate) fn errors(status: StatusCode, items: Vec<Value>) -> Response {
    json_response(status, &json!({ "errors": items }))
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The answer for a failed operation of the routes' providers: the error's status, a code and its message.
/// Server errors are logged with their source; the client sees the message only.
pub(crate) fn problem(err: &regbridge::Error) -> Response {
    // The OCI API answers an unsupported operation 405; here the method is fine and the route's provider
    // cannot do it, which the caller fixes by choosing another route: a 400.
    let status = match err {
        regbridge::Error::Unsupported { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let code = match (err, status.as_u16()) {
        (regbridge::Error::Unsupported { .. }, _) => "UNSUPPORTED",
        (_, 400 | 413 | 416) => "INVALID",
        (_, 401) => "UNAUTHORIZED",
        (_, 403) => "DENIED",
        (_, 404) => "NOT_FOUND",
        (_, 409) => "CONFLICT",
        (_, 429) => "TOOMANYREQUESTS",
        _ => "INTERNAL",
    };
    if status.is_server_error() {
        tracing::error!(error = %err, source = ?std::error::Error::source(err), "admin request failed");
    }
    let mut response = errors(status, vec![item(code, &err.to_string(), None)]);
    if let regbridge::Error::TooManyRequests { retry_after: Some(after), .. } = err {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs()));
    }
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"regbridge admin\""));
    }
    response
}

/// The one error shape of the management API.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// One entry per problem (per bad field).
    pub errors: Vec<ErrorItem>,
}

/// One problem.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorItem {
    /// `INVALID`, `UNAUTHORIZED`, `DENIED`, `NOT_FOUND`, `CONFLICT`, `TOOMANYREQUESTS`, `UNSUPPORTED`, `INTERNAL`.
    pub code: String,
    /// What went wrong and what to fix.
    pub message: String,
    /// `{"field": NAME}` for a bad field, and what else helps.
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
}
