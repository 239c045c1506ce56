//! The realtime socket over a real TCP connection: delivery to members, removal,
//! authentication before the upgrade, and the heartbeat.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sotto_server::{Config, Server};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request over a fresh connection; returns status and JSON body.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_str(body).unwrap_or(Value::Null);
    (status, json)
}

struct Running {
    addr: SocketAddr,
    admin: String,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    async fn start(heartbeat: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url: None,
            public_url: None,
        };
        let server = Server::bind(&config)
            .await
            .unwrap()
            .with_heartbeat(heartbeat);
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
        let mut req = format!("ws://{}/api/v1/ws", self.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .unwrap()
            .unwrap();
        socket
    }
}

/// The next JSON event on the socket (answering pings on the way).
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("an event in time")
            .expect("socket open")
            .unwrap();
        if let Ws::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
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
async fn a_client_that_does_not_answer_pings_is_closed() {
    let p = Running::start(Duration::from_millis(200)).await;
    let (_, alice) = p.user("alice").await;

    // A live client: reading answers pings, so it stays connected across several.
    let mut live = p.connect(&alice).await;
    assert_quiet(&mut live).await;
    assert_quiet(&mut live).await;
    live.send(Ws::Text("not json {".into())).await.unwrap();
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
}
