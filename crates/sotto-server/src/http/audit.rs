//! `/api/v1/admin/rooms…`: the admin audit. The admin check lives in the service.

use super::error::ApiError;
use super::extract::{Auth, PathId};
use super::rooms::Query;
use crate::AppState;
use axum::extract::State;
use sotto_api::{AuditMessagePage, AuditRoomList, ErrorBody, HistoryQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rooms))
        .routes(routes!(messages))
}

/// Every room with its metadata, private ones and direct messages included (admins only).
#[utoipa::path(get, path = "/api/v1/admin/rooms", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rooms, oldest first", body = AuditRoomList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
    ))]
async fn rooms(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<AuditRoomList>, ApiError> {
    Ok(axum::Json(state.services.audit.rooms(&auth.actor()).await?))
}

/// Any room's messages with their metadata, paged as history; text only for plaintext
/// messages, encrypted ones show as encrypted without content (admins only).
#[utoipa::path(get, path = "/api/v1/admin/rooms/{id}/messages", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Room id"), HistoryQuery),
    responses(
        (status = 200, description = "Messages in increasing seq", body = AuditMessagePage),
        (status = 400, description = "`invalid_input`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn messages(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
    Query(q): Query<HistoryQuery>,
) -> Result<axum::Json<AuditMessagePage>, ApiError> {
    Ok(axum::Json(
        state.services.audit.messages(&auth.actor(), &id, q).await?,
    ))
}
