//! Message bodies never reach the log (its own binary: log capture is per thread, and
//! other tests running in the same process would race for the log callsites).

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn message_bodies_are_never_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

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

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("room created"), "capture works: {log}");
    assert!(!log.contains(secret), "a message body appears in the log");
    assert!(!log.contains("c2VjcmV0LWJvZHktd29yZHM="));
}
