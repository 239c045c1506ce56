//! Router tests without a socket: every endpoint, its success and its error paths.

mod common;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::{PASSWORD, TestApp};
use serde_json::json;
use std::net::SocketAddr;

#[tokio::test]
async fn first_admin_setup_with_the_one_time_token() {
    let t = TestApp::new().await;
    let status = t.get("/api/v1/setup", None).await;
    assert_eq!(status.body, json!({"complete": false}));

    let body = |token: &str, username: &str| json!({"setup_token": token, "username": username, "password": PASSWORD});
    t.post("/api/v1/setup", None, body("guess", "root"))
        .await
        .expect_error(401, "invalid_setup_token");

    let token = t
        .state
        .services
        .accounts
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    // A newer link replaces the older one.
    let newer = t
        .state
        .services
        .accounts
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    t.post("/api/v1/setup", None, body(&token, "root"))
        .await
        .expect_error(401, "invalid_setup_token");
    t.post("/api/v1/setup", None, body(&newer, "-bad-"))
        .await
        .expect_error(400, "invalid_input");

    let done = t.post("/api/v1/setup", None, body(&newer, "Root")).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.body["user"]["admin"], true);
    assert_eq!(done.body["user"]["username"], "Root");
    let admin_token = done.body["token"].as_str().unwrap();
    let me = t.get("/api/v1/me", Some(admin_token)).await;
    assert_eq!(me.body["username"], "Root");

    t.post("/api/v1/setup", None, body(&newer, "other"))
        .await
        .expect_error(409, "already_set_up");
    assert_eq!(
        t.get("/api/v1/setup", None).await.body,
        json!({"complete": true})
    );
    assert_eq!(
        t.state.services.accounts.issue_setup_token().await.unwrap(),
        None
    );
}

#[tokio::test]
async fn operator_created_admin_closes_setup() {
    let t = TestApp::new().await;
    let token = t
        .state
        .services
        .accounts
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    t.create_user("boss", true).await;
    let a = t
        .post(
            "/api/v1/setup",
            None,
            json!({"setup_token": token, "username": "late", "password": PASSWORD}),
        )
        .await;
    a.expect_error(409, "already_set_up");
}

#[tokio::test]
async fn login_sessions_and_logout() {
    let t = TestApp::new().await;
    let id = t.create_user("alice", false).await;

    t.post(
        "/api/v1/login",
        None,
        json!({"username": "alice", "password": "wrong password"}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "nobody", "password": PASSWORD}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    t.post("/api/v1/login", None, json!({"username": "alice"}))
        .await
        .expect_error(400, "invalid_json");
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "alice", "password": PASSWORD, "session_name": "\u{1b}[31m"}),
    )
    .await
    .expect_error(400, "invalid_input");

    let first = t.login("ALICE", PASSWORD).await;
    let named = t
        .post(
            "/api/v1/login",
            None,
            json!({"username": "alice", "password": PASSWORD, "session_name": "laptop"}),
        )
        .await;
    assert_eq!(named.body["session"]["name"], "laptop");
    assert_eq!(named.body["session"]["kind"], "login");
    assert!(named.body["session"]["expires_at"].is_i64());
    let second = named.body["token"].as_str().unwrap().to_owned();
    let second_id = named.body["session"]["id"].as_str().unwrap().to_owned();

    let me = t.get("/api/v1/me", Some(&first)).await;
    assert_eq!(me.body["id"], id.as_str());
    assert_eq!(me.body["username"], "alice");
    assert_eq!(me.body["display_name"], "alice");
    assert_eq!(me.body["admin"], false);
    assert!(me.body.get("password_hash").is_none());

    let list = t.get("/api/v1/me/sessions", Some(&first)).await;
    let sessions = list.body["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(
        list.body.to_string().find(&first).is_none(),
        "tokens are never listed"
    );

    t.call(
        Method::DELETE,
        "/api/v1/me/sessions/nope",
        Some(&first),
        None,
    )
    .await
    .expect_error(404, "not_found");
    let gone = t
        .call(
            Method::DELETE,
            &format!("/api/v1/me/sessions/{second_id}"),
            Some(&first),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    t.get("/api/v1/me", Some(&second))
        .await
        .expect_error(401, "unauthorized");

    let out = t
        .call(Method::POST, "/api/v1/logout", Some(&first), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = t.get("/api/v1/me", Some(&first)).await;
    after.expect_error(401, "unauthorized");
    assert_eq!(after.headers[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn another_users_session_cannot_be_revoked() {
    let t = TestApp::new().await;
    t.create_user("alice", false).await;
    t.create_user("bob", false).await;
    let alice = t.login("alice", PASSWORD).await;
    let bob = t.login("bob", PASSWORD).await;
    let bob_sessions = t.get("/api/v1/me/sessions", Some(&bob)).await;
    let bob_session = bob_sessions.body["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.call(
        Method::DELETE,
        &format!("/api/v1/me/sessions/{bob_session}"),
        Some(&alice),
        None,
    )
    .await
    .expect_error(404, "not_found");
    assert_eq!(t.get("/api/v1/me", Some(&bob)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn personal_access_tokens() {
    let t = TestApp::new().await;
    t.create_user("bot-owner", false).await;
    let login = t.login("bot-owner", PASSWORD).await;

    t.post("/api/v1/me/tokens", Some(&login), json!({"name": ""}))
        .await
        .expect_error(400, "invalid_input");
    let created = t
        .post(
            "/api/v1/me/tokens",
            Some(&login),
            json!({"name": "deploy bot"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let pat = created.body["token"].as_str().unwrap().to_owned();
    let pat_id = created.body["session"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["session"]["kind"], "personal_access");
    assert_eq!(
        created.body["session"]["expires_at"],
        serde_json::Value::Null
    );

    assert_eq!(
        t.get("/api/v1/me", Some(&pat)).await.body["username"],
        "bot-owner"
    );
    let list = t.get("/api/v1/me/tokens", Some(&login)).await;
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["sessions"][0]["name"], "deploy bot");
    // Password sessions and tokens are listed apart.
    assert_eq!(
        t.get("/api/v1/me/sessions", Some(&login)).await.body["sessions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    t.post("/api/v1/me/tokens", Some(&pat), json!({"name": "child"}))
        .await
        .expect_error(403, "forbidden");
    // A token id is not a session id.
    t.call(
        Method::DELETE,
        &format!("/api/v1/me/sessions/{pat_id}"),
        Some(&login),
        None,
    )
    .await
    .expect_error(404, "not_found");
    let revoked = t
        .call(
            Method::DELETE,
            &format!("/api/v1/me/tokens/{pat_id}"),
            Some(&login),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    t.get("/api/v1/me", Some(&pat))
        .await
        .expect_error(401, "unauthorized");
    t.call(
        Method::DELETE,
        &format!("/api/v1/me/tokens/{pat_id}"),
        Some(&login),
        None,
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn admin_manages_users() {
    let t = TestApp::new().await;
    let admin_id = t.create_user("admin", true).await;
    let admin = t.login("admin", PASSWORD).await;

    let create = |username: &str| json!({"username": username, "password": PASSWORD, "display_name": "Carol C."});
    let made = t
        .post("/api/v1/admin/users", Some(&admin), create("carol"))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["display_name"], "Carol C.");
    let carol_id = made.body["id"].as_str().unwrap().to_owned();
    t.post("/api/v1/admin/users", Some(&admin), create("CAROL"))
        .await
        .expect_error(409, "username_taken");
    t.post("/api/v1/admin/users", Some(&admin), create("c"))
        .await
        .expect_error(400, "invalid_input");
    t.post(
        "/api/v1/admin/users",
        Some(&admin),
        json!({"username": "dan", "password": "short"}),
    )
    .await
    .expect_error(400, "invalid_input");
    t.post(
        "/api/v1/admin/users",
        Some(&admin),
        json!({"username": "dan", "password": PASSWORD, "extra": 1}),
    )
    .await
    .expect_error(400, "invalid_json");

    let list = t.get("/api/v1/admin/users", Some(&admin)).await;
    let names: Vec<_> = list.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].clone())
        .collect();
    assert_eq!(names, [json!("admin"), json!("carol")]);

    // Deactivation ends every session and token and blocks login.
    let carol = t.login("carol", PASSWORD).await;
    let d = t
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{carol_id}/deactivate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(d.status, StatusCode::OK);
    assert_eq!(d.body["deactivated"], true);
    t.get("/api/v1/me", Some(&carol))
        .await
        .expect_error(401, "unauthorized");
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "carol", "password": PASSWORD}),
    )
    .await
    .expect_error(403, "account_deactivated");
    t.call(
        Method::POST,
        &format!("/api/v1/admin/users/{admin_id}/deactivate"),
        Some(&admin),
        None,
    )
    .await
    .expect_error(400, "invalid_input");
    t.call(
        Method::POST,
        "/api/v1/admin/users/nobody/deactivate",
        Some(&admin),
        None,
    )
    .await
    .expect_error(404, "not_found");

    let r = t
        .call(
            Method::POST,
            &format!("/api/v1/admin/users/{carol_id}/reactivate"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["deactivated"], false);
    let carol = t.login("carol", PASSWORD).await;

    // A password reset ends password sessions; personal access tokens stay.
    let pat = t
        .post("/api/v1/me/tokens", Some(&carol), json!({"name": "bot"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/admin/users/{carol_id}/password");
    t.call(
        Method::PUT,
        &path,
        Some(&admin),
        Some(json!({"password": "tiny"})),
    )
    .await
    .expect_error(400, "invalid_input");
    let reset = t
        .call(
            Method::PUT,
            &path,
            Some(&admin),
            Some(json!({"password": "a brand new one"})),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{}", reset.body);
    t.get("/api/v1/me", Some(&carol))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(t.get("/api/v1/me", Some(&pat)).await.status, StatusCode::OK);
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "carol", "password": PASSWORD}),
    )
    .await
    .expect_error(401, "invalid_credentials");
    t.login("carol", "a brand new one").await;
    t.call(
        Method::PUT,
        "/api/v1/admin/users/nobody/password",
        Some(&admin),
        Some(json!({"password": "long enough"})),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn settings_are_read_by_all_and_changed_by_admins() {
    let t = TestApp::new().await;
    t.create_user("admin", true).await;
    t.create_user("user", false).await;
    let admin = t.login("admin", PASSWORD).await;
    let user = t.login("user", PASSWORD).await;

    let defaults = t.get("/api/v1/settings", Some(&user)).await;
    assert_eq!(
        defaults.body,
        serde_json::to_value(sotto_api::Settings::default()).unwrap()
    );

    let patched = t
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"otr.enabled": false, "files.max_size_bytes": 1024})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["otr.enabled"], false);
    assert_eq!(patched.body["e2e.enabled"], false);
    assert_eq!(
        t.get("/api/v1/settings", Some(&user)).await.body,
        patched.body
    );

    for bad in [
        json!({"files.max_size_bytes": 0}),
        json!({"rooms.max_group_dm_members": 2}),
        json!({"rooms.max_group_dm_members": 101}),
    ] {
        t.call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(bad))
            .await
            .expect_error(400, "invalid_input");
    }
    t.call(
        Method::PATCH,
        "/api/v1/settings",
        Some(&admin),
        Some(json!({"otr.enabled": "no"})),
    )
    .await
    .expect_error(400, "invalid_json");
    t.call(
        Method::PATCH,
        "/api/v1/settings",
        Some(&admin),
        Some(json!({"no.such": true})),
    )
    .await
    .expect_error(400, "invalid_json");
    t.call(
        Method::PUT,
        "/api/v1/settings",
        Some(&admin),
        Some(json!({"otr.enabled": true})),
    )
    .await
    .expect_error(400, "invalid_json");
    t.call(
        Method::PATCH,
        "/api/v1/settings",
        Some(&user),
        Some(json!({"otr.enabled": true})),
    )
    .await
    .expect_error(403, "forbidden");

    let mut all = serde_json::to_value(sotto_api::Settings::default()).unwrap();
    all["rooms.max_group_dm_members"] = json!(12);
    let put = t
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(&admin),
            Some(all.clone()),
        )
        .await;
    assert_eq!(put.body, all);
    assert_eq!(t.get("/api/v1/settings", Some(&admin)).await.body, all);
}

#[tokio::test]
async fn every_failure_has_the_error_shape() {
    let t = TestApp::new().await;
    // (A GET of any other path is the browser client's page: see tests/web.rs.)
    t.call(Method::POST, "/nowhere", None, None)
        .await
        .expect_error(404, "not_found");
    t.get("/api/v1/nowhere", None)
        .await
        .expect_error(404, "not_found");
    t.call(Method::DELETE, "/api/v1/login", None, None)
        .await
        .expect_error(405, "method_not_allowed");

    let raw = |body: &'static str, content_type: Option<&str>| {
        let mut r = Request::builder().method(Method::POST).uri("/api/v1/login");
        if let Some(ct) = content_type {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body)).unwrap()
    };
    t.send(raw("{not json", Some("application/json")))
        .await
        .expect_error(400, "invalid_json");
    t.send(raw("[1, 2]", Some("application/json")))
        .await
        .expect_error(400, "invalid_json");
    // A body is an object, never an array of a request's fields in order.
    t.send(raw(r#"["nobody", "a password"]"#, Some("application/json")))
        .await
        .expect_error(400, "invalid_json");
    // Any application/…+json type is JSON.
    let login = r#"{"username": "nobody", "password": "a password"}"#;
    t.send(raw(
        login,
        Some("application/vnd.sotto+json; charset=utf-8"),
    ))
    .await
    .expect_error(401, "invalid_credentials");
    t.send(raw(login, Some("application/jsonx")))
        .await
        .expect_error(415, "unsupported_media_type");
    t.send(raw("{}", None))
        .await
        .expect_error(415, "unsupported_media_type");
    t.send(raw("{}", Some("text/plain")))
        .await
        .expect_error(415, "unsupported_media_type");
    let huge = format!(
        "{{\"username\": \"{}\", \"password\": \"x\"}}",
        "a".repeat(100 * 1024)
    );
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    t.send(req).await.expect_error(413, "payload_too_large");

    for auth in [
        "Basic abc",
        "Bearer",
        "Bearer ",
        "bearer nonsense",
        "Bearer \u{7f}",
    ] {
        let Ok(req) = Request::builder()
            .uri("/api/v1/me")
            .header(header::AUTHORIZATION, auth)
            .body(Body::empty())
        else {
            continue;
        };
        t.send(req).await.expect_error(401, "unauthorized");
    }
    let long = "x".repeat(10_000);
    t.get("/api/v1/me", Some(&long))
        .await
        .expect_error(401, "unauthorized");
}

#[tokio::test]
async fn internal_failures_are_answered_generically() {
    let t = TestApp::new().await;
    t.stores.close().await;
    let a = t.get("/api/v1/setup", None).await;
    a.expect_error(500, "internal");
    assert_eq!(a.body["error"]["message"], "internal server error");
}

#[tokio::test]
async fn logins_are_rate_limited_per_account() {
    let t = TestApp::new().await;
    t.create_user("target", false).await;
    let wrong = json!({"username": "target", "password": "not the password"});
    for _ in 0..10 {
        t.post("/api/v1/login", None, wrong.clone())
            .await
            .expect_error(401, "invalid_credentials");
    }
    let limited = t.post("/api/v1/login", None, wrong.clone()).await;
    limited.expect_error(429, "rate_limited");
    let retry: u64 = limited.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry));
    // Even the right password waits, in any case of the username; other accounts do not.
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "TARGET", "password": PASSWORD}),
    )
    .await
    .expect_error(429, "rate_limited");
    t.create_user("bystander", false).await;
    t.login("bystander", PASSWORD).await;
}

#[tokio::test]
async fn logins_are_rate_limited_per_address() {
    let t = TestApp::new().await;
    let from = |addr: &str, i: usize| {
        let body = json!({"username": format!("user{i}"), "password": "whatever password"});
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(addr.parse::<SocketAddr>().unwrap()));
        req
    };
    // 30 attempts at once are allowed; attempts refill slowly, so the limit hits soon after.
    let mut limited = None;
    for i in 0..100 {
        let a = t.send(from("192.0.2.1:1000", i)).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, a));
            break;
        }
        a.expect_error(401, "invalid_credentials");
    }
    let (attempts, limited) = limited.expect("the address was never limited");
    assert!(attempts >= 30, "limited after {attempts}");
    limited.expect_error(429, "rate_limited");
    assert!(limited.headers.contains_key(header::RETRY_AFTER));
    // Another port of the same address is the same client; another address is not.
    t.send(from("192.0.2.1:2000", 0))
        .await
        .expect_error(429, "rate_limited");
    t.send(from("192.0.2.2:1000", 100))
        .await
        .expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn users_are_found_by_name() {
    for t in TestApp::every_backend().await {
        let ana = t.create_user("Ana", false).await;
        let gone = t.create_user("gone", false).await;
        let admin = t.create_user("root", true).await;
        t.create_user("bob", false).await;
        let bob = t.login("bob", PASSWORD).await;
        let root = t.login("root", PASSWORD).await;

        // Any case; only id, username and display name, no admin flags.
        let a = t.get("/api/v1/users/by-name/aNA", Some(&bob)).await;
        assert_eq!(a.status, StatusCode::OK, "{}: {}", t.backend(), a.body);
        assert_eq!(
            a.body,
            json!({"id": ana, "username": "Ana", "display_name": "Ana"})
        );
        let a = t.get("/api/v1/users/by-name/root", Some(&bob)).await;
        assert_eq!(a.body["id"], admin);
        assert!(a.body.get("admin").is_none());

        // Deactivated, unknown or impossible names are all simply not found.
        let path = format!("/api/v1/admin/users/{gone}/deactivate");
        let d = t.call(Method::POST, &path, Some(&root), None).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.body);
        for name in ["gone", "nobody", "x", "a%20b", "..%2Fme"] {
            t.get(&format!("/api/v1/users/by-name/{name}"), Some(&bob))
                .await
                .expect_error(404, "not_found");
        }
        t.get("/api/v1/users/by-name/ana", None)
            .await
            .expect_error(401, "unauthorized");
        t.finish().await;
    }
}
