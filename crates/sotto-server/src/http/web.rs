//! The browser client, embedded in the binary from `web/dist` (see `build.rs`): its
//! hashed files under `/assets/`, and `index.html` for `/` and every other page path
//! (`/setup`, `/login`, `/rooms/…`), since the client routes in the browser. Not part of
//! the API (not in the OpenAPI document). Also the security headers every response of
//! the server carries.

use super::ApiError;
use axum::Router;
use axum::extract::{Path, Request};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sotto_api::ErrorCode;

/// One embedded file of the client.
#[derive(Debug)]
pub struct WebFile {
    /// Path under `web/dist`, with `/` separators (`index.html`, `assets/app-….js`).
    pub path: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
}

/// Every file of `web/dist`, sorted by path.
pub static FILES: &[WebFile] = include!(concat!(env!("OUT_DIR"), "/web_files.rs"));

/// Scripts, styles and connections from this origin only (WebAssembly may compile, for
/// the client's Argon2id), no inline code, no plugins, no framing.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; \
     script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; \
     media-src 'self' blob:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

/// Hashed file names change with their content, so they may be kept forever.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub(super) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/assets/{*path}", get(asset))
}

fn find(path: &str) -> Option<&'static WebFile> {
    FILES
        .binary_search_by(|f| f.path.cmp(path))
        .ok()
        .map(|i| &FILES[i])
}

async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let file = find(&format!("assets/{path}"))
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such file"))?;
    Ok((
        [
            (CONTENT_TYPE, file.content_type),
            (CACHE_CONTROL, IMMUTABLE),
        ],
        file.bytes,
    )
        .into_response())
}

/// Paths the client never routes: the API and the assets stay 404 when unknown.
fn is_reserved(path: &str) -> bool {
    ["/api", "/assets"].iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The fallback for paths no router knows: the page for a `GET` or `HEAD` of a page path,
/// else the API's 404.
pub(super) async fn fallback(req: Request) -> Response {
    let page =
        matches!(*req.method(), Method::GET | Method::HEAD) && !is_reserved(req.uri().path());
    match find("index.html") {
        Some(index) if page => (
            [
                (CONTENT_TYPE, index.content_type),
                (CACHE_CONTROL, "no-cache"),
            ],
            index.bytes,
        )
            .into_response(),
        _ => super::error::not_found().await.into_response(),
    }
}

/// Adds the security headers to every response, the API's included.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (X_FRAME_OPTIONS, "DENY"),
        (CROSS_ORIGIN_OPENER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
