//! Crash safety of the built `sotto serve`: killed with SIGKILL twenty times in the
//! middle of a message load, on SQLite and on PostgreSQL, and restarted on the same data.
//! Senders retry every send that was not acknowledged with the same message id. After
//! each restart every acknowledged message is stored exactly once and where it was
//! acknowledged, each room's seqs run without gap or repeat, the SQLite file passes
//! `PRAGMA integrity_check`, and a realtime client that resumes from its last seq gets
//! exactly what it missed: nothing missing, nothing twice.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sotto_server::testing::{PgTestDb, Socket, connect};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

const KILLS: usize = 20;
/// Concurrent senders: two per user.
const USERS: usize = 4;
const SENDERS_PER_USER: usize = 2;
/// Sends one sender makes at most between two kills: with two senders a user stays under
/// the server's per-user burst, which restarts with the process.
const MAX_SENDS_PER_ROUND: usize = 120;
/// The load is killed once this many sends (at least) were acknowledged in the round.
const KILL_AFTER_ACKS: std::ops::Range<u64> = 5..400;
const PASSWORD: &str = "crash test password";
/// Any one step (start, a request, the realtime catch-up) fails the test past this.
const STEP: Duration = Duration::from_secs(30);
/// The whole run on one backend.
const BUDGET: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_loses_nothing_acknowledged_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        dir: dir.path().join("data"),
        database_url: None,
    };
    crash_loop(&data).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_loses_nothing_acknowledged_across_kills() {
    let Some(db) = PgTestDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = Data {
        dir: dir.path().join("data"),
        database_url: Some(db.url().to_owned()),
    };
    crash_loop(&data).await;
    db.drop().await;
}

/// Where the server keeps its data: the data directory, and PostgreSQL when named.
struct Data {
    dir: PathBuf,
    database_url: Option<String>,
}

impl Data {
    fn storage_args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_owned(), self.dir.display().to_string()];
        if let Some(url) = &self.database_url {
            args.extend(["--database-url".to_owned(), url.clone()]);
        }
        args
    }
}

async fn crash_loop(data: &Data) {
    let started = Instant::now();
    let mut rng = Rng::seeded();
    eprintln!("crash test seed {} (SOTTO_CRASH_SEED to repeat)", rng.0);

    for i in 0..USERS {
        create_user(data, &user_name(i), i == 0);
    }
    let mut server = Server::start(data).await;
    let mut tokens = Vec::new();
    for i in 0..USERS {
        let a = call(
            server.addr,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"username": user_name(i), "password": PASSWORD})),
        )
        .await
        .expect("login");
        assert_eq!(a.0, 200, "login: {}", a.1);
        tokens.push(a.1["token"].as_str().unwrap().to_owned());
    }
    let mut rooms = Vec::new();
    for name in ["crash-a", "crash-b"] {
        let a = call(
            server.addr,
            "POST",
            "/api/v1/rooms",
            Some(&tokens[0]),
            Some(json!({"kind": "channel", "name": name})),
        )
        .await
        .unwrap();
        assert_eq!(a.0, 201, "create room: {}", a.1);
        let id = a.1["id"].as_str().unwrap().to_owned();
        for token in &tokens[1..] {
            let path = format!("/api/v1/rooms/{id}/join");
            let a = call(server.addr, "POST", &path, Some(token), None)
                .await
                .unwrap();
            assert!(a.0 < 300, "join: {}", a.1);
        }
        rooms.push(id);
    }
    // Only messages take seqs from here on.
    let mut base = BTreeMap::new();
    for room in &rooms {
        base.insert(room.clone(), room_seq(server.addr, &tokens[0], room).await);
    }

    let ledger = Arc::new(Ledger::default());
    let mut senders: Vec<SenderState> = (0..USERS * SENDERS_PER_USER)
        .map(|n| SenderState {
            name: format!("s{n}"),
            token: tokens[n / SENDERS_PER_USER].clone(),
            rooms: rooms.clone(),
            sent: 0,
            pending: None,
        })
        .collect();
    let mut watcher = Watcher::new(base.clone());

    for round in 0..=KILLS {
        assert!(
            started.elapsed() < BUDGET,
            "round {round}: over the time budget"
        );
        // Whatever was in flight at the kill goes again, with the same id; then the
        // realtime client reconnects and resumes.
        for s in &mut senders {
            s.retry_pending(server.addr, &ledger).await;
        }
        watcher.catch_up(server.addr, &tokens[0]).await;
        check_storage(data, server.addr, &tokens[0], &base, &ledger).await;
        watcher
            .check_against(server.addr, &tokens[0], &base, round)
            .await;
        if round == KILLS {
            break;
        }

        // Load, killed at a random point once enough was acknowledged.
        let socket = watcher.socket.take().expect("connected");
        let live = tokio::spawn(read_live(socket, watcher.last.clone()));
        let acks = Arc::new(AtomicUsize::new(0));
        let kill_after = rng.in_range(KILL_AFTER_ACKS) as usize;
        let mut tasks = Vec::new();
        for mut s in std::mem::take(&mut senders) {
            let (ledger, acks) = (ledger.clone(), acks.clone());
            let addr = server.addr;
            tasks.push(tokio::spawn(async move {
                s.load(addr, &ledger, &acks).await;
                s
            }));
        }
        let deadline = Instant::now() + STEP;
        while acks.load(Ordering::SeqCst) < kill_after {
            assert!(Instant::now() < deadline, "round {round}: the load stalled");
            if tasks.iter().all(|t| t.is_finished()) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(rng.in_range(100..2000))).await;
        }
        server.kill();
        for t in tasks {
            senders.push(t.await.expect("sender"));
        }
        watcher.absorb(live.await.expect("reader"));
        server = Server::start(data).await;
    }
    let acked = ledger.acked.lock().unwrap().len();
    let retried = ledger.retried.load(Ordering::SeqCst);
    let stored = ledger.already_stored.load(Ordering::SeqCst);
    eprintln!(
        "{KILLS} kills, {acked} messages acknowledged, {retried} sends cut by a kill and \
         retried ({stored} of them stored before it), {:?}",
        started.elapsed()
    );
    // Every kill cut senders in the middle of their load.
    assert!(
        retried >= KILLS,
        "only {retried} sends were cut by the kills"
    );
    server.kill();
}

fn user_name(i: usize) -> String {
    format!("crash{i}")
}

/// `sotto admin create-user` on the data, before the server first starts.
fn create_user(data: &Data, username: &str, admin: bool) {
    let mut args = vec!["admin".to_owned(), "create-user".to_owned()];
    args.extend(data.storage_args());
    args.extend([
        "--username".into(),
        username.into(),
        "--password-stdin".into(),
    ]);
    if admin {
        args.push("--admin".into());
    }
    let mut child = sotto(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sotto");
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "create-user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sotto(args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sotto"));
    cmd.args(args)
        .env_remove("SOTTO_DATABASE_URL")
        .env_remove("SOTTO_DATA_DIR")
        .env_remove("SOTTO_LISTEN")
        .env("SOTTO_LOG", "info");
    cmd
}

/// A running `sotto serve` process.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts the server on a free loopback port and waits until it listens.
    async fn start(data: &Data) -> Self {
        let mut args = vec![
            "serve".to_owned(),
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
        ];
        args.extend(data.storage_args());
        let mut child = sotto(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sotto serve");
        // The log says where it listens; the rest is drained so the server never blocks
        // on a full pipe.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("listening")
                    && let Some(addr) = listen_addr(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(STEP))
            .await
            .unwrap()
            .expect("the server listens in time");
        Self { child, addr }
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill(&mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `addr=127.0.0.1:port` in a log line.
fn listen_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("addr=")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

/// An answer: status, JSON body (`Null` when empty), `Retry-After` seconds.
type Answer = (u16, Value, Option<u64>);

/// One plain HTTP/1.1 request on a fresh connection; `Err` when the server gave no whole
/// answer (it was killed).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> std::io::Result<Answer> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(STEP, exchange)
        .await
        .map_err(|_| std::io::Error::other("no answer in time"))??;
    let text = String::from_utf8_lossy(&raw);
    let cut = || std::io::Error::other("incomplete answer");
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(cut)?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1)?.parse().ok())
        .ok_or_else(cut)?;
    let mut length = None;
    let mut retry_after = None;
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "retry-after" => retry_after = value.parse().ok(),
            _ => {}
        }
    }
    if length != Some(body.len()) {
        return Err(cut());
    }
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(|_| cut())?
    };
    Ok((status, body, retry_after))
}

async fn room_seq(addr: SocketAddr, token: &str, room: &str) -> i64 {
    let a = call(
        addr,
        "GET",
        &format!("/api/v1/rooms/{room}"),
        Some(token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(a.0, 200, "room: {}", a.1);
    a.1["seq"].as_i64().unwrap()
}

/// What the senders were told: message id → (room, seq).
#[derive(Default)]
struct Ledger {
    acked: Mutex<BTreeMap<String, (String, i64)>>,
    /// Sends retried after a restart, and those of them the server had already stored.
    retried: AtomicUsize,
    already_stored: AtomicUsize,
}

impl Ledger {
    /// Records an acknowledgement (`201` new, `200` a retry of a stored one).
    fn record(&self, room: &str, msg: &Msg, status: u16, body: &Value) {
        assert!(
            status == 201 || status == 200,
            "send {}: {status} {body}",
            msg.id
        );
        assert_eq!(body["id"], msg.id.as_str(), "{body}");
        assert_eq!(body["room_id"], room, "{body}");
        assert_eq!(body["text"], msg.text.as_str(), "{body}");
        let seq = body["seq"].as_i64().expect("a seq");
        if status == 200 {
            // Ids are never reused: only a retry can meet a stored message.
            self.already_stored.fetch_add(1, Ordering::SeqCst);
        }
        let mut acked = self.acked.lock().unwrap();
        if let Some((r, s)) = acked.insert(msg.id.clone(), (room.to_owned(), seq)) {
            // The same id acknowledged twice (a client-side retry) names the same message.
            assert_eq!((r.as_str(), s), (room, seq), "{} moved", msg.id);
        }
    }
}

#[derive(Clone)]
struct Msg {
    room: String,
    id: String,
    text: String,
}

/// One sender: its own ids, one send at a time.
struct SenderState {
    name: String,
    token: String,
    rooms: Vec<String>,
    sent: usize,
    /// The send that got no answer, to retry with the same id.
    pending: Option<Msg>,
}

impl SenderState {
    fn next_message(&mut self) -> Msg {
        self.sent += 1;
        let id = format!("{}-{}", self.name, self.sent);
        Msg {
            room: self.rooms[self.sent % self.rooms.len()].clone(),
            text: format!("message {id}"),
            id,
        }
    }

    /// One attempt: `Ok(true)` acknowledged, `Ok(false)` rate limited (waited), `Err` no
    /// answer.
    async fn send(&self, addr: SocketAddr, ledger: &Ledger, msg: &Msg) -> std::io::Result<bool> {
        let path = format!("/api/v1/rooms/{}/messages", msg.room);
        let body = json!({"id": msg.id, "text": msg.text});
        let (status, body, retry_after) =
            call(addr, "POST", &path, Some(&self.token), Some(body)).await?;
        if status == 429 {
            let wait = retry_after.unwrap_or(1).clamp(1, 5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            return Ok(false);
        }
        ledger.record(&msg.room, msg, status, &body);
        Ok(true)
    }

    /// Sends until the server stops answering or the round's share is sent.
    async fn load(&mut self, addr: SocketAddr, ledger: &Ledger, acks: &AtomicUsize) {
        for _ in 0..MAX_SENDS_PER_ROUND {
            let msg = self.pending.take().unwrap_or_else(|| self.next_message());
            match self.send(addr, ledger, &msg).await {
                Ok(true) => {
                    acks.fetch_add(1, Ordering::SeqCst);
                }
                Ok(false) => self.pending = Some(msg),
                Err(_) => {
                    self.pending = Some(msg);
                    return;
                }
            }
        }
    }

    /// After a restart: the unanswered send again, until it is acknowledged.
    async fn retry_pending(&mut self, addr: SocketAddr, ledger: &Ledger) {
        let Some(msg) = self.pending.take() else {
            return;
        };
        ledger.retried.fetch_add(1, Ordering::SeqCst);
        for _ in 0..10 {
            match self.send(addr, ledger, &msg).await {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => panic!("retry of {} after the restart: {e}", msg.id),
            }
        }
        panic!("retry of {} still rate limited", msg.id);
    }
}

/// Every message of `room` in history, oldest first.
async fn history(addr: SocketAddr, token: &str, room: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/v1/rooms/{room}/messages?after={after}&limit=200");
        let a = call(addr, "GET", &path, Some(token), None).await.unwrap();
        assert_eq!(a.0, 200, "history: {}", a.1);
        let page = a.1["messages"].as_array().unwrap().clone();
        if let Some(last) = page.last() {
            after = last["seq"].as_i64().unwrap();
        }
        let more = a.1["has_more"].as_bool().unwrap();
        all.extend(page);
        if !more {
            return all;
        }
    }
}

/// Storage after a restart: every acknowledged message once, at its acknowledged seq;
/// nothing else; the seqs of each room contiguous; on SQLite, an intact file.
async fn check_storage(
    data: &Data,
    addr: SocketAddr,
    token: &str,
    base: &BTreeMap<String, i64>,
    ledger: &Ledger,
) {
    let acked = ledger.acked.lock().unwrap().clone();
    for (room, &first) in base {
        let messages = history(addr, token, room).await;
        let seqs: Vec<i64> = messages
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect();
        let latest = room_seq(addr, token, room).await;
        let expected: Vec<i64> = (first + 1..=latest).collect();
        assert_eq!(seqs, expected, "{room}: seqs with a gap or a repeat");
        let mut stored = BTreeMap::new();
        for m in &messages {
            let id = m["id"].as_str().unwrap().to_owned();
            let seq = m["seq"].as_i64().unwrap();
            assert!(
                stored.insert(id.clone(), seq).is_none(),
                "{id} stored twice"
            );
        }
        let mine: BTreeMap<String, i64> = acked
            .iter()
            .filter(|(_, (r, _))| r == room)
            .map(|(id, (_, seq))| (id.clone(), *seq))
            .collect();
        // After the retries every send was acknowledged: history is exactly the ledger.
        assert_eq!(
            stored, mine,
            "{room}: stored messages differ from the acknowledged"
        );
    }
    if data.database_url.is_none() {
        assert_eq!(sqlite_integrity(&data.dir.join("sotto.db")).await, "ok");
    }
}

/// `PRAGMA integrity_check` on the server's SQLite file, read-only beside the server.
async fn sqlite_integrity(path: &Path) -> String {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .expect("open the database file");
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("integrity_check");
    rows.join("; ")
}

/// A realtime client: what it has seen of each room, and its socket between rounds.
struct Watcher {
    /// Last seq seen per room (what it resumes from).
    last: BTreeMap<String, i64>,
    /// Every message_created seen, per room: seq → id.
    seen: BTreeMap<String, BTreeMap<i64, String>>,
    ids: BTreeSet<String>,
    socket: Option<Socket>,
}

/// What a reader collected: the events in order of arrival.
type Seen = Vec<(String, i64, String)>;

impl Watcher {
    fn new(base: BTreeMap<String, i64>) -> Self {
        Self {
            seen: base.keys().map(|r| (r.clone(), BTreeMap::new())).collect(),
            last: base,
            ids: BTreeSet::new(),
            socket: None,
        }
    }

    /// Connects, resumes from the last seen seqs, and takes in everything up to
    /// `resumed`. Nothing is sent meanwhile, so nothing may come twice.
    async fn catch_up(&mut self, addr: SocketAddr, token: &str) {
        let mut socket = connect(addr, token).await;
        let resume = json!({"type": "resume", "rooms": self.last});
        socket
            .send(Ws::text(resume.to_string()))
            .await
            .expect("send resume");
        let mut got = Vec::new();
        loop {
            let frame = tokio::time::timeout(STEP, next_json(&mut socket))
                .await
                .expect("caught up in time")
                .expect("socket open while catching up");
            if frame["type"] == "resumed" {
                break;
            }
            if let Some(e) = room_event(&frame) {
                got.push(e);
            }
        }
        self.absorb(got);
        self.socket = Some(socket);
    }

    /// Adds what arrived, failing on anything seen twice or out of order.
    fn absorb(&mut self, events: Seen) {
        for (room, seq, id) in events {
            let last = self.last.get_mut(&room).expect("a load room");
            assert!(
                seq > *last,
                "{room}: seq {seq} after {last}: doubled or out of order"
            );
            *last = seq;
            let seen = self.seen.get_mut(&room).unwrap();
            assert!(seen.insert(seq, id.clone()).is_none(), "{room}/{seq} twice");
            assert!(self.ids.insert(id.clone()), "{id} delivered twice");
        }
    }

    /// What the client has seen is exactly what history holds.
    async fn check_against(
        &self,
        addr: SocketAddr,
        token: &str,
        base: &BTreeMap<String, i64>,
        round: usize,
    ) {
        for room in base.keys() {
            let stored: BTreeMap<i64, String> = history(addr, token, room)
                .await
                .iter()
                .map(|m| {
                    (
                        m["seq"].as_i64().unwrap(),
                        m["id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                self.seen[room], stored,
                "round {round}, {room}: the realtime client missed or doubled messages"
            );
        }
    }
}

/// Reads live events until the socket dies with the server; checks their order.
async fn read_live(mut socket: Socket, mut last: BTreeMap<String, i64>) -> Seen {
    let mut got = Vec::new();
    // Bounded: the server is killed within a round, which is bounded.
    while let Ok(Some(frame)) = tokio::time::timeout(STEP * 2, next_json(&mut socket)).await {
        if let Some((room, seq, id)) = room_event(&frame) {
            let l = last.get_mut(&room).expect("a load room");
            assert!(seq > *l, "{room}: live seq {seq} after {l}");
            *l = seq;
            got.push((room, seq, id));
        }
    }
    got
}

/// The next JSON text frame, or `None` once the socket is closed or broken.
async fn next_json(socket: &mut Socket) -> Option<Value> {
    loop {
        match socket.next().await? {
            Ok(Ws::Text(text)) => return Some(serde_json::from_str(&text).expect("JSON frame")),
            Ok(Ws::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// A `message_created` event as (room, seq, message id); other frames are `None`.
fn room_event(frame: &Value) -> Option<(String, i64, String)> {
    let room = frame.get("room_id")?.as_str()?.to_owned();
    assert_eq!(
        frame["type"], "message_created",
        "only sends happen: {frame}"
    );
    Some((
        room,
        frame["seq"].as_i64()?,
        frame["message"]["id"].as_str()?.to_owned(),
    ))
}

/// A small xorshift generator: the kill points vary from run to run, and a failing run's
/// seed (printed) repeats it.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let seed = std::env::var("SOTTO_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        Self(seed.max(1))
    }

    fn in_range(&mut self, r: std::ops::Range<u64>) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        r.start + self.0 % (r.end - r.start)
    }
}
