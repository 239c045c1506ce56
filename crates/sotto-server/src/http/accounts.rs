//! `/api/v1/login`, `/logout`, `/me…`: a user's own account, sessions and tokens.

use super::error::ApiError;
use super::extract::{Auth, ClientAddr, Json, PathId};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sotto_api::{
    CreateTokenRequest, CreatedToken, ErrorBody, LoginRequest, LoginResponse, SessionList,
    TokenKind, User,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
}

/// Log in with username and password.
///
/// Attempts are limited per account and per client address.
#[utoipa::path(post, path = "/api/v1/login", tag = "accounts", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in; the token is shown only now", body = LoginResponse),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<axum::Json<LoginResponse>, ApiError> {
    Ok(axum::Json(state.services.accounts.login(req, addr).await?))
}

/// End the session (or revoke the token) used for this request.
#[utoipa::path(post, path = "/api/v1/logout", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn logout(State(state): State<AppState>, Auth(who): Auth) -> Result<StatusCode, ApiError> {
    state.services.accounts.logout(&who).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = User),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn me(State(state): State<AppState>, Auth(who): Auth) -> axum::Json<User> {
    axum::Json(state.services.accounts.me(&who))
}

/// The caller's password-login sessions, newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "Sessions", body = SessionList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn list_sessions(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<axum::Json<SessionList>, ApiError> {
    Ok(axum::Json(
        state.services.accounts.list(&who, TokenKind::Login).await?,
    ))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{id}", tag = "accounts",
    security(("bearer" = [])), params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such session of the caller", body = ErrorBody),
    ))]
async fn revoke_session(
    State(state): State<AppState>,
    Auth(who): Auth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .accounts
        .revoke(&who, &id, TokenKind::Login)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's personal access tokens, newest first (never the tokens themselves).
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "Tokens", body = SessionList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn list_tokens(
    State(state): State<AppState>,
    Auth(who): Auth,
) -> Result<axum::Json<SessionList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .accounts
            .list(&who, TokenKind::PersonalAccess)
            .await?,
    ))
}

/// Create a personal access token for a script or bot. Only from a password login.
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "accounts", security(("bearer" = [])),
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "Created; the token is shown only now", body = CreatedToken),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (called with a token) or `account_deactivated`", body = ErrorBody),
    ))]
async fn create_token(
    State(state): State<AppState>,
    Auth(who): Auth,
    Json(req): Json<CreateTokenRequest>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), ApiError> {
    let created = state
        .services
        .accounts
        .create_token(&who, &req.name)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Revoke one of the caller's personal access tokens.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "accounts",
    security(("bearer" = [])), params(("id" = String, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such token of the caller", body = ErrorBody),
    ))]
async fn revoke_token(
    State(state): State<AppState>,
    Auth(who): Auth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .accounts
        .revoke(&who, &id, TokenKind::PersonalAccess)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
