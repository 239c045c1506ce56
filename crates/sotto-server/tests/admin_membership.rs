//! Membership an admin forces (`/api/v1/admin/rooms/{id}/members`), in plaintext and
//! encrypted rooms, and the last-owner rule on the signed path under concurrency. Every
//! test runs on SQLite and, when configured, PostgreSQL.

mod common;

use axum::http::Method;
use base64::Engine;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sotto_api::EventKind;
use sotto_crypto::chain::{Action, Create, RoomKind, Statement};
use sotto_crypto::envelope::seal;
use sotto_crypto::{EnvelopeHeader, EpochKey, IdentityKeys, MessageBody, RoomId, UserId};
use sotto_server::bus::BusEvent;
use std::collections::BTreeSet;

struct Person {
    id: String,
    token: String,
    keys: IdentityKeys,
}

/// A user with published keys (straight into the key store: the directory's own API is
/// tested elsewhere).
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

/// An encrypted private team of `owner` and `others` with its creation statement and
/// first epoch; the room id, the chain's head and the epoch key.
async fn encrypted_team(
    t: &TestApp,
    owner: &Person,
    others: &[&Person],
) -> (String, Statement, EpochKey) {
    let ids: Vec<&str> = others.iter().map(|p| p.id.as_str()).collect();
    let r = t
        .post(
            "/api/v1/rooms",
            Some(&owner.token),
            json!({"kind": "team", "name": "t", "private": true, "members": ids,
                   "encrypted": true}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.body);
    let room = r.body["id"].as_str().unwrap().to_owned();
    let mut members: BTreeSet<UserId> = others.iter().map(|p| uid(p)).collect();
    members.insert(uid(owner));
    let create = Create {
        kind: RoomKind::PrivateTeam,
        members,
        encrypted: true,
        history_shared: true,
    };
    let create = Statement::create(
        &RoomId::new(&room).unwrap(),
        create,
        &uid(owner),
        &owner.keys,
    )
    .unwrap();
    stored(t, owner, &room, &create).await;
    let key = EpochKey::generate(&mut sotto_crypto::os_rng());
    let epoch = next(&create, Action::NewEpoch(key.epoch()), owner);
    stored(t, owner, &room, &epoch).await;
    (room, epoch, key)
}

/// A real envelope from `sender` for `room` under `key`: the request body of a send.
fn envelope(room: &str, sender: &Person, key: &EpochKey, text: &str) -> Value {
    let mut rng = sotto_crypto::os_rng();
    let room = RoomId::new(room).unwrap();
    let user = UserId::new(sender.id.as_str()).unwrap();
    let header = EnvelopeHeader::new(room.clone(), key.epoch(), user.clone(), &mut rng);
    let body = MessageBody::text(room, user, text);
    let bytes = seal(&body, &header, key, &sender.keys, &mut rng).unwrap();
    json!({"id": header.message.to_hex(), "ciphertext": b64(&bytes)})
}

fn members_path(room: &str) -> String {
    format!("/api/v1/admin/rooms/{room}/members")
}

async fn force_in(t: &TestApp, token: &str, room: &str, user: &str) -> common::Answer {
    t.post(&members_path(room), Some(token), json!({ "user_id": user }))
        .await
}

async fn force_out(t: &TestApp, token: &str, room: &str, user: &str) -> common::Answer {
    t.call(
        Method::DELETE,
        &format!("{}/{user}", members_path(room)),
        Some(token),
        None,
    )
    .await
}

/// The member entry of `user` in a member list answer.
fn entry<'a>(list: &'a Value, user: &str) -> Option<&'a Value> {
    list["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == user)
}

/// Room events published on the bus since `sub` was made, without waiting.
fn published(sub: &mut sotto_server::bus::Subscription) -> Vec<EventKind> {
    let mut out = Vec::new();
    while let Some(e) = sub.try_next().unwrap() {
        if let BusEvent::Room(e) = e {
            out.push(e.kind);
        }
    }
    out
}

#[tokio::test]
async fn an_admin_forces_members_in_and_out_of_an_encrypted_room_around_its_chain() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let admin_id = t.create_user("root", true).await;
        let admin = t.login("root", PASSWORD).await;
        let (room, _, key) = encrypted_team(&t, &a, &[&b]).await;
        let chain_path = format!("/api/v1/rooms/{room}/statements");
        let chain = t.get(&chain_path, Some(&a.token)).await.body;

        // Not for a room's owner, nor anyone else who is not an admin.
        force_in(&t, &a.token, &room, &c.id)
            .await
            .expect_error(403, "forbidden");
        force_out(&t, &a.token, &room, &b.id)
            .await
            .expect_error(403, "forbidden");
        t.get(&members_path(&room), Some(&a.token))
            .await
            .expect_error(403, "forbidden");

        // Carol forced in: a member marked with who did it, on the bus and in the log,
        // with the chain as it was. The chain does not let her hold the epoch.
        let before = t.stores.rooms.room_by_id(&room).await.unwrap().unwrap().seq;
        let mut sub = t.state.services.bus.subscribe();
        let r = force_in(&t, &admin, &room, &c.id).await;
        assert_eq!(r.status.as_u16(), 200, "{}: {}", t.backend(), r.body);
        assert_eq!(entry(&r.body, &c.id).unwrap()["forced_by"], admin_id);
        assert!(entry(&r.body, &b.id).unwrap().get("forced_by").is_none());
        let seen = t
            .get(&format!("/api/v1/rooms/{room}/members"), Some(&b.token))
            .await;
        assert_eq!(entry(&seen.body, &c.id).unwrap()["forced_by"], admin_id);
        let logged = t
            .stores
            .rooms
            .changes_since(&room, before, 10)
            .await
            .unwrap();
        assert_eq!(logged.len(), 1, "{logged:?}");
        let EventKind::MemberAdded { member } = &logged[0].kind else {
            panic!("{logged:?}")
        };
        assert_eq!(
            (member.user_id.as_str(), member.forced_by.as_deref()),
            (c.id.as_str(), Some(admin_id.as_str()))
        );
        assert_eq!(published(&mut sub), [logged[0].kind.clone()]);
        assert_eq!(t.get(&chain_path, Some(&a.token)).await.body, chain);
        let seen = t
            .get(&format!("/api/v1/rooms/{room}"), Some(&c.token))
            .await;
        assert_eq!(seen.status.as_u16(), 200, "{}", seen.body);
        send(&t, &c, &room, envelope(&room, &c, &key, "let me in"))
            .await
            .expect_error(403, "forbidden");
        // Again: nothing changes.
        assert_eq!(
            force_in(&t, &admin, &room, &c.id).await.status.as_u16(),
            200
        );
        assert!(published(&mut sub).is_empty());

        // Bob forced out: gone from the server's list, still in the chain.
        let r = force_out(&t, &admin, &room, &b.id).await;
        assert_eq!(r.status.as_u16(), 204, "{}", r.body);
        assert_eq!(
            published(&mut sub),
            [EventKind::MemberRemoved {
                user_id: b.id.clone(),
                forced_by: Some(admin_id.clone()),
            }]
        );
        t.get(&format!("/api/v1/rooms/{room}"), Some(&b.token))
            .await
            .expect_error(404, "not_found");
        assert_eq!(t.get(&chain_path, Some(&a.token)).await.body, chain);
        let listed = t.get(&members_path(&room), Some(&admin)).await;
        assert!(entry(&listed.body, &b.id).is_none());
        force_out(&t, &admin, &room, &b.id)
            .await
            .expect_error(404, "not_found");

        // The room keeps an owner: Alice, its only one, stays while Carol is in.
        force_out(&t, &admin, &room, &a.id)
            .await
            .expect_error(400, "invalid_input");
        assert!(t.stores.rooms.member(&room, &a.id).await.unwrap().is_some());

        // Not a DM, not a room or a user that does not exist.
        let dm = t
            .post(
                "/api/v1/rooms",
                Some(&a.token),
                json!({"kind": "direct", "members": [b.id]}),
            )
            .await;
        let dm = dm.body["id"].as_str().unwrap().to_owned();
        force_in(&t, &admin, &dm, &c.id)
            .await
            .expect_error(400, "invalid_input");
        force_out(&t, &admin, &dm, &b.id)
            .await
            .expect_error(400, "invalid_input");
        force_in(&t, &admin, "no-such-room", &c.id)
            .await
            .expect_error(404, "not_found");
        force_in(&t, &admin, &room, "no-such-user")
            .await
            .expect_error(404, "not_found");
        t.finish().await;
    }
}

#[tokio::test]
async fn an_admin_forces_members_of_a_plaintext_private_room() {
    for t in TestApp::every_backend().await {
        let a = person(&t, "alice").await;
        let c = person(&t, "carol").await;
        let admin_id = t.create_user("root", true).await;
        let admin = t.login("root", PASSWORD).await;
        let r = t
            .post(
                "/api/v1/rooms",
                Some(&a.token),
                json!({"kind": "channel", "name": "p", "private": true}),
            )
            .await;
        let room = r.body["id"].as_str().unwrap().to_owned();
        // The admin need not be a member to see or change it.
        let r = force_in(&t, &admin, &room, &c.id).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.body);
        assert_eq!(entry(&r.body, &c.id).unwrap()["forced_by"], admin_id);
        let r = send(&t, &c, &room, json!({"id": "m1", "text": "hello"})).await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.body);
        assert_eq!(
            force_out(&t, &admin, &room, &c.id).await.status.as_u16(),
            204
        );
        t.get(&format!("/api/v1/rooms/{room}/messages"), Some(&c.token))
            .await
            .expect_error(404, "not_found");
        // Once alone, the last owner may be removed too.
        assert_eq!(
            force_out(&t, &admin, &room, &a.id).await.status.as_u16(),
            204
        );
        t.finish().await;
    }
}

/// Two owners of an encrypted room step down at once, each with a signed statement on
/// the same head: the chain's compare-and-set stores one, and the other, signed again on
/// the new head, is refused by the chain's last-owner rule. One owner remains on the
/// server and in the chain. (The store's own check, for statements that do not share a
/// head, is in the store conformance suite.)
#[tokio::test]
async fn two_signed_step_downs_at_once_leave_exactly_one_owner() {
    for t in TestApp::every_backend().await {
        t.enable_encryption().await;
        let (a, b) = (person(&t, "alice").await, person(&t, "bob").await);
        let c = person(&t, "carol").await;
        let (room, head, _) = encrypted_team(&t, &a, &[&b, &c]).await;
        let head = next(&head, Action::AddOwner(uid(&b)), &a);
        stored(&t, &a, &room, &head).await;

        let a_down = next(&head, Action::RemoveOwner(uid(&a)), &a);
        let b_down = next(&head, Action::RemoveOwner(uid(&b)), &b);
        let (ra, rb) = tokio::join!(
            post_statement(&t, &a, &room, &a_down),
            post_statement(&t, &b, &room, &b_down)
        );
        let codes = [ra.status.as_u16(), rb.status.as_u16()];
        assert!(
            codes == [201, 409] || codes == [409, 201],
            "{}: {codes:?} {} {}",
            t.backend(),
            ra.body,
            rb.body
        );
        let (won, loser) = if codes[0] == 201 {
            (a_down, &b)
        } else {
            (b_down, &a)
        };
        // Signed again on the new head: the chain refuses the last owner's step-down.
        let again = next(&won, Action::RemoveOwner(uid(loser)), loser);
        post_statement(&t, loser, &room, &again)
            .await
            .expect_error(400, "invalid_input");
        let leave = next(&won, Action::Leave, loser);
        post_statement(&t, loser, &room, &leave)
            .await
            .expect_error(400, "invalid_input");

        let members = t.stores.rooms.members(&room).await.unwrap();
        let owners: Vec<&str> = members
            .iter()
            .filter(|m| m.owner)
            .map(|m| m.user_id.as_str())
            .collect();
        assert_eq!(owners, [loser.id.as_str()], "{}", t.backend());
        assert_eq!(
            t.get(&format!("/api/v1/rooms/{room}/statements"), Some(&c.token))
                .await
                .body["statements"]
                .as_array()
                .unwrap()
                .len(),
            4
        );
        t.finish().await;
    }
}

async fn send(t: &TestApp, who: &Person, room: &str, body: Value) -> common::Answer {
    t.post(
        &format!("/api/v1/rooms/{room}/messages"),
        Some(&who.token),
        body,
    )
    .await
}
