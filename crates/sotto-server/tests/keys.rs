//! E2EE user keys through the API, with real keys from sotto-crypto: publishing, the key
//! directory, backups (owner only, password change), own and admin resets, the
//! `e2e.enabled` gate, and the `keys_changed` notice over a real socket. Both backends.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sotto_crypto::{
    EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, PublicBundle, UserId, os_rng,
};
use sotto_server::testing::{self, PgTestDb, Socket, next_frame};
use sotto_server::{Config, Server};
use std::net::SocketAddr;

/// A user's keys as a client makes them: the keys, the password, bundle and backup.
struct Keys {
    keys: IdentityKeys,
    password: EncryptionPassword,
    bundle: Vec<u8>,
    backup: Vec<u8>,
}

impl Keys {
    fn new(user_id: &str) -> Self {
        Self::with_params(user_id, KdfParams::FLOOR)
    }

    fn with_params(user_id: &str, params: KdfParams) -> Self {
        let mut rng = os_rng();
        let user = UserId::new(user_id).unwrap();
        let keys = IdentityKeys::generate(&mut rng);
        let password = EncryptionPassword::generate(&mut rng);
        let bundle = keys.bundle(&user).encode();
        let backup = KeyBackup::create(&keys, &user, &password, params, &mut rng)
            .unwrap()
            .encode();
        Self {
            keys,
            password,
            bundle,
            backup,
        }
    }

    fn publish_body(&self) -> Value {
        json!({"bundle": b64(&self.bundle), "backup": b64(&self.backup)})
    }
}

/// A `PUT /api/v1/me/keys/backup` body: `new` replacing `current`, signed by `signer`
/// as the protocol says (a malformed `new` gets a signature of zeros).
fn replace_body(
    user_id: &str,
    signer: &IdentityKeys,
    bundle: &[u8],
    current: &[u8],
    new: &[u8],
) -> Value {
    let user = UserId::new(user_id).unwrap();
    let signature = match KeyBackup::decode(new) {
        Ok(b) => b.sign_replacement(signer, &user, current),
        Err(_) => [0; 64],
    };
    json!({"bundle": b64(bundle), "backup": b64(new), "signature": b64(&signature)})
}

async fn put_backup(t: &TestApp, token: String, body: Value) -> common::Answer {
    t.call(
        axum::http::Method::PUT,
        "/api/v1/me/keys/backup",
        Some(&token),
        Some(body),
    )
    .await
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

/// A backup with its KDF parameters overwritten (the server reads them, cannot open it).
fn with_params(backup: &[u8], m_kib: u32, t: u32, p: u32) -> Vec<u8> {
    let mut b = backup.to_vec();
    b[1..5].copy_from_slice(&m_kib.to_be_bytes());
    b[5..9].copy_from_slice(&t.to_be_bytes());
    b[9..13].copy_from_slice(&p.to_be_bytes());
    b
}

async fn user(t: &TestApp, name: &str) -> (String, String) {
    let id = t.create_user(name, false).await;
    (id, t.login(name, PASSWORD).await)
}

#[tokio::test]
async fn publish_and_fetch_bundles() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (alice_id, alice) = user(&t, "alice").await;
        let (bob_id, bob) = user(&t, "bob").await;
        let a = t.get("/api/v1/me/keys", Some(&alice)).await;
        assert_eq!(a.body, json!({"published": false, "bundle": null}));

        let keys = Keys::new(&alice_id);
        let a = t
            .post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;
        assert_eq!(a.status.as_u16(), 201, "{}: {}", t.backend(), a.body);
        assert_eq!(a.body["user_id"], alice_id);
        assert_eq!(unb64(&a.body["bundle"]), keys.bundle);

        let a = t.get("/api/v1/me/keys", Some(&alice)).await;
        assert_eq!(a.body["published"], true);
        assert_eq!(unb64(&a.body["bundle"]["bundle"]), keys.bundle);

        // Anyone signed in fetches it, bots included, and it verifies as Alice's.
        let bot = t
            .post("/api/v1/me/tokens", Some(&bob), json!({"name": "bot"}))
            .await
            .body["token"]
            .as_str()
            .unwrap()
            .to_owned();
        for token in [&bob, &bot] {
            let a = t
                .get(&format!("/api/v1/users/{alice_id}/keys"), Some(token))
                .await;
            assert_eq!(a.status.as_u16(), 200, "{}", a.body);
            let fetched = PublicBundle::decode(&unb64(&a.body["bundle"])).unwrap();
            assert_eq!(fetched.user().as_str(), alice_id);
            assert!(keys.keys.matches(&fetched));
        }
        t.get(&format!("/api/v1/users/{bob_id}/keys"), Some(&alice))
            .await
            .expect_error(404, "not_found");
        t.get("/api/v1/users/nobody/keys", Some(&alice))
            .await
            .expect_error(404, "not_found");
        t.get(&format!("/api/v1/users/{alice_id}/keys"), None)
            .await
            .expect_error(401, "unauthorized");

        // Several at once: those with keys, once each.
        let a = t
            .get(
                &format!("/api/v1/keys?user_ids={alice_id},{bob_id},{alice_id},nobody"),
                Some(&bob),
            )
            .await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        let list = a.body["bundles"].as_array().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0]["user_id"], alice_id);
        assert_eq!(unb64(&list[0]["bundle"]), keys.bundle);
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        for q in [
            "",
            "?user_ids=",
            "?user_ids=,,",
            &format!("?user_ids={}", many.join(",")),
        ] {
            t.get(&format!("/api/v1/keys{q}"), Some(&bob))
                .await
                .expect_error(400, "invalid_input");
        }

        // A second publish, even of other genuine keys, is refused and changes nothing.
        let other = Keys::new(&alice_id);
        t.post("/api/v1/me/keys", Some(&alice), other.publish_body())
            .await
            .expect_error(409, "conflict");
        let a = t
            .get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await;
        assert_eq!(unb64(&a.body["bundle"]), keys.bundle);
        t.finish().await;
    }
}

#[tokio::test]
async fn forged_foreign_and_garbage_keys_are_refused() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (alice_id, alice) = user(&t, "alice").await;
        let (bob_id, _) = user(&t, "bob").await;
        let good = Keys::new(&alice_id);
        let bobs = Keys::new(&bob_id);

        let mut forged = good.bundle.clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        // Alice's keys, with Bob's signature-covered user id swapped for hers: the
        // signature no longer matches.
        let mut relabelled = bobs.bundle.clone();
        let at = relabelled
            .windows(bob_id.len())
            .position(|w| w == bob_id.as_bytes())
            .unwrap();
        if alice_id.len() == bob_id.len() {
            relabelled[at..at + alice_id.len()].copy_from_slice(alice_id.as_bytes());
        }
        let bad_bundles: Vec<(String, &str)> = vec![
            (b64(&forged), "forged signature"),
            (b64(&relabelled), "relabelled bundle"),
            (b64(&bobs.bundle), "another user's bundle"),
            (b64(&good.bundle[..good.bundle.len() - 1]), "truncated"),
            (b64(b"garbage"), "garbage"),
            ("not base64!".into(), "not base64"),
            (String::new(), "empty"),
            ("A".repeat(5000), "huge"),
        ];
        for (bundle, what) in bad_bundles {
            let a = t
                .post(
                    "/api/v1/me/keys",
                    Some(&alice),
                    json!({"bundle": bundle, "backup": b64(&good.backup)}),
                )
                .await;
            assert_eq!(a.status.as_u16(), 400, "{what}: {}", a.body);
            assert_eq!(a.code(), "invalid_input", "{what}");
        }

        let floor = KdfParams::FLOOR;
        let ceiling = KdfParams::CEILING;
        let bad_backups: Vec<(Vec<u8>, &str)> = vec![
            (
                with_params(&good.backup, floor.m_kib - 1, floor.t, floor.p),
                "memory below floor",
            ),
            (
                with_params(&good.backup, floor.m_kib, 1, floor.p),
                "passes below floor",
            ),
            (
                with_params(&good.backup, floor.m_kib, floor.t, 0),
                "no lanes",
            ),
            (
                with_params(&good.backup, ceiling.m_kib + 1, floor.t, floor.p),
                "memory above ceiling",
            ),
            (
                with_params(&good.backup, floor.m_kib, ceiling.t + 1, floor.p),
                "passes above ceiling",
            ),
            (good.backup[..good.backup.len() - 1].to_vec(), "truncated"),
            ([good.backup.as_slice(), &[0]].concat(), "trailing byte"),
            ([&[2u8], &good.backup[1..]].concat(), "unknown version"),
            (b"garbage".to_vec(), "garbage"),
        ];
        for (backup, what) in bad_backups {
            let a = t
                .post(
                    "/api/v1/me/keys",
                    Some(&alice),
                    json!({"bundle": b64(&good.bundle), "backup": b64(&backup)}),
                )
                .await;
            assert_eq!(a.status.as_u16(), 400, "{what}: {}", a.body);
            assert_eq!(a.code(), "invalid_input", "{what}");
        }
        t.post(
            "/api/v1/me/keys",
            Some(&alice),
            json!({"bundle": b64(&good.bundle)}),
        )
        .await
        .expect_error(400, "invalid_json");

        // Nothing was stored; the genuine keys still publish.
        let a = t.get("/api/v1/me/keys", Some(&alice)).await;
        assert_eq!(a.body["published"], false);
        let a = t
            .post("/api/v1/me/keys", Some(&alice), good.publish_body())
            .await;
        assert_eq!(a.status.as_u16(), 201, "{}", a.body);
        t.finish().await;
    }
}

#[tokio::test]
async fn the_backup_goes_to_its_owner_only_and_survives_a_password_change() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (alice_id, alice) = user(&t, "alice").await;
        let (bob_id, bob) = user(&t, "bob").await;
        let keys = Keys::new(&alice_id);
        t.post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;

        let a = t.get("/api/v1/me/keys/backup", Some(&alice)).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        assert_eq!(unb64(&a.body["backup"]), keys.backup);
        // Bob, without keys, gets nothing: never Alice's backup.
        t.get("/api/v1/me/keys/backup", Some(&bob))
            .await
            .expect_error(404, "not_found");
        let bobs = Keys::new(&bob_id);
        t.post("/api/v1/me/keys", Some(&bob), bobs.publish_body())
            .await;
        let a = t.get("/api/v1/me/keys/backup", Some(&bob)).await;
        assert_eq!(unb64(&a.body["backup"]), bobs.backup);
        t.get("/api/v1/me/keys/backup", None)
            .await
            .expect_error(401, "unauthorized");

        // E10: Alice re-wraps her keys under a new password; the bundle stays.
        let uid = UserId::new(alice_id.as_str()).unwrap();
        let new_password = EncryptionPassword::from_user("mon nouveau mot de passe").unwrap();
        let old = KeyBackup::decode(&keys.backup).unwrap();
        let rewrapped = old
            .rewrap(
                &keys.keys,
                &uid,
                &new_password,
                KdfParams::FLOOR,
                &mut os_rng(),
            )
            .unwrap()
            .encode();
        let put = |body: Value| {
            t.call(
                axum::http::Method::PUT,
                "/api/v1/me/keys/backup",
                Some(&alice),
                Some(body),
            )
        };
        let signed = |bundle: &[u8], current: &[u8], new: &[u8]| {
            replace_body(&alice_id, &keys.keys, bundle, current, new)
        };
        // Not with Bob's bundle, nor with a bundle of other keys of hers.
        let other = Keys::new(&alice_id);
        for wrong in [&bobs.bundle, &other.bundle] {
            put(signed(wrong, &keys.backup, &rewrapped))
                .await
                .expect_error(409, "conflict");
        }
        let a = put(signed(&keys.bundle, &keys.backup, &rewrapped)).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);

        // What is served now opens with the new password, not the old, to the same keys.
        let a = t.get("/api/v1/me/keys/backup", Some(&alice)).await;
        let served = KeyBackup::decode(&unb64(&a.body["backup"])).unwrap();
        let bundle = t
            .get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await;
        assert_eq!(unb64(&bundle.body["bundle"]), keys.bundle);
        let bundle = PublicBundle::decode(&keys.bundle).unwrap();
        assert!(served.open(&keys.password, &uid, &bundle).is_err());
        let opened = served.open(&new_password, &uid, &bundle).unwrap();
        assert!(opened.matches(&bundle));

        // Weaker parameters than the current backup's, or a malformed backup: refused.
        let weaker = with_params(&rewrapped, KdfParams::FLOOR.m_kib, 2, 1);
        let stronger_now = with_params(&rewrapped, 65_536, 3, 1);
        let a = put(signed(&keys.bundle, &rewrapped, &stronger_now)).await;
        assert_eq!(a.status.as_u16(), 200, "raising the parameters: {}", a.body);
        for backup in [weaker, b"garbage".to_vec()] {
            put(signed(&keys.bundle, &stronger_now, &backup))
                .await
                .expect_error(400, "invalid_input");
        }
        // Without keys there is nothing to replace.
        let (carol_id, carol) = user(&t, "carol").await;
        t.call(
            axum::http::Method::PUT,
            "/api/v1/me/keys/backup",
            Some(&carol),
            Some(replace_body(
                &carol_id,
                &keys.keys,
                &keys.bundle,
                &keys.backup,
                &rewrapped,
            )),
        )
        .await
        .expect_error(404, "not_found");
        t.finish().await;
    }
}

#[tokio::test]
async fn a_backup_is_replaced_only_with_the_identity_keys_signature_over_the_stored_one() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (alice_id, alice) = user(&t, "alice").await;
        let keys = Keys::new(&alice_id);
        t.post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;
        // A bot token of Alice's: a bearer token, but no identity key.
        let bot = t
            .post(
                "/api/v1/me/tokens",
                Some(&alice),
                json!({"name": "build bot"}),
            )
            .await;
        let bot = bot.body["token"].as_str().unwrap().to_owned();
        let uid = UserId::new(alice_id.as_str()).unwrap();
        let mut rng = os_rng();
        let rewrap = |from: &[u8]| {
            let password = EncryptionPassword::generate(&mut os_rng());
            KeyBackup::decode(from)
                .unwrap()
                .rewrap(&keys.keys, &uid, &password, KdfParams::FLOOR, &mut os_rng())
                .unwrap()
                .encode()
        };
        let put = |token: &str, body: Value| put_backup(&t, token.to_owned(), body);
        let stored =
            async || unb64(&t.get("/api/v1/me/keys/backup", Some(&alice)).await.body["backup"]);
        let b1 = rewrap(&keys.backup);

        // The token holder's own backup (a password they know, over other keys): with no
        // signature, a malformed one, one of zeros, or one by keys of their own, refused.
        let imposter = IdentityKeys::generate(&mut rng);
        let theirs = KeyBackup::create(
            &imposter,
            &uid,
            &EncryptionPassword::from_user("known to the thief").unwrap(),
            KdfParams::FLOOR,
            &mut rng,
        )
        .unwrap()
        .encode();
        for token in [&bot, &alice] {
            let unsigned = json!({"bundle": b64(&keys.bundle), "backup": b64(&theirs)});
            put(token, unsigned).await.expect_error(400, "invalid_json");
            let mut short = replace_body(&alice_id, &imposter, &keys.bundle, &keys.backup, &theirs);
            short["signature"] = json!(b64(&[7; 63]));
            put(token, short).await.expect_error(400, "invalid_input");
            let mut zeros = replace_body(&alice_id, &imposter, &keys.bundle, &keys.backup, &theirs);
            zeros["signature"] = json!(b64(&[0; 64]));
            put(token, zeros)
                .await
                .expect_error(403, "invalid_signature");
            for new in [&theirs, &b1] {
                let forged = replace_body(&alice_id, &imposter, &keys.bundle, &keys.backup, new);
                let a = put(token, forged).await;
                a.expect_error(403, "invalid_signature");
                assert!(
                    a.body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("signature")
                );
            }
            // Alice's genuine signature, but over another backup than the one sent.
            let mut swapped = replace_body(&alice_id, &keys.keys, &keys.bundle, &keys.backup, &b1);
            swapped["backup"] = json!(b64(&theirs));
            put(token, swapped)
                .await
                .expect_error(403, "invalid_signature");
        }
        assert_eq!(stored().await, keys.backup, "nothing was replaced");

        // Her identity key's signature over the stored backup: replaced (through any of
        // her tokens, the bot's too, since the proof is the signature).
        let first = replace_body(&alice_id, &keys.keys, &keys.bundle, &keys.backup, &b1);
        let a = put(&bot, first.clone()).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        assert_eq!(stored().await, b1);
        let b2 = rewrap(&b1);
        let second = replace_body(&alice_id, &keys.keys, &keys.bundle, &b1, &b2);
        let a = put(&alice, second.clone()).await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);

        // Replaying either signed replacement, now that the backup moved on, is refused:
        // the first would bring back b1 (and the password it was sealed under).
        for replay in [first, second] {
            put(&bot, replay)
                .await
                .expect_error(403, "invalid_signature");
        }
        assert_eq!(stored().await, b2);

        // Two replacements signed over the same stored backup at once: one wins, the
        // other finds the backup changed; never both.
        let (c1, c2) = (rewrap(&b2), rewrap(&b2));
        let (r1, r2) = tokio::join!(
            put(
                &alice,
                replace_body(&alice_id, &keys.keys, &keys.bundle, &b2, &c1)
            ),
            put(
                &alice,
                replace_body(&alice_id, &keys.keys, &keys.bundle, &b2, &c2)
            ),
        );
        let ok: Vec<u16> = [&r1, &r2].iter().map(|r| r.status.as_u16()).collect();
        assert_eq!(
            ok.iter().filter(|s| **s == 200).count(),
            1,
            "{} {ok:?}: {} {}",
            t.backend(),
            r1.body,
            r2.body
        );
        for r in [&r1, &r2] {
            if r.status.as_u16() != 200 {
                assert!(
                    ["invalid_signature", "conflict"].contains(&r.code()),
                    "{}",
                    r.body
                );
            }
        }
        let now = stored().await;
        assert_eq!(now, if r1.status.as_u16() == 200 { c1 } else { c2 });
        t.finish().await;
    }
}

#[tokio::test]
async fn own_reset_needs_the_login_password_then_new_keys_publish() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (alice_id, alice) = user(&t, "alice").await;
        let (_, bob) = user(&t, "bob").await;
        let keys = Keys::new(&alice_id);
        t.post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;

        for wrong in ["wrong password", ""] {
            t.post(
                "/api/v1/me/keys/reset",
                Some(&alice),
                json!({"password": wrong}),
            )
            .await
            .expect_error(401, "invalid_credentials");
        }
        let a = t
            .get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await;
        assert_eq!(a.status.as_u16(), 200, "still there after wrong passwords");

        let a = t
            .post(
                "/api/v1/me/keys/reset",
                Some(&alice),
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(a.status.as_u16(), 204, "{}", a.body);
        t.get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await
            .expect_error(404, "not_found");
        t.get("/api/v1/me/keys/backup", Some(&alice))
            .await
            .expect_error(404, "not_found");
        let a = t.get("/api/v1/me/keys", Some(&alice)).await;
        assert_eq!(a.body["published"], false, "her session still works");

        let fresh = Keys::new(&alice_id);
        let a = t
            .post("/api/v1/me/keys", Some(&alice), fresh.publish_body())
            .await;
        assert_eq!(a.status.as_u16(), 201, "{}", a.body);
        let a = t
            .get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await;
        assert_eq!(unb64(&a.body["bundle"]), fresh.bundle);

        // Wrong passwords are limited per user.
        let mut limited = false;
        for _ in 0..12 {
            let a = t
                .post(
                    "/api/v1/me/keys/reset",
                    Some(&bob),
                    json!({"password": "nope"}),
                )
                .await;
            if a.status.as_u16() == 429 {
                a.expect_error(429, "rate_limited");
                limited = true;
                break;
            }
            a.expect_error(401, "invalid_credentials");
        }
        assert!(limited, "guessing is rate limited");
        t.finish().await;
    }
}

#[tokio::test]
async fn admin_reset_removes_keys_and_ends_sessions() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        t.create_user("admin", true).await;
        let admin = t.login("admin", PASSWORD).await;
        let (alice_id, alice) = user(&t, "alice").await;
        let (_, bob) = user(&t, "bob").await;
        let keys = Keys::new(&alice_id);
        t.post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;
        let path = format!("/api/v1/admin/users/{alice_id}/keys/reset");

        t.call(axum::http::Method::POST, &path, Some(&bob), None)
            .await
            .expect_error(403, "forbidden");
        t.call(
            axum::http::Method::POST,
            "/api/v1/admin/users/nobody/keys/reset",
            Some(&admin),
            None,
        )
        .await
        .expect_error(404, "not_found");
        assert_eq!(
            t.get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
                .await
                .status
                .as_u16(),
            200
        );

        let a = t
            .call(axum::http::Method::POST, &path, Some(&admin), None)
            .await;
        assert_eq!(a.status.as_u16(), 204, "{}", a.body);
        t.get(&format!("/api/v1/users/{alice_id}/keys"), Some(&bob))
            .await
            .expect_error(404, "not_found");
        t.get("/api/v1/me", Some(&alice))
            .await
            .expect_error(401, "unauthorized");

        // Alice logs in again and sets up new keys; her backup is the new one.
        let alice = t.login("alice", PASSWORD).await;
        t.get("/api/v1/me/keys/backup", Some(&alice))
            .await
            .expect_error(404, "not_found");
        let fresh = Keys::new(&alice_id);
        let a = t
            .post("/api/v1/me/keys", Some(&alice), fresh.publish_body())
            .await;
        assert_eq!(a.status.as_u16(), 201, "{}", a.body);
        let a = t.get("/api/v1/me/keys/backup", Some(&alice)).await;
        assert_eq!(unb64(&a.body["backup"]), fresh.backup);
        t.finish().await;
    }
}

#[tokio::test]
async fn publishing_is_refused_while_e2e_is_off() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        t.create_user("admin", true).await;
        let admin = t.login("admin", PASSWORD).await;
        let (alice_id, alice) = user(&t, "alice").await;
        let a = t
            .call(
                axum::http::Method::PATCH,
                "/api/v1/settings",
                Some(&admin),
                Some(json!({"e2e.enabled": false})),
            )
            .await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.body);
        let keys = Keys::new(&alice_id);
        let a = t
            .post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;
        a.expect_error(403, "forbidden");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("e2e.enabled"),
            "{}",
            a.body
        );
        assert_eq!(
            t.get("/api/v1/me/keys", Some(&alice)).await.body["published"],
            false
        );
        t.call(
            axum::http::Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"e2e.enabled": true})),
        )
        .await;
        let a = t
            .post("/api/v1/me/keys", Some(&alice), keys.publish_body())
            .await;
        assert_eq!(a.status.as_u16(), 201, "{}", a.body);
        t.finish().await;
    }
}

/// A server on a real socket, with an admin.
struct Running {
    addr: SocketAddr,
    admin: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn start(database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url,
            public_url: None,
        };
        let server = Server::bind(&config).await.unwrap();
        let addr = server.local_addr().unwrap();
        let setup_token = server
            .setup_link()
            .unwrap()
            .split_once('#')
            .unwrap()
            .1
            .to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let a = testing::request(
            addr,
            "POST",
            "/api/v1/setup",
            None,
            Some(&json!({"setup_token": setup_token, "username": "admin", "password": PASSWORD})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let mut me = Self {
            addr,
            admin: String::new(),
            _dir: dir,
            _stop: stop,
        };
        me.admin = me.login("admin").await.1;
        let admin = me.admin.clone();
        me.call(
            "PATCH",
            "/api/v1/settings",
            Some(&admin),
            json!({"e2e.enabled": true}),
        )
        .await;
        me
    }

    async fn login(&self, username: &str) -> (String, String) {
        let a = self
            .call(
                "POST",
                "/api/v1/login",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        (
            a["user"]["id"].as_str().unwrap().to_owned(),
            a["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn user(&self, username: &str) -> (String, String) {
        let admin = self.admin.clone();
        self.call(
            "POST",
            "/api/v1/admin/users",
            Some(&admin),
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
        self.login(username).await
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
        let a = testing::request(self.addr, method, path, token, Some(&body)).await;
        assert!((200..300).contains(&a.status), "{method} {path}: {a:?}");
        a.body
    }
}

/// The next `keys_changed` notice, skipping every other frame.
async fn next_keys_changed(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame["type"] == "keys_changed" {
            return frame;
        }
    }
}

async fn key_change_notices_reach_room_peers_only(db: Option<String>) {
    let p = Running::start(db).await;
    let (alice_id, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let (carol_id, carol) = p.user("carol").await;
    let room = p
        .call(
            "POST",
            "/api/v1/rooms",
            Some(&alice),
            json!({"kind": "direct", "members": [bob_id]}),
        )
        .await;
    assert!(room["id"].is_string(), "{room}");

    let mut alice_ws = testing::connect(p.addr, &alice).await;
    let mut bob_ws = testing::connect(p.addr, &bob).await;
    let mut carol_ws = testing::connect(p.addr, &carol).await;

    // Published: Alice's other clients and Bob are told; Carol, a stranger, is not.
    let keys = Keys::new(&alice_id);
    p.call("POST", "/api/v1/me/keys", Some(&alice), keys.publish_body())
        .await;
    let told = json!({"type": "keys_changed", "user_id": alice_id});
    assert_eq!(next_keys_changed(&mut bob_ws).await, told);
    assert_eq!(next_keys_changed(&mut alice_ws).await, told);

    // Reset by herself: told again.
    p.call(
        "POST",
        "/api/v1/me/keys/reset",
        Some(&alice),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(next_keys_changed(&mut bob_ws).await, told);

    // Carol's own change is the first key change she hears of: none of Alice's reached
    // her, and notices keep their order.
    let carols = Keys::new(&carol_id);
    p.call(
        "POST",
        "/api/v1/me/keys",
        Some(&carol),
        carols.publish_body(),
    )
    .await;
    assert_eq!(
        next_keys_changed(&mut carol_ws).await,
        json!({"type": "keys_changed", "user_id": carol_id})
    );

    // An admin reset reaches Bob too.
    let fresh = Keys::new(&alice_id);
    p.call(
        "POST",
        "/api/v1/me/keys",
        Some(&alice),
        fresh.publish_body(),
    )
    .await;
    assert_eq!(next_keys_changed(&mut bob_ws).await, told);
    let admin = p.admin.clone();
    p.call(
        "POST",
        &format!("/api/v1/admin/users/{alice_id}/keys/reset"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_eq!(next_keys_changed(&mut bob_ws).await, told);
}

#[tokio::test]
async fn key_change_notices_reach_room_peers_only_sqlite() {
    key_change_notices_reach_room_peers_only(None).await;
}

#[tokio::test]
async fn key_change_notices_reach_room_peers_only_postgres() {
    if let Some(db) = PgTestDb::create().await {
        key_change_notices_reach_room_peers_only(Some(db.url().to_owned())).await;
        db.drop().await;
    }
}
