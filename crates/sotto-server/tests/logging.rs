//! Secrets never reach the log: everything logged at every level during setup, logins,
//! token creation and a password reset is searched for the secrets involved.

mod common;

use common::TestApp;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_password_or_token_is_ever_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
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
