//! The off-the-record relay over real sockets, with real sotto-crypto OTR sessions in the
//! clients: a whole session relayed both ways to every connection of the peer, each
//! refusal with its own code, and proof that nothing of an OTR exchange is stored or
//! logged. On SQLite and, with `SOTTO_TEST_DATABASE_URL`, on PostgreSQL.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sotto_crypto::otr::{Body, Event, Frame};
use sotto_crypto::{
    EncryptionPassword, IdentityKeys, KdfParams, KeyBackup, OtrSession, OtrSessionId, PublicBundle,
    RoomId, UserId, os_rng,
};
use sotto_server::service::otr::OtrLimits;
use sotto_server::store::Stores;
use sotto_server::testing::{self, PgTestDb, Socket, WAIT, next_frame};
use sotto_server::{Config, Server};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Everything every test in this binary logs, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber for the whole process, once.
fn captured_log() -> Captured {
    static LOG: OnceLock<Captured> = OnceLock::new();
    LOG.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        captured
    })
    .clone()
}

/// A server on a real socket, and a second handle on its storage for what the API of
/// this branch does not offer yet (publishing key bundles).
struct Running {
    addr: SocketAddr,
    admin: String,
    stores: Stores,
    dir: tempfile::TempDir,
    pg: Option<PgTestDb>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A user with real identity keys.
struct User {
    id: String,
    token: String,
    keys: IdentityKeys,
}

impl User {
    fn user_id(&self) -> UserId {
        UserId::new(self.id.clone()).unwrap()
    }

    fn bundle(&self) -> PublicBundle {
        self.keys.bundle(&self.user_id())
    }
}

impl Running {
    /// SQLite, and PostgreSQL when configured.
    async fn every_backend() -> Vec<Self> {
        Self::every_backend_with(OtrLimits::default()).await
    }

    async fn every_backend_with(limits: OtrLimits) -> Vec<Self> {
        let mut all = vec![Self::start(None, limits).await];
        if let Some(pg) = PgTestDb::create().await {
            all.push(Self::start(Some(pg), limits).await);
        }
        all
    }

    async fn start(pg: Option<PgTestDb>, limits: OtrLimits) -> Self {
        captured_log();
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let database_url = pg.as_ref().map(|p| p.url().to_owned());
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data_dir.clone(),
            database_url: database_url.clone(),
            public_url: None,
        };
        let server = Server::bind(&config).await.unwrap().with_otr_limits(limits);
        let stores = Stores::open(&data_dir, database_url.as_deref())
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        let link = server.setup_link().unwrap().to_owned();
        let setup_token = link.split_once('#').unwrap().1.to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        let a = testing::request(
            addr,
            "POST",
            "/api/v1/setup",
            None,
            Some(&json!({"setup_token": setup_token, "username": "admin", "password": "correct horse"})),
        )
        .await;
        assert_eq!(a.status, 201, "{}", a.body);
        let admin = a.body["token"].as_str().unwrap().to_owned();
        Self {
            addr,
            admin,
            stores,
            dir,
            pg,
            _stop: stop,
        }
    }

    fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    async fn finish(self) {
        self.stores.close().await;
        drop(self._stop);
        if let Some(pg) = self.pg {
            // Let the server close its pool before the database goes.
            tokio::time::sleep(Duration::from_millis(200)).await;
            pg.drop().await;
        }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let a = testing::request(self.addr, method, path, Some(token), body.as_ref()).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    /// A user without published keys.
    async fn user_without_keys(&self, username: &str) -> User {
        let made = self
            .call(
                "POST",
                "/api/v1/admin/users",
                &self.admin,
                Some(json!({"username": username, "password": "correct horse"})),
            )
            .await;
        let login = testing::request(
            self.addr,
            "POST",
            "/api/v1/login",
            None,
            Some(&json!({"username": username, "password": "correct horse"})),
        )
        .await;
        assert_eq!(login.status, 200, "{}", login.body);
        User {
            id: made["id"].as_str().unwrap().to_owned(),
            token: login.body["token"].as_str().unwrap().to_owned(),
            keys: IdentityKeys::generate(&mut os_rng()),
        }
    }

    /// A user who published their bundle (and a real backup) through the key store.
    async fn user(&self, username: &str) -> User {
        let u = self.user_without_keys(username).await;
        let password = EncryptionPassword::from_user("an encryption password").unwrap();
        let backup = KeyBackup::create(
            &u.keys,
            &u.user_id(),
            &password,
            KdfParams::FLOOR,
            &mut os_rng(),
        )
        .unwrap();
        assert!(
            self.stores
                .keys
                .publish_keys(&u.id, &u.bundle().encode(), &backup.encode(), 1)
                .await
                .unwrap()
        );
        u
    }

    async fn room(&self, creator: &User, body: Value) -> String {
        self.call("POST", "/api/v1/rooms", &creator.token, Some(body))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn dm(&self, a: &User, others: &[&User]) -> String {
        let members: Vec<&str> = others.iter().map(|u| u.id.as_str()).collect();
        self.room(a, json!({"kind": "direct", "members": members}))
            .await
    }

    async fn set_otr(&self, enabled: bool) {
        self.call(
            "PATCH",
            "/api/v1/settings",
            &self.admin,
            Some(json!({"otr.enabled": enabled})),
        )
        .await;
    }

    async fn connect(&self, u: &User) -> Socket {
        let mut ws = testing::connect(self.addr, &u.token).await;
        // Round-trip a resume so the connection is registered before anyone relies on it.
        ws.send(Ws::Text(
            json!({"type": "resume", "rooms": {}}).to_string().into(),
        ))
        .await
        .unwrap();
        loop {
            if next_frame(&mut ws).await["type"] == "resumed" {
                return ws;
            }
        }
    }
}

/// Sends `frame` as an `otr` frame with client id `id`.
async fn send_otr(ws: &mut Socket, id: &str, room: &str, frame: &[u8]) {
    send_raw(ws, &STANDARD.encode(frame), id, room).await;
}

async fn send_raw(ws: &mut Socket, frame_b64: &str, id: &str, room: &str) {
    let text = json!({"type": "otr", "id": id, "room_id": room, "frame": frame_b64});
    ws.send(Ws::Text(text.to_string().into())).await.unwrap();
}

/// The next `otr` or `otr_error` notice, skipping presence and room events.
async fn next_otr(ws: &mut Socket) -> Value {
    loop {
        let f = next_frame(ws).await;
        if f["type"] == "otr" || f["type"] == "otr_error" {
            return f;
        }
    }
}

/// The next relayed frame: checks who sent it in which room, and decodes it.
async fn receive(ws: &mut Socket, room: &str, from: &User) -> Frame {
    let n = next_otr(ws).await;
    assert_eq!(n["type"], "otr", "{n}");
    assert_eq!(n["room_id"], room);
    assert_eq!(n["sender_id"], from.id.as_str());
    assert_eq!(n.as_object().unwrap().len(), 4, "{n}");
    let bytes = STANDARD.decode(n["frame"].as_str().unwrap()).unwrap();
    Frame::decode(&bytes).unwrap()
}

/// The same frame, relayed to every one of `sockets`.
async fn receive_all(sockets: &mut [&mut Socket], room: &str, from: &User) -> Frame {
    let mut first = None;
    for ws in sockets.iter_mut() {
        let f = receive(ws, room, from).await;
        assert_eq!(*first.get_or_insert_with(|| f.clone()), f);
    }
    first.unwrap()
}

/// The refusal of the frame with client id `id`.
async fn refusal(ws: &mut Socket, id: &str) -> Value {
    let n = next_otr(ws).await;
    assert_eq!(n["type"], "otr_error", "{n}");
    assert_eq!(n["id"], id, "{n}");
    assert!(n["message"].as_str().is_some_and(|m| !m.is_empty()));
    n
}

/// No OTR notice within half a second.
async fn assert_no_otr(ws: &mut Socket) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Ws::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert!(
                v["type"] != "otr" && v["type"] != "otr_error",
                "unexpected {v}"
            );
        }
    }
}

/// The close code the server ends the connection with.
async fn close_code(ws: &mut Socket) -> u16 {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Ws::Close(frame))) => return frame.expect("a close code").code.into(),
            Some(Ok(_)) => {}
            other => panic!("closed without a close frame: {other:?}"),
        }
    }
}

fn text_of(e: Event) -> String {
    match e {
        Event::Message(Body::Text(t)) => t,
        _ => panic!("not a text message"),
    }
}

fn offer(from: &User, to: &User, room: &str) -> (OtrSession, Frame) {
    OtrSession::offer(
        &from.keys,
        &from.user_id(),
        &to.bundle(),
        &RoomId::new(room.to_owned()).unwrap(),
        &mut os_rng(),
    )
    .unwrap()
}

fn accept(offer: &Frame, me: &User, from: &User, room: &str) -> (OtrSession, Frame) {
    OtrSession::accept(
        offer,
        &me.keys,
        &me.user_id(),
        &from.bundle(),
        &RoomId::new(room.to_owned()).unwrap(),
        &mut os_rng(),
    )
    .unwrap()
}

/// A session relayed in full: offer, accept, confirm, messages both ways, a refresh, more
/// messages, end; and a declined offer. The peer's every connection gets every frame;
/// the sender's own connections get none of them; nothing reaches the room's history.
#[tokio::test]
async fn a_whole_session_is_relayed_both_ways_to_every_connection_of_the_peer() {
    for p in Running::every_backend().await {
        let alice = p.user("alice").await;
        let bob = p.user("bob").await;
        let room = p.dm(&alice, &[&bob]).await;
        p.set_otr(true).await;
        let mut a = p.connect(&alice).await;
        let mut a2 = p.connect(&alice).await;
        let mut b1 = p.connect(&bob).await;
        let mut b2 = p.connect(&bob).await;

        // Handshake: the offer reaches both of Bob's connections.
        let (mut sa, offer_frame) = offer(&alice, &bob, &room);
        send_otr(&mut a, "o1", &room, &offer_frame.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        assert_eq!(got, offer_frame, "{}", p.backend());
        let (mut sb, accept_frame) = accept(&got, &bob, &alice, &room);
        send_otr(&mut b1, "a1", &room, &accept_frame.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        let Event::Established {
            reply: Some(confirm),
        } = sa.handle(&got, &mut os_rng()).unwrap()
        else {
            panic!("alice not established")
        };
        send_otr(&mut a, "c1", &room, &confirm.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        assert!(matches!(
            sb.handle(&got, &mut os_rng()).unwrap(),
            Event::Established { reply: None }
        ));

        // Messages both ways, from any connection.
        let data = sa.send_text("hello off the record").unwrap();
        send_otr(&mut a, "d1", &room, &data.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        assert_eq!(
            text_of(sb.handle(&got, &mut os_rng()).unwrap()),
            "hello off the record"
        );
        let data = sb.send_text("hi back").unwrap();
        send_otr(&mut b2, "d2", &room, &data.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        assert_eq!(text_of(sa.handle(&got, &mut os_rng()).unwrap()), "hi back");

        // Refresh Keys (O7): a new handshake over the same relay.
        let refresh = sa.refresh(&mut os_rng()).unwrap();
        send_otr(&mut a, "r1", &room, &refresh.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        let Event::RefreshStarted { reply } = sb.handle(&got, &mut os_rng()).unwrap() else {
            panic!("no refresh")
        };
        send_otr(&mut b1, "r2", &room, &reply.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        let Event::Refreshed {
            reply: Some(confirm),
        } = sa.handle(&got, &mut os_rng()).unwrap()
        else {
            panic!("not refreshed")
        };
        send_otr(&mut a, "r3", &room, &confirm.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        assert!(matches!(
            sb.handle(&got, &mut os_rng()).unwrap(),
            Event::Refreshed { reply: None }
        ));
        let data = sb.send_text("after the refresh").unwrap();
        send_otr(&mut b1, "d3", &room, &data.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        assert_eq!(
            text_of(sa.handle(&got, &mut os_rng()).unwrap()),
            "after the refresh"
        );

        // End OTR (O8) ends it for both.
        let end = sb.end();
        send_otr(&mut b1, "e1", &room, &end.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        assert!(matches!(
            sa.handle(&got, &mut os_rng()).unwrap(),
            Event::Ended
        ));

        // A declined offer.
        let (mut sa, offer_frame) = offer(&alice, &bob, &room);
        send_otr(&mut a, "o2", &room, &offer_frame.encode()).await;
        let got = receive_all(&mut [&mut b1, &mut b2], &room, &alice).await;
        let decline = OtrSession::decline(&got).unwrap();
        send_otr(&mut b2, "x1", &room, &decline.encode()).await;
        let got = receive_all(&mut [&mut a, &mut a2], &room, &bob).await;
        assert!(matches!(
            sa.handle(&got, &mut os_rng()).unwrap(),
            Event::Declined
        ));

        // No connection got an error, or a frame of its own user back.
        for ws in [&mut a, &mut a2, &mut b1, &mut b2] {
            assert_no_otr(ws).await;
        }
        // A connection that closed gets nothing more; the remaining one still does.
        drop(b2);
        let f = Frame::End(OtrSessionId::random(&mut os_rng()));
        send_otr(&mut a, "after-close", &room, &f.encode()).await;
        assert_eq!(receive(&mut b1, &room, &alice).await, f);
        assert_no_otr(&mut a).await;
        // Nothing in the room's history.
        let history = p
            .call(
                "GET",
                &format!("/api/v1/rooms/{room}/messages"),
                &alice.token,
                None,
            )
            .await;
        assert_eq!(history["messages"], json!([]), "{history}");
        p.finish().await;
    }
}

/// Every case the relay refuses is answered at once with its own code and the client's
/// frame id, and the connection stays usable.
#[tokio::test]
async fn every_refusal_has_its_own_code() {
    for p in Running::every_backend().await {
        let alice = p.user("alice").await;
        let bob = p.user("bob").await;
        let carol = p.user("carol").await;
        let dave = p.user_without_keys("dave").await;
        let dm = p.dm(&alice, &[&bob]).await;
        let group = p.dm(&alice, &[&bob, &carol]).await;
        let channel = p
            .room(&alice, json!({"kind": "channel", "name": "general"}))
            .await;
        let dm_dave = p.dm(&alice, &[&dave]).await;
        let (_, offer_frame) = offer(&alice, &bob, &dm);
        let frame = offer_frame.encode();
        let mut a = p.connect(&alice).await;

        // O1: off by default.
        send_otr(&mut a, "off", &dm, &frame).await;
        assert_eq!(refusal(&mut a, "off").await["code"], "otr_disabled");
        p.set_otr(true).await;

        // O2: the peer must be online.
        send_otr(&mut a, "offline", &dm, &frame).await;
        assert_eq!(refusal(&mut a, "offline").await["code"], "peer_offline");
        let mut b = p.connect(&bob).await;
        let mut c = p.connect(&carol).await;
        let mut d = p.connect(&dave).await;

        // Only in a DM of exactly two people the sender is in.
        for (id, room, code) in [
            ("group", group.as_str(), "not_direct"),
            ("channel", channel.as_str(), "not_direct"),
            ("unknown", "no-such-room", "room_not_found"),
            ("long", &"r".repeat(65), "room_not_found"),
        ] {
            send_otr(&mut a, id, room, &frame).await;
            assert_eq!(refusal(&mut a, id).await["code"], code, "{id}");
        }
        send_otr(&mut c, "outsider", &dm, &frame).await;
        assert_eq!(refusal(&mut c, "outsider").await["code"], "room_not_found");

        // Both need a published key bundle; the message says whose is missing.
        send_otr(&mut a, "k1", &dm_dave, &frame).await;
        let peer_missing = refusal(&mut a, "k1").await;
        send_otr(&mut d, "k2", &dm_dave, &frame).await;
        let own_missing = refusal(&mut d, "k2").await;
        assert_eq!(peer_missing["code"], "keys_missing");
        assert_eq!(own_missing["code"], "keys_missing");
        assert_ne!(peer_missing["message"], own_missing["message"]);

        // Frames must be base64 of a version-1 OTR frame head.
        send_raw(&mut a, "not base64!", "b64", &dm).await;
        assert_eq!(refusal(&mut a, "b64").await["code"], "invalid_frame");
        let mut wrong_version = frame.clone();
        wrong_version[0] = 2;
        send_otr(&mut a, "version", &dm, &wrong_version).await;
        assert_eq!(refusal(&mut a, "version").await["code"], "invalid_frame");
        let mut wrong_kind = frame.clone();
        wrong_kind[1] = 8;
        send_otr(&mut a, "kind", &dm, &wrong_kind).await;
        assert_eq!(refusal(&mut a, "kind").await["code"], "invalid_frame");
        send_otr(&mut a, "short", &dm, &frame[..17]).await;
        assert_eq!(refusal(&mut a, "short").await["code"], "invalid_frame");
        let bad_shape = json!({"type": "otr", "id": "shape", "room_id": dm, "frame": 5});
        a.send(Ws::Text(bad_shape.to_string().into()))
            .await
            .unwrap();
        assert_eq!(refusal(&mut a, "shape").await["code"], "invalid_frame");

        // One byte over the largest OTR frame (4 MiB of body) is refused unread.
        let mut huge = vec![0u8; sotto_api::OTR_MAX_FRAME_BYTES + 1];
        huge[..18].copy_from_slice(&frame[..18]);
        let mut big = p.connect(&alice).await;
        send_otr(&mut big, "huge", &dm, &huge).await;
        assert_eq!(refusal(&mut big, "huge").await["code"], "frame_too_large");
        // The largest frame itself is relayed.
        huge.pop();
        send_otr(&mut big, "largest", &dm, &huge).await;
        let n = next_otr(&mut b).await;
        assert_eq!(n["type"], "otr");
        assert_eq!(
            n["frame"].as_str().unwrap().len(),
            STANDARD.encode(&huge).len()
        );
        drop(big);

        // Nothing refused reached anyone.
        assert_no_otr(&mut b).await;
        assert_no_otr(&mut c).await;
        assert_no_otr(&mut d).await;

        // A bad frame id cannot be echoed: the connection is closed.
        send_otr(&mut a, "", &dm, &frame).await;
        assert_eq!(close_code(&mut a).await, 1008);
        let mut a = p.connect(&alice).await;
        send_otr(&mut a, &"i".repeat(65), &dm, &frame).await;
        assert_eq!(close_code(&mut a).await, 1008);

        // Frames other than `otr` stay limited to 64 KiB.
        let mut a = p.connect(&alice).await;
        let rooms: serde_json::Map<String, Value> =
            (0..1000).map(|i| (format!("{i:064}"), json!(0))).collect();
        let resume = json!({"type": "resume", "rooms": rooms}).to_string();
        assert!(resume.len() > 64 * 1024);
        a.send(Ws::Text(resume.into())).await.unwrap();
        assert_eq!(close_code(&mut a).await, 1008);

        // Switched off again: refused at once.
        p.set_otr(false).await;
        let mut a = p.connect(&alice).await;
        send_otr(&mut a, "off-again", &dm, &frame).await;
        assert_eq!(refusal(&mut a, "off-again").await["code"], "otr_disabled");
        assert_no_otr(&mut b).await;
        p.finish().await;
    }
}

/// Frames and bytes are limited per connection, each with its own allowance; the
/// frame size limit is the configured one.
#[tokio::test]
async fn frames_and_bytes_are_rate_limited_per_connection() {
    let limits = OtrLimits {
        max_frame_bytes: 1024,
        burst_frames: 3,
        frame_every: Duration::from_secs(600),
        burst_bytes: 4096,
        bytes_per_sec: 1,
        ..OtrLimits::default()
    };
    for p in Running::every_backend_with(limits).await {
        let alice = p.user("alice").await;
        let bob = p.user("bob").await;
        let dm = p.dm(&alice, &[&bob]).await;
        p.set_otr(true).await;
        let mut b = p.connect(&bob).await;
        let end = Frame::End(OtrSessionId::random(&mut os_rng())).encode();

        // Three frames at once, then a wait of about the refill interval.
        let mut a = p.connect(&alice).await;
        for i in 0..3 {
            send_otr(&mut a, &format!("f{i}"), &dm, &end).await;
            assert_eq!(receive(&mut b, &dm, &alice).await.encode(), end);
        }
        send_otr(&mut a, "f3", &dm, &end).await;
        let limited = refusal(&mut a, "f3").await;
        assert_eq!(limited["code"], "rate_limited", "{}", p.backend());
        let wait = limited["retry_after_secs"].as_u64().unwrap();
        assert!((590..=600).contains(&wait), "{wait}");
        assert_no_otr(&mut b).await;

        // Another connection of the same user has its own allowance; bytes run out
        // first there: 1,024 bytes are 1,368 in base64, so the third is refused.
        let mut a2 = p.connect(&alice).await;
        let mut big = vec![0u8; 1024];
        big[..18].copy_from_slice(&end);
        send_otr(&mut a2, "big0", &dm, &big).await;
        assert_eq!(next_otr(&mut b).await["frame"], STANDARD.encode(&big));
        send_otr(&mut a2, "big1", &dm, &big).await;
        assert_eq!(next_otr(&mut b).await["frame"], STANDARD.encode(&big));
        send_otr(&mut a2, "big2", &dm, &big).await;
        assert_eq!(refusal(&mut a2, "big2").await["code"], "rate_limited");

        // The configured size limit, answered without using the allowance.
        let mut a3 = p.connect(&alice).await;
        let mut over = big.clone();
        over.push(0);
        send_otr(&mut a3, "over", &dm, &over).await;
        assert_eq!(refusal(&mut a3, "over").await["code"], "frame_too_large");
        for i in 0..3 {
            send_otr(&mut a3, &format!("fits{i}"), &dm, &end).await;
            assert_eq!(receive(&mut b, &dm, &alice).await.encode(), end);
        }
        assert_no_otr(&mut a3).await;
        p.finish().await;
    }
}

/// Ways a value may be written down: raw, hex, base64.
fn encodings(label: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        (format!("{label} (raw)"), bytes.to_vec()),
        (format!("{label} (hex)"), hex.clone().into_bytes()),
        (format!("{label} (HEX)"), hex.to_uppercase().into_bytes()),
        (
            format!("{label} (base64)"),
            STANDARD.encode(bytes).into_bytes(),
        ),
        (
            format!("{label} (base64url)"),
            URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
        ),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under `dir`, with its path.
fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

/// Every row of every table of the PostgreSQL database, as text (bytea as hex).
async fn postgres_rows(url: &str) -> Vec<(String, Vec<u8>)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(tables.iter().any(|t| t == "messages"), "{tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let row = sqlx::query(&format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{t}\" t"
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let text: String = row.get(0);
        out.push((format!("table {t}"), text.into_bytes()));
    }
    conn.close().await.ok();
    out
}

/// O4: an OTR exchange with a distinctive message leaves no trace of its frames or its
/// session id in the database (SQLite file and WAL; every PostgreSQL table), the blob
/// directory or the log at every level. A plaintext message sent alongside is found
/// by the same scan, so the scan does look where things are written.
#[tokio::test]
async fn nothing_of_an_otr_exchange_is_stored_or_logged() {
    let log = captured_log();
    for p in Running::every_backend().await {
        let alice = p.user("alice").await;
        let bob = p.user("bob").await;
        let room = p.dm(&alice, &[&bob]).await;
        p.set_otr(true).await;
        let mut a = p.connect(&alice).await;
        let mut b = p.connect(&bob).await;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let secret = format!(
            "distinctive off-the-record words {}",
            URL_SAFE_NO_PAD.encode(OtrSessionId::random(&mut os_rng()).as_bytes())
        );

        let (mut sa, f) = offer(&alice, &bob, &room);
        let session = sa.id();
        frames.push(f.encode());
        send_otr(&mut a, "o", &room, &f.encode()).await;
        let got = receive(&mut b, &room, &alice).await;
        let (mut sb, f) = accept(&got, &bob, &alice, &room);
        frames.push(f.encode());
        send_otr(&mut b, "a", &room, &f.encode()).await;
        let got = receive(&mut a, &room, &bob).await;
        let Event::Established { reply: Some(f) } = sa.handle(&got, &mut os_rng()).unwrap() else {
            panic!("not established")
        };
        frames.push(f.encode());
        send_otr(&mut a, "c", &room, &f.encode()).await;
        sb.handle(&receive(&mut b, &room, &alice).await, &mut os_rng())
            .unwrap();
        let f = sa.send_text(&secret).unwrap();
        frames.push(f.encode());
        send_otr(&mut a, "d1", &room, &f.encode()).await;
        let got = receive(&mut b, &room, &alice).await;
        assert_eq!(text_of(sb.handle(&got, &mut os_rng()).unwrap()), secret);
        let f = sb.send_text(&secret).unwrap();
        frames.push(f.encode());
        send_otr(&mut b, "d2", &room, &f.encode()).await;
        let got = receive(&mut a, &room, &bob).await;
        assert_eq!(text_of(sa.handle(&got, &mut os_rng()).unwrap()), secret);
        let f = sa.end();
        frames.push(f.encode());
        send_otr(&mut a, "e", &room, &f.encode()).await;
        receive(&mut b, &room, &alice).await;
        // A refused frame must not leave a trace either.
        let refused = Frame::End(OtrSessionId::random(&mut os_rng())).encode();
        frames.push(refused.clone());
        drop(b);
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_otr(&mut a, "late", &room, &refused).await;
        assert_eq!(refusal(&mut a, "late").await["code"], "peer_offline");

        // The control: a normal message is stored where the scan looks.
        let control = format!(
            "stored control words {}",
            OtrSessionId::random(&mut os_rng()).to_hex()
        );
        p.call(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            &alice.token,
            Some(json!({"id": "control", "text": control})),
        )
        .await;
        drop(a);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut needles = encodings("session id", session.as_bytes());
        needles.extend(encodings("plaintext", secret.as_bytes()));
        for (i, f) in frames.iter().enumerate() {
            needles.extend(encodings(&format!("frame {i}"), f));
            // The part after the head: ciphertexts, ephemeral keys, MACs.
            if f.len() > 18 + 16 {
                needles.extend(encodings(&format!("frame {i} body"), &f[18..]));
            }
        }

        let mut places = Vec::new();
        files_under(p.dir.path(), &mut places);
        assert!(
            places.iter().any(|(name, _)| name.ends_with("sotto.db")) || p.pg.is_some(),
            "{:?}",
            places.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        if let Some(pg) = &p.pg {
            places.extend(postgres_rows(pg.url()).await);
        }
        assert!(
            places
                .iter()
                .any(|(_, bytes)| contains(bytes, control.as_bytes())),
            "{}: the control message is found",
            p.backend()
        );
        let logged = log.0.lock().unwrap().clone();
        assert!(contains(&logged, b"listening"), "the log is captured");
        places.push(("log".into(), logged));
        for (place, bytes) in &places {
            for (what, needle) in &needles {
                assert!(
                    !contains(bytes, needle),
                    "{}: {what} found in {place}",
                    p.backend()
                );
            }
        }
        p.finish().await;
    }
}
