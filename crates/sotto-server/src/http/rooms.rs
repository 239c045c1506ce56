//! `/api/v1/rooms…`: rooms, membership and messages. Every rule is in `RoomService`.

use super::error::ApiError;
use super::extract::{Auth, Json, PathId};
use crate::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, request::Parts};
use sotto_api::{
    CreateRoomRequest, EditMessageRequest, ErrorBody, ErrorCode, HistoryQuery, InviteRequest,
    MarkReadRequest, MemberList, Message, MessagePage, ReadMarker, Room, RoomList,
    SendMessageRequest, SetEncryptionRequest, UpdateRoomRequest,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, my_rooms))
        .routes(routes!(public_rooms))
        .routes(routes!(get_room, update_room))
        .routes(routes!(set_encryption))
        .routes(routes!(members, invite))
        .routes(routes!(remove_member))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(mark_read))
        .routes(routes!(set_owner, unset_owner))
        .routes(routes!(send_message, history))
        .routes(routes!(edit_message, delete_message))
}

/// Two path segments: the room id and a member or message id.
pub(super) struct PathIds(pub(super) String, pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0.0, p.0.1))
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// The query string, with rejections in the error shape.
pub(super) struct Query<T>(pub(super) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// Create a room, or open the direct message with exactly these people.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", security(("bearer" = [])),
    request_body = CreateRoomRequest,
    responses(
        (status = 201, description = "Created; the caller is its owner (DMs have none)", body = Room),
        (status = 200, description = "The existing direct message with the same people", body = Room),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of the parent) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: a member or the parent", body = ErrorBody),
    ))]
async fn create_room(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<CreateRoomRequest>,
) -> Result<(StatusCode, axum::Json<Room>), ApiError> {
    let opened = state.services.rooms.create(&auth.actor(), req).await?;
    let status = if opened.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(opened.room)))
}

/// The caller's rooms.
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rooms the caller is a member of", body = RoomList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn my_rooms(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<RoomList>, ApiError> {
    Ok(axum::Json(state.services.rooms.mine(&auth.actor()).await?))
}

/// Public channels and teams.
#[utoipa::path(get, path = "/api/v1/rooms/public", tag = "rooms", security(("bearer" = [])),
    responses(
        (status = 200, description = "Public channels and teams", body = RoomList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn public_rooms(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<RoomList>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.public(&auth.actor()).await?,
    ))
}

/// One room: members see theirs; anyone sees a public room.
#[utoipa::path(get, path = "/api/v1/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The room", body = Room),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (also a private room the caller is not in)", body = ErrorBody),
    ))]
async fn get_room(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<Room>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.get(&auth.actor(), &id).await?,
    ))
}

/// Rename and/or set the topic (owners only; not DMs).
#[utoipa::path(patch, path = "/api/v1/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = UpdateRoomRequest,
    responses(
        (status = 200, description = "The room after the change", body = Room),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn update_room(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<UpdateRoomRequest>,
) -> Result<axum::Json<Room>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.update(&auth.actor(), &id, req).await?,
    ))
}

/// Turn end-to-end encryption on or off: owners, or any member of a direct message;
/// direct messages and private rooms only. Setting the current value changes nothing.
#[utoipa::path(put, path = "/api/v1/rooms/{id}/encryption", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = SetEncryptionRequest,
    responses(
        (status = 200, description = "The room after the change", body = Room),
        (status = 400, description = "`invalid_json` or `invalid_input` (a public room; a bad statement)", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not an owner; `e2e.enabled` is off) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the room's state chain moved on", body = ErrorBody),
    ))]
async fn set_encryption(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<SetEncryptionRequest>,
) -> Result<axum::Json<Room>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .set_encryption(&auth.actor(), &id, req)
            .await?,
    ))
}

/// The room's members (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "Members in joining order", body = MemberList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (not a member of this public room) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn members(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.members(&auth.actor(), &id).await?,
    ))
}

/// Add someone: any member of a public room, an owner of a private one; not DMs.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = InviteRequest,
    responses(
        (status = 200, description = "Members after the invitation", body = MemberList),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the user", body = ErrorBody),
    ))]
async fn invite(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<InviteRequest>,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .invite(&auth.actor(), &id, &req.user_id)
            .await?,
    ))
}

/// Remove a member (owners only; not DMs).
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/members/{user_id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_input`: the room would have no owner", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the member", body = ErrorBody),
    ))]
async fn remove_member(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, user_id): PathIds,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .rooms
        .remove(&auth.actor(), &id, &user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join a public room (joining again is harmless).
#[utoipa::path(post, path = "/api/v1/rooms/{id}/join", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The room, now with the caller as member", body = Room),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found` (private rooms and DMs cannot be joined)", body = ErrorBody),
    ))]
async fn join(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<Room>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.join(&auth.actor(), &id).await?,
    ))
}

/// Leave a room (not DMs).
#[utoipa::path(post, path = "/api/v1/rooms/{id}/leave", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    responses(
        (status = 204, description = "Left"),
        (status = 400, description = "`invalid_input`: the room would have no owner", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn leave(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.services.rooms.leave(&auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark the room read up to a seq (members only). The marker only moves forward; a seq
/// beyond the room's latest is taken as the latest.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/read", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id")),
    request_body = MarkReadRequest,
    responses(
        (status = 200, description = "The marker after the call", body = ReadMarker),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn mark_read(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<MarkReadRequest>,
) -> Result<axum::Json<ReadMarker>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .mark_read(&auth.actor(), &id, req)
            .await?,
    ))
}

/// Make a member an owner (owners only).
#[utoipa::path(put, path = "/api/v1/rooms/{id}/owners/{user_id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Members after the change", body = MemberList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the member", body = ErrorBody),
    ))]
async fn set_owner(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, user_id): PathIds,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .set_owner(&auth.actor(), &id, &user_id, true)
            .await?,
    ))
}

/// Make an owner a plain member (owners only; a room keeps one owner).
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/owners/{user_id}", tag = "rooms",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("user_id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "Members after the change", body = MemberList),
        (status = 400, description = "`invalid_input`: the room would have no owner", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or the member", body = ErrorBody),
    ))]
async fn unset_owner(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, user_id): PathIds,
) -> Result<axum::Json<MemberList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .set_owner(&auth.actor(), &id, &user_id, false)
            .await?,
    ))
}

/// Send a message (members only). Resending the same id with the same content returns
/// the stored message with 200.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/messages", tag = "messages",
    security(("bearer" = [])), params(("id" = String, Path, description = "Room id")),
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "Stored", body = Message),
        (status = 200, description = "Already stored under this id (a retry)", body = Message),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the id holds another message", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many messages; `Retry-After` says how many seconds to wait", body = ErrorBody),
    ))]
async fn send_message(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Json(req): Json<SendMessageRequest>,
) -> Result<(StatusCode, axum::Json<Message>), ApiError> {
    let sent = state.services.rooms.send(&auth.actor(), &id, req).await?;
    let status = if sent.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(sent.message)))
}

/// A page of history (members only).
#[utoipa::path(get, path = "/api/v1/rooms/{id}/messages", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), HistoryQuery),
    responses(
        (status = 200, description = "Messages in increasing seq", body = MessagePage),
        (status = 400, description = "`invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<MessagePage>, ApiError> {
    Ok(axum::Json(
        state.services.rooms.history(&auth.actor(), &id, q).await?,
    ))
}

/// Edit one's own message.
#[utoipa::path(patch, path = "/api/v1/rooms/{id}/messages/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("message_id" = String, Path, description = "Message id")),
    request_body = EditMessageRequest,
    responses(
        (status = 200, description = "The message after the edit", body = Message),
        (status = 400, description = "`invalid_json` or `invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or a live message", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
    ))]
async fn edit_message(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, message_id): PathIds,
    Json(req): Json<EditMessageRequest>,
) -> Result<axum::Json<Message>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .edit(&auth.actor(), &id, &message_id, req)
            .await?,
    ))
}

/// Delete a message (its sender or a room owner); it stays as a tombstone.
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/messages/{message_id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), ("message_id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "The tombstone", body = Message),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: the room or a live message", body = ErrorBody),
    ))]
async fn delete_message(
    State(state): State<AppState>,
    auth: Auth,
    PathIds(id, message_id): PathIds,
) -> Result<axum::Json<Message>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .rooms
            .delete(&auth.actor(), &id, &message_id)
            .await?,
    ))
}
