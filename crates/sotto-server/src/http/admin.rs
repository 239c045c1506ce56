//! `/api/v1/admin/users…`: user management. The admin check lives in the service.

use super::error::ApiError;
use super::extract::{Auth, Json, PathId};
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sotto_api::{CreateUserRequest, ErrorBody, ResetPasswordRequest, User, UserList};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(reset_password))
}

/// Every user (admins only).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Users in creation order", body = UserList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<UserList>, ApiError> {
    Ok(axum::Json(
        state.services.admin.list_users(&auth.actor()).await?,
    ))
}

/// Create a user (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
    ))]
async fn create_user(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateUserRequest>,
) -> Result<(StatusCode, axum::Json<User>), ApiError> {
    let user = state.services.admin.create_user(&auth.actor(), req).await?;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

/// Deactivate a user: they cannot log in and all their sessions and tokens end (admins only;
/// not oneself).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/deactivate", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user, deactivated", body = User),
        (status = 400, description = "`invalid_input`: one's own account", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn deactivate(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .admin
            .set_deactivated(&auth.actor(), &id, true)
            .await?,
    ))
}

/// Reactivate a user (admins only).
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/reactivate", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user, active", body = User),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn reactivate(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<User>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .admin
            .set_deactivated(&auth.actor(), &id, false)
            .await?,
    ))
}

/// Set a user's login password; their password logins end, their personal access tokens
/// stay (admins only).
#[utoipa::path(put, path = "/api/v1/admin/users/{id}/password", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password replaced"),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .reset_password(&auth.actor(), &id, req.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
