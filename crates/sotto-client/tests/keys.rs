//! The user's keys through a real server: setup, unlock on another device, a wrong
//! password, a password change, resets, and contacts' pinned keys.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sotto_client::{Client, Error, Profile};
use sotto_crypto::{EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, UserId, os_rng};
use sotto_server::testing::{TestServer, request};

const LOGIN: &str = "login password 1";

async fn login(server: &TestServer, dir: &tempfile::TempDir, device: &str, name: &str) -> Client {
    let profile = Profile::open(dir.path().join(device)).unwrap();
    Client::login(profile, &server.url(), name, LOGIN)
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_follow_the_user_across_devices_and_password_changes() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        server.create_user("ana", LOGIN).await;
        let dir = tempfile::tempdir().unwrap();

        let laptop = login(&server, &dir, "laptop", "ana").await;
        let status = laptop.e2e_status().await.unwrap();
        assert!(
            !status.published && !status.unlocked,
            "{}",
            server.backend()
        );
        assert!(matches!(laptop.keys(), Err(Error::Locked)));
        let password = laptop.e2e_setup().await.unwrap();
        assert_eq!(password.as_str().split(' ').count(), 12);
        let status = laptop.e2e_status().await.unwrap();
        assert!(status.published && status.unlocked && !status.stale);
        assert!(matches!(laptop.e2e_setup().await, Err(Error::Invalid(_))));

        // Another device: locked until the password is given; a wrong one is refused.
        let phone = login(&server, &dir, "phone", "ana").await;
        assert!(!phone.e2e_status().await.unwrap().unlocked);
        let wrong = phone.e2e_unlock("not the password").await;
        assert!(matches!(wrong, Err(Error::WrongPassword)), "{wrong:?}");
        assert!(!phone.is_unlocked());
        phone.e2e_unlock(password.as_str()).await.unwrap();
        assert_eq!(
            phone.keys().unwrap().identity_public(),
            laptop.keys().unwrap().identity_public()
        );
        // The unlocked keys survive a restart of the client on the same profile.
        let reopened = Client::open(Profile::open(dir.path().join("phone")).unwrap()).unwrap();
        assert!(reopened.is_unlocked());

        // A password change: only the new password unlocks from then on.
        phone
            .e2e_change_password(password.as_str(), "a new pässword")
            .await
            .unwrap();
        let tablet = login(&server, &dir, "tablet", "ana").await;
        assert!(matches!(
            tablet.e2e_unlock(password.as_str()).await,
            Err(Error::WrongPassword)
        ));
        // NFD spelling of the same password unlocks too (§3.1).
        tablet.e2e_unlock("a new pa\u{308}ssword").await.unwrap();
        let wrong_old = laptop.e2e_change_password("nope", "x").await;
        assert!(
            matches!(wrong_old, Err(Error::WrongPassword)),
            "{wrong_old:?}"
        );

        // Own reset needs the login password; then the keys are gone everywhere.
        let refused = laptop.e2e_reset("wrong login").await;
        assert_eq!(refused.unwrap_err().code(), Some("invalid_credentials"));
        laptop.e2e_reset(LOGIN).await.unwrap();
        assert!(!laptop.is_unlocked());
        let status = tablet.e2e_status().await.unwrap();
        assert!(!status.published && status.stale);
        assert!(matches!(
            tablet.e2e_unlock("a new pässword").await,
            Err(Error::NoKeys)
        ));
        server.finish().await;
    }
}

#[tokio::test]
async fn a_backup_replacement_with_a_wrong_signature_is_refused() {
    for server in TestServer::every_backend().await {
        server.enable_encryption().await;
        let ana_id = UserId::new(server.create_user("ana", LOGIN).await).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let laptop = login(&server, &dir, "laptop", "ana").await;
        let password = laptop.e2e_setup().await.unwrap();

        // Someone holding only a token of Ana's (no identity key) tries to swap her backup
        // for one under a password they know, signed with keys of their own.
        let token = request(
            server.addr(),
            "POST",
            "/api/v1/login",
            None,
            Some(&json!({"username": "ana", "password": LOGIN})),
        )
        .await
        .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let get = request(
            server.addr(),
            "GET",
            "/api/v1/me/keys/backup",
            Some(&token),
            None,
        )
        .await;
        let current = STANDARD
            .decode(get.body["backup"].as_str().unwrap())
            .unwrap();
        let bundle = request(server.addr(), "GET", "/api/v1/me/keys", Some(&token), None)
            .await
            .body["bundle"]["bundle"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut rng = os_rng();
        let thief = IdentityKeys::generate(&mut rng);
        let known = EncryptionPassword::from_user("the thief's password").unwrap();
        let theirs =
            KeyBackup::create(&thief, &ana_id, &known, KdfParams::DEFAULT, &mut rng).unwrap();
        let forged = theirs.sign_replacement(&thief, &ana_id, &current);
        let a = request(
            server.addr(),
            "PUT",
            "/api/v1/me/keys/backup",
            Some(&token),
            Some(&json!({
                "bundle": bundle,
                "backup": STANDARD.encode(theirs.encode()),
                "signature": STANDARD.encode(forged),
            })),
        )
        .await;
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (403, Some("invalid_signature")),
            "{}: {}",
            server.backend(),
            a.body
        );

        // Ana's backup is untouched: a new device unlocks with her password, and her own
        // client's signed change goes through.
        let phone = login(&server, &dir, "phone", "ana").await;
        phone.e2e_unlock(password.as_str()).await.unwrap();
        phone
            .e2e_change_password(password.as_str(), "ana's own new password")
            .await
            .unwrap();
        let tablet = login(&server, &dir, "tablet", "ana").await;
        tablet.e2e_unlock("ana's own new password").await.unwrap();
        server.finish().await;
    }
}

#[tokio::test]
async fn contacts_are_pinned_verified_and_key_changes_surface() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    let ana_id = UserId::new(server.create_user("ana", LOGIN).await).unwrap();
    let ben_id = UserId::new(server.create_user("ben", LOGIN).await).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ana = login(&server, &dir, "ana", "ana").await;
    let ben = login(&server, &dir, "ben", "ben").await;
    ana.e2e_setup().await.unwrap();
    ben.e2e_setup().await.unwrap();

    let from_ana = ana.verification(&ben_id).await.unwrap();
    let from_ben = ben.verification(&ana_id).await.unwrap();
    assert_eq!(from_ana.safety_number, from_ben.safety_number);
    assert_eq!(from_ana.safety_number.digits().len(), 60);
    assert!(!from_ana.verified && from_ana.pending_change.is_none());
    ana.confirm_verified(&ben_id).await.unwrap();
    assert!(ana.contact(&ben_id).await.unwrap().verified);

    // Ben loses his keys (admin reset) and sets up new ones: Ana is warned, not fooled.
    server
        .admin_call(
            "POST",
            &format!("/api/v1/admin/users/{ben_id}/keys/reset"),
            None,
        )
        .await;
    let ben = login(&server, &dir, "ben2", "ben").await;
    ben.e2e_setup().await.unwrap();
    let changed = ana.contact(&ben_id).await;
    assert!(matches!(&changed, Err(Error::KeyChanged { user }) if *user == ben_id.to_string()));
    assert!(changed.unwrap_err().to_string().contains("--accept-change"));
    assert_eq!(ana.pending_key_changes(), vec![ben_id.clone()]);
    let shown = ana.verification(&ben_id).await.unwrap();
    let new_number = shown.pending_change.expect("the changed key's number");
    assert_ne!(new_number, shown.safety_number);

    // The warning persists across restarts until accepted; the new key is unverified.
    let ana = Client::open(Profile::open(dir.path().join("ana")).unwrap()).unwrap();
    assert_eq!(ana.pending_key_changes(), vec![ben_id.clone()]);
    ana.accept_key_change(&ben_id).unwrap();
    assert!(ana.pending_key_changes().is_empty());
    let contact = ana.contact(&ben_id).await.unwrap();
    assert!(!contact.verified);
    assert_eq!(
        ana.verification(&ben_id).await.unwrap().safety_number,
        new_number
    );
    assert!(matches!(ana.accept_key_change(&ben_id), Err(Error::Pin(_))));
    server.finish().await;
}

#[tokio::test]
async fn logout_forgets_the_session_and_the_unlocked_keys() {
    let server = TestServer::sqlite().await;
    server.enable_encryption().await;
    server.create_user("ana", LOGIN).await;
    let dir = tempfile::tempdir().unwrap();
    let ana = login(&server, &dir, "p", "ana").await;
    ana.e2e_setup().await.unwrap();
    let token_check = ana.api().clone();
    ana.logout().await.unwrap();
    let profile = Profile::open(dir.path().join("p")).unwrap();
    assert!(profile.login().unwrap().is_none());
    assert!(profile.keys().unwrap().is_none());
    assert!(matches!(Client::open(profile), Err(Error::NotLoggedIn)));
    let after: Result<serde_json::Value, _> = token_check.get("/api/v1/me").await;
    assert_eq!(after.unwrap_err().code(), Some("unauthorized"));
    let bad = Client::login(
        Profile::open(dir.path().join("q")).unwrap(),
        &server.url(),
        "ana",
        "wrong",
    )
    .await;
    assert_eq!(bad.unwrap_err().code(), Some("invalid_credentials"));
    server.finish().await;
}
