//! `/api/v1/admin/users…`: user management; `/api/v1/admin/rooms/{id}/members…`:
//! membership an admin forces. The admin check lives in the service.

use super::error::ApiError;
use super::extract::{Auth, Json, PathId};
use super::rooms::PathIds;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sotto_api::{
    CreateUserRequest, ErrorBody, InviteRequest, MemberList, ResetPasswordRequest, User, UserList,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(deactivate))
        .routes(routes!(reactivate))
        .routes(routes!(reset_password))
        .routes(routes!(room_members, add_room_member))
        .routes(routes!(remove_room_member))
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

/// Any room's members, private rooms and DMs included; `forced_by` marks those an admin
/// added (admins only).
#[utoipa::path(get, path = "/api/v1/admin/rooms/{id}/members", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The members in joining order", body = MemberList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such room", body = ErrorBody),
    ))]
async fn room_members(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .admin
            .room_members(&auth.actor(), &id)
            .await?,
    ))
}

/// Add a user to any room but a DM without the room's say, encrypted rooms included: the
/// member is marked `forced_by` the admin, and an encrypted room's signed state chain is
/// left as it is, so they get no room key (admins only). Adding a member again changes
/// nothing.
#[utoipa::path(post, path = "/api/v1/admin/rooms/{id}/members", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Room id")),
    request_body = InviteRequest,
    responses(
        (status = 200, description = "The members after", body = MemberList),
        (status = 400, description = "`invalid_json`, or `invalid_input`: a DM", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the user", body = ErrorBody),
    ))]
async fn add_room_member(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<InviteRequest>,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .admin
            .add_room_member(&auth.actor(), &id, &req.user_id)
            .await?,
    ))
}

/// Remove a member from any room but a DM without the room's say; the event says which
/// admin did, and an encrypted room's signed state chain still lists them until an owner
/// signs their removal (admins only).
#[utoipa::path(delete, path = "/api/v1/admin/rooms/{id}/members/{user_id}", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_input`: a DM, or the room would have no owner", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the member", body = ErrorBody),
    ))]
async fn remove_room_member(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, user_id): PathIds,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .remove_room_member(&auth.actor(), &id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
