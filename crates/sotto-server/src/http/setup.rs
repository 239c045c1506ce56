//! `/api/v1/setup`: creating the first admin with the one-time link printed at start.

use super::error::ApiError;
use super::extract::{ClientAddr, Json};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sotto_api::{ErrorBody, LoginResponse, SetupRequest, SetupStatus};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status, setup))
}

/// Whether the first admin has been created.
#[utoipa::path(get, path = "/api/v1/setup", tag = "setup",
    responses((status = 200, description = "Setup state", body = SetupStatus)))]
async fn status(State(state): State<AppState>) -> Result<axum::Json<SetupStatus>, ApiError> {
    Ok(axum::Json(state.services.accounts.setup_status().await?))
}

/// Create the first admin with the setup token, and log them in.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupRequest,
    responses(
        (status = 201, description = "Admin created and logged in", body = LoginResponse),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`invalid_setup_token`", body = ErrorBody),
        (status = 409, description = "`already_set_up` or `username_taken`", body = ErrorBody),
        (status = 429, description = "`rate_limited`, with `Retry-After`", body = ErrorBody),
    ))]
async fn setup(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<SetupRequest>,
) -> Result<(StatusCode, axum::Json<LoginResponse>), ApiError> {
    let done = state.services.accounts.setup(req, addr).await?;
    Ok((StatusCode::CREATED, axum::Json(done)))
}
