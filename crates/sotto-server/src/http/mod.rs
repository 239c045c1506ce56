//! The HTTP API: one router per resource, thin handlers (extract, call one service
//! method, map the result), and the OpenAPI document built from the same routes.

mod accounts;
mod admin;
mod audit;
mod e2ee;
pub mod error;
mod extract;
mod files;
mod keys;
mod openapi;
pub mod realtime;
mod rooms;
mod search;
pub mod serve;
mod settings;
mod setup;
mod users;
pub mod web;

use crate::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// Largest JSON body accepted. File uploads stream their raw body instead, capped by
/// the `files.max_size_bytes` setting.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// The whole application, ready to serve or to call in tests without a socket.
pub fn app(state: AppState) -> Router {
    let (router, document) = api_router().split_for_parts();
    let document = with_body_answers(document);
    router
        .merge(web::router())
        .fallback(web::fallback)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::Extension(std::sync::Arc::new(document)))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::map_response(web::security_headers))
        .with_state(state)
}

/// The span of a request: method and path only. The query string stays out of the log,
/// since search terms there are words of messages.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %req.uri().path())
}

/// Every documented route. Routes are only ever added here through `routes!`, so each
/// one is in the OpenAPI document by construction.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(setup::router())
        .merge(accounts::router())
        .merge(users::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(settings::router())
        .merge(rooms::router())
        .merge(e2ee::router())
        .merge(files::router())
        .merge(search::router())
        .merge(keys::router())
        .merge(realtime::router())
        .merge(openapi::router())
}

/// The OpenAPI document (for tests and tools).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    with_body_answers(api_router().split_for_parts().1)
}

/// Adds to every operation with a JSON body the answers its body extractor may give
/// whatever the handler does: `413 payload_too_large` and `415 unsupported_media_type`.
fn with_body_answers(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let answer = |code: &str| {
        let schema = Ref::from_schema_name("ErrorBody");
        ResponseBuilder::new()
            .description(format!("`{code}`"))
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(schema)).build(),
            )
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            let json = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            if json {
                let responses = &mut op.responses.responses;
                for (status, code) in [
                    ("413", "payload_too_large"),
                    ("415", "unsupported_media_type"),
                ] {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| answer(code).into());
                }
            }
        }
    }
    doc
}
