//! Walks every endpoint about one room as a non-member, a member, an owner and an admin who
//! is not a member, for a private and a public room, and checks each answer against the
//! rules in docs/api.md. Each call gets a fresh room, so no call spoils the next.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};

struct Endpoint {
    method: Method,
    /// `{id}` is the room, `{user_id}` a second plain member, `{message_id}` a message
    /// that member sent.
    path: &'static str,
    body: Option<Value>,
    /// Expected status as stranger, member, owner and admin, in a private room.
    private: [u16; 4],
    /// The same in a public room.
    public: [u16; 4],
}

fn endpoints() -> Vec<Endpoint> {
    let e = |method, path, body, private, public| Endpoint {
        method,
        path,
        body,
        private,
        public,
    };
    vec![
        e(
            Method::GET,
            "/api/v1/rooms/{id}",
            None,
            [404, 200, 200, 404],
            [200, 200, 200, 200],
        ),
        e(
            Method::PATCH,
            "/api/v1/rooms/{id}",
            Some(json!({"topic": "new topic"})),
            [404, 403, 200, 404],
            [403, 403, 200, 403],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/statements",
            None,
            [404, 200, 200, 404],
            [403, 200, 200, 403],
        ),
        // Membership is checked before the (malformed) statement.
        e(
            Method::POST,
            "/api/v1/rooms/{id}/statements",
            Some(json!({"statement": "AAAA"})),
            [404, 400, 400, 404],
            [403, 400, 400, 403],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/keys",
            None,
            [404, 200, 200, 404],
            [403, 200, 200, 403],
        ),
        // Membership is checked before the (malformed) box.
        e(
            Method::POST,
            "/api/v1/rooms/{id}/keys",
            Some(json!({"boxes": ["AAAA"]})),
            [404, 409, 409, 404],
            [403, 409, 409, 403],
        ),
        // Public rooms cannot be encrypted.
        e(
            Method::PUT,
            "/api/v1/rooms/{id}/encryption",
            Some(json!({"on": true})),
            [404, 403, 200, 404],
            [403, 403, 400, 403],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/members",
            None,
            [404, 200, 200, 404],
            [403, 200, 200, 403],
        ),
        // Invites the newcomer (filled in below).
        e(
            Method::POST,
            "/api/v1/rooms/{id}/members",
            Some(json!({"user_id": "{newcomer}"})),
            [404, 403, 200, 404],
            [403, 200, 200, 403],
        ),
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/members/{user_id}",
            None,
            [404, 403, 204, 404],
            [403, 403, 204, 403],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/join",
            None,
            [404, 200, 200, 404],
            [200, 200, 200, 200],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/read",
            Some(json!({"seq": 1})),
            [404, 200, 200, 404],
            [403, 200, 200, 403],
        ),
        // The owner is the only owner and others remain, so they may not leave.
        e(
            Method::POST,
            "/api/v1/rooms/{id}/leave",
            None,
            [404, 204, 400, 404],
            [403, 204, 400, 403],
        ),
        e(
            Method::PUT,
            "/api/v1/rooms/{id}/owners/{user_id}",
            None,
            [404, 403, 200, 404],
            [403, 403, 200, 403],
        ),
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/owners/{user_id}",
            None,
            [404, 403, 200, 404],
            [403, 403, 200, 403],
        ),
        e(
            Method::POST,
            "/api/v1/rooms/{id}/messages",
            Some(json!({"id": "fresh", "text": "hello"})),
            [404, 201, 201, 404],
            [403, 201, 201, 403],
        ),
        e(
            Method::GET,
            "/api/v1/rooms/{id}/messages",
            None,
            [404, 200, 200, 404],
            [403, 200, 200, 403],
        ),
        // Only the sender edits; the message is the other member's.
        e(
            Method::PATCH,
            "/api/v1/rooms/{id}/messages/{message_id}",
            Some(json!({"text": "changed"})),
            [404, 403, 403, 404],
            [403, 403, 403, 403],
        ),
        // Any member may post a file (here a small JSON one).
        e(
            Method::POST,
            "/api/v1/rooms/{id}/files?name=notes.json",
            Some(json!({"notes": "a file"})),
            [404, 201, 201, 404],
            [403, 201, 201, 403],
        ),
        // The sender or an owner deletes.
        e(
            Method::DELETE,
            "/api/v1/rooms/{id}/messages/{message_id}",
            None,
            [404, 403, 200, 404],
            [403, 403, 200, 403],
        ),
    ]
}

#[tokio::test]
async fn every_room_endpoint_as_every_role() {
    for t in TestApp::every_backend().await {
        walk_every_room_endpoint(&t).await;
        t.finish().await;
    }
}

async fn walk_every_room_endpoint(t: &TestApp) {
    t.enable_encryption().await;
    t.create_user("admin", true).await;
    let sender = t.create_user("sender", false).await;
    let newcomer = t.create_user("newcomer", false).await;
    let mut tokens = Vec::new();
    for name in ["stranger", "member", "owner"] {
        t.create_user(name, false).await;
    }
    for name in ["stranger", "member", "owner", "admin", "sender"] {
        tokens.push(t.login(name, PASSWORD).await);
    }
    let [stranger, member, owner, admin, sender_token] = &tokens[..] else {
        unreachable!("five logins")
    };
    let member_id = t.get("/api/v1/me", Some(member)).await.body["id"].clone();

    for private in [true, false] {
        for ep in endpoints() {
            let expected = if private { ep.private } else { ep.public };
            for (role, token, want) in [
                ("stranger", stranger, expected[0]),
                ("member", member, expected[1]),
                ("owner", owner, expected[2]),
                ("admin", admin, expected[3]),
            ] {
                let room = t
                    .post(
                        "/api/v1/rooms",
                        Some(owner),
                        json!({"kind": "channel", "name": "walk", "private": private,
                               "members": [member_id, sender]}),
                    )
                    .await;
                assert_eq!(room.status, 201, "{}", room.body);
                let room = room.body["id"].as_str().unwrap().to_owned();
                let sent = t
                    .post(
                        &format!("/api/v1/rooms/{room}/messages"),
                        Some(sender_token),
                        json!({"id": "theirs", "text": "by the sender"}),
                    )
                    .await;
                assert_eq!(sent.status, 201, "{}", sent.body);
                let path = ep
                    .path
                    .replace("{id}", &room)
                    .replace("{user_id}", &sender)
                    .replace("{message_id}", "theirs");
                let body = ep.body.as_ref().map(|b| {
                    serde_json::from_str(&b.to_string().replace("{newcomer}", &newcomer)).unwrap()
                });
                let a = t.call(ep.method.clone(), &path, Some(token), body).await;
                let kind = if private { "private" } else { "public" };
                assert_eq!(
                    a.status.as_u16(),
                    want,
                    "{} {} as {role} in a {kind} room: {}",
                    ep.method,
                    ep.path,
                    a.body
                );
            }
        }
    }
}

#[tokio::test]
async fn the_walk_covers_every_room_endpoint() {
    let doc = serde_json::to_value(sotto_server::http::openapi_document()).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/api/v1/rooms/{id}") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut walked: Vec<(String, String)> = endpoints()
        .iter()
        .map(|e| {
            let path = e.path.split_once('?').map_or(e.path, |(p, _)| p);
            (e.method.to_string(), path.to_string())
        })
        .collect();
    documented.sort();
    walked.sort();
    assert_eq!(documented, walked);
}
