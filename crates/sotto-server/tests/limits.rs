//! The server's limits, on a real socket: realtime connections per user and in total,
//! message sends per user, JSON body and WebSocket message sizes, and clients that send
//! their request head or body too slowly (slow-loris). Each limit answers with its own
//! error code, and a slow client never holds up anyone else.

use serde_json::{Value, json};
use sotto_server::http::serve::ConnectionLimits;
use sotto_server::testing::{self, PgTestDb, WAIT};
use sotto_server::{Config, Server};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const PASSWORD: &str = "correct horse battery";

/// A server on loopback with its first admin.
struct Running {
    addr: SocketAddr,
    admin: String,
    _dir: tempfile::TempDir,
    pg: Option<PgTestDb>,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a server over `pg` (or SQLite), tuned by `tune`.
    async fn start(pg: Option<PgTestDb>, tune: impl FnOnce(Server) -> Server) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            database_url: pg.as_ref().map(|p| p.url().to_owned()),
            public_url: None,
        };
        let server = tune(Server::bind(&config).await.unwrap());
        let addr = server.local_addr().unwrap();
        let setup_token = server.setup_link().unwrap().split_once('#').unwrap().1;
        let body = json!({"setup_token": setup_token, "username": "admin", "password": PASSWORD});
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let a = testing::request(addr, "POST", "/api/v1/setup", None, Some(&body)).await;
        assert_eq!(a.status, 201, "{}", a.body);
        Self {
            addr,
            admin: a.body["token"].as_str().unwrap().to_owned(),
            _dir: dir,
            pg,
            stop,
            done,
        }
    }

    /// SQLite, and PostgreSQL when configured.
    async fn every_backend(tune: impl Fn(Server) -> Server) -> Vec<Self> {
        let mut all = vec![Self::start(None, &tune).await];
        if let Some(pg) = PgTestDb::create().await {
            all.push(Self::start(Some(pg), &tune).await);
        }
        all
    }

    fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// A request that must succeed; its JSON answer.
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

    /// A new user, logged in: (user id, token).
    async fn user(&self, name: &str) -> (String, String) {
        let made = json!({"username": name, "password": PASSWORD});
        let id = self
            .call("POST", "/api/v1/admin/users", &self.admin, Some(made))
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let login = json!({"username": name, "password": PASSWORD});
        let a = testing::request(self.addr, "POST", "/api/v1/login", None, Some(&login)).await;
        assert_eq!(a.status, 200, "{}", a.body);
        (id, a.body["token"].as_str().unwrap().to_owned())
    }

    /// A public channel of `token`'s user; its id.
    async fn room(&self, token: &str, name: &str) -> String {
        let body = json!({"kind": "channel", "name": name});
        self.call("POST", "/api/v1/rooms", token, Some(body)).await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(WAIT, self.done).await;
        if let Some(pg) = self.pg {
            pg.drop().await;
        }
    }
}

/// Asserts the error shape with `status` and `code`.
fn expect_error(a: &testing::HttpAnswer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{}", a.body);
    assert!(a.body["error"]["message"].is_string(), "{}", a.body);
}

fn header<'a>(a: &'a testing::HttpAnswer, name: &str) -> Option<&'a str> {
    a.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Opens the realtime socket; `Err` carries the refusal's status and JSON body.
async fn open_socket(addr: SocketAddr, token: &str) -> Result<testing::Socket, (u16, Value)> {
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("an answer in time")
    {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => {
            let body = response.body().as_deref().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(body).expect("a JSON refusal"),
            ))
        }
        Err(e) => panic!("connecting failed: {e}"),
    }
}

#[tokio::test]
async fn realtime_connections_are_capped_per_user_and_in_total_before_upgrading() {
    let p = Running::start(None, |s| s.with_realtime_connections(2, 3)).await;
    let (_, alice) = p.user("alice").await;
    let (_, bob) = p.user("bob").await;

    let first = open_socket(p.addr, &alice).await.expect("first socket");
    let _second = open_socket(p.addr, &alice).await.expect("second socket");
    let Err((status, body)) = open_socket(p.addr, &alice).await else {
        panic!("accepted")
    };
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");

    // Another user still has room, until the server's total is reached.
    let _bob1 = open_socket(p.addr, &bob).await.expect("bob's socket");
    let Err((status, body)) = open_socket(p.addr, &bob).await else {
        panic!("accepted")
    };
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "server_busy", "{body}");

    // A closed socket gives its slot back.
    drop(first);
    let start = Instant::now();
    loop {
        match open_socket(p.addr, &alice).await {
            Ok(_) => break,
            Err((status, body)) => {
                assert!(start.elapsed() < WAIT, "slot never freed: {status} {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    p.finish().await;
}

#[tokio::test]
async fn message_sends_are_limited_per_user_with_retry_after() {
    for p in Running::every_backend(|s| s.with_send_rate(3, Duration::from_secs(1))).await {
        let (bob_id, bob) = p.user("bob").await;
        let (_, alice) = p.user("alice").await;
        let room = p.room(&alice, "general").await;
        let invite = json!({"user_id": bob_id});
        let path = format!("/api/v1/rooms/{room}/members");
        p.call("POST", &path, &alice, Some(invite)).await;
        let path = format!("/api/v1/rooms/{room}/messages");
        let send = |token: String, id: String| {
            let path = path.clone();
            let addr = p.addr;
            async move {
                let body = json!({"id": id, "text": "hello"});
                testing::request(addr, "POST", &path, Some(&token), Some(&body)).await
            }
        };
        for i in 0..3 {
            let a = send(alice.clone(), format!("a{i}")).await;
            assert_eq!(a.status, 201, "{}: {}", p.backend(), a.body);
        }
        let limited = send(alice.clone(), "a3".into()).await;
        expect_error(&limited, 429, "rate_limited");
        assert_eq!(
            header(&limited, "retry-after"),
            Some("1"),
            "{}",
            p.backend()
        );
        // The limit is per user: Bob sends in the same room meanwhile.
        let a = send(bob.clone(), "b0".into()).await;
        assert_eq!(a.status, 201, "{}: {}", p.backend(), a.body);
        // After the wait it was told, Alice sends again; the refused message was not
        // stored.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let a = send(alice.clone(), "a3".into()).await;
        assert_eq!(a.status, 201, "{}: {}", p.backend(), a.body);
        let page = p
            .call("GET", &format!("{path}?limit=50"), &alice, None)
            .await;
        let ids: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a0", "a1", "a2", "b0", "a3"], "{}", p.backend());
        p.finish().await;
    }
}

/// Writes `head` and `body` on a fresh connection; the raw answer up to its close.
async fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before the whole body is written.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time");
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn an_oversized_json_body_is_refused_in_the_error_shape() {
    let p = Running::start(None, |s| s).await;
    let (_, alice) = p.user("alice").await;
    let room = p.room(&alice, "general").await;
    // Over 64 KiB with a Content-Length ...
    let big = json!({"id": "m1", "text": "x".repeat(70 * 1024)});
    let path = format!("/api/v1/rooms/{room}/messages");
    let a = testing::request(p.addr, "POST", &path, Some(&alice), Some(&big)).await;
    expect_error(&a, 413, "payload_too_large");
    let login = json!({"username": "x".repeat(70 * 1024), "password": "y"});
    let a = testing::request(p.addr, "POST", "/api/v1/login", None, Some(&login)).await;
    expect_error(&a, 413, "payload_too_large");

    // ... and chunked, with no length announced.
    let text = login.to_string();
    let mut chunked = Vec::new();
    for part in text.as_bytes().chunks(8192) {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        p.addr
    );
    let answer = raw_exchange(p.addr, &head, &chunked).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"payload_too_large""#), "{answer}");
    p.finish().await;
}

/// Upgrades a raw connection to the realtime socket (no frames read yet).
async fn raw_socket(addr: SocketAddr, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(n, 1, "closed during the handshake");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

#[tokio::test]
async fn a_websocket_message_over_the_limit_is_closed_with_1009_unread() {
    let p = Running::start(None, |s| s).await;
    let (_, alice) = p.user("alice").await;
    let mut stream = raw_socket(p.addr, &alice).await;
    // A masked text frame announcing 1 GiB; only its header is ever sent. The server must
    // refuse it from the header, without waiting for (or making room for) the payload.
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(1u64 << 30).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    stream.write_all(&frame).await.unwrap();

    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut got))
        .await
        .expect("closed in time");
    // The server's frames (unmasked): the last one is the close frame with its code.
    let close = got
        .windows(4)
        .rposition(|w| w[0] == 0x88 && w[1] >= 2 && w[1] < 126)
        .unwrap_or_else(|| panic!("no close frame in {got:?}"));
    let code = u16::from_be_bytes([got[close + 2], got[close + 3]]);
    assert_eq!(code, 1009, "{got:?}");
    p.finish().await;
}

/// Short timeouts for the slow-client tests.
fn quick(header: Duration, body: Duration, min_rate: u32) -> impl Fn(Server) -> Server {
    move |s| {
        s.with_connection_limits(ConnectionLimits {
            header_timeout: header,
            body_timeout: body,
            body_min_rate: min_rate,
        })
    }
}

/// Writes `bytes` one at a time every `every` until the server closes the connection;
/// how long it stayed open. Fails if it is still open after `give_up`.
async fn dribble(
    stream: &mut TcpStream,
    bytes: &[u8],
    every: Duration,
    give_up: Duration,
) -> Duration {
    let start = Instant::now();
    let mut answer = Vec::new();
    for b in bytes.iter().cycle() {
        assert!(start.elapsed() < give_up, "still open after {give_up:?}");
        if stream.write_all(&[*b]).await.is_err() {
            return start.elapsed();
        }
        // Anything the server sends ends with its close.
        if let Ok(read) = tokio::time::timeout(every, stream.read_buf(&mut answer)).await {
            match read {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {
                    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
                    return start.elapsed();
                }
            }
        }
    }
    unreachable!("cycle never ends")
}

#[tokio::test]
async fn a_client_dribbling_its_request_head_is_cut_off() {
    let timeout = Duration::from_secs(1);
    let p = Running::start(None, quick(timeout, Duration::from_secs(60), 1)).await;
    // A head that never ends, a byte every 100 ms.
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    let head = b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let open = dribble(&mut stream, head, Duration::from_millis(100), 10 * timeout).await;
    assert!(
        open >= timeout - Duration::from_millis(100),
        "cut too early: {open:?}"
    );
    assert!(open < 3 * timeout, "cut late: {open:?}");

    // A connection that sends nothing at all is closed too.
    let mut idle = TcpStream::connect(p.addr).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(3 * timeout, idle.read(&mut buf))
        .await
        .expect("an idle connection is closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert!(start.elapsed() >= timeout - Duration::from_millis(100));
    p.finish().await;
}

#[tokio::test]
async fn a_client_dribbling_its_body_is_answered_request_timeout_and_cut_off() {
    let timeout = Duration::from_secs(1);
    // 1 s, plus a second per KiB received.
    let p = Running::start(None, quick(Duration::from_secs(60), timeout, 1024)).await;
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 4000\r\n\r\n",
        p.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    // A byte every 100 ms: 10 bytes a second, far below the rate.
    loop {
        assert!(start.elapsed() < 10 * timeout, "still open");
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read_buf(&mut answer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(_)) => {
                let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
                break;
            }
            Err(_) => {}
        }
    }
    let open = start.elapsed();
    assert!(
        open >= timeout - Duration::from_millis(100),
        "cut too early: {open:?}"
    );
    assert!(open < 3 * timeout, "cut late: {open:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    // And the connection is closed, not kept for another request.
    let mut rest = [0u8; 16];
    let n = tokio::time::timeout(WAIT, stream.read(&mut rest))
        .await
        .expect("closed");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    p.finish().await;
}

#[tokio::test]
async fn an_upload_that_progresses_is_not_cut_however_long_it_takes() {
    let timeout = Duration::from_secs(1);
    // 1 s, plus a second per KiB: the upload below brings 64 KiB a second.
    let p = Running::start(None, quick(Duration::from_secs(60), timeout, 1024)).await;
    let (_, alice) = p.user("alice").await;
    let room = p.room(&alice, "general").await;
    let chunk = vec![b'z'; 16 * 1024];
    let chunks = 12; // 192 KiB over about 3 s: three times the base timeout.
    let mut stream = TcpStream::connect(p.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/rooms/{room}/files?name=slow.bin HTTP/1.1\r\nHost: {}\r\n\
         Connection: close\r\nAuthorization: Bearer {alice}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        p.addr,
        chunk.len() * chunks
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    for _ in 0..chunks {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream.write_all(&chunk).await.unwrap();
    }
    assert!(start.elapsed() > 2 * timeout);
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(
        answer.contains(&format!(r#""size":{}"#, chunk.len() * chunks)),
        "{answer}"
    );
    p.finish().await;
}

#[tokio::test]
async fn many_slow_clients_do_not_hold_up_a_normal_request() {
    // Long timeouts: the slow clients stay connected for the whole test.
    let p = Running::start(
        None,
        quick(Duration::from_secs(60), Duration::from_secs(60), 1),
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(p.addr).await.unwrap();
        s.write_all(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    for round in 0..3 {
        for s in &mut slow {
            s.write_all(b"X").await.unwrap();
        }
        let start = Instant::now();
        let a = testing::request(p.addr, "GET", "/api/v1/me", Some(&p.admin), None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "round {round}: answered in {took:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // They were all still waiting: none was answered or closed.
    for s in &mut slow {
        let mut buf = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf))
                .await
                .is_err(),
            "a slow client was answered or closed"
        );
    }
    p.finish().await;
}
