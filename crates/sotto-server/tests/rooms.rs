//! Rooms, membership and messages over the router: every room endpoint as anonymous,
//! outsider, member, owner and admin; a two-user chat in every room kind; the rules and
//! their error answers; and the events the services publish.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sotto_server::bus::EventKind;

struct People {
    t: TestApp,
    ids: Vec<String>,
    tokens: Vec<Option<String>>,
}

/// Role indexes; 0 is anonymous.
const OUT: usize = 1;
const MEM: usize = 2;
const OWN: usize = 3;
const ADMIN: usize = 4;

impl People {
    async fn new() -> Self {
        let t = TestApp::new().await;
        let mut ids = vec![String::new()];
        let mut tokens = vec![None];
        for (name, admin) in [
            ("outsider", false),
            ("member", false),
            ("owner", false),
            ("admin", true),
        ] {
            ids.push(t.create_user(name, admin).await);
            tokens.push(Some(t.login(name, PASSWORD).await));
        }
        Self { t, ids, tokens }
    }

    fn tok(&self, who: usize) -> Option<&str> {
        self.tokens[who].as_deref()
    }

    async fn call(
        &self,
        who: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> common::Answer {
        self.t.call(method, path, self.tok(who), body).await
    }

    /// A room of `kind` made by the owner with the member in it and one message by the member.
    async fn room(&self, kind: &str, private: bool) -> String {
        let a = self
            .call(
                OWN,
                Method::POST,
                "/api/v1/rooms",
                Some(json!({"kind": kind, "name": "room", "private": private, "members": [self.ids[MEM]]})),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let id = a.body["id"].as_str().unwrap().to_owned();
        let m = self
            .call(
                MEM,
                Method::POST,
                &format!("/api/v1/rooms/{id}/messages"),
                Some(json!({"id": "mm", "text": "hello"})),
            )
            .await;
        assert_eq!(m.status, 201, "{}", m.body);
        id
    }
}

/// Method, path suffix, body, expected statuses in a public and in a private room.
type Row = (Method, String, Option<Value>, [u16; 5], [u16; 5]);

#[tokio::test]
async fn every_room_endpoint_as_every_role() {
    let p = People::new().await;
    let bystander = p.t.create_user("bystander", false).await;
    let (mem, own) = (p.ids[MEM].clone(), p.ids[OWN].clone());
    // (method, path, body, [public room], [private room]); roles: anonymous, outsider,
    // member, owner, admin. Admins are not exempt from room rules.
    let table: Vec<Row> = vec![
        (
            Method::GET,
            "".into(),
            None,
            [401, 200, 200, 200, 200],
            [401, 404, 200, 200, 404],
        ),
        (
            Method::PATCH,
            "".into(),
            Some(json!({"topic": "t"})),
            [401, 403, 403, 200, 403],
            [401, 404, 403, 200, 404],
        ),
        (
            Method::GET,
            "/members".into(),
            None,
            [401, 403, 200, 200, 403],
            [401, 404, 200, 200, 404],
        ),
        (
            Method::POST,
            "/members".into(),
            Some(json!({"user_id": bystander})),
            [401, 403, 200, 200, 403],
            [401, 404, 403, 200, 404],
        ),
        (
            Method::DELETE,
            format!("/members/{mem}"),
            None,
            [401, 403, 403, 204, 403],
            [401, 404, 403, 204, 404],
        ),
        (
            Method::POST,
            "/join".into(),
            None,
            [401, 200, 200, 200, 200],
            [401, 404, 200, 200, 404],
        ),
        (
            Method::POST,
            "/leave".into(),
            None,
            [401, 403, 204, 400, 403],
            [401, 404, 204, 400, 404],
        ),
        (
            Method::POST,
            "/read".into(),
            Some(json!({"seq": 2})),
            [401, 403, 200, 200, 403],
            [401, 404, 200, 200, 404],
        ),
        (
            Method::PUT,
            format!("/owners/{mem}"),
            None,
            [401, 403, 403, 200, 403],
            [401, 404, 403, 200, 404],
        ),
        (
            Method::DELETE,
            format!("/owners/{own}"),
            None,
            [401, 403, 403, 400, 403],
            [401, 404, 403, 400, 404],
        ),
        (
            Method::POST,
            "/messages".into(),
            Some(json!({"id": "new", "text": "hi"})),
            [401, 403, 201, 201, 403],
            [401, 404, 201, 201, 404],
        ),
        (
            Method::GET,
            "/messages".into(),
            None,
            [401, 403, 200, 200, 403],
            [401, 404, 200, 200, 404],
        ),
        (
            Method::PATCH,
            "/messages/mm".into(),
            Some(json!({"text": "edited"})),
            [401, 403, 200, 403, 403],
            [401, 404, 200, 403, 404],
        ),
        (
            Method::DELETE,
            "/messages/mm".into(),
            None,
            [401, 403, 200, 200, 403],
            [401, 404, 200, 200, 404],
        ),
    ];
    for (method, suffix, body, public, private) in table {
        for (is_private, expected) in [(false, public), (true, private)] {
            for (who, want) in expected.into_iter().enumerate() {
                let room = p.room("channel", is_private).await;
                let path = format!("/api/v1/rooms/{room}{suffix}");
                let a = p.call(who, method.clone(), &path, body.clone()).await;
                assert_eq!(
                    a.status.as_u16(),
                    want,
                    "{method} {suffix} private={is_private} as role {who}: {}",
                    a.body
                );
                if want >= 400 {
                    assert!(a.body["error"]["code"].is_string());
                }
            }
        }
    }
}

#[tokio::test]
async fn two_users_chat_in_every_room_kind() {
    let p = People::new().await;
    let (alice, bob) = (OWN, MEM);
    let third = p.ids[OUT].clone();
    let parent_public = p.room("channel", false).await;
    let parent_private = p.room("team", true).await;
    let cases = [
        json!({"kind": "channel", "name": "pub"}),
        json!({"kind": "channel", "name": "priv", "private": true}),
        json!({"kind": "team", "name": "team"}),
        json!({"kind": "team", "name": "team", "private": true}),
        json!({"kind": "discussion", "name": "d", "parent_id": parent_public}),
        json!({"kind": "discussion", "name": "d", "parent_id": parent_private}),
        json!({"kind": "direct", "members": [p.ids[bob]]}),
        json!({"kind": "direct", "members": [p.ids[bob], third]}),
    ];
    for (i, req) in cases.into_iter().enumerate() {
        let created = p
            .call(alice, Method::POST, "/api/v1/rooms", Some(req.clone()))
            .await;
        assert_eq!(created.status, 201, "{req}: {}", created.body);
        let room = created.body["id"].as_str().unwrap().to_owned();
        let private = created.body["private"].as_bool().unwrap();
        let kind = created.body["kind"].as_str().unwrap();
        assert_eq!(private, i % 2 == 1 || kind == "direct", "{req}");
        // Bob joins public rooms himself and is invited to private ones (DMs have him).
        if kind != "direct" {
            let (who, method, path, body) = if private {
                (
                    alice,
                    Method::POST,
                    format!("/api/v1/rooms/{room}/members"),
                    Some(json!({"user_id": p.ids[bob]})),
                )
            } else {
                (
                    bob,
                    Method::POST,
                    format!("/api/v1/rooms/{room}/join"),
                    None,
                )
            };
            let a = p.call(who, method, &path, body).await;
            assert_eq!(a.status, 200, "{req}: {}", a.body);
        }
        let msgs = format!("/api/v1/rooms/{room}/messages");
        let a = p
            .call(
                alice,
                Method::POST,
                &msgs,
                Some(json!({"id": "a1", "text": "hi @member"})),
            )
            .await;
        assert_eq!(a.status, 201, "{req}: {}", a.body);
        assert_eq!(a.body["mentions"], json!([p.ids[bob]]));
        let b = p
            .call(
                bob,
                Method::POST,
                &msgs,
                Some(json!({"id": "b1", "text": "hello @owner"})),
            )
            .await;
        assert_eq!(b.status, 201, "{req}: {}", b.body);
        let page = p.call(bob, Method::GET, &msgs, None).await;
        assert_eq!(page.status, 200);
        let texts: Vec<_> = page.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].clone())
            .collect();
        assert_eq!(texts, [json!("hi @member"), json!("hello @owner")], "{req}");
        let mine = p.call(bob, Method::GET, "/api/v1/rooms", None).await;
        assert!(
            mine.body["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["id"] == room.as_str())
        );
    }
}

#[tokio::test]
async fn message_rules() {
    let p = People::new().await;
    let room = p.room("channel", true).await;
    let msgs = format!("/api/v1/rooms/{room}/messages");
    let send = |who: usize, body: Value| p.call(who, Method::POST, &msgs, Some(body));

    let first = send(OWN, json!({"id": "x:1", "text": "once"})).await;
    assert_eq!(first.status, 201);
    let again = send(OWN, json!({"id": "x:1", "text": "once"})).await;
    assert_eq!((again.status.as_u16(), &again.body), (200, &first.body));
    send(OWN, json!({"id": "x:1", "text": "other"}))
        .await
        .expect_error(409, "conflict");
    send(MEM, json!({"id": "x:1", "text": "once"}))
        .await
        .expect_error(409, "conflict");
    send(OWN, json!({"id": "big", "text": "x".repeat(16 * 1024 + 1)}))
        .await
        .expect_error(413, "payload_too_large");
    assert_eq!(
        send(OWN, json!({"id": "max", "text": "x".repeat(16 * 1024)}))
            .await
            .status,
        201
    );
    send(OWN, json!({"id": "e", "text": "  "}))
        .await
        .expect_error(400, "invalid_input");
    send(OWN, json!({"id": "e"}))
        .await
        .expect_error(400, "invalid_input");
    send(OWN, json!({"id": "e", "ciphertext": "aGk="}))
        .await
        .expect_error(400, "invalid_input");
    send(OWN, json!({"id": "e", "text": "a", "ciphertext": "aGk="}))
        .await
        .expect_error(400, "invalid_input");
    for bad in ["", "a b", "é", &"x".repeat(65)] {
        send(OWN, json!({"id": bad, "text": "a"}))
            .await
            .expect_error(400, "invalid_input");
    }
    send(OWN, json!({"id": "e", "text": "a", "extra": 1}))
        .await
        .expect_error(400, "invalid_json");

    // Paging both ways: mm(2) x:1 max, then 10 more.
    for i in 0..10 {
        assert_eq!(
            send(MEM, json!({"id": format!("n{i}"), "text": format!("n{i}")}))
                .await
                .status,
            201
        );
    }
    let pr = &p;
    let get = |q: &str| {
        let path = format!("{msgs}{q}");
        async move { pr.call(MEM, Method::GET, &path, None).await }
    };
    let latest = get("?limit=4").await;
    let seqs = |a: &common::Answer| {
        a.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    let top = seqs(&latest);
    assert_eq!(top.len(), 4);
    assert!(top.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(latest.body["has_more"], true);
    let older = get(&format!("?before={}&limit=100", top[0])).await;
    assert_eq!(older.body["has_more"], false);
    let all_old = seqs(&older);
    assert_eq!(all_old.len(), 9);
    let newer = get(&format!("?after={}&limit=2", all_old[0])).await;
    assert_eq!(seqs(&newer), all_old[1..3]);
    assert_eq!(newer.body["has_more"], true);
    get("?limit=0").await.expect_error(400, "invalid_input");
    get("?limit=201").await.expect_error(400, "invalid_input");
    get("?before=1&after=2")
        .await
        .expect_error(400, "invalid_input");
    get("?before=abc").await.expect_error(400, "invalid_input");

    // Edit: sender only; delete: sender or owner; tombstones keep their place.
    let m = |id: &str| format!("{msgs}/{id}");
    p.call(MEM, Method::PATCH, &m("x:1"), Some(json!({"text": "no"})))
        .await
        .expect_error(403, "forbidden");
    let edited = p
        .call(
            OWN,
            Method::PATCH,
            &m("x:1"),
            Some(json!({"text": "twice @member"})),
        )
        .await;
    assert_eq!(edited.status, 200);
    assert_eq!(edited.body["seq"], first.body["seq"]);
    assert!(edited.body["edited_at"].is_i64());
    assert_eq!(edited.body["mentions"], json!([p.ids[MEM]]));
    // A retry of the original send still returns the message, now edited.
    assert_eq!(
        send(OWN, json!({"id": "x:1", "text": "once"})).await.status,
        200
    );
    p.call(MEM, Method::DELETE, &m("x:1"), None)
        .await
        .expect_error(403, "forbidden");
    let gone = p.call(OWN, Method::DELETE, &m("mm"), None).await;
    assert_eq!(gone.status, 200);
    assert_eq!(
        (gone.body["deleted"].clone(), gone.body["text"].clone()),
        (json!(true), Value::Null)
    );
    p.call(OWN, Method::DELETE, &m("mm"), None)
        .await
        .expect_error(404, "not_found");
    p.call(MEM, Method::PATCH, &m("mm"), Some(json!({"text": "x"})))
        .await
        .expect_error(404, "not_found");
    p.call(MEM, Method::PATCH, &m("nope"), Some(json!({"text": "x"})))
        .await
        .expect_error(404, "not_found");
    let page = get("?limit=200").await;
    let first_msg = &page.body["messages"][0];
    assert_eq!(
        (first_msg["id"].clone(), first_msg["deleted"].clone()),
        (json!("mm"), json!(true))
    );
}

#[tokio::test]
async fn room_rules() {
    let p = People::new().await;
    let (mem, out) = (p.ids[MEM].clone(), p.ids[OUT].clone());
    let create = |who: usize, body: Value| p.call(who, Method::POST, "/api/v1/rooms", Some(body));

    // One DM per set of people, whoever opens it.
    let dm = create(OWN, json!({"kind": "direct", "members": [mem]})).await;
    assert_eq!(dm.status, 201);
    let again = create(
        MEM,
        json!({"kind": "direct", "members": [p.ids[OWN], p.ids[OWN]]}),
    )
    .await;
    assert_eq!(
        (again.status.as_u16(), &again.body["id"]),
        (200, &dm.body["id"])
    );
    let dm_id = dm.body["id"].as_str().unwrap();
    let r = |s: &str| format!("/api/v1/rooms/{dm_id}{s}");
    p.call(OUT, Method::GET, &r(""), None)
        .await
        .expect_error(404, "not_found");
    p.call(ADMIN, Method::GET, &r("/messages"), None)
        .await
        .expect_error(404, "not_found");
    p.call(
        OWN,
        Method::POST,
        &r("/members"),
        Some(json!({"user_id": out})),
    )
    .await
    .expect_error(403, "forbidden");
    p.call(OWN, Method::POST, &r("/leave"), None)
        .await
        .expect_error(403, "forbidden");
    p.call(OWN, Method::DELETE, &r(&format!("/members/{mem}")), None)
        .await
        .expect_error(403, "forbidden");
    p.call(OWN, Method::PATCH, &r(""), Some(json!({"name": "x"})))
        .await
        .expect_error(403, "forbidden");
    create(OWN, json!({"kind": "direct", "members": []}))
        .await
        .expect_error(400, "invalid_input");
    create(OWN, json!({"kind": "direct", "members": ["nobody"]}))
        .await
        .expect_error(404, "not_found");
    create(
        OWN,
        json!({"kind": "direct", "name": "x", "members": [mem]}),
    )
    .await
    .expect_error(400, "invalid_input");
    // The group DM limit comes from the settings.
    let a = p
        .call(
            ADMIN,
            Method::PATCH,
            "/api/v1/settings",
            Some(json!({"rooms.max_group_dm_members": 3})),
        )
        .await;
    assert_eq!(a.status, 200);
    let four = json!({"kind": "direct", "members": [mem, out, p.ids[ADMIN]]});
    create(OWN, four).await.expect_error(400, "invalid_input");
    assert_eq!(
        create(OWN, json!({"kind": "direct", "members": [mem, out]}))
            .await
            .status,
        201
    );

    // Names and parents.
    create(OWN, json!({"kind": "channel"}))
        .await
        .expect_error(400, "invalid_input");
    create(OWN, json!({"kind": "channel", "name": "x".repeat(65)}))
        .await
        .expect_error(400, "invalid_input");
    create(OWN, json!({"kind": "channel", "name": "a\u{7}b"}))
        .await
        .expect_error(400, "invalid_input");
    create(
        OWN,
        json!({"kind": "team", "name": "t", "topic": "x".repeat(251)}),
    )
    .await
    .expect_error(400, "invalid_input");
    create(
        OWN,
        json!({"kind": "channel", "name": "c", "members": ["nobody"]}),
    )
    .await
    .expect_error(404, "not_found");
    create(OWN, json!({"kind": "discussion", "name": "d"}))
        .await
        .expect_error(400, "invalid_input");
    create(
        OWN,
        json!({"kind": "discussion", "name": "d", "parent_id": dm_id}),
    )
    .await
    .expect_error(400, "invalid_input");
    create(
        OWN,
        json!({"kind": "channel", "name": "c", "parent_id": dm_id}),
    )
    .await
    .expect_error(400, "invalid_input");
    create(OWN, json!({"kind": "sideroom", "name": "c"}))
        .await
        .expect_error(400, "invalid_json");
    let private_team = p.room("team", true).await;
    create(
        OUT,
        json!({"kind": "discussion", "name": "d", "parent_id": private_team}),
    )
    .await
    .expect_error(404, "not_found");
    let d = create(
        MEM,
        json!({"kind": "discussion", "name": "d", "parent_id": private_team}),
    )
    .await;
    assert_eq!((d.status.as_u16(), &d.body["private"]), (201, &json!(true)));
    let public = p.room("channel", false).await;
    let d = create(
        OWN,
        json!({"kind": "discussion", "name": "d", "parent_id": public}),
    )
    .await;
    assert_eq!(d.body["private"], false);
    let d = create(
        OWN,
        json!({"kind": "discussion", "name": "d", "parent_id": public, "private": true}),
    )
    .await;
    assert_eq!(d.body["private"], true);

    // Listing public rooms shows public channels and teams only, marking the caller's.
    let list = p.call(OUT, Method::GET, "/api/v1/rooms/public", None).await;
    let rooms = list.body["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!(
        (rooms[0]["id"].as_str(), &rooms[0]["member"]),
        (Some(public.as_str()), &json!(false))
    );

    // Owners: the last one cannot step down or leave while others remain.
    let r = |s: &str| format!("/api/v1/rooms/{public}{s}");
    p.call(OWN, Method::POST, &r("/leave"), None)
        .await
        .expect_error(400, "invalid_input");
    assert_eq!(
        p.call(OWN, Method::PUT, &r(&format!("/owners/{mem}")), None)
            .await
            .status,
        200
    );
    p.call(OWN, Method::PUT, &r(&format!("/owners/{out}")), None)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        p.call(OWN, Method::POST, &r("/leave"), None).await.status,
        204
    );
    p.call(OWN, Method::POST, &r("/leave"), None)
        .await
        .expect_error(403, "forbidden");
    p.call(MEM, Method::DELETE, &r(&format!("/members/{out}")), None)
        .await
        .expect_error(404, "not_found");
    p.call(
        MEM,
        Method::POST,
        &r("/members"),
        Some(json!({"user_id": "nobody"})),
    )
    .await
    .expect_error(404, "not_found");
    let renamed = p
        .call(
            MEM,
            Method::PATCH,
            &r(""),
            Some(json!({"name": " New name ", "topic": "t"})),
        )
        .await;
    assert_eq!(
        (renamed.body["name"].clone(), renamed.body["topic"].clone()),
        (json!("New name"), json!("t"))
    );
    p.call(MEM, Method::PATCH, &r(""), Some(json!({})))
        .await
        .expect_error(400, "invalid_input");
    p.call(MEM, Method::PATCH, &r(""), Some(json!({"name": ""})))
        .await
        .expect_error(400, "invalid_input");

    // Hostile ids never panic.
    let long = "x".repeat(5000);
    p.call(MEM, Method::GET, &format!("/api/v1/rooms/{long}"), None)
        .await
        .expect_error(404, "not_found");
    p.call(MEM, Method::GET, "/api/v1/rooms/%00%ff/messages", None)
        .await
        .expect_error(400, "invalid_input");
}

#[tokio::test]
async fn changes_are_published_in_room_order() {
    let p = People::new().await;
    let mut sub = p.t.state.services.bus.subscribe();
    let room = p.room("channel", false).await;
    let msgs = format!("/api/v1/rooms/{room}/messages");
    p.call(
        OUT,
        Method::POST,
        &format!("/api/v1/rooms/{room}/join"),
        None,
    )
    .await;
    p.call(
        OWN,
        Method::PATCH,
        &format!("{msgs}/mm"),
        Some(json!({"text": "no"})),
    )
    .await; // refused
    p.call(
        MEM,
        Method::PATCH,
        &format!("{msgs}/mm"),
        Some(json!({"text": "edit"})),
    )
    .await;
    p.call(
        MEM,
        Method::POST,
        &msgs,
        Some(json!({"id": "mm", "text": "hello"})),
    )
    .await; // retry
    p.call(OWN, Method::DELETE, &format!("{msgs}/mm"), None)
        .await;
    p.call(
        OWN,
        Method::PUT,
        &format!("/api/v1/rooms/{room}/owners/{}", p.ids[OUT]),
        None,
    )
    .await;
    p.call(
        OUT,
        Method::POST,
        &format!("/api/v1/rooms/{room}/leave"),
        None,
    )
    .await;
    p.call(
        OWN,
        Method::PATCH,
        &format!("/api/v1/rooms/{room}"),
        Some(json!({"topic": "t"})),
    )
    .await;
    let mut got = Vec::new();
    while let Some(e) = sub.try_next().unwrap() {
        let sotto_server::bus::BusEvent::Room(e) = e else {
            continue;
        };
        assert_eq!(e.room_id, room);
        got.push((e.seq, e.kind));
    }
    let names: Vec<&str> = got
        .iter()
        .map(|(_, k)| match k {
            EventKind::RoomCreated { .. } => "created",
            EventKind::RoomUpdated { .. } => "updated",
            EventKind::MemberAdded { .. } => "added",
            EventKind::MemberRemoved { .. } => "removed",
            EventKind::OwnerChanged { .. } => "owner",
            EventKind::MessageCreated { .. } => "message",
            EventKind::MessageEdited { .. } => "edited",
            EventKind::MessageDeleted { .. } => "deleted",
            EventKind::EncryptionChanged { .. } => "encryption",
            EventKind::StatementAdded { .. } => "statement",
        })
        .collect();
    assert_eq!(
        names,
        [
            "created", "message", "added", "edited", "deleted", "owner", "removed", "updated"
        ]
    );
    let seqs: Vec<i64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    let EventKind::MessageDeleted { message } = &got[4].1 else {
        panic!()
    };
    assert!(message.deleted && message.text.is_none());
    let room_now = p
        .call(OWN, Method::GET, &format!("/api/v1/rooms/{room}"), None)
        .await;
    assert_eq!(room_now.body["seq"], 8);
}

/// The caller's room list entry for `room`: (last_read_seq, unread).
async fn marker(t: &TestApp, token: &str, room: &str) -> (i64, u64) {
    let a = t.get("/api/v1/rooms", Some(token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let r = a.body["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap_or_else(|| panic!("{room} not listed: {}", a.body));
    (
        r["last_read_seq"].as_i64().unwrap(),
        r["unread"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn read_markers_and_unread_counts() {
    for t in TestApp::every_backend().await {
        let backend = t.backend();
        t.create_user("reader", false).await;
        let writer = t.create_user("writer", false).await;
        let (rt, wt) = (
            t.login("reader", PASSWORD).await,
            t.login("writer", PASSWORD).await,
        );
        let room = t
            .post(
                "/api/v1/rooms",
                Some(&rt),
                json!({"kind": "channel", "name": "news", "members": [writer]}),
            )
            .await;
        assert_eq!(room.status, 201, "{}", room.body);
        let id = room.body["id"].as_str().unwrap().to_owned();
        let created = room.body["seq"].as_i64().unwrap();
        // Other answers with a room leave the fields out.
        assert!(room.body.get("unread").is_none(), "{}", room.body);
        assert_eq!(marker(&t, &rt, &id).await, (created, 0), "{backend}");

        let send = |token: String, mid: &'static str| {
            let path = format!("/api/v1/rooms/{id}/messages");
            let t = &t;
            async move {
                let a = t
                    .post(&path, Some(&token), json!({"id": mid, "text": mid}))
                    .await;
                assert_eq!(a.status, 201, "{}", a.body);
                a.body["seq"].as_i64().unwrap()
            }
        };
        let w1 = send(wt.clone(), "w1").await;
        let w2 = send(wt.clone(), "w2").await;
        let r1 = send(rt.clone(), "r1").await;
        send(wt.clone(), "w3").await;
        let w4 = send(wt.clone(), "w4").await;
        // Sending marked the reader's room read up to their message.
        assert_eq!(marker(&t, &rt, &id).await, (r1, 2), "{backend}");
        assert_eq!(marker(&t, &wt, &id).await, (w4, 0), "{backend}");
        // A deleted message is not unread.
        let del = t
            .call(
                Method::DELETE,
                &format!("/api/v1/rooms/{id}/messages/w3"),
                Some(&wt),
                None,
            )
            .await;
        assert_eq!(del.status, 200, "{}", del.body);
        assert_eq!(marker(&t, &rt, &id).await, (r1, 1), "{backend}");

        let read = format!("/api/v1/rooms/{id}/read");
        // Back is ignored: the answer is the marker as it stays.
        let a = t.post(&read, Some(&rt), json!({"seq": w1})).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body, json!({"room_id": id, "last_read_seq": r1}));
        assert!(w2 < r1);
        // Forward, then beyond the room: clamped to its seq.
        let a = t.post(&read, Some(&rt), json!({"seq": w4})).await;
        assert_eq!(a.body["last_read_seq"], w4);
        assert_eq!(marker(&t, &rt, &id).await, (w4, 0), "{backend}");
        let a = t.post(&read, Some(&rt), json!({"seq": i64::MAX})).await;
        let top = t.get(&format!("/api/v1/rooms/{id}"), Some(&rt)).await.body["seq"]
            .as_i64()
            .unwrap();
        assert_eq!(a.body["last_read_seq"], top, "{backend}");

        t.post(&read, Some(&rt), json!({"seq": -1}))
            .await
            .expect_error(400, "invalid_input");
        t.post(&read, Some(&rt), json!({"seq": "x"}))
            .await
            .expect_error(400, "invalid_json");
        t.post(&read, Some(&rt), json!({"seq": 1, "extra": true}))
            .await
            .expect_error(400, "invalid_json");
        // Outsiders: a public room they are not in is forbidden, a missing one not found.
        t.create_user("outsider", false).await;
        let ot = t.login("outsider", PASSWORD).await;
        t.post(&read, Some(&ot), json!({"seq": 1}))
            .await
            .expect_error(403, "forbidden");
        t.post("/api/v1/rooms/nope/read", Some(&rt), json!({"seq": 1}))
            .await
            .expect_error(404, "not_found");
        t.finish().await;
    }
}
