//! What a newcomer does: run `sotto serve`, create the first admin through the setup link,
//! and chat between two users over the API and the realtime socket in every room kind —
//! on embedded SQLite and on PostgreSQL — then stop the server with SIGTERM.

use serde_json::{Value, json};
use sotto_server::testing::{PgTestDb, Socket, connect, next_room_event, request};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

/// `sotto serve` as a child process, with what it printed.
struct Served {
    child: Child,
    addr: SocketAddr,
    setup_token: String,
    stderr: mpsc::Receiver<String>,
}

impl Served {
    /// Starts the binary on a free loopback port and waits for its setup link and its
    /// listening address.
    fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("SOTTO_DATABASE_URL")
            .env_remove("SOTTO_PUBLIC_URL")
            .env("SOTTO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("run sotto serve");
        let lines = |r: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().unwrap()));
        let stderr = lines(Box::new(child.stderr.take().unwrap()));
        let link = wait_for(&stdout, |l| l.contains("/setup#").then(|| l.to_owned()));
        let setup_token = link.rsplit_once('#').unwrap().1.trim().to_owned();
        let addr = wait_for(&stderr, |l| {
            let (_, rest) = l.split_once("listening")?;
            rest.split_once("addr=")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        Self {
            child,
            addr,
            setup_token,
            stderr,
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns everything the server logged.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let log: Vec<String> = self.stderr.try_iter().collect();
        let log = log.join("\n");
        assert!(status.success(), "exit {status}: {log}");
        log
    }
}

impl Drop for Served {
    /// A failed test must not leave the server running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `find` result among the lines, within 60 s.
fn wait_for<T>(lines: &mpsc::Receiver<String>, find: impl Fn(&str) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("the server printed it in time");
        if let Some(found) = find(&line) {
            return found;
        }
    }
}

/// A logged-in user with an open realtime socket.
struct User {
    id: String,
    token: String,
    socket: Socket,
}

struct Client {
    addr: SocketAddr,
}

impl Client {
    /// Calls the API and expects a 2xx answer.
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Value {
        let a = request(self.addr, method, path, Some(token), body.as_ref()).await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    async fn login(&self, username: &str) -> User {
        let a = request(
            self.addr,
            "POST",
            "/api/v1/login",
            None,
            Some(&json!({"username": username, "password": PASSWORD})),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let token = a.body["token"].as_str().unwrap().to_owned();
        User {
            id: a.body["user"]["id"].as_str().unwrap().to_owned(),
            socket: connect(self.addr, &token).await,
            token,
        }
    }

    /// `from` says `text` in `room`; both sockets see it arrive, in order after everything
    /// else they were sent for that room (the sender's other devices stay in step).
    async fn say(&self, from: &mut User, to: &mut User, room: &str, id: &str, text: &str) {
        let sent = self
            .call(
                "POST",
                &format!("/api/v1/rooms/{room}/messages"),
                &from.token,
                Some(json!({"id": id, "text": text})),
            )
            .await;
        for socket in [&mut from.socket, &mut to.socket] {
            let event = next_event_in(socket, room).await;
            assert_eq!(event["type"], "message_created", "{event}");
            assert_eq!(event["message"]["text"], text);
            assert_eq!(event["message"]["sender_id"], from.id.as_str());
            assert_eq!(event["seq"], sent["seq"]);
        }
    }
}

/// The next event of `room` on the socket, skipping events of other rooms.
async fn next_event_in(socket: &mut Socket, room: &str) -> Value {
    loop {
        let event = next_room_event(socket).await;
        if event["room_id"] == room {
            return event;
        }
    }
}

/// The whole newcomer path against one running binary.
async fn chat_in_every_room_kind(data_dir: &std::path::Path, database_url: Option<&str>) {
    let served = Served::start(data_dir, database_url);
    let c = Client { addr: served.addr };

    // The setup link creates the first admin; the admin creates two people.
    let setup = request(
        c.addr,
        "POST",
        "/api/v1/setup",
        None,
        Some(
            &json!({"setup_token": served.setup_token, "username": "admin", "password": PASSWORD}),
        ),
    )
    .await;
    assert_eq!(setup.status, 201, "{}", setup.body);
    let admin = c.login("admin").await;
    for name in ["alice", "bob", "carol"] {
        c.call(
            "POST",
            "/api/v1/admin/users",
            &admin.token,
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await;
    }
    let mut alice = c.login("alice").await;
    let mut bob = c.login("bob").await;
    let carol = c.login("carol").await;

    // Each kind: alice creates (bob in it one way or another), then both talk.
    let public = c
        .call(
            "POST",
            "/api/v1/rooms",
            &alice.token,
            Some(json!({"kind": "channel", "name": "general"})),
        )
        .await;
    let public = public["id"].as_str().unwrap().to_owned();
    c.call(
        "POST",
        &format!("/api/v1/rooms/{public}/join"),
        &bob.token,
        None,
    )
    .await;
    for expected in ["room_created", "member_added"] {
        let event = next_event_in(&mut alice.socket, &public).await;
        assert_eq!(event["type"], expected, "{event}");
    }

    let mut rooms = vec![("public channel", public)];
    let with_bob = |body: Value| {
        let mut body = body;
        body["members"] = json!([bob.id]);
        body
    };
    for (label, body) in [
        (
            "private channel",
            with_bob(json!({"kind": "channel", "name": "ops", "private": true})),
        ),
        ("direct message", with_bob(json!({"kind": "direct"}))),
        (
            "public team",
            with_bob(json!({"kind": "team", "name": "design"})),
        ),
        (
            "private team",
            with_bob(json!({"kind": "team", "name": "board", "private": true})),
        ),
        (
            "discussion",
            with_bob(json!({"kind": "discussion", "name": "launch", "parent_id": rooms[0].1})),
        ),
    ] {
        let room = c
            .call("POST", "/api/v1/rooms", &alice.token, Some(body))
            .await;
        let id = room["id"].as_str().unwrap().to_owned();
        for socket in [&mut alice.socket, &mut bob.socket] {
            let created = next_event_in(socket, &id).await;
            assert_eq!(created["type"], "room_created", "{label}: {created}");
        }
        rooms.push((label, id));
    }
    let group = c
        .call(
            "POST",
            "/api/v1/rooms",
            &alice.token,
            Some(json!({"kind": "direct", "members": [bob.id, carol.id]})),
        )
        .await;
    let group = group["id"].as_str().unwrap().to_owned();
    for socket in [&mut alice.socket, &mut bob.socket] {
        assert_eq!(next_event_in(socket, &group).await["type"], "room_created");
    }
    rooms.push(("group direct message", group));

    for (i, (label, room)) in rooms.iter().enumerate() {
        c.say(
            &mut alice,
            &mut bob,
            room,
            &format!("a{i}"),
            &format!("hello from alice in the {label}"),
        )
        .await;
        c.say(
            &mut bob,
            &mut alice,
            room,
            &format!("b{i}"),
            &format!("bob answers in the {label}"),
        )
        .await;
        let history = c
            .call(
                "GET",
                &format!("/api/v1/rooms/{room}/messages"),
                &bob.token,
                None,
            )
            .await;
        let texts: Vec<&str> = history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                format!("hello from alice in the {label}"),
                format!("bob answers in the {label}")
            ],
            "{label}"
        );
    }

    // Carol, outside the private rooms, cannot read them.
    let private = &rooms[1].1;
    let refused = request(
        c.addr,
        "GET",
        &format!("/api/v1/rooms/{private}/messages"),
        Some(&carol.token),
        None,
    )
    .await;
    assert_eq!(refused.status, 404, "{}", refused.body);

    let log = served.stop();
    for secret in [
        PASSWORD,
        &alice.token,
        &bob.token,
        &admin.token,
        "hello from alice",
    ] {
        assert!(
            !log.contains(secret),
            "the log holds a secret or a message body"
        );
    }
}

#[tokio::test]
async fn a_newcomer_chats_in_every_room_kind_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    chat_in_every_room_kind(&dir.path().join("data"), None).await;
}

#[tokio::test]
async fn a_newcomer_chats_in_every_room_kind_on_postgres() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    chat_in_every_room_kind(&dir.path().join("data"), Some(db.url())).await;
    db.drop().await;
}
