//! The realtime socket over a real TCP connection: delivery to members in seq order,
//! removal, resume, presence, authentication before the upgrade, the heartbeat and slow
//! consumers. Tests that read the store run on SQLite and, with
//! `SOTTO_TEST_DATABASE_URL`, on PostgreSQL.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sotto_server::testing::{self, PgTestDb, Socket, WAIT, next_frame};
use sotto_server::{Config, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// One HTTP/1.1 request; returns status and JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let a = testing::request(addr, method, path, token, body.as_ref()).await;
    (a.status, a.body)
}

struct Running {
    addr: SocketAddr,
    admin: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn start(heartbeat: Duration) -> Self {
        Self::start_with(None, heartbeat, heartbeat).await
    }

    async fn start_with(
        database_url: Option<String>,
        heartbeat: Duration,
        send_timeout: Duration,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url,
            public_url: None,
        };
        let server = Server::bind(&config)
            .await
            .unwrap()
            .with_heartbeat(heartbeat)
            .with_send_timeout(send_timeout);
        let addr = server.local_addr().unwrap();
        let link = server.setup_link().unwrap().to_owned();
        let setup_token = link.split_once('#').unwrap().1.to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let (status, body) = request(
            addr,
            "POST",
            "/api/v1/setup",
            None,
            Some(json!({"setup_token": setup_token, "username": "admin", "password": "correct horse"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let mut me = Self {
            addr,
            admin: String::new(),
            _dir: dir,
            _stop: stop,
        };
        me.admin = me.login("admin").await.1;
        me
    }

    /// Logs in; returns (user id, token).
    async fn login(&self, username: &str) -> (String, String) {
        let (status, body) = request(
            self.addr,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": username, "password": "correct horse"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        (
            body["user"]["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        )
    }

    async fn user(&self, username: &str) -> (String, String) {
        let (status, body) = request(
            self.addr,
            "POST",
            "/api/v1/admin/users",
            Some(&self.admin),
            Some(json!({"username": username, "password": "correct horse"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        self.login(username).await
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, body) = request(self.addr, method, path, Some(token), body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body}"
        );
        body
    }

    async fn connect(&self, token: &str) -> Socket {
        testing::connect(self.addr, token).await
    }
}

/// The next room event, skipping presence notices.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame["type"] != "presence" {
            return frame;
        }
    }
}

/// The next presence notice, skipping room events.
async fn next_presence(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame["type"] == "presence" {
            return frame;
        }
    }
}

/// Sends a resume frame and collects the room events up to the `resumed` notice.
async fn resume(socket: &mut Socket, rooms: Value) -> Vec<Value> {
    let frame = json!({"type": "resume", "rooms": rooms}).to_string();
    socket.send(Ws::Text(frame.into())).await.unwrap();
    let mut out = Vec::new();
    loop {
        let e = next_event(socket).await;
        if e["type"] == "resumed" {
            return out;
        }
        out.push(e);
    }
}

/// The close frame the server ends the connection with.
async fn close_code(socket: &mut Socket) -> u16 {
    for _ in 0..10_000 {
        match tokio::time::timeout(WAIT, socket.next()).await.unwrap() {
            Some(Ok(Ws::Close(frame))) => return frame.expect("a close code").code.into(),
            Some(Ok(_)) => {}
            other => panic!("closed without a close frame: {other:?}"),
        }
    }
    panic!("no close frame");
}

async fn room(p: &Running, token: &str, private: bool) -> String {
    let room = p
        .call(
            "POST",
            "/api/v1/rooms",
            token,
            Some(json!({"kind": "channel", "name": "general", "private": private})),
        )
        .await;
    room["id"].as_str().unwrap().to_owned()
}

async fn invite(p: &Running, token: &str, room: &str, user_id: &str) {
    p.call(
        "POST",
        &format!("/api/v1/rooms/{room}/members"),
        token,
        Some(json!({"user_id": user_id})),
    )
    .await;
}

/// No event arrives within a short while.
async fn assert_quiet(socket: &mut Socket) {
    if let Ok(Some(Ok(Ws::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(500), socket.next()).await
    {
        panic!("unexpected event {text}");
    }
}

async fn send(p: &Running, token: &str, room: &str, id: &str, text: &str) {
    p.call(
        "POST",
        &format!("/api/v1/rooms/{room}/messages"),
        token,
        Some(json!({"id": id, "text": text})),
    )
    .await;
}

#[tokio::test]
async fn members_receive_room_events_until_removed() {
    let p = Running::start(Duration::from_secs(30)).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let room = p
        .call(
            "POST",
            "/api/v1/rooms",
            &alice,
            Some(json!({"kind": "channel", "name": "general", "private": true})),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let mut bob_ws = p.connect(&bob).await;

    // Not a member yet: nothing.
    send(&p, &alice, &room, "m1", "before bob").await;
    assert_quiet(&mut bob_ws).await;

    // Added: from then on, every event of the room, in seq order.
    p.call(
        "POST",
        &format!("/api/v1/rooms/{room}/members"),
        &alice,
        Some(json!({"user_id": bob_id})),
    )
    .await;
    let added = next_event(&mut bob_ws).await;
    assert_eq!(added["type"], "member_added");
    send(&p, &alice, &room, "m2", "hello bob").await;
    let message = next_event(&mut bob_ws).await;
    assert_eq!(message["type"], "message_created", "{message}");
    assert_eq!(message["room_id"], room.as_str());
    assert_eq!(message["message"]["text"], "hello bob");
    assert!(message["seq"].as_i64() > added["seq"].as_i64());

    // Removed: told so, then nothing more from that room.
    p.call(
        "DELETE",
        &format!("/api/v1/rooms/{room}/members/{bob_id}"),
        &alice,
        None,
    )
    .await;
    let removed = next_event(&mut bob_ws).await;
    assert_eq!(removed["type"], "member_removed");
    assert_eq!(removed["user_id"], bob_id.as_str());
    send(&p, &alice, &room, "m3", "after bob").await;
    assert_quiet(&mut bob_ws).await;
}

#[tokio::test]
async fn unauthenticated_upgrades_are_refused_before_upgrading() {
    let p = Running::start(Duration::from_secs(30)).await;
    for auth in [None, Some("Bearer not-a-token")] {
        let mut req = format!("ws://{}/api/v1/ws", p.addr)
            .into_client_request()
            .unwrap();
        if let Some(a) = auth {
            req.headers_mut()
                .insert("authorization", a.parse().unwrap());
        }
        let err = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .unwrap()
            .expect_err("refused");
        let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
            panic!("expected an HTTP answer, got {err}");
        };
        assert_eq!(response.status(), 401);
        let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
}

#[tokio::test]
async fn a_browser_authenticates_with_subprotocols_and_gets_its_events() {
    let p = Running::start(Duration::from_secs(30)).await;
    let (_, alice) = p.user("alice").await;
    let open = |protocols: String| {
        let mut req = format!("ws://{}/api/v1/ws", p.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };

    // A wrong token in the subprotocol is refused before the upgrade, as a header would be.
    let err = tokio::time::timeout(WAIT, open("sotto.v1, sotto.bearer.not-a-token".into()))
        .await
        .unwrap()
        .expect_err("refused");
    let tokio_tungstenite::tungstenite::Error::Http(response) = err else {
        panic!("expected an HTTP answer, got {err}");
    };
    assert_eq!(response.status(), 401);

    // The right one connects, the server names the protocol it speaks, and events arrive.
    let (mut ws, response) =
        tokio::time::timeout(WAIT, open(format!("sotto.v1, sotto.bearer.{alice}")))
            .await
            .unwrap()
            .expect("connected");
    assert_eq!(response.headers()["sec-websocket-protocol"], "sotto.v1");
    let room = room(&p, &alice, false).await;
    assert_eq!(next_event(&mut ws).await["type"], "room_created");
    send(&p, &alice, &room, "m1", "hello").await;
    let event = next_event(&mut ws).await;
    assert_eq!(event["type"], "message_created");
    assert_eq!(event["room_id"], room.as_str());
}

#[tokio::test]
async fn a_client_that_does_not_answer_pings_is_closed() {
    let p = Running::start(Duration::from_millis(200)).await;
    let (_, alice) = p.user("alice").await;

    // A live client: reading answers pings, so it stays connected across several.
    let mut live = p.connect(&alice).await;
    assert_quiet(&mut live).await;
    assert_quiet(&mut live).await;

    // A silent client: does not read (so never answers) and is closed.
    let mut silent = p.connect(&alice).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let mut closed = None;
    for _ in 0..50 {
        match tokio::time::timeout(WAIT, silent.next()).await.unwrap() {
            Some(Ok(Ws::Close(frame))) => {
                closed = frame;
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    let frame = closed.expect("a close frame");
    assert_eq!(frame.code, CloseCode::from(4001));
}

#[test]
fn the_event_schema_and_the_socket_are_documented() {
    let doc = serde_json::to_value(sotto_server::http::openapi_document()).unwrap();
    assert!(doc["paths"]["/api/v1/ws"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Event"].is_object());
    assert!(doc["components"]["schemas"]["EventKind"].is_object());
    assert!(doc["components"]["schemas"]["Notice"].is_object());
    assert!(doc["components"]["schemas"]["ClientFrame"].is_object());
    assert!(doc["paths"]["/api/v1/presence"]["get"].is_object());
}

/// Runs a store-backed test on SQLite, then on PostgreSQL when available.
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $body:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $body(None).await;
        }

        #[tokio::test]
        async fn $postgres() {
            if let Some(db) = PgTestDb::create().await {
                $body(Some(db.url().to_owned())).await;
                db.drop().await;
            }
        }
    };
}

const LONG: Duration = Duration::from_secs(30);

on_both_backends!(
    concurrent_sends_arrive_once_each_in_seq_order_sqlite,
    concurrent_sends_arrive_once_each_in_seq_order_postgres,
    concurrent_sends_arrive_once_each_in_seq_order
);

async fn concurrent_sends_arrive_once_each_in_seq_order(db: Option<String>) {
    let p = std::sync::Arc::new(Running::start_with(db, LONG, LONG).await);
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let room = room(&p, &alice, true).await;
    invite(&p, &alice, &room, &bob_id).await;
    let mut ws = p.connect(&bob).await;

    // Four writers, ten messages each, all at once into one room.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (p, alice, room) = (p.clone(), alice.clone(), room.clone());
            tokio::spawn(async move {
                for i in 0..10 {
                    send(&p, &alice, &room, &format!("w{w}-{i}"), "hi").await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let mut seqs = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    while ids.len() < 40 {
        let e = next_event(&mut ws).await;
        assert_eq!(e["type"], "message_created", "{e}");
        seqs.push(e["seq"].as_i64().unwrap());
        assert!(
            ids.insert(e["message"]["id"].as_str().unwrap().to_owned()),
            "{e}"
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // Exactly the room's seqs after the join: nothing skipped, nothing twice.
    let first = seqs[0];
    assert_eq!(seqs, (first..first + 40).collect::<Vec<_>>());
    assert_quiet(&mut ws).await;
}

on_both_backends!(
    resume_replays_what_was_missed_sqlite,
    resume_replays_what_was_missed_postgres,
    resume_replays_what_was_missed
);

async fn resume_replays_what_was_missed(db: Option<String>) {
    let p = Running::start_with(db, LONG, LONG).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let (carol_id, _) = p.user("carol").await;
    let room = room(&p, &alice, true).await;
    invite(&p, &alice, &room, &bob_id).await;
    let mut ws = p.connect(&bob).await;
    send(&p, &alice, &room, "m1", "first").await;
    send(&p, &alice, &room, "m2", "the secret plan").await;
    let _ = next_event(&mut ws).await;
    let seen = next_event(&mut ws).await["seq"].as_i64().unwrap();
    drop(ws);

    // While bob is away: a new message, an edit, a delete, a member, a rename.
    send(&p, &alice, &room, "m3", "third").await;
    let path = format!("/api/v1/rooms/{room}/messages");
    p.call(
        "PATCH",
        &format!("{path}/m1"),
        &alice,
        Some(json!({"text": "first, fixed"})),
    )
    .await;
    p.call("DELETE", &format!("{path}/m2"), &alice, None).await;
    invite(&p, &alice, &room, &carol_id).await;
    p.call(
        "PATCH",
        &format!("/api/v1/rooms/{room}"),
        &alice,
        Some(json!({"name": "renamed"})),
    )
    .await;

    let mut ws = p.connect(&bob).await;
    let missed = resume(&mut ws, json!({ room.clone(): seen })).await;
    let seqs: Vec<i64> = missed.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > seen,
        "{seqs:?}"
    );
    let kinds: Vec<&str> = missed.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message_created",
            "message_edited",
            "message_deleted",
            "member_added",
            "room_updated"
        ]
    );
    assert_eq!(missed[0]["message"]["text"], "third");
    assert_eq!(missed[1]["message"]["id"], "m1");
    assert_eq!(missed[1]["message"]["text"], "first, fixed");
    assert_eq!(missed[2]["message"]["id"], "m2");
    assert_eq!(missed[2]["message"]["deleted"], true);
    assert!(missed[2]["message"]["text"].is_null());
    assert!(!missed.iter().any(|e| e.to_string().contains("secret plan")));
    assert_eq!(missed[3]["member"]["user_id"], carol_id.as_str());
    assert_eq!(missed[4]["room"]["name"], "renamed");
    assert!(missed.iter().all(|e| e["room_id"] == room.as_str()));

    // Live events follow, continuing the room's order.
    send(&p, &alice, &room, "m4", "live").await;
    let live = next_event(&mut ws).await;
    assert_eq!(live["message"]["id"], "m4");
    assert_eq!(live["seq"].as_i64().unwrap(), seqs.last().unwrap() + 1);

    // Resuming from the start of the room replays it all, current content only.
    let all = resume(&mut ws, json!({ room.clone(): 0 })).await;
    assert_eq!(all[0]["type"], "room_created");
    assert!(!all.iter().any(|e| e.to_string().contains("secret plan")));
    assert_eq!(
        all.iter()
            .filter(|e| e["type"] == "message_created")
            .count(),
        3,
        "m1 (edited since), m3, m4"
    );
}

on_both_backends!(
    removed_while_offline_gets_only_the_removal_sqlite,
    removed_while_offline_gets_only_the_removal_postgres,
    removed_while_offline_gets_only_the_removal
);

async fn removed_while_offline_gets_only_the_removal(db: Option<String>) {
    let p = Running::start_with(db, LONG, LONG).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let room = room(&p, &alice, true).await;
    let secret = self::room(&p, &alice, true).await;
    invite(&p, &alice, &room, &bob_id).await;
    let mut ws = p.connect(&bob).await;
    send(&p, &alice, &room, "m1", "hello").await;
    let seen = next_event(&mut ws).await["seq"].as_i64().unwrap();
    drop(ws);

    send(&p, &alice, &room, "m2", "before removal").await;
    p.call(
        "DELETE",
        &format!("/api/v1/rooms/{room}/members/{bob_id}"),
        &alice,
        None,
    )
    .await;
    send(&p, &alice, &room, "m3", "after removal").await;
    send(&p, &alice, &secret, "s1", "not for bob").await;

    let mut ws = p.connect(&bob).await;
    let got = resume(
        &mut ws,
        json!({ room.clone(): seen, secret.clone(): 0, "no-such-room": 0 }),
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "member_removed");
    assert_eq!(got[0]["user_id"], bob_id.as_str());
    assert_eq!(got[0]["room_id"], room.as_str());
    // Resuming after the removal: nothing.
    let seq = got[0]["seq"].clone();
    assert!(
        resume(&mut ws, json!({ room.clone(): seq }))
            .await
            .is_empty()
    );
    send(&p, &alice, &room, "m4", "still not for bob").await;
    assert_quiet(&mut ws).await;
}

on_both_backends!(
    presence_reaches_room_peers_only_sqlite,
    presence_reaches_room_peers_only_postgres,
    presence_reaches_room_peers_only
);

async fn presence_reaches_room_peers_only(db: Option<String>) {
    let p = Running::start_with(db, LONG, LONG).await;
    let (alice_id, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let (_, carol) = p.user("carol").await;
    let room = room(&p, &alice, true).await;
    invite(&p, &alice, &room, &bob_id).await;

    let mut bob_ws = p.connect(&bob).await;
    let mut carol_ws = p.connect(&carol).await;
    let (status, body) = request(p.addr, "GET", "/api/v1/presence", Some(&alice), None).await;
    assert_eq!((status, body), (200, json!({"online": [bob_id.clone()]})));

    // Alice comes online with two sockets: bob is told once; carol, a stranger, never.
    let mut alice_ws = p.connect(&alice).await;
    let first = next_presence(&mut alice_ws).await;
    assert_eq!(
        first,
        json!({"type": "presence", "user_id": bob_id, "online": true})
    );
    let alice_again = p.connect(&alice).await;
    let on = next_presence(&mut bob_ws).await;
    assert_eq!(
        on,
        json!({"type": "presence", "user_id": alice_id, "online": true})
    );
    let (_, body) = request(p.addr, "GET", "/api/v1/presence", Some(&bob), None).await;
    assert_eq!(body, json!({"online": [alice_id.clone()]}));
    let (_, body) = request(p.addr, "GET", "/api/v1/presence", Some(&carol), None).await;
    assert_eq!(body, json!({"online": []}));

    // Closing one socket keeps her online; closing the last makes her offline.
    drop(alice_again);
    assert_quiet(&mut bob_ws).await;
    drop(alice_ws);
    let off = next_presence(&mut bob_ws).await;
    assert_eq!(
        off,
        json!({"type": "presence", "user_id": alice_id, "online": false})
    );
    assert_quiet(&mut carol_ws).await;
    let (status, _) = request(p.addr, "GET", "/api/v1/presence", None, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_while_others_keep_receiving() {
    let p = Running::start_with(None, LONG, Duration::from_millis(300)).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let (carol_id, carol) = p.user("carol").await;
    let room = room(&p, &alice, true).await;
    invite(&p, &alice, &room, &bob_id).await;
    invite(&p, &alice, &room, &carol_id).await;

    // Bob's client has a tiny receive buffer and never reads.
    let stream = {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(p.addr).await.unwrap()
    };
    let mut req = format!("ws://{}/api/v1/ws", p.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {bob}").parse().unwrap());
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (mut slow, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    let mut fast = p.connect(&carol).await;

    // Quotes double in JSON: 250 frames of ~30 KB outgrow the largest kernel send buffer
    // (4 MiB by default on Linux) whatever the receive window.
    let text = "\"".repeat(15_000);
    for i in 0..250 {
        send(&p, &alice, &room, &format!("m{i}"), &text).await;
        let e = next_event(&mut fast).await;
        assert_eq!(e["message"]["id"], format!("m{i}"));
    }
    assert_eq!(close_code(&mut slow).await, 4000);
}

#[tokio::test]
async fn bad_client_frames_close_the_connection_with_1008() {
    let p = Running::start(LONG).await;
    let (_, alice) = p.user("alice").await;
    let too_many: serde_json::Map<String, Value> =
        (0..1001).map(|i| (format!("r{i}"), json!(0))).collect();
    for frame in [
        Ws::Text("not json {".into()),
        Ws::Text(json!({"type": "subscribe"}).to_string().into()),
        Ws::Text(
            json!({"type": "resume", "rooms": {"r": -1}})
                .to_string()
                .into(),
        ),
        Ws::Text(
            json!({"type": "resume", "rooms": too_many})
                .to_string()
                .into(),
        ),
        Ws::Binary(vec![1, 2, 3].into()),
    ] {
        let mut ws = p.connect(&alice).await;
        ws.send(frame).await.unwrap();
        assert_eq!(close_code(&mut ws).await, 1008);
    }
    // A thousand rooms in one frame is fine.
    let mut ws = p.connect(&alice).await;
    let rooms: serde_json::Map<String, Value> = (0..1000)
        .map(|i| (format!("{i:032x}"), json!(i64::MAX)))
        .collect();
    assert!(resume(&mut ws, Value::Object(rooms)).await.is_empty());
}

/// Sends a message; returns its seq.
async fn say(p: &Running, token: &str, room: &str, id: &str) -> i64 {
    let m = p
        .call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            token,
            Some(json!({"id": id, "text": "hi"})),
        )
        .await;
    m["seq"].as_i64().unwrap_or_else(|| panic!("no seq in {m}"))
}

#[tokio::test]
async fn a_socket_outside_a_room_never_receives_its_events() {
    let p = Running::start_with(None, LONG, LONG).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let (carol_id, carol) = p.user("carol").await;
    let busy = room(&p, &alice, false).await;
    let quiet = room(&p, &alice, true).await;
    invite(&p, &alice, &busy, &bob_id).await;
    invite(&p, &alice, &quiet, &carol_id).await;
    let mut bob_ws = p.connect(&bob).await;
    let mut carol_ws = p.connect(&carol).await;

    for i in 0..30 {
        say(&p, &alice, &busy, &format!("b{i}")).await;
    }
    say(&p, &alice, &quiet, "marker").await;
    // Carol's first room event is her own room's marker: none of the busy room's came.
    let e = next_event(&mut carol_ws).await;
    assert_eq!(e["room_id"], quiet.as_str(), "{e}");
    assert_eq!(e["message"]["id"], "marker", "{e}");
    assert_quiet(&mut carol_ws).await;
    for i in 0..30 {
        let e = next_event(&mut bob_ws).await;
        assert_eq!(e["message"]["id"], format!("b{i}"), "{e}");
    }
    assert_quiet(&mut bob_ws).await;
}

on_both_backends!(
    a_join_followed_at_once_by_messages_loses_nothing_sqlite,
    a_join_followed_at_once_by_messages_loses_nothing_postgres,
    a_join_followed_at_once_by_messages_loses_nothing
);

/// Messages race the join from other writers; the joiner gets the join, then every
/// message after it, once each and in order, whichever way the race went.
async fn a_join_followed_at_once_by_messages_loses_nothing(db: Option<String>) {
    let p = std::sync::Arc::new(Running::start_with(db, LONG, LONG).await);
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let mut ws = p.connect(&bob).await;
    for round in 0..5 {
        let room = room(&p, &alice, true).await;
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let (p, alice, room) = (p.clone(), alice.clone(), room.clone());
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..8 {
                        seqs.push(say(&p, &alice, &room, &format!("r{round}w{w}-{i}")).await);
                    }
                    seqs
                })
            })
            .collect();
        invite(&p, &alice, &room, &bob_id).await;
        let mut sent = Vec::new();
        for w in writers {
            sent.extend(w.await.unwrap());
        }
        let joined = next_event(&mut ws).await;
        assert_eq!(joined["type"], "member_added", "{joined}");
        assert_eq!(joined["room_id"], room.as_str());
        let join_seq = joined["seq"].as_i64().unwrap();
        let mut expected: Vec<i64> = sent.into_iter().filter(|&s| s > join_seq).collect();
        expected.sort_unstable();
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let e = next_event(&mut ws).await;
            assert_eq!(e["room_id"], room.as_str(), "{e}");
            got.push(e["seq"].as_i64().unwrap());
        }
        assert_eq!(got, expected);
        // The join itself straight before more messages, with nothing racing.
        let more = room.clone();
        let after = say(&p, &alice, &more, &format!("r{round}-after")).await;
        let e = next_event(&mut ws).await;
        assert_eq!(e["seq"].as_i64(), Some(after), "{e}");
    }
    assert_quiet(&mut ws).await;
}

#[tokio::test]
async fn a_removed_member_gets_the_removal_and_nothing_after() {
    let p = Running::start_with(None, LONG, LONG).await;
    let (_, alice) = p.user("alice").await;
    let (bob_id, bob) = p.user("bob").await;
    let left = room(&p, &alice, true).await;
    let kept = room(&p, &alice, true).await;
    invite(&p, &alice, &left, &bob_id).await;
    invite(&p, &alice, &kept, &bob_id).await;
    let mut ws = p.connect(&bob).await;
    p.call(
        "DELETE",
        &format!("/api/v1/rooms/{left}/members/{bob_id}"),
        &alice,
        None,
    )
    .await;
    for i in 0..10 {
        say(&p, &alice, &left, &format!("l{i}")).await;
    }
    let marker = say(&p, &alice, &kept, "marker").await;
    let removed = next_event(&mut ws).await;
    assert_eq!(removed["type"], "member_removed", "{removed}");
    assert_eq!(removed["room_id"], left.as_str());
    let e = next_event(&mut ws).await;
    assert_eq!(
        (e["room_id"].as_str(), e["seq"].as_i64()),
        (Some(kept.as_str()), Some(marker)),
        "{e}"
    );
    // Added back: the room's events flow again, from the new join on.
    invite(&p, &alice, &left, &bob_id).await;
    let back = say(&p, &alice, &left, "back").await;
    assert_eq!(next_event(&mut ws).await["type"], "member_added");
    assert_eq!(next_event(&mut ws).await["seq"].as_i64(), Some(back));
    assert_quiet(&mut ws).await;
}
