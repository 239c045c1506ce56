//! Secrets never reach the log: everything logged at every level during setup, logins,
//! token creation and a password reset is searched for the secrets involved.

mod common;

use common::TestApp;
use serde_json::json;
use sotto_server::testing::LogCapture;

#[tokio::test]
async fn no_password_or_token_is_ever_logged() {
    let captured = LogCapture::start();

    let t = TestApp::new().await;
    let setup_token = t
        .state
        .services
        .accounts
        .issue_setup_token()
        .await
        .unwrap()
        .unwrap();
    let admin_password = "admin secret password";
    let done = t
        .post(
            "/api/v1/setup",
            None,
            json!({"setup_token": setup_token, "username": "admin", "password": admin_password}),
        )
        .await;
    let admin = done.body["token"].as_str().unwrap().to_owned();
    let user_password = "user secret password";
    let made = t
        .post(
            "/api/v1/admin/users",
            Some(&admin),
            json!({"username": "user", "password": user_password}),
        )
        .await;
    let user_id = made.body["id"].as_str().unwrap().to_owned();
    let wrong = "wrong secret password";
    t.post(
        "/api/v1/login",
        None,
        json!({"username": "user", "password": wrong}),
    )
    .await;
    let user = t.login("user", user_password).await;
    let pat = t
        .post("/api/v1/me/tokens", Some(&user), json!({"name": "bot"}))
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reset = "reset secret password";
    t.call(
        axum::http::Method::PUT,
        &format!("/api/v1/admin/users/{user_id}/password"),
        Some(&admin),
        Some(json!({"password": reset})),
    )
    .await;
    t.get("/api/v1/me", Some("an unknown secret token")).await;

    let log = captured.text();
    assert!(log.contains("first admin created"), "capture works: {log}");
    assert!(log.contains("login"));
    for secret in [
        setup_token.as_str(),
        admin_password,
        user_password,
        wrong,
        reset,
        admin.as_str(),
        user.as_str(),
        pat.as_str(),
        "an unknown secret token",
        "$argon2id$",
    ] {
        assert!(!log.contains(secret), "{secret:?} appears in the log");
    }
}
