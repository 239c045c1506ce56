//! `GET /api/v1/openapi.json` and the document's fixed parts.

use crate::AppState;
use axum::Extension;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sotto",
        description = "The Sotto team chat API. Every error answers \
            `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}`; the codes are the \
            `ErrorCode` schema. Authenticate with `Authorization: Bearer <token>` from \
            `POST /api/v1/login` or a personal access token. Times are Unix milliseconds."
    ),
    components(schemas(
        sotto_api::ErrorCode,
        sotto_api::ErrorBody,
        sotto_api::ErrorDetail,
        sotto_api::Event,
        sotto_api::EventKind,
        sotto_api::Notice,
        sotto_api::ClientFrame,
        sotto_api::OtrErrorCode,
    )),
    tags(
        (name = "setup", description = "Creating the first admin"),
        (name = "accounts", description = "Login, sessions and personal access tokens (C1, C11)"),
        (name = "admin", description = "User management (C2) and the audit of rooms and messages (C10)"),
        (name = "settings", description = "Workspace settings (C2)"),
        (name = "files", description = "Files posted in rooms (C8)"),
        (name = "keys", description = "End-to-end encryption keys: the key directory, key backups and resets (E1, E2, E10, E11)"),
        (name = "realtime", description = "The WebSocket carrying room events (C6), presence (C7) and off-the-record frames (O1–O8)"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

/// The document before routes are added: info, tags, shared schemas, the bearer scheme.
pub(super) fn base() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json((*doc).clone())
}
