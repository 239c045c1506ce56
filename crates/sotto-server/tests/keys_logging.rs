//! Keys never reach the log: everything logged at every level while keys are published,
//! fetched, re-wrapped and reset is searched for the bundle, the backups and the login
//! passwords involved.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{PASSWORD, TestApp};
use serde_json::json;
use sotto_crypto::{EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, UserId, os_rng};
use sotto_server::testing::LogCapture;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn no_key_backup_or_password_is_logged() {
    let captured = LogCapture::start();
    let t = TestApp::new().await;
    t.enable_encryption().await;
    t.create_user("admin", true).await;
    let admin = t.login("admin", PASSWORD).await;
    let alice_id = t.create_user("alice", false).await;
    let alice = t.login("alice", PASSWORD).await;

    let mut rng = os_rng();
    let user = UserId::new(alice_id.as_str()).unwrap();
    let keys = IdentityKeys::generate(&mut rng);
    let password = EncryptionPassword::generate(&mut rng);
    let bundle = keys.bundle(&user).encode();
    let backup = KeyBackup::create(&keys, &user, &password, KdfParams::FLOOR, &mut rng).unwrap();
    let new_password = EncryptionPassword::generate(&mut rng);
    let rewrapped = backup
        .rewrap(&keys, &user, &new_password, KdfParams::FLOOR, &mut rng)
        .unwrap();
    let backup = backup.encode();
    let signature = STANDARD.encode(rewrapped.sign_replacement(&keys, &user, &backup));
    let rewrapped = rewrapped.encode();
    let (b, k, r) = (
        STANDARD.encode(&bundle),
        STANDARD.encode(&backup),
        STANDARD.encode(&rewrapped),
    );

    let a = t
        .post(
            "/api/v1/me/keys",
            Some(&alice),
            json!({"bundle": b, "backup": k}),
        )
        .await;
    assert_eq!(a.status.as_u16(), 201, "{}", a.body);
    t.get(&format!("/api/v1/users/{alice_id}/keys"), Some(&admin))
        .await;
    t.get("/api/v1/me/keys/backup", Some(&alice)).await;
    let a = t
        .call(
            axum::http::Method::PUT,
            "/api/v1/me/keys/backup",
            Some(&alice),
            Some(json!({"bundle": b, "backup": r, "signature": signature})),
        )
        .await;
    assert_eq!(a.status.as_u16(), 200, "{}", a.body);
    let wrong = "wrong secret login password";
    t.post(
        "/api/v1/me/keys/reset",
        Some(&alice),
        json!({"password": wrong}),
    )
    .await;
    t.post(
        "/api/v1/me/keys/reset",
        Some(&alice),
        json!({"password": PASSWORD}),
    )
    .await;
    t.post(
        "/api/v1/me/keys",
        Some(&alice),
        json!({"bundle": b, "backup": k}),
    )
    .await;
    t.call(
        axum::http::Method::POST,
        &format!("/api/v1/admin/users/{alice_id}/keys/reset"),
        Some(&admin),
        None,
    )
    .await;

    let log = captured.text();
    assert!(log.contains("keys published"), "capture works: {log}");
    assert!(log.contains("keys reset"));
    assert!(log.contains("key backup replaced"));
    for secret in [
        b.clone(),
        k.clone(),
        r.clone(),
        hex(&bundle),
        hex(&backup),
        hex(&rewrapped),
        signature.clone(),
        hex(&keys.identity_public().to_bytes()),
        hex(&keys.agreement_public()),
        wrong.to_owned(),
        PASSWORD.to_owned(),
        password.as_str().to_owned(),
        new_password.as_str().to_owned(),
    ] {
        assert!(!log.contains(&secret), "{secret:?} appears in the log");
    }
}
