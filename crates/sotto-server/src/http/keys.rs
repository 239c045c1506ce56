//! E2EE user keys: `/api/v1/me/keys…` (one's own keys and backup), the key directory
//! (`/api/v1/users/{id}/keys`, `/api/v1/keys`) and the admin key reset.

use super::error::ApiError;
use super::extract::{Auth, Json, PathId};
use super::rooms::Query;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use sotto_api::{
    ErrorBody, KeyBundle, KeyBundleList, KeysQuery, MyKeys, PublishKeysRequest,
    ReplaceBackupRequest, ResetOwnKeysRequest, StoredKeyBackup,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_keys, publish))
        .routes(routes!(backup, replace_backup))
        .routes(routes!(reset_own))
        .routes(routes!(user_bundle))
        .routes(routes!(bundles))
        .routes(routes!(admin_reset))
}

/// Whether the caller has published keys (set them up, or unlock them), with the bundle.
#[utoipa::path(get, path = "/api/v1/me/keys", tag = "keys", security(("bearer" = [])),
    responses(
        (status = 200, body = MyKeys),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn my_keys(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<MyKeys>, ApiError> {
    Ok(axum::Json(state.services.keys.mine(&auth.actor()).await?))
}

/// Publish one's public bundle and key backup (first time, or after a reset).
#[utoipa::path(post, path = "/api/v1/me/keys", tag = "keys", security(("bearer" = [])),
    request_body = PublishKeysRequest,
    responses(
        (status = 201, description = "Published; the caller and their room peers get a `keys_changed` notice", body = KeyBundle),
        (status = 400, description = "`invalid_json` or `invalid_input`: a bundle that is malformed, not self-signed or another user's; a malformed backup or KDF parameters outside floor and ceiling", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` (`e2e.enabled` is off) or `account_deactivated`", body = ErrorBody),
        (status = 409, description = "`conflict`: keys are published already; reset them first", body = ErrorBody),
    ))]
async fn publish(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<PublishKeysRequest>,
) -> Result<(StatusCode, axum::Json<KeyBundle>), ApiError> {
    let bundle = state.services.keys.publish(&auth.actor(), req).await?;
    Ok((StatusCode::CREATED, axum::Json(bundle)))
}

/// One's own key backup (only ever to its owner).
#[utoipa::path(get, path = "/api/v1/me/keys/backup", tag = "keys", security(("bearer" = [])),
    responses(
        (status = 200, body = StoredKeyBackup),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no keys published", body = ErrorBody),
    ))]
async fn backup(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<StoredKeyBackup>, ApiError> {
    Ok(axum::Json(state.services.keys.backup(&auth.actor()).await?))
}

/// Replace one's key backup after a change of encryption password; the keys stay. The
/// identity key signs the replacement (protocol §3.5), so a token alone cannot do it.
#[utoipa::path(put, path = "/api/v1/me/keys/backup", tag = "keys", security(("bearer" = [])),
    request_body = ReplaceBackupRequest,
    responses(
        (status = 200, body = StoredKeyBackup),
        (status = 400, description = "`invalid_json` or `invalid_input`: a malformed bundle, backup or signature, KDF parameters outside floor and ceiling or weaker than the current backup's", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`invalid_signature`: `signature` is not the identity key's over this backup replacing the stored one (also a replayed one, made over an earlier backup); or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no keys published", body = ErrorBody),
        (status = 409, description = "`conflict`: `bundle` is not the published bundle, or the backup changed while this one was checked", body = ErrorBody),
    ))]
async fn replace_backup(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<ReplaceBackupRequest>,
) -> Result<axum::Json<StoredKeyBackup>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .keys
            .replace_backup(&auth.actor(), req)
            .await?,
    ))
}

/// Reset one's own keys (lost encryption password): bundle and backup are removed, then
/// new keys may be published. Needs the login password.
#[utoipa::path(post, path = "/api/v1/me/keys/reset", tag = "keys", security(("bearer" = [])),
    request_body = ResetOwnKeysRequest,
    responses(
        (status = 204, description = "Reset (also when there were no keys)"),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`unauthorized` or `invalid_credentials` (wrong login password)", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many wrong passwords", body = ErrorBody),
    ))]
async fn reset_own(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<ResetOwnKeysRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .keys
        .reset_own(&auth.actor(), req.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's public bundle.
#[utoipa::path(get, path = "/api/v1/users/{id}/keys", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, body = KeyBundle),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such user, or no keys published", body = ErrorBody),
    ))]
async fn user_bundle(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<axum::Json<KeyBundle>, ApiError> {
    Ok(axum::Json(
        state.services.keys.bundle(&auth.actor(), &id).await?,
    ))
}

/// The public bundles of up to 100 users at once (for example a room's members).
#[utoipa::path(get, path = "/api/v1/keys", tag = "keys", security(("bearer" = [])),
    params(KeysQuery),
    responses(
        (status = 200, description = "The bundles of those who have one", body = KeyBundleList),
        (status = 400, description = "`invalid_input`: `user_ids` missing, empty or over 100", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn bundles(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<KeysQuery>,
) -> Result<axum::Json<KeyBundleList>, ApiError> {
    Ok(axum::Json(
        state
            .services
            .keys
            .bundles(&auth.actor(), &q.user_ids)
            .await?,
    ))
}

/// Reset a user's keys (admins only): bundle and backup are removed and the user's
/// password logins end; the user then sets up new keys.
#[utoipa::path(post, path = "/api/v1/admin/users/{id}/keys/reset", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Reset (also when there were no keys)"),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`forbidden` or `account_deactivated`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ))]
async fn admin_reset(
    State(state): State<AppState>,
    auth: Auth,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .keys
        .reset_by_admin(&auth.actor(), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
