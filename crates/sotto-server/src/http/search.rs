//! `/api/v1/search`: full-text search over the caller's plaintext messages.

use super::error::ApiError;
use super::extract::Auth;
use super::rooms::Query;
use crate::AppState;
use axum::extract::State;
use sotto_api::{ErrorBody, SearchPage, SearchQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search))
}

/// Search the plaintext messages of the caller's rooms, newest first.
#[utoipa::path(get, path = "/api/v1/search", tag = "messages", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "Matching messages, newest first", body = SearchPage),
        (status = 400, description = "`invalid_input`: `q`, `limit` or `cursor`", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`room_id` a public room the caller is not in) or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: `room_id` (also a private room the caller is not in)", body = ErrorBody),
    ))]
async fn search(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<SearchQuery>,
) -> Result<axum::Json<SearchPage>, ApiError> {
    Ok(axum::Json(
        state.services.search.search(&auth.actor(), q).await?,
    ))
}
