//! The embedded browser client: the page for every page path, the hashed assets with
//! their types, 404s in the API's shape for unknown assets and API paths, and the
//! security headers on every response.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use common::TestApp;
use http_body_util::BodyExt;
use sotto_server::http::web::FILES;
use tower::ServiceExt;

const CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; \
    style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; \
    connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

async fn fetch(t: &TestApp, method: Method, path: &str) -> Raw {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = t.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

fn index() -> &'static [u8] {
    FILES.iter().find(|f| f.path == "index.html").unwrap().bytes
}

#[track_caller]
fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(
            headers.get(name).map(|v| v.to_str().unwrap()),
            Some(value),
            "{name} of {what}"
        );
    }
}

#[tokio::test]
async fn every_page_path_serves_the_client_page() {
    let t = TestApp::new().await;
    for path in [
        "/",
        "/setup",
        "/login",
        "/rooms/r_123/thread/m_9",
        "/index.html",
        "/apis",
        "/assetsx/y",
    ] {
        let a = fetch(&t, Method::GET, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(
            a.headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(a.headers["cache-control"], "no-cache", "{path}");
        assert_security_headers(&a.headers, path);
        assert_eq!(a.body, index(), "{path}");
    }
    let page = String::from_utf8(index().to_vec()).unwrap();
    assert!(page.contains(r#"<html lang="en">"#) && page.contains(r#"<meta name="viewport""#));
    // No inline code: the policy would block it anyway.
    assert!(!page.contains("<script>") && !page.contains("<style"));
    let head = fetch(&t, Method::HEAD, "/rooms/x").await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["content-type"], "text/html; charset=utf-8");
}

#[tokio::test]
async fn every_embedded_asset_is_served_with_its_type() {
    let t = TestApp::new().await;
    let assets: Vec<_> = FILES
        .iter()
        .filter(|f| f.path.starts_with("assets/"))
        .collect();
    for kind in [".js", ".css", ".svg"] {
        assert!(
            assets.iter().any(|f| f.path.ends_with(kind)),
            "no {kind} asset"
        );
    }
    let page = String::from_utf8(index().to_vec()).unwrap();
    for file in assets {
        let path = format!("/{}", file.path);
        assert!(
            page.contains(&format!("\"{path}\"")),
            "{path} is not linked"
        );
        let a = fetch(&t, Method::GET, &path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.headers["content-type"], file.content_type, "{path}");
        assert_eq!(
            a.headers["cache-control"], "public, max-age=31536000, immutable",
            "{path}"
        );
        assert_security_headers(&a.headers, &path);
        assert_eq!(a.body, file.bytes, "{path}");
        let expected = match path.rsplit_once('.').unwrap().1 {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            _ => continue,
        };
        assert_eq!(file.content_type, expected, "{path}");
    }
}

#[tokio::test]
async fn unknown_assets_and_api_paths_are_404_in_the_error_shape() {
    let t = TestApp::new().await;
    for path in [
        "/assets/app-NOPE.js",
        "/assets/",
        "/assets",
        "/assets/../index.html",
        "/api",
        "/api/v1/nowhere",
        "/api/v2/rooms",
    ] {
        t.get(path, None).await.expect_error(404, "not_found");
        assert_security_headers(&fetch(&t, Method::GET, path).await.headers, path);
    }
    // Other methods on page paths are not pages.
    t.call(Method::POST, "/setup", None, None)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn api_answers_carry_the_security_headers_too() {
    let t = TestApp::new().await;
    let ok = t.get("/api/v1/setup", None).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_security_headers(&ok.headers, "GET /api/v1/setup");
    let unauthorized = t.get("/api/v1/me", None).await;
    unauthorized.expect_error(401, "unauthorized");
    assert_security_headers(&unauthorized.headers, "GET /api/v1/me");
    let wrong_method = t.call(Method::DELETE, "/api/v1/login", None, None).await;
    wrong_method.expect_error(405, "method_not_allowed");
    assert_security_headers(&wrong_method.headers, "DELETE /api/v1/login");
    let document = fetch(&t, Method::GET, "/api/v1/openapi.json").await;
    assert_eq!(document.status, StatusCode::OK);
    assert_security_headers(&document.headers, "GET /api/v1/openapi.json");
}
