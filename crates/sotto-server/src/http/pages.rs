//! The one page the server itself serves: `/setup`, where the printed one-time link lands
//! so the first admin can be created from a browser. It is not part of the API (not in the
//! OpenAPI document); it only calls `GET`/`POST /api/v1/setup`.

use axum::Router;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::IntoResponse;
use axum::routing::get;

/// Scripts from this origin only (no inline code), calls to this origin only, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/setup", get(page))
        .route("/setup.js", get(script))
}

async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, CSP),
            (REFERRER_POLICY, "no-referrer"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("../../assets/setup.html"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("../../assets/setup.js"),
    )
}
