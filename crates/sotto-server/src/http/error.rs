//! `ApiError`: the only error type handlers return. Every failure — service errors, bad
//! JSON, unknown routes, panics — leaves the server as `{"error": {"code", "message"}}`.

use crate::service::ServiceError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sotto_api::{ErrorBody, ErrorCode};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An answer with `code` and a message for people.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// The generic answer to an internal failure, whose detail goes only to the log.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let code = match &e {
            ServiceError::InvalidInput(_) => ErrorCode::InvalidInput,
            ServiceError::Unauthorized => ErrorCode::Unauthorized,
            ServiceError::InvalidCredentials => ErrorCode::InvalidCredentials,
            ServiceError::AccountDeactivated => ErrorCode::AccountDeactivated,
            ServiceError::Forbidden(_) => ErrorCode::Forbidden,
            ServiceError::InvalidSignature(_) => ErrorCode::InvalidSignature,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::UsernameTaken => ErrorCode::UsernameTaken,
            ServiceError::AlreadySetUp => ErrorCode::AlreadySetUp,
            ServiceError::InvalidSetupToken => ErrorCode::InvalidSetupToken,
            ServiceError::Conflict(_) => ErrorCode::Conflict,
            ServiceError::TooLarge(_) => ErrorCode::PayloadTooLarge,
            ServiceError::RateLimited { retry_after_secs } => {
                let mut err = Self::new(ErrorCode::RateLimited, e.to_string());
                err.retry_after_secs = Some(*retry_after_secs);
                return err;
            }
            ServiceError::Internal(detail) => return Self::internal(detail),
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, axum::Json(ErrorBody::new(self.code, self.message))).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The fallback for paths no router knows.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// The fallback for known paths called with another method.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not accept that method",
    )
}

/// Turns a handler panic into the generic internal error (the panic is logged).
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic".into());
    ApiError::internal(&format!("handler panicked: {detail}")).into_response()
}
