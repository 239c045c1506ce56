//! Encrypted rooms over the router with real envelopes from `sotto-crypto`: which rooms
//! may be encrypted, turning encryption on and off, plaintext refused, and the key-free
//! envelope checks. Every test runs on SQLite and, when configured, PostgreSQL.

mod common;

use axum::http::Method;
use base64::Engine;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sotto_api::{EventKind, SettingsPatch};
use sotto_crypto::chain::{Action, Create, RoomKind, Statement};
use sotto_crypto::envelope::seal;
use sotto_crypto::roomkey::RoomKeyBox;
use sotto_crypto::{
    EnvelopeHeader, EpochKey, IdentityKeys, MessageBody, PublicBundle, RoomId, UserId,
};
use sotto_server::service::Actor;
use sotto_server::testing;
use std::collections::BTreeSet;

struct Person {
    id: String,
    token: String,
    keys: IdentityKeys,
}

/// A user with published keys. The key directory's own API is not used here: the
/// bundle goes straight into the key store (the backup is not read by anything here).
async fn person(t: &TestApp, name: &str) -> Person {
    let id = t.create_user(name, false).await;
    let token = t.login(name, PASSWORD).await;
    let keys = IdentityKeys::generate(&mut sotto_crypto::os_rng());
    let bundle = keys.bundle(&UserId::new(id.as_str()).unwrap()).encode();
    assert!(
        t.stores
            .keys
            .publish_keys(&id, &bundle, b"backup", 1)
            .await
            .unwrap()
    );
    Person { id, token, keys }
}

fn uid(p: &Person) -> UserId {
    UserId::new(p.id.as_str()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The creation statement of `room`, signed by `by`, listing `members`.
fn create_stmt(room: &str, kind: RoomKind, by: &Person, members: &[&Person]) -> Statement {
    let create = Create {
        kind,
        members: members.iter().map(|p| uid(p)).collect::<BTreeSet<_>>(),
        encrypted: true,
        history_shared: true,
    };
    Statement::create(&RoomId::new(room).unwrap(), create, &uid(by), &by.keys).unwrap()
}

fn next(head: &Statement, action: Action, by: &Person) -> Statement {
    Statement::next(head, action, &uid(by), &by.keys).unwrap()
}

async fn post_statement(t: &TestApp, who: &Person, room: &str, s: &Statement) -> common::Answer {
    t.post(
        &format!("/api/v1/rooms/{room}/statements"),
        Some(&who.token),
        json!({ "statement": b64(&s.encode()) }),
    )
    .await
}

async fn stored(t: &TestApp, who: &Person, room: &str, s: &Statement) {
    let r = post_statement(t, who, room, s).await;
    assert_eq!(r.status.as_u16(), 201, "{}: {}", t.backend(), r.body);
}

async fn create(t: &TestApp, who: &Person, body: Value) -> common::Answer {
    t.post("/api/v1/rooms", Some(&who.token), body).await
}

/// A real envelope from `sender` for `room` under `key`, and its message id in hex.
fn envelope(room: &str, sender: &Person, key: &EpochKey, text: &str) -> (String, String) {
    let mut rng = sotto_crypto::os_rng();
    let room = RoomId::new(room).unwrap();
    let user = UserId::new(sender.id.as_str()).unwrap();
    let header = EnvelopeHeader::new(room.clone(), key.epoch(), user.clone(), &mut rng);
    let body = MessageBody::text(room, user, text);
    let bytes = seal(&body, &header, key, &sender.keys, &mut rng).unwrap();
    (
        header.message.to_hex(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
    )
}

async fn send(t: &TestApp, who: &Person, room: &str, body: Value) -> common::Answer {
    t.post(
        &format!("/api/v1/rooms/{room}/messages"),
        Some(&who.token),
        body,
    )
    .await
}

async fn set_encryption(t: &TestApp, who: &Person, room: &str, on: bool) -> common::Answer {
    t.call(
        Method::PUT,
        &format!("/api/v1/rooms/{room}/encryption"),
        Some(&who.token),
        Some(json!({ "on": on })),
    )
    .await
}

#[tokio::test]
async fn which_rooms_may_be_encrypted() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let ok = |body: Value| {
            let t = &t;
            let a = &a;
            async move {
                let r = create(t, a, body).await;
                assert_eq!(r.status.as_u16(), 201, "{}: {}", t.backend(), r.body);
                assert_eq!(r.body["encrypted"], true);
                assert_eq!(r.body["private"], true);
                r.body["id"].as_str().unwrap().to_owned()
            }
        };
        ok(json!({"kind": "direct", "members": [b.id], "encrypted": true})).await;
        ok(json!({"kind": "direct", "members": [b.id, c.id], "encrypted": true})).await;
        ok(json!({"kind": "channel", "name": "p", "private": true, "encrypted": true})).await;
        ok(json!({"kind": "team", "name": "t", "private": true, "encrypted": true})).await;
        // A discussion of a public channel, created encrypted, is members-only.
        let public = create(&t, &a, json!({"kind": "channel", "name": "pub"})).await;
        let public = public.body["id"].as_str().unwrap().to_owned();
        ok(json!({"kind": "discussion", "name": "d", "parent_id": public, "encrypted": true}))
            .await;
        for refused in [
            json!({"kind": "channel", "name": "x", "encrypted": true}),
            json!({"kind": "team", "name": "x", "private": false, "encrypted": true}),
            json!({"kind": "discussion", "name": "x", "parent_id": public, "private": false,
                   "encrypted": true}),
        ] {
            create(&t, &a, refused)
                .await
                .expect_error(400, "invalid_input");
        }
        // Not encrypted unless asked for.
        let plain = create(
            &t,
            &a,
            json!({"kind": "channel", "name": "q", "private": true}),
        )
        .await;
        assert_eq!(plain.body["encrypted"], false);

        // With e2e.enabled off, nothing new is encrypted.
        let patch: SettingsPatch = serde_json::from_value(json!({"e2e.enabled": false})).unwrap();
        t.state
            .services
            .settings
            .update(&Actor::Operator, patch)
            .await
            .unwrap();
        create(
            &t,
            &a,
            json!({"kind": "channel", "name": "y", "private": true, "encrypted": true}),
        )
        .await
        .expect_error(403, "forbidden");
        let plain = plain.body["id"].as_str().unwrap().to_owned();
        set_encryption(&t, &a, &plain, true)
            .await
            .expect_error(403, "forbidden");
        t.finish().await;
    }
}

#[tokio::test]
async fn owners_and_dm_members_toggle_encryption_as_a_room_event() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let room = create(
            &t,
            &a,
            json!({"kind": "channel", "name": "p", "private": true, "members": [b.id]}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        // A plain member may not; the owner may; a repeat changes nothing.
        set_encryption(&t, &b, &room, true)
            .await
            .expect_error(403, "forbidden");
        let before = t.stores.rooms.room_by_id(&room).await.unwrap().unwrap().seq;
        let on = set_encryption(&t, &a, &room, true).await;
        assert_eq!(on.status.as_u16(), 200, "{}", on.body);
        assert_eq!(on.body["encrypted"], true);
        assert_eq!(on.body["seq"], before + 1);
        let again = set_encryption(&t, &a, &room, true).await;
        assert_eq!(again.body["seq"], before + 1);
        let events = t
            .stores
            .rooms
            .changes_since(&room, before, 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0].kind,
            EventKind::EncryptionChanged {
                encrypted: true,
                by: a.id.clone()
            }
        );
        // Either person in a DM may.
        let dm = create(&t, &a, json!({"kind": "direct", "members": [b.id]})).await;
        let dm = dm.body["id"].as_str().unwrap().to_owned();
        let on = set_encryption(&t, &b, &dm, true).await;
        assert_eq!(on.body["encrypted"], true, "{}", on.body);
        // Public rooms cannot be encrypted; strangers do not see private rooms.
        let public = create(&t, &a, json!({"kind": "channel", "name": "pub"})).await;
        let public = public.body["id"].as_str().unwrap().to_owned();
        set_encryption(&t, &a, &public, true)
            .await
            .expect_error(400, "invalid_input");
        let c = person(&t, "carol").await;
        set_encryption(&t, &c, &room, false)
            .await
            .expect_error(404, "not_found");
        t.finish().await;
    }
}

#[tokio::test]
async fn encrypted_rooms_take_envelopes_only() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let room = create(
            &t,
            &a,
            json!({"kind": "direct", "members": [b.id], "encrypted": true}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        let key = EpochKey::generate(&mut sotto_crypto::os_rng());

        // Envelopes need the chain to declare their epoch first.
        let (id, c) = envelope(&room, &a, &key, "too early");
        send(&t, &a, &room, json!({"id": id, "ciphertext": c}))
            .await
            .expect_error(409, "conflict");
        let create = create_stmt(&room, RoomKind::DirectMessage, &a, &[&a, &b]);
        stored(&t, &a, &room, &create).await;
        let epoch = next(&create, Action::NewEpoch(key.epoch()), &b);
        stored(&t, &b, &room, &epoch).await;

        // Plaintext is refused with a clear error.
        let r = send(&t, &a, &room, json!({"id": "m1", "text": "hello"})).await;
        r.expect_error(400, "invalid_input");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("encrypted")
        );

        // A real envelope is stored unchanged and served to the other member.
        let (id, c) = envelope(&room, &a, &key, "secret words");
        let r = send(&t, &a, &room, json!({"id": id, "ciphertext": c})).await;
        assert_eq!(r.status.as_u16(), 201, "{}: {}", t.backend(), r.body);
        let h = t
            .get(&format!("/api/v1/rooms/{room}/messages"), Some(&b.token))
            .await;
        assert_eq!(h.body["messages"][0]["ciphertext"], c.as_str());
        assert_eq!(h.body["messages"][0]["text"], Value::Null);

        // Forged or malformed envelopes are refused.
        let (other_id, for_other_room) = envelope("another-room", &a, &key, "x");
        let (bob_id, from_bob) = envelope(&room, &b, &key, "x");
        let (ok_id, good) = envelope(&room, &a, &key, "y");
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&good)
            .unwrap();
        bytes.truncate(bytes.len() - 70);
        let truncated = base64::engine::general_purpose::STANDARD.encode(bytes);
        for (who, body) in [
            (&a, json!({"id": other_id, "ciphertext": for_other_room})),
            // Alice cannot send what claims to be Bob's.
            (&a, json!({"id": bob_id, "ciphertext": from_bob})),
            (&a, json!({"id": ok_id, "ciphertext": truncated})),
            (
                &a,
                json!({"id": ok_id, "ciphertext": "bm90IGFuIGVudmVsb3Bl"}),
            ),
            // The stored id must be the envelope's.
            (&a, json!({"id": "another-id", "ciphertext": good})),
        ] {
            send(&t, who, &room, body)
                .await
                .expect_error(400, "invalid_input");
        }

        // Turning encryption off keeps the stored ciphertext; then text is taken and
        // envelopes are not.
        // Without a statement the chain's room refuses the change.
        set_encryption(&t, &b, &room, false)
            .await
            .expect_error(400, "invalid_input");
        let off = t
            .call(
                Method::PUT,
                &format!("/api/v1/rooms/{room}/encryption"),
                Some(&b.token),
                Some(json!({
                    "on": false,
                    "statement": b64(&next(&epoch, Action::SetEncryption(false), &b).encode()),
                })),
            )
            .await;
        assert_eq!(off.body["encrypted"], false, "{}", off.body);
        let (id2, c2) = envelope(&room, &a, &key, "late");
        send(&t, &a, &room, json!({"id": id2, "ciphertext": c2}))
            .await
            .expect_error(400, "invalid_input");
        let r = send(
            &t,
            &a,
            &room,
            json!({"id": "plain", "text": "in the clear"}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        let h = t
            .get(&format!("/api/v1/rooms/{room}/messages"), Some(&b.token))
            .await;
        assert_eq!(h.body["messages"][0]["ciphertext"], c.as_str());
        assert_eq!(h.body["messages"][1]["text"], "in the clear");
        t.finish().await;
    }
}

#[tokio::test]
async fn the_state_chain_is_checked_and_compare_and_set() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let room = create(
            &t,
            &a,
            json!({"kind": "channel", "name": "p", "private": true, "members": [b.id],
                   "encrypted": true}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/rooms/{room}/statements");

        // The creation must match the room and be signed by the caller's published key.
        let wrong_members = create_stmt(&room, RoomKind::PrivateChannel, &a, &[&a]);
        post_statement(&t, &a, &room, &wrong_members)
            .await
            .expect_error(400, "invalid_input");
        let wrong_kind = create_stmt(&room, RoomKind::PrivateTeam, &a, &[&a, &b]);
        post_statement(&t, &a, &room, &wrong_kind)
            .await
            .expect_error(400, "invalid_input");
        let mut forged = create_stmt(&room, RoomKind::PrivateChannel, &a, &[&a, &b]);
        let a_with_b_keys = Person {
            id: a.id.clone(),
            token: a.token.clone(),
            keys: IdentityKeys::generate(&mut sotto_crypto::os_rng()),
        };
        forged = Statement::create(
            forged.room(),
            match forged.action() {
                Action::Create(c) => c.clone(),
                _ => unreachable!(),
            },
            &uid(&a),
            &a_with_b_keys.keys,
        )
        .unwrap();
        let r = post_statement(&t, &a, &room, &forged).await;
        r.expect_error(400, "invalid_input");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("signature")
        );
        // Bob cannot submit what Alice signed.
        let create = create_stmt(&room, RoomKind::PrivateChannel, &a, &[&a, &b]);
        post_statement(&t, &b, &room, &create)
            .await
            .expect_error(400, "invalid_input");
        stored(&t, &a, &room, &create).await;
        let chain = t.get(&path, Some(&b.token)).await;
        assert_eq!(chain.body["statements"], json!([b64(&create.encode())]));
        t.get(&path, Some(&c.token))
            .await
            .expect_error(404, "not_found");

        // Two statements extending the same head, sent at once: exactly one is stored.
        let e1 = next(
            &create,
            Action::NewEpoch(sotto_crypto::EpochId([1; 16])),
            &a,
        );
        let e2 = next(
            &create,
            Action::NewEpoch(sotto_crypto::EpochId([2; 16])),
            &b,
        );
        let (r1, r2) = tokio::join!(
            post_statement(&t, &a, &room, &e1),
            post_statement(&t, &b, &room, &e2)
        );
        let mut statuses = [r1.status.as_u16(), r2.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [201, 409],
            "{}: {} {}",
            t.backend(),
            r1.body,
            r2.body
        );
        let head = if r1.status.as_u16() == 201 { e1 } else { e2 };
        let chain = t.get(&path, Some(&a.token)).await;
        assert_eq!(chain.body["statements"].as_array().unwrap().len(), 2);
        assert_eq!(chain.body["statements"][1], b64(&head.encode()));

        // Membership now changes only with a statement, in the same transaction.
        t.post(
            &format!("/api/v1/rooms/{room}/members"),
            Some(&a.token),
            json!({"user_id": c.id}),
        )
        .await
        .expect_error(400, "invalid_input");
        // Chain rules hold: Bob is not an owner.
        let by_bob = next(&head, Action::Invite(uid(&c)), &b);
        post_statement(&t, &b, &room, &by_bob)
            .await
            .expect_error(400, "invalid_input");
        let invite = next(&head, Action::Invite(uid(&c)), &a);
        let before = t.stores.rooms.room_by_id(&room).await.unwrap().unwrap().seq;
        stored(&t, &a, &room, &invite).await;
        assert!(t.stores.rooms.member(&room, &c.id).await.unwrap().is_some());
        let events = t
            .stores
            .rooms
            .changes_since(&room, before, 10)
            .await
            .unwrap();
        let kinds: Vec<_> = events.iter().map(|e| &e.kind).collect();
        assert!(matches!(
            kinds.as_slice(),
            [
                EventKind::StatementAdded { chain_seq: 2, .. },
                EventKind::MemberAdded { .. }
            ]
        ));
        // A stale head is a conflict, not a rule error.
        let stale = next(&head, Action::Remove(uid(&b)), &a);
        post_statement(&t, &a, &room, &stale)
            .await
            .expect_error(409, "conflict");
        t.finish().await;
    }
}

#[tokio::test]
async fn removal_makes_the_old_epoch_unusable() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let room = create(
            &t,
            &a,
            json!({"kind": "team", "name": "t", "private": true, "members": [b.id, c.id],
                   "encrypted": true}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        let old = EpochKey::generate(&mut sotto_crypto::os_rng());
        let create = create_stmt(&room, RoomKind::PrivateTeam, &a, &[&a, &b, &c]);
        stored(&t, &a, &room, &create).await;
        let e1 = next(&create, Action::NewEpoch(old.epoch()), &a);
        stored(&t, &a, &room, &e1).await;
        let (id, env) = envelope(&room, &b, &old, "before");
        let r = send(&t, &b, &room, json!({"id": id, "ciphertext": env})).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);

        // Carol is removed: the room is due a new epoch and the old one takes nothing.
        let remove = next(&e1, Action::Remove(uid(&c)), &a);
        stored(&t, &a, &room, &remove).await;
        assert!(t.stores.rooms.member(&room, &c.id).await.unwrap().is_none());
        let (id, env) = envelope(&room, &b, &old, "after");
        send(&t, &b, &room, json!({"id": id, "ciphertext": env}))
            .await
            .expect_error(409, "conflict");
        let new = EpochKey::generate(&mut sotto_crypto::os_rng());
        stored(
            &t,
            &b,
            &room,
            &next(&remove, Action::NewEpoch(new.epoch()), &b),
        )
        .await;
        let (id, env) = envelope(&room, &b, &old, "still old");
        send(&t, &b, &room, json!({"id": id, "ciphertext": env}))
            .await
            .expect_error(409, "conflict");
        let (id, env) = envelope(&room, &b, &new, "new");
        let r = send(&t, &b, &room, json!({"id": id, "ciphertext": env})).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        t.finish().await;
    }
}

/// Serves the app on a local port, for the realtime socket.
async fn serve(t: &TestApp) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = t
        .router
        .clone()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// The next frame of `type`, skipping others (presence, room events).
async fn next_of(socket: &mut testing::Socket, ty: &str) -> Value {
    loop {
        let f = testing::next_frame(socket).await;
        if f["type"] == ty {
            return f;
        }
    }
}

/// `key` sealed by `from` to `to`, base64.
fn sealed(t_room: &str, key: &EpochKey, from: &Person, to: &Person) -> String {
    let bundle = PublicBundle::decode(&to.keys.bundle(&uid(to)).encode()).unwrap();
    let b = RoomKeyBox::seal(
        key,
        &RoomId::new(t_room).unwrap(),
        &from.keys,
        &uid(from),
        &bundle,
        &mut sotto_crypto::os_rng(),
    )
    .unwrap();
    b64(&b.encode())
}

async fn upload(t: &TestApp, who: &Person, room: &str, boxes: Vec<String>) -> common::Answer {
    t.post(
        &format!("/api/v1/rooms/{room}/keys"),
        Some(&who.token),
        json!({ "boxes": boxes }),
    )
    .await
}

async fn key_state(t: &TestApp, who: &Person, room: &str) -> common::Answer {
    t.get(&format!("/api/v1/rooms/{room}/keys"), Some(&who.token))
        .await
}

#[tokio::test]
async fn late_joiner_gets_the_key_pushed_and_removal_rotates() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let addr = serve(&t).await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let room = create(
            &t,
            &a,
            json!({"kind": "team", "name": "t", "private": true, "members": [b.id],
                   "encrypted": true}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        let rid = RoomId::new(room.as_str()).unwrap();
        let k1 = EpochKey::generate(&mut sotto_crypto::os_rng());
        let create = create_stmt(&room, RoomKind::PrivateTeam, &a, &[&a, &b]);
        stored(&t, &a, &room, &create).await;
        let s = key_state(&t, &a, &room).await;
        assert_eq!(s.body["rotation_due"], true, "{}", s.body);
        let e1 = next(&create, Action::NewEpoch(k1.epoch()), &a);
        stored(&t, &a, &room, &e1).await;
        let s = key_state(&t, &b, &room).await;
        assert_eq!(s.body["current_epoch"], k1.epoch().to_hex());
        assert_eq!(s.body["rotation_due"], false);
        assert_eq!(s.body["waiting"], true);

        // Alice hands the key to herself and Bob; Bob's copy is his alone.
        let r = upload(
            &t,
            &a,
            &room,
            vec![sealed(&room, &k1, &a, &a), sealed(&room, &k1, &a, &b)],
        )
        .await;
        assert_eq!(r.body["stored"], 2, "{}: {}", t.backend(), r.body);
        let s = key_state(&t, &b, &room).await;
        assert_eq!(s.body["waiting"], false);
        assert_eq!(s.body["keys"].as_array().unwrap().len(), 1);
        assert_eq!(s.body["keys"][0]["distributor_id"], a.id.as_str());

        // Boxes are refused unless the chain allows them.
        let outsider_box = sealed(&room, &k1, &a, &c);
        upload(&t, &a, &room, vec![outsider_box])
            .await
            .expect_error(400, "invalid_input");
        let undeclared = EpochKey::generate(&mut sotto_crypto::os_rng());
        upload(&t, &a, &room, vec![sealed(&room, &undeclared, &a, &b)])
            .await
            .expect_error(400, "invalid_input");
        // Bob cannot upload a box Alice signed.
        upload(&t, &b, &room, vec![sealed(&room, &k1, &a, &b)])
            .await
            .expect_error(400, "invalid_input");
        // A whole rotation of a thousand-member room is one request: a thousand boxes of
        // the largest size are read (and checked), one more is refused by count.
        let largest = "A".repeat(476);
        let full = upload(&t, &a, &room, vec![largest.clone(); 1000]).await;
        full.expect_error(400, "invalid_input");
        let why = full.body["error"]["message"].as_str().unwrap();
        assert!(why.starts_with("boxes[0]:"), "{why}");
        let over = upload(&t, &a, &room, vec![largest; 1001]).await;
        over.expect_error(400, "invalid_input");
        assert_eq!(over.body["error"]["message"], "boxes: 1 to 1000");

        // Carol joins while Alice is online: Alice is asked, hands the key on, and
        // Carol's socket gets it without asking.
        let mut alice_ws = testing::connect(addr, &a.token).await;
        let mut carol_ws = testing::connect(addr, &c.token).await;
        let invite = next(&e1, Action::Invite(uid(&c)), &a);
        stored(&t, &a, &room, &invite).await;
        let ask = next_of(&mut alice_ws, "room_key_request").await;
        assert_eq!(ask["room_id"], room.as_str());
        assert_eq!(ask["epoch_id"], k1.epoch().to_hex());
        assert_eq!(ask["user_ids"], json!([c.id]));
        let s = key_state(&t, &c, &room).await;
        assert_eq!(s.body["waiting"], true);
        assert_eq!(s.body["lacking"], json!([c.id]));
        let r = upload(&t, &a, &room, vec![sealed(&room, &k1, &a, &c)]).await;
        assert_eq!(r.body["stored"], 1, "{}", r.body);
        let pushed = next_of(&mut carol_ws, "room_key").await;
        assert_eq!(pushed["room_id"], room.as_str());
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(pushed["box"].as_str().unwrap())
            .unwrap();
        let chain = sotto_crypto::chain::RoomChain::verify(
            &rid,
            [create.clone(), e1.clone(), invite.clone()],
            |u| (u == &uid(&a)).then(|| a.keys.identity_public()),
        )
        .unwrap();
        let opened = RoomKeyBox::decode(&bytes)
            .unwrap()
            .open(&uid(&c), &c.keys, chain.state(), |u| {
                (u == &uid(&a)).then(|| a.keys.identity_public())
            })
            .unwrap();
        assert_eq!(opened.key_bytes(), k1.key_bytes());
        assert_eq!(key_state(&t, &c, &room).await.body["waiting"], false);

        // Carol is removed: a new epoch is due; once declared, Carol cannot fetch it.
        let remove = next(&invite, Action::Remove(uid(&c)), &a);
        stored(&t, &a, &room, &remove).await;
        assert_eq!(key_state(&t, &b, &room).await.body["rotation_due"], true);
        let k2 = EpochKey::generate(&mut sotto_crypto::os_rng());
        let e2 = next(&remove, Action::NewEpoch(k2.epoch()), &b);
        stored(&t, &b, &room, &e2).await;
        upload(&t, &b, &room, vec![sealed(&room, &k2, &b, &c)])
            .await
            .expect_error(400, "invalid_input");
        let r = upload(
            &t,
            &b,
            &room,
            vec![sealed(&room, &k2, &b, &b), sealed(&room, &k2, &b, &a)],
        )
        .await;
        assert_eq!(r.body["stored"], 2, "{}", r.body);
        key_state(&t, &c, &room)
            .await
            .expect_error(404, "not_found");
        assert!(
            t.stores
                .e2ee
                .room_keys(&room, &c.id)
                .await
                .unwrap()
                .iter()
                .all(|k| k.epoch_id != k2.epoch().to_hex())
        );
        assert_eq!(key_state(&t, &a, &room).await.body["rotation_due"], false);

        // Bob resets his keys: his copies are gone and a new epoch is due.
        let reset = t
            .post(
                "/api/v1/me/keys/reset",
                Some(&b.token),
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(reset.status.as_u16(), 204, "{}", reset.body);
        let s = key_state(&t, &b, &room).await;
        assert_eq!(s.body["keys"], json!([]));
        assert_eq!(s.body["rotation_due"], true);
        let (id, env) = envelope(&room, &a, &k2, "after reset");
        send(&t, &a, &room, json!({"id": id, "ciphertext": env}))
            .await
            .expect_error(409, "conflict");
        t.finish().await;
    }
}

#[tokio::test]
async fn a_member_who_publishes_keys_is_queued_for_the_room_key() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let addr = serve(&t).await;
        let a = person(&t, "alice").await;
        // Bob has no keys yet.
        let bob_id = t.create_user("bob", false).await;
        let bob_keys = IdentityKeys::generate(&mut sotto_crypto::os_rng());
        let b = Person {
            id: bob_id.clone(),
            token: t.login("bob", PASSWORD).await,
            keys: bob_keys,
        };
        let room = create(
            &t,
            &a,
            json!({"kind": "channel", "name": "c", "private": true, "members": [b.id],
                   "encrypted": true}),
        )
        .await;
        let room = room.body["id"].as_str().unwrap().to_owned();
        let k = EpochKey::generate(&mut sotto_crypto::os_rng());
        let create = create_stmt(&room, RoomKind::PrivateChannel, &a, &[&a, &b]);
        stored(&t, &a, &room, &create).await;
        stored(
            &t,
            &a,
            &room,
            &next(&create, Action::NewEpoch(k.epoch()), &a),
        )
        .await;
        let r = upload(&t, &a, &room, vec![sealed(&room, &k, &a, &a)]).await;
        assert_eq!(r.body["stored"], 1, "{}", r.body);
        // Without keys Bob cannot be given one, so nobody is asked for him.
        let s = key_state(&t, &a, &room).await;
        assert_eq!(s.body["lacking"], json!([]), "{}", s.body);

        let mut alice_ws = testing::connect(addr, &a.token).await;
        // Bob sets up his keys as a client does.
        let mut rng = sotto_crypto::os_rng();
        let password = sotto_crypto::EncryptionPassword::generate(&mut rng);
        let backup = sotto_crypto::KeyBackup::create(
            &b.keys,
            &uid(&b),
            &password,
            sotto_crypto::KdfParams::FLOOR,
            &mut rng,
        )
        .unwrap();
        let published = t
            .post(
                "/api/v1/me/keys",
                Some(&b.token),
                json!({"bundle": b64(&b.keys.bundle(&uid(&b)).encode()),
                       "backup": b64(&backup.encode())}),
            )
            .await;
        assert_eq!(published.status.as_u16(), 201, "{}", published.body);
        let ask = next_of(&mut alice_ws, "room_key_request").await;
        assert_eq!(ask["room_id"], room.as_str());
        assert_eq!(ask["user_ids"], json!([b.id]));
        assert_eq!(key_state(&t, &b, &room).await.body["waiting"], true);
        t.finish().await;
    }
}
