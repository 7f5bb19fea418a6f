//! The API's one error shape, `{"error": {"kind", "message"}}`, with its HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use microsandbox::{ErrorKind, MicrosandboxError};
use serde::Serialize;

/// A failed request: what kind of failure, and a message naming the thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `not_found`, `conflict` … (see `docs/api.md`).
    pub kind: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The failure.
    pub error: ErrorDetail,
}

/// One failure.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Its class: bad_request, unauthorized, forbidden, not_found, method_not_allowed,
    /// conflict, payload_too_large, invalid, timeout, no_space, upstream, internal.
    pub kind: String,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `status`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 422: the request is well-formed but asks for something that cannot be.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
    }

    /// 401, the same for every path: nothing is said about what exists.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer TOKEN; see $MSB_HOME/server/token)",
        )
    }

    /// 500 for a failure of the server itself.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                kind: self.kind.to_string(),
                message: self.message.clone(),
            },
        }
    }
}

impl From<MicrosandboxError> for ApiError {
    fn from(e: MicrosandboxError) -> ApiError {
        let kind = e.kind();
        let status = match kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorKind::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
            ErrorKind::Upstream => StatusCode::BAD_GATEWAY,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if kind == ErrorKind::Internal {
            tracing::warn!(error = %e, "request failed");
        }
        ApiError::new(status, kind.as_str(), e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        use axum::extract::rejection::JsonRejection as R;
        match rejection {
            R::BytesRejection(ref r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the body is over the limit of {} MiB",
                    crate::router::JSON_BODY_LIMIT >> 20
                ),
            ),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad_request(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_errors_get_the_status_of_their_kind() {
        let e: ApiError = MicrosandboxError::SandboxNotFound("a".into()).into();
        assert_eq!((e.status, e.kind), (StatusCode::NOT_FOUND, "not_found"));
        let e: ApiError = MicrosandboxError::SandboxExists("a".into()).into();
        assert_eq!((e.status, e.kind), (StatusCode::CONFLICT, "conflict"));
        let e: ApiError = MicrosandboxError::InvalidArgument("no".into()).into();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
}
