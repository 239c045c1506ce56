//! Test support shared by this crate's tests and the binary's (feature `testing`, enabled
//! only for tests): throwaway PostgreSQL databases, a client for a server listening on a
//! real socket (plain HTTP/1.1 requests and the realtime WebSocket), log capture, and
//! (`hostile`) hooks that make the server behave as a compromised one.

mod hostile;
pub use hostile::SqlValue;

use futures_util::StreamExt;
use serde_json::Value;
use sqlx::Connection;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test waits for an answer or an event before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// A throwaway PostgreSQL database, created on the server named by
/// `SOTTO_TEST_DATABASE_URL` and removed by [`PgTestDb::drop`].
pub struct PgTestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl PgTestDb {
    /// Creates the database. Without `SOTTO_TEST_DATABASE_URL` this returns `None` on a
    /// developer machine (with a note) but fails under CI, so a green CI run has always
    /// exercised PostgreSQL.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("SOTTO_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "SOTTO_TEST_DATABASE_URL is not set; CI must test PostgreSQL (scripts/test sets it)"
            );
            eprintln!("note: SOTTO_TEST_DATABASE_URL unset; PostgreSQL backend not tested");
            return None;
        };
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot connect to PostgreSQL at SOTTO_TEST_DATABASE_URL: {e}")
            });
        drop_stale(&mut conn).await;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).expect("random");
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("{PREFIX}{}_{suffix}", unix_secs());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create db");
        conn.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// URL of the fresh database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the database (closing any connection still open to it).
    pub async fn drop(self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url)
            .await
            .expect("connect");
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&mut conn)
            .await
            .expect("drop db");
        conn.close().await.ok();
    }
}

/// Test databases are named `<PREFIX><unix seconds>_<random>`.
const PREFIX: &str = "sotto_test_";

/// A test that panics never drops its database; the next run removes those older than
/// an hour (no test runs that long).
async fn drop_stale(conn: &mut sqlx::PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'sotto\\_test\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|c| c + 3600 < unix_secs()) {
            // Another run may be dropping it too; either way it goes.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *conn)
                .await;
        }
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `url` with its database path replaced by `name`, keeping any `?query`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

/// An HTTP answer: status, headers (lower-case names) and the body as JSON (`Null` when
/// empty).
#[derive(Debug)]
pub struct HttpAnswer {
    /// Status code.
    pub status: u16,
    /// Header lines as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON.
    pub body: Value,
}

/// One HTTP/1.1 request with a JSON body over a fresh connection to `addr`. The answer must
/// have a `Content-Length` (not be chunked) and a JSON or empty body.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> HttpAnswer {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let headers: Vec<(String, String)> = headers;
    assert!(
        !headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")),
        "a chunked answer: {head}"
    );
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}"))
    };
    HttpAnswer {
        status,
        headers,
        body,
    }
}

/// A client end of the realtime socket.
pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens the realtime socket at `addr` with `token`.
pub async fn connect(addr: SocketAddr, token: &str) -> Socket {
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("connected in time")
        .expect("connected");
    socket
}

/// The next JSON text frame on the socket (reading answers pings on the way).
pub async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("a frame");
        if let Ws::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON frame");
        }
    }
}

/// The next room event (a frame with a `room_id`), skipping other frames such as presence.
pub async fn next_room_event(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame.get("room_id").is_some() {
            return frame;
        }
    }
}

/// Everything logged on this thread, at every level, while it lives. Tests that read it
/// run in their own binary: log capture is per thread, and other tests in the same process
/// would race for the log callsites.
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl LogCapture {
    /// Starts capturing.
    pub fn start() -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buf.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        Self {
            buf,
            _guard: tracing::subscriber::set_default(subscriber),
        }
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        let bytes = self.buf.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A whole server on a loopback socket, over SQLite in a temp dir or a throwaway
/// PostgreSQL database, with its first admin set up. For tests of clients that talk to
/// the server as a real client would. Call [`TestServer::finish`] at the end.
pub struct TestServer {
    addr: SocketAddr,
    admin_token: String,
    _dir: tempfile::TempDir,
    pg: Option<PgTestDb>,
    bus: Arc<dyn crate::bus::Bus>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// The first admin's username and password on a [`TestServer`].
pub const TEST_ADMIN: (&str, &str) = ("admin", "correct horse admin");

impl TestServer {
    /// A server over SQLite.
    pub async fn sqlite() -> Self {
        Self::start(None).await
    }

    /// A server over a fresh PostgreSQL database (`None` as for [`PgTestDb::create`]).
    pub async fn postgres() -> Option<Self> {
        Some(Self::start(Some(PgTestDb::create().await?)).await)
    }

    /// One server per backend: SQLite, and PostgreSQL when configured.
    pub async fn every_backend() -> Vec<Self> {
        let mut all = vec![Self::sqlite().await];
        all.extend(Self::postgres().await);
        all
    }

    async fn start(pg: Option<PgTestDb>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = crate::Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            data_dir: dir.path().join("data"),
            database_url: pg.as_ref().map(|p| p.url().to_owned()),
            public_url: None,
        };
        let server = crate::Server::bind(&config).await.expect("server starts");
        let addr = server.local_addr().expect("bound");
        let bus = server.bus();
        let link = server.setup_link().expect("a setup link").to_owned();
        let setup_token = link.split_once('#').expect("token in link").1.to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let body = serde_json::json!({"setup_token": setup_token,
            "username": TEST_ADMIN.0, "password": TEST_ADMIN.1});
        let a = request(addr, "POST", "/api/v1/setup", None, Some(&body)).await;
        assert_eq!(a.status, 201, "setup: {}", a.body);
        let admin_token = a.body["token"].as_str().expect("a token").to_owned();
        Self {
            addr,
            admin_token,
            _dir: dir,
            pg,
            bus,
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its data directory (the SQLite database and the blob store live here).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// Adds `user_id` to `room_id` straight in the database, with no statement and no
    /// API call: what a compromised server, or someone with access to its database,
    /// could do. Clients must show such a member as not verified by the room and give
    /// them no key (B11).
    pub async fn add_member_behind_the_rooms_back(&self, room_id: &str, user_id: &str) {
        let member = crate::store::MemberRecord {
            user_id: user_id.to_owned(),
            username: String::new(),
            owner: false,
            joined_at: 0,
        };
        let stores = self.stores().await;
        let added = stores.rooms.add_member(room_id, &member).await;
        stores.close().await;
        assert!(added.expect("add the member").is_some(), "not added");
    }

    /// Sets a room's `encrypted` flag straight in the database, as a compromised server
    /// could. Clients go by the room's signed state, never by this flag (B12).
    pub async fn set_encrypted_behind_the_rooms_back(&self, room_id: &str, on: bool) {
        let stores = self.stores().await;
        let changed = stores.rooms.set_encrypted(room_id, on, "server").await;
        stores.close().await;
        assert!(changed.expect("set the flag").is_some(), "unchanged");
    }

    /// A second handle on the server's storage, for the hooks above and for tests that
    /// play a compromised server by changing what it stores. Close it when done.
    pub async fn stores(&self) -> crate::store::Stores {
        let url = self.pg.as_ref().map(|p| p.url().to_owned());
        crate::store::Stores::open(&self.data_dir(), url.as_deref())
            .await
            .expect("open the server's stores")
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `"sqlite"` or `"postgres"`, for assertion messages.
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// The first admin's login token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A request as the admin that must succeed; its JSON answer.
    pub async fn admin_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let a = request(
            self.addr,
            method,
            path,
            Some(&self.admin_token),
            body.as_ref(),
        )
        .await;
        assert!(
            (200..300).contains(&a.status),
            "{method} {path}: {} {}",
            a.status,
            a.body
        );
        a.body
    }

    /// Creates a user with `password` through the admin API; their user id.
    pub async fn create_user(&self, username: &str, password: &str) -> String {
        let body = serde_json::json!({"username": username, "password": password});
        let made = self
            .admin_call("POST", "/api/v1/admin/users", Some(body))
            .await;
        made["id"].as_str().expect("an id").to_owned()
    }

    /// Turns on `e2e.enabled` and `otr.enabled` (both off by default).
    pub async fn enable_encryption(&self) {
        let body = serde_json::json!({"e2e.enabled": true, "otr.enabled": true});
        self.admin_call("PATCH", "/api/v1/settings", Some(body))
            .await;
    }

    /// Stops the server (sockets get `1001`) and drops its PostgreSQL database.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(WAIT, done).await;
        }
        if let Some(pg) = self.pg.take() {
            pg.drop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_is_replaced_in_urls() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://u@h:1/test", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
