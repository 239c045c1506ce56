//! `/api/v1/users/by-name/{username}`: finding other users by name.

use super::error::ApiError;
use super::extract::{Auth, PathId};
use crate::AppState;
use axum::extract::State;
use sotto_api::{ErrorBody, UserSummary};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(by_name))
}

/// A user by login name (any case): id, username and display name.
#[utoipa::path(get, path = "/api/v1/users/by-name/{username}", tag = "accounts",
    security(("bearer" = [])),
    params(("username" = String, Path, description = "Login name, any case")),
    responses(
        (status = 200, description = "The user", body = UserSummary),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or deactivated", body = ErrorBody),
    ))]
async fn by_name(
    State(state): State<AppState>,
    Auth(who): Auth,
    PathId(username): PathId,
) -> Result<axum::Json<UserSummary>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .accounts
            .find_by_username(&who, &username)
            .await?,
    ))
}
