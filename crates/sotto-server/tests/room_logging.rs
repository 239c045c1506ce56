//! Message bodies never reach the log (its own binary: see `LogCapture`).

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::json;
use sotto_server::testing::LogCapture;

#[tokio::test]
async fn message_bodies_are_never_logged() {
    let captured = LogCapture::start();

    let t = TestApp::new().await;
    t.create_user("owner", false).await;
    let own = t.login("owner", PASSWORD).await;
    let made = t
        .post(
            "/api/v1/rooms",
            Some(&own),
            json!({"kind": "channel", "name": "c"}),
        )
        .await;
    let room = made.body["id"].as_str().unwrap();
    let msgs = format!("/api/v1/rooms/{room}/messages");
    let secret = "secret-body-words";
    for body in [
        json!({"id": "s1", "text": secret}),
        json!({"id": "s1", "text": format!("{secret} 2")}),
        json!({"id": "s2", "text": format!("{secret} {}", "x".repeat(17_000))}),
        json!({"id": "s3", "ciphertext": "c2VjcmV0LWJvZHktd29yZHM="}),
    ] {
        t.call(Method::POST, &msgs, Some(&own), Some(body)).await;
    }
    t.call(
        Method::PATCH,
        &format!("{msgs}/s1"),
        Some(&own),
        Some(json!({"text": format!("{secret} 3")})),
    )
    .await;
    t.call(Method::DELETE, &format!("{msgs}/s1"), Some(&own), None)
        .await;

    let log = captured.text();
    assert!(log.contains("room created"), "capture works: {log}");
    assert!(!log.contains(secret), "a message body appears in the log");
    assert!(!log.contains("c2VjcmV0LWJvZHktd29yZHM="));
}
