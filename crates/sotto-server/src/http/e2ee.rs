//! `/api/v1/rooms/{id}/statements` and `…/keys`: the state chain and room keys of encrypted
//! rooms. Every rule is in `RoomService`.

use super::error::ApiError;
use super::extract::{Auth, Json, PathId};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use sotto_api::{
    ErrorBody, Room, RoomKeyState, RoomKeyUpload, RoomKeyUploaded, StatementList, StatementRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest room-key upload: [`sotto_api::ROOM_KEY_BOXES_MAX`] boxes of at most 356 bytes
/// (docs/protocol.md §6.1, with ids of 64 characters), 476 in base64, and their quotes
/// and commas; about 470 KiB, so 512 KiB.
const ROOM_KEYS_BODY: usize = 512 * 1024;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(statements, add_statement))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(room_keys, put_room_keys))
                .layer(DefaultBodyLimit::max(ROOM_KEYS_BODY)),
        )
}

/// The room's signed state chain, first statement first (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{id}/statements", tag = "e2ee", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The chain (empty for a room without one)", body = StatementList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn statements(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<StatementList>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.statements(&auth.actor(), &id).await?,
    ))
}

/// Add a statement signed by the caller that extends the chain's head, and make the
/// change it signs (members, owners, encryption, a new epoch) in the same transaction.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/statements", tag = "e2ee", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = StatementRequest,
    responses(
        (status = 201, description = "Stored; the room after the change", body = Room),
        (status = 400, description = "`invalid_json` or `invalid_input` (malformed, not signed by the caller's published key, breaks a room rule, or does not match the room)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not an owner; `e2e.enabled` off; not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room, or a user it names", body = ErrorBody),
        (status = 409, description = "`conflict`: the chain's head moved on; fetch it and retry", body = ErrorBody),
    ))]
async fn add_statement(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<StatementRequest>,
) -> Result<(StatusCode, axum::Json<Room>), ApiError> {
    let room = state
        .services
        .rooms
        .add_statement(&auth.actor(), &id, &req.statement)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(room)))
}

/// The caller's room-key boxes in this room and the room's key state: the current epoch,
/// whether a new one is due, whether the caller is waiting for a key, and who lacks it.
#[utoipa::path(get, path = "/api/v1/rooms/{id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The caller's boxes and the key state", body = RoomKeyState),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a former member)", body = ErrorBody),
    ))]
async fn room_keys(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<RoomKeyState>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.room_keys(&auth.actor(), &id).await?,
    ))
}

/// Store room-key boxes sealed and signed by the caller; each recipient's new box is
/// pushed to their open sockets.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = RoomKeyUpload,
    responses(
        (status = 200, description = "How many boxes were new", body = RoomKeyUploaded),
        (status = 400, description = "`invalid_json` or `invalid_input` (a malformed box, another room or distributor, an undeclared epoch, a recipient who may not hold it, a bad signature)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (the chain does not let the caller hold the epoch; not a member of a public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the room has no state chain yet", body = ErrorBody),
    ))]
async fn put_room_keys(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<RoomKeyUpload>,
) -> Result<axum::Json<RoomKeyUploaded>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .put_room_keys(&auth.actor(), &id, req)
            .await?,
    ))
}
