//! The one error shape: `{"error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Stable, machine-readable error codes. Clients match on these; the message is for people.
/// New codes may be added; existing ones never change meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON, or does not have the expected fields and types.
    InvalidJson,
    /// A field has a value the server does not accept (the message names the field).
    InvalidInput,
    /// No valid bearer token was presented, or it was revoked or expired.
    Unauthorized,
    /// Username or password is wrong.
    InvalidCredentials,
    /// The account is deactivated; it cannot log in and its tokens do not work.
    AccountDeactivated,
    /// The caller is authenticated but not allowed to do this (for example, not an admin).
    Forbidden,
    /// A signature the request carries does not verify with the caller's published
    /// identity key over what is stored now (for example a key backup replacement signed
    /// over a backup that has since changed).
    InvalidSignature,
    /// No such resource, or the caller may not know it exists.
    NotFound,
    /// The path exists but not with this HTTP method.
    MethodNotAllowed,
    /// The username is already taken (usernames are unique regardless of case).
    UsernameTaken,
    /// The workspace already has an admin; the setup endpoint is closed.
    AlreadySetUp,
    /// The setup token is wrong, used or expired.
    InvalidSetupToken,
    /// The request conflicts with what is stored (for example a message id reused with
    /// other content).
    Conflict,
    /// Too many attempts or messages; retry after the number of seconds in the
    /// `Retry-After` header.
    RateLimited,
    /// The user already has as many realtime connections open as the server allows;
    /// close one first.
    TooManyConnections,
    /// The server has as many realtime connections open as it allows; retry later.
    ServerBusy,
    /// The request's body came too slowly; the connection is closed.
    RequestTimeout,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// The request body is not `application/json`.
    UnsupportedMediaType,
    /// The server failed; details are in its log, never in the answer.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (for documentation and tests).
    pub const ALL: [ErrorCode; 20] = [
        Self::InvalidJson,
        Self::InvalidInput,
        Self::Unauthorized,
        Self::InvalidCredentials,
        Self::AccountDeactivated,
        Self::Forbidden,
        Self::InvalidSignature,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::UsernameTaken,
        Self::AlreadySetUp,
        Self::InvalidSetupToken,
        Self::Conflict,
        Self::RateLimited,
        Self::TooManyConnections,
        Self::ServerBusy,
        Self::RequestTimeout,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::Internal,
    ];

    /// The HTTP status that goes with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson | Self::InvalidInput => 400,
            Self::Unauthorized | Self::InvalidCredentials | Self::InvalidSetupToken => 401,
            Self::AccountDeactivated | Self::Forbidden | Self::InvalidSignature => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::UsernameTaken | Self::AlreadySetUp | Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::RateLimited | Self::TooManyConnections => 429,
            Self::Internal => 500,
            Self::ServerBusy => 503,
        }
    }
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Code and human-readable message of an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Explanation for people; never contains secrets, SQL or stack traces.
    pub message: String,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_snake_case_and_round_trip() {
        let body = ErrorBody::new(ErrorCode::RateLimited, "slow down");
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            json,
            r#"{"error":{"code":"rate_limited","message":"slow down"}}"#
        );
        for code in ErrorCode::ALL {
            let s = serde_json::to_string(&code).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&s).unwrap(), code);
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn every_code_is_in_the_api_docs_with_its_status() {
        let doc = include_str!("../../../docs/api.md");
        for code in ErrorCode::ALL {
            let name = serde_json::to_value(code).unwrap();
            let row = format!("| `{}` | {} |", name.as_str().unwrap(), code.http_status());
            assert!(doc.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}
