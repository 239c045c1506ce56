//! Search terms never reach the log, and every audit read does, with the admin who made
//! it (its own binary: log capture is per thread, and other tests running in the same
//! process would race for the log callsites).

mod common;

use common::{PASSWORD, TestApp};
use serde_json::json;
use sotto_server::testing::LogCapture;

#[tokio::test]
async fn search_terms_stay_out_of_the_log_and_audit_reads_go_in() {
    let captured = LogCapture::start();

    let t = TestApp::new().await;
    let admin_id = t.create_user("admin", true).await;
    t.create_user("owner", false).await;
    let own = t.login("owner", PASSWORD).await;
    let admin = t.login("admin", PASSWORD).await;
    let made = t
        .post(
            "/api/v1/rooms",
            Some(&own),
            json!({"kind": "channel", "name": "c", "private": true}),
        )
        .await;
    let room = made.body["id"].as_str().unwrap();
    let secret = "secretsearchword";
    let sent = t
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&own),
            json!({"id": "s1", "text": format!("the {secret}")}),
        )
        .await;
    assert_eq!(sent.status, 201);
    let found = t
        .get(&format!("/api/v1/search?q={secret}"), Some(&own))
        .await;
    assert_eq!(found.body["messages"][0]["id"], "s1");
    let audit = t
        .get(
            &format!("/api/v1/admin/rooms/{room}/messages"),
            Some(&admin),
        )
        .await;
    assert_eq!(audit.body["messages"][0]["text"], format!("the {secret}"));
    t.get("/api/v1/admin/rooms", Some(&admin)).await;

    let log = captured.text();
    assert!(log.contains("/api/v1/search"), "capture works: {log}");
    assert!(!log.contains(secret), "a search term appears in the log");
    let reads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("audit: room messages read"))
        .collect();
    assert_eq!(reads.len(), 1, "{log}");
    assert!(reads[0].contains(&admin_id) && reads[0].contains(room));
    assert!(log.contains("audit: rooms listed"));
}
