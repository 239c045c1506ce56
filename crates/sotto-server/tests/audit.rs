//! C10 audit over the router, on SQLite and PostgreSQL: admins list every room and read
//! any room's messages with their metadata; plaintext shows, encrypted messages show as
//! encrypted without content; nobody else gets in.

mod common;

use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sotto_api::RoomKind;
use sotto_server::store::{MemberRecord, MessageRecord, RoomRecord};

const ENVELOPE: &str = "c2VjcmV0IGVudmVsb3BlIGJ5dGVz";

struct Audit {
    t: TestApp,
    admin: String,
    alice: String,
    public: String,
    private: String,
    dm: String,
    encrypted: String,
}

impl Audit {
    async fn new(t: TestApp) -> Self {
        t.create_user("admin", true).await;
        let alice_id = t.create_user("alice", false).await;
        let bob_id = t.create_user("bob", false).await;
        let admin = t.login("admin", PASSWORD).await;
        let alice = t.login("alice", PASSWORD).await;
        let room = |body: Value| {
            let (t, alice) = (&t, &alice);
            async move {
                let a = t.post("/api/v1/rooms", Some(alice), body).await;
                assert_eq!(a.status, 201, "{}", a.body);
                a.body["id"].as_str().unwrap().to_owned()
            }
        };
        let public = room(json!({"kind": "channel", "name": "town square"})).await;
        let private =
            room(json!({"kind": "team", "name": "board", "private": true, "members": [bob_id]}))
                .await;
        let dm = room(json!({"kind": "direct", "members": [bob_id]})).await;
        for (r, id, text) in [
            (&public, "p1", "welcome all"),
            (&private, "q1", "quarterly numbers"),
            (&private, "q2", "to be deleted"),
            (&private, "q3", "third"),
            (&dm, "d1", "just between us"),
        ] {
            let a = t
                .post(
                    &format!("/api/v1/rooms/{r}/messages"),
                    Some(&alice),
                    json!({"id": id, "text": text}),
                )
                .await;
            assert_eq!(a.status, 201, "{}", a.body);
        }
        let d = t
            .call(
                axum::http::Method::DELETE,
                &format!("/api/v1/rooms/{private}/messages/q2"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(d.status, 200, "{}", d.body);
        // Encrypted rooms cannot be made over the API yet: store one as clients will.
        let encrypted = "enc-room".to_owned();
        t.stores
            .rooms
            .insert_room(
                &RoomRecord {
                    id: encrypted.clone(),
                    kind: RoomKind::Team,
                    private: true,
                    name: Some("vault".into()),
                    topic: String::new(),
                    parent_id: None,
                    encrypted: true,
                    created_by: alice_id.clone(),
                    created_at: i64::MAX / 2,
                    seq: 1,
                    dm_key: None,
                },
                &[MemberRecord {
                    user_id: alice_id.clone(),
                    username: String::new(),
                    owner: true,
                    joined_at: 1,
                }],
            )
            .await
            .unwrap();
        // A plaintext message from before the room was encrypted, then an encrypted one.
        t.stores
            .messages
            .insert_message(&MessageRecord {
                room_id: encrypted.clone(),
                id: "x0".into(),
                seq: 0,
                version_seq: 0,
                sender_id: alice_id.clone(),
                text: Some("said in the clear".into()),
                ciphertext: None,
                mentions: Vec::new(),
                content_hash: "h0".into(),
                created_at: 1,
                edited_at: None,
                deleted: false,
            })
            .await
            .unwrap();
        t.stores
            .messages
            .insert_message(&MessageRecord {
                room_id: encrypted.clone(),
                id: "x1".into(),
                seq: 0,
                version_seq: 0,
                sender_id: alice_id,
                text: None,
                ciphertext: Some(ENVELOPE.into()),
                mentions: Vec::new(),
                content_hash: "h".into(),
                created_at: 1,
                edited_at: None,
                deleted: false,
            })
            .await
            .unwrap();
        Self {
            t,
            admin,
            alice,
            public,
            private,
            dm,
            encrypted,
        }
    }
}

#[tokio::test]
async fn admins_list_every_room_with_metadata() {
    for t in TestApp::every_backend().await {
        let a = Audit::new(t).await;
        let list = a.t.get("/api/v1/admin/rooms", Some(&a.admin)).await;
        assert_eq!(list.status, 200, "{}", list.body);
        let rooms = list.body["rooms"].as_array().unwrap();
        let by_id = |id: &str| {
            rooms
                .iter()
                .find(|r| r["id"] == id)
                .unwrap_or_else(|| panic!("{id} missing: {}", list.body))
                .clone()
        };
        assert_eq!(rooms.len(), 4);
        // Oldest first; the admin is in none of them, private ones and DMs included.
        let order: Vec<(i64, &str)> = rooms
            .iter()
            .map(|r| (r["created_at"].as_i64().unwrap(), r["id"].as_str().unwrap()))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(rooms[3]["id"], a.encrypted.as_str());
        let p = by_id(&a.private);
        assert_eq!(
            (
                &p["kind"],
                &p["private"],
                &p["encrypted"],
                &p["member_count"],
                &p["name"]
            ),
            (
                &json!("team"),
                &json!(true),
                &json!(false),
                &json!(2),
                &json!("board")
            )
        );
        assert!(p["created_at"].as_i64().unwrap() > 0);
        assert!(p["seq"].as_i64().unwrap() >= 4);
        let d = by_id(&a.dm);
        assert_eq!(
            (&d["kind"], &d["member_count"]),
            (&json!("direct"), &json!(2))
        );
        assert_eq!(by_id(&a.public)["member_count"], 1);
        assert_eq!(by_id(&a.encrypted)["encrypted"], true);

        a.t.get("/api/v1/admin/rooms", Some(&a.alice))
            .await
            .expect_error(403, "forbidden");
        a.t.get("/api/v1/admin/rooms", None)
            .await
            .expect_error(401, "unauthorized");
        a.t.finish().await;
    }
}

#[tokio::test]
async fn admins_read_plaintext_and_see_encrypted_messages_without_content() {
    for t in TestApp::every_backend().await {
        let a = Audit::new(t).await;
        let path = |room: &str, q: &str| format!("/api/v1/admin/rooms/{room}/messages{q}");

        let page = a.t.get(&path(&a.private, ""), Some(&a.admin)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let msgs = page.body["messages"].as_array().unwrap();
        assert_eq!(page.body["has_more"], false);
        let texts: Vec<&Value> = msgs.iter().map(|m| &m["text"]).collect();
        assert_eq!(
            texts,
            [&json!("quarterly numbers"), &Value::Null, &json!("third")]
        );
        assert_eq!(msgs[1]["deleted"], true);
        for m in msgs {
            assert_eq!(m["encrypted"], false);
            assert!(m.get("ciphertext").is_none(), "{m}");
            assert!(m["seq"].is_i64() && m["sender_id"].is_string() && m["created_at"].is_i64());
        }
        let dm = a.t.get(&path(&a.dm, ""), Some(&a.admin)).await;
        assert_eq!(dm.body["messages"][0]["text"], "just between us");

        // Encrypted: metadata only, never the envelope.
        let enc = a.t.get(&path(&a.encrypted, ""), Some(&a.admin)).await;
        assert_eq!(enc.status, 200, "{}", enc.body);
        let shown: Vec<(&Value, &Value, &Value)> = enc.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (&m["id"], &m["encrypted"], &m["text"]))
            .collect();
        assert_eq!(
            shown,
            [
                (&json!("x0"), &json!(true), &Value::Null),
                (&json!("x1"), &json!(true), &Value::Null)
            ]
        );
        assert!(!enc.body.to_string().contains(ENVELOPE));
        assert!(!enc.body.to_string().contains("in the clear"));

        // Paged like history.
        let first = a.t.get(&path(&a.private, "?limit=2"), Some(&a.admin)).await;
        assert_eq!(first.body["has_more"], true);
        let seqs: Vec<i64> = first.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs.len(), 2);
        let older =
            a.t.get(
                &path(&a.private, &format!("?before={}", seqs[0])),
                Some(&a.admin),
            )
            .await;
        assert_eq!(older.body["messages"][0]["id"], "q1");
        assert_eq!(older.body["has_more"], false);

        a.t.get(&path(&a.private, "?limit=0"), Some(&a.admin))
            .await
            .expect_error(400, "invalid_input");
        a.t.get(&path("no-such-room", ""), Some(&a.admin))
            .await
            .expect_error(404, "not_found");
        // Members are not admins: the audit is closed to them, even for their own rooms.
        a.t.get(&path(&a.private, ""), Some(&a.alice))
            .await
            .expect_error(403, "forbidden");
        a.t.get(&path(&a.private, ""), None)
            .await
            .expect_error(401, "unauthorized");
        a.t.finish().await;
    }
}
