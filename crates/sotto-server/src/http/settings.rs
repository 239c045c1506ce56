//! `/api/v1/settings`: read by any logged-in client, changed by admins.

use super::error::ApiError;
use super::extract::{Auth, Json};
use crate::AppState;
use axum::extract::State;
use sotto_api::{ErrorBody, Settings, SettingsPatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, replace_settings, update_settings))
}

/// The workspace settings.
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every setting", body = Settings),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn get_settings(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<Settings>, ApiError> {
    Ok(axum::Json(
        state.services.settings.get(&auth.actor()).await?,
    ))
}

/// Replace every setting (admins only).
#[utoipa::path(put, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    request_body = Settings,
    responses(
        (status = 200, description = "The settings now", body = Settings),
        (status = 400, description = "`invalid_json` (missing or unknown key) or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
    ))]
async fn replace_settings(
    State(state): State<AppState>,
    auth: Auth,
    Json(all): Json<Settings>,
) -> Result<axum::Json<Settings>, ApiError> {
    Ok(axum::Json(
        state.services.settings.replace(&auth.actor(), all).await?,
    ))
}

/// Change some settings (admins only); nothing changes if any value is invalid.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", security(("bearer" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "The settings now", body = Settings),
        (status = 400, description = "`invalid_json` (unknown key) or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
    ))]
async fn update_settings(
    State(state): State<AppState>,
    auth: Auth,
    Json(patch): Json<SettingsPatch>,
) -> Result<axum::Json<Settings>, ApiError> {
    Ok(axum::Json(
        state.services.settings.update(&auth.actor(), patch).await?,
    ))
}
