//! Extractors whose failures answer in the API's error shape.

use super::error::ApiError;
use crate::AppState;
use crate::service::{Actor, Principal};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use sotto_api::ErrorCode;
use std::net::{IpAddr, SocketAddr};

/// A JSON request body; bad bodies answer `invalid_json`, `unsupported_media_type`,
/// `payload_too_large` or `request_timeout`.
pub(super) struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_error)?;
        // Every body of this API is an object; serde would also read a struct from an
        // array of its fields.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ApiError::new(
                ErrorCode::InvalidJson,
                "the body must be a JSON object",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

/// `application/json`, or another `application/…+json` type.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(..12)
            .is_some_and(|p| p.eq_ignore_ascii_case("application/"))
            && essence.to_ascii_lowercase().ends_with("+json")
}

fn body_error(rejection: BytesRejection) -> ApiError {
    if caused_by_timeout(&rejection) {
        ApiError::new(
            ErrorCode::RequestTimeout,
            "the request body came too slowly",
        )
    } else if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        ApiError::new(ErrorCode::InvalidJson, rejection.body_text())
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => ApiError::new(ErrorCode::InvalidJson, e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::new(ErrorCode::InvalidJson, e.body_text()),
        other => ApiError::new(ErrorCode::InvalidJson, other.body_text()),
    }
}

/// Whether reading the body failed because the client sent it too slowly.
fn caused_by_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if e.is::<super::serve::BodyTimeout>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub(super) struct Auth(pub Principal);

impl Auth {
    /// The caller as a service actor.
    pub(super) fn actor(self) -> Actor {
        Actor::User(self.0)
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "send Authorization: Bearer <token>",
            )
        })?;
        Ok(Self(state.services.accounts.authenticate(token).await?))
    }
}

/// The WebSocket subprotocol a browser names, with the token in a second one, since a
/// browser cannot set `Authorization` on a WebSocket and tokens never go in URLs.
pub(super) const WS_PROTOCOL: &str = "sotto.v1";
const WS_TOKEN_PREFIX: &str = "sotto.bearer.";

/// The caller of the realtime socket: `Authorization: Bearer <token>`, or, from a
/// browser, `Sec-WebSocket-Protocol: sotto.v1, sotto.bearer.<token>`.
pub(super) struct SocketAuth(pub Principal);

impl FromRequestParts<AppState> for SocketAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_protocol = || {
            parts
                .headers
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .find_map(|p| p.trim().strip_prefix(WS_TOKEN_PREFIX))
        };
        let token = bearer(parts).or_else(from_protocol).ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "send Authorization: Bearer <token>, or the subprotocols sotto.v1 and sotto.bearer.<token>",
            )
        })?;
        Ok(Self(state.services.accounts.authenticate(token).await?))
    }
}

/// The client's address when the server knows it (absent in socket-less tests).
/// Proxy headers are not trusted: behind a reverse proxy every client shares its address.
pub(super) struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The single `{id}` path segment of a route.
pub(super) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}
