//! Following the realtime socket (`GET /api/v1/ws`): typed events, automatic reconnect
//! with capped exponential backoff, resume after every reconnect, and idempotent
//! delivery (a room event already delivered is never delivered again).
//!
//! A background task owns the socket. [`EventStream::next`] hands out what it received;
//! an [`Outbox`] sends `otr` frames on whatever connection is current. Frames' content is
//! never logged or put into an error message.

use crate::api::Api;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use futures_util::{SinkExt, StreamExt};
use sotto_api::otr::OtrErrorCode;
use sotto_api::realtime::{ClientFrame, Event, Notice, RESUME_MAX_ROOMS};
use sotto_api::rooms::RoomList;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message as Ws};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// First wait before reconnecting; it doubles on each failed attempt.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between reconnect attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Events waiting for the consumer; past that the socket is not read (and the server
/// eventually closes it as slow, after which the stream reconnects and resumes).
const QUEUE: usize = 256;
/// How long the upgrade (TCP, TLS, HTTP) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The largest seq delivered per room id. A room missing from it is one this stream did
/// not know: after a reconnect it is resumed from `0` (it was joined while away).
pub type Positions = BTreeMap<String, i64>;

/// One thing that happened, as [`EventStream::next`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The socket is open and caught up (after a resume when there was one); live events
    /// follow. Comes after every successful (re)connect.
    Connected,
    /// The socket dropped or could not be opened; the stream waits `delay`, then tries
    /// again (attempt `attempt`, from 1). Events are not lost: the next connection
    /// resumes where this one stopped.
    Reconnecting {
        /// Which attempt comes next.
        attempt: u32,
        /// How long the stream waits before it.
        delay: Duration,
        /// Why (a close code and reason, or a transport error), for people.
        reason: String,
    },
    /// A change in a room, delivered once per seq and in increasing seq per room. Message
    /// events carry the whole message: apply them by id.
    Room(Event),
    /// Someone sharing a room came online or went offline (C7).
    Presence {
        /// The user.
        user_id: String,
        /// Online now.
        online: bool,
    },
    /// The user published new keys or had them reset: check their bundle again
    /// ([`Client::contact`]).
    KeysChanged {
        /// The user (possibly oneself).
        user_id: String,
    },
    /// Members lacking a room's current epoch key; a holder seals it to them (E13).
    RoomKeyRequest {
        /// The room.
        room_id: String,
        /// The epoch, 32 lowercase hex digits.
        epoch_id: String,
        /// Who lacks it.
        user_ids: Vec<String>,
    },
    /// A room-key box was stored for this user.
    RoomKey {
        /// The room.
        room_id: String,
        /// The epoch, 32 lowercase hex digits.
        epoch_id: String,
        /// Who sealed and signed it.
        distributor_id: String,
        /// The box's bytes.
        sealed: Vec<u8>,
    },
    /// An off-the-record frame from the other person of a direct message (raw bytes of
    /// a sotto-crypto OTR frame; [`crate::Otr`] handles these).
    Otr {
        /// The direct message.
        room_id: String,
        /// The sender.
        sender_id: String,
        /// The frame's bytes.
        frame: Vec<u8>,
    },
    /// The server did not relay the `otr` frame sent with this id.
    OtrError {
        /// The id given to [`Outbox::send_otr`].
        id: String,
        /// Why.
        code: OtrErrorCode,
        /// The server's explanation.
        message: String,
        /// With `rate_limited`: seconds to wait.
        retry_after_secs: Option<u64>,
    },
}

/// The realtime events of one user, reconnecting by itself until dropped.
///
/// ```no_run
/// # async fn f(client: sotto_client::Client) -> sotto_client::Result<()> {
/// let mut events = client.events();
/// loop {
///     match events.next().await? {
///         sotto_client::ClientEvent::Room(e) => println!("room {} seq {}", e.room_id, e.seq),
///         _ => {}
///     }
/// }
/// # }
/// ```
pub struct EventStream {
    rx: mpsc::Receiver<Result<ClientEvent>>,
    outbox: Outbox,
    delivered: Arc<Mutex<Positions>>,
    failed: Option<String>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// Sends frames on the current connection of an [`EventStream`]. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Command>,
    next_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

struct Command {
    frame: ClientFrame,
    done: oneshot::Sender<Result<()>>,
}

impl Outbox {
    /// A fresh frame id for [`Outbox::send_otr`], unique on this stream.
    pub fn frame_id(&self) -> String {
        format!("c-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Sends an `otr` frame (`frame` is the encoded sotto-crypto OTR frame) for the
    /// direct message `room_id`, on the current connection. `id` (from
    /// [`Outbox::frame_id`]) comes back in a [`ClientEvent::OtrError`] if the server
    /// refuses the frame. Fails at once when there is no open connection: OTR frames
    /// are never queued for later.
    pub async fn send_otr(&self, id: &str, room_id: &str, frame: &[u8]) -> Result<()> {
        // The server closes the connection on an id it cannot echo.
        let valid = (1..=sotto_api::otr::OTR_FRAME_ID_MAX).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid {
            return Err(Error::Invalid(
                "an OTR frame id is 1-64 characters of A-Z a-z 0-9 . _ : -".into(),
            ));
        }
        let frame = ClientFrame::Otr {
            id: id.to_owned(),
            room_id: room_id.to_owned(),
            frame: base64(frame),
        };
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Command { frame, done })
            .await
            .map_err(|_| not_connected())?;
        answer.await.map_err(|_| not_connected())?
    }
}

fn not_connected() -> Error {
    Error::Transport("the realtime connection is not open".into())
}

impl Client {
    /// Follows this user's realtime events from now on. Events of rooms already
    /// joined start after their current seq; see [`Client::events_from`] to continue
    /// where an earlier stream stopped.
    pub fn events(&self) -> EventStream {
        EventStream::spawn(self.clone(), None)
    }

    /// Follows this user's realtime events from `positions` (as returned by
    /// [`EventStream::positions`] of an earlier stream): everything after them is
    /// delivered, including what happened while no stream was open. Rooms not in
    /// `positions` are caught up from their beginning.
    pub fn events_from(&self, positions: Positions) -> EventStream {
        EventStream::spawn(self.clone(), Some(positions))
    }
}

impl EventStream {
    fn spawn(client: Client, positions: Option<Positions>) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let delivered = Arc::new(Mutex::new(positions.clone().unwrap_or_default()));
        let task = Task {
            api: client.api().clone(),
            pushed: positions.clone().unwrap_or_default(),
            fresh: positions.is_none(),
            tx,
            commands: cmd_rx,
        };
        tokio::spawn(task.run());
        Self {
            rx,
            outbox: Outbox {
                tx: cmd_tx,
                next_id: Arc::new(AtomicU64::new(1)),
            },
            delivered,
            failed: None,
        }
    }

    /// The next event. An error is final (the token was refused, say): the stream has
    /// stopped and every later call returns an error too.
    pub async fn next(&mut self) -> Result<ClientEvent> {
        if let Some(why) = &self.failed {
            return Err(Error::Transport(why.clone()));
        }
        match self.rx.recv().await {
            Some(Ok(event)) => {
                if let ClientEvent::Room(e) = &event {
                    self.delivered
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(e.room_id.clone(), e.seq);
                }
                Ok(event)
            }
            Some(Err(e)) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
            None => {
                let e = Error::Transport("the event stream stopped".into());
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// What was delivered so far, per room: give it to [`Client::events_from`] to resume
    /// later without losing or repeating events.
    pub fn positions(&self) -> Positions {
        self.delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A handle that sends frames on this stream's connection.
    pub fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The background task.
struct Task {
    api: Api,
    /// The largest seq handed to the consumer's queue per room.
    pushed: Positions,
    /// No positions yet: the first connection starts from the rooms' current seqs.
    fresh: bool,
    tx: mpsc::Sender<Result<ClientEvent>>,
    commands: mpsc::Receiver<Command>,
}

/// Why a connection ended.
enum End {
    /// The consumer dropped the stream.
    Dropped,
    /// Reconnect after a backoff.
    Retry(String),
    /// Stop with this error.
    Fatal(Error),
}

impl Task {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        loop {
            let end = self.connection(&mut attempt).await;
            let reason = match end {
                End::Dropped => return,
                End::Fatal(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
                End::Retry(reason) => reason,
            };
            attempt = attempt.saturating_add(1);
            let delay = backoff(attempt);
            let note = ClientEvent::Reconnecting {
                attempt,
                delay,
                reason,
            };
            if self.tx.send(Ok(note)).await.is_err() {
                return;
            }
            // Frames asked for while disconnected fail at once.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    cmd = self.commands.recv() => match cmd {
                        Some(cmd) => { let _ = cmd.done.send(Err(not_connected())); }
                        None => return,
                    },
                    () = self.tx.closed() => return,
                }
            }
        }
    }

    /// One connection: open, resume, then relay until it ends.
    async fn connection(&mut self, attempt: &mut u32) -> End {
        let resume = match self.resume_positions().await {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let mut socket = match self.open().await {
            Ok(s) => s,
            Err(end) => return end,
        };
        let chunks: Vec<Positions> = chunked(&resume);
        for rooms in &chunks {
            if let Err(e) = send_frame(
                &mut socket,
                &ClientFrame::Resume {
                    rooms: rooms.clone(),
                },
            )
            .await
            {
                return End::Retry(e);
            }
        }
        // Room events are held until every `resumed` came, then sorted and delivered:
        // a live event can overtake the catch-up of its room.
        let mut waiting = chunks.len();
        let mut held: Vec<Event> = Vec::new();
        if waiting == 0 && self.tx.send(Ok(ClientEvent::Connected)).await.is_err() {
            return End::Dropped;
        }
        if waiting == 0 {
            *attempt = 0;
        }
        loop {
            tokio::select! {
                frame = socket.next() => {
                    let text = match frame {
                        Some(Ok(Ws::Text(text))) => text,
                        Some(Ok(Ws::Close(close))) => return End::Retry(close_reason(close.as_ref())),
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return End::Retry(format!("connection lost: {e}")),
                        None => return End::Retry("connection closed".into()),
                    };
                    let Some(parsed) = parse(text.as_str()) else { continue };
                    let out = match parsed {
                        Incoming::Room(e) if waiting > 0 => { held.push(e); continue }
                        Incoming::Room(e) => match self.admit(e) { Some(ev) => ev, None => continue },
                        // Only the `resumed`s of this connection's resume frames count.
                        Incoming::Resumed if waiting == 0 => continue,
                        Incoming::Resumed => {
                            waiting -= 1;
                            if waiting > 0 { continue }
                            held.sort_by(|a, b| (&a.room_id, a.seq).cmp(&(&b.room_id, b.seq)));
                            for e in std::mem::take(&mut held) {
                                if let Some(ev) = self.admit(e) && self.tx.send(Ok(ev)).await.is_err() {
                                    return End::Dropped;
                                }
                            }
                            *attempt = 0;
                            ClientEvent::Connected
                        }
                        Incoming::Other(ev) => ev,
                    };
                    if self.tx.send(Ok(out)).await.is_err() { return End::Dropped }
                }
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { return End::Dropped };
                    let sent = send_frame(&mut socket, &cmd.frame).await;
                    let failed = sent.is_err();
                    let _ = cmd.done.send(sent.map_err(Error::Transport));
                    if failed { return End::Retry("connection lost while sending".into()) }
                }
                () = self.tx.closed() => {
                    let _ = socket.close(None).await;
                    return End::Dropped;
                }
            }
        }
    }

    /// A room event to deliver, unless one with this seq or a later one was already.
    fn admit(&mut self, e: Event) -> Option<ClientEvent> {
        let last = self.pushed.entry(e.room_id.clone()).or_insert(0);
        if e.seq <= *last {
            return None;
        }
        *last = e.seq;
        Some(ClientEvent::Room(e))
    }

    /// What to resume from on the next connection. The room list is read before the
    /// upgrade, so nothing between the two is missed: the resume covers it.
    async fn resume_positions(&mut self) -> Result<Positions> {
        let list: RoomList = self.api.get("/api/v1/rooms").await?;
        for room in list.rooms.iter().filter(|r| r.member) {
            let from = if self.fresh { room.seq } else { 0 };
            self.pushed.entry(room.id.clone()).or_insert(from);
        }
        self.fresh = false;
        Ok(self.pushed.clone())
    }

    async fn open(&self) -> Result<Socket, End> {
        let mut req = self
            .api
            .ws_url()
            .into_client_request()
            .map_err(|e| End::Fatal(Error::Invalid(format!("realtime URL: {e}"))))?;
        let token = self.api.token().ok_or(End::Fatal(Error::NotLoggedIn))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| End::Fatal(Error::Invalid("the token is not a valid header".into())))?;
        auth.set_sensitive(true);
        req.headers_mut().insert("authorization", auth);
        let connector = Connector::Rustls(self.api.tls());
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(req, None, true, Some(connector));
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => Err(End::Retry("connecting timed out".into())),
            Ok(Ok((socket, _))) => Ok(socket),
            Ok(Err(tungstenite::Error::Http(answer))) if answer.status().as_u16() == 401 => {
                Err(End::Fatal(Error::Api {
                    status: 401,
                    code: "unauthorized".into(),
                    message: "the server refused the session for the realtime socket".into(),
                }))
            }
            Ok(Err(tungstenite::Error::Http(answer))) => Err(End::Retry(format!(
                "the server answered HTTP {} to the upgrade",
                answer.status()
            ))),
            Ok(Err(e)) => Err(End::Retry(format!("connecting: {e}"))),
        }
    }
}

/// A REST error during (re)connecting: a refused session is final, the rest is retried.
fn classify(e: Error) -> End {
    match e {
        Error::Api { status: 401, .. } => End::Fatal(e),
        other => End::Retry(other.to_string()),
    }
}

fn chunked(positions: &Positions) -> Vec<Positions> {
    let mut out = Vec::new();
    let mut current = Positions::new();
    for (room, seq) in positions {
        current.insert(room.clone(), *seq);
        if current.len() == RESUME_MAX_ROOMS {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

async fn send_frame(socket: &mut Socket, frame: &ClientFrame) -> Result<(), String> {
    let text = serde_json::to_string(frame).map_err(|e| format!("encoding a frame: {e}"))?;
    socket
        .send(Ws::text(text))
        .await
        .map_err(|e| format!("connection lost: {e}"))
}

/// Waits before reconnect attempt `attempt` (from 1): doubling from [`BACKOFF_MIN`] up to
/// [`BACKOFF_MAX`], with up to a quarter more at random so clients a server dropped all
/// at once do not all come back at once.
fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    // The clock's nanoseconds are random enough to spread clients apart.
    let spread = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() % 256);
    base + base / 4 * spread / 255
}

fn close_reason(close: Option<&CloseFrame>) -> String {
    match close {
        Some(c) => {
            let code = u16::from(c.code);
            let what = match code {
                1001 => "the server is shutting down",
                4000 => "too slow",
                4001 => "heartbeat missed",
                1008 => "the server refused a frame",
                1011 => "server error",
                _ => "closed",
            };
            format!("{what} (close code {code})")
        }
        None => "closed by the server".into(),
    }
}

enum Incoming {
    Room(Event),
    Resumed,
    Other(ClientEvent),
}

/// Reads one text frame; unknown types (the API may add some) are skipped.
fn parse(text: &str) -> Option<Incoming> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    if value.get("seq").is_some() && value.get("room_id").is_some() {
        return serde_json::from_value::<Event>(value)
            .ok()
            .map(Incoming::Room);
    }
    let notice: Notice = serde_json::from_value(value).ok()?;
    Some(match notice {
        Notice::Resumed => Incoming::Resumed,
        Notice::Presence { user_id, online } => {
            Incoming::Other(ClientEvent::Presence { user_id, online })
        }
        Notice::KeysChanged { user_id } => Incoming::Other(ClientEvent::KeysChanged { user_id }),
        Notice::RoomKeyRequest {
            room_id,
            epoch_id,
            user_ids,
        } => Incoming::Other(ClientEvent::RoomKeyRequest {
            room_id,
            epoch_id,
            user_ids,
        }),
        Notice::RoomKey {
            room_id,
            epoch_id,
            distributor_id,
            sealed,
        } => Incoming::Other(ClientEvent::RoomKey {
            room_id,
            epoch_id,
            distributor_id,
            sealed: unbase64("room key box", &sealed).ok()?,
        }),
        Notice::Otr {
            room_id,
            sender_id,
            frame,
        } => Incoming::Other(ClientEvent::Otr {
            room_id,
            sender_id,
            frame: unbase64("OTR frame", &frame).ok()?,
        }),
        Notice::OtrError {
            id,
            code,
            message,
            retry_after_secs,
        } => Incoming::Other(ClientEvent::OtrError {
            id,
            code,
            message,
            retry_after_secs,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert!(backoff(1) >= BACKOFF_MIN && backoff(1) <= BACKOFF_MIN * 5 / 4);
        assert!(backoff(3) >= BACKOFF_MIN * 4);
        assert!(backoff(40) <= BACKOFF_MAX * 5 / 4);
        assert!(backoff(40) >= BACKOFF_MAX);
    }

    #[test]
    fn resume_frames_stay_within_the_limit() {
        let many: Positions = (0..2500).map(|i| (format!("r{i}"), i)).collect();
        let chunks = chunked(&many);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= RESUME_MAX_ROOMS));
        assert_eq!(chunks.iter().map(BTreeMap::len).sum::<usize>(), 2500);
        assert!(chunked(&Positions::new()).is_empty());
    }

    #[test]
    fn unknown_frames_are_skipped() {
        assert!(parse(r#"{"type":"brand_new","x":1}"#).is_none());
        assert!(parse(r#"{"type":"brand_new","room_id":"r","seq":3}"#).is_none());
        assert!(parse("not json").is_none());
        assert!(matches!(
            parse(r#"{"type":"resumed"}"#),
            Some(Incoming::Resumed)
        ));
        assert!(matches!(
            parse(r#"{"type":"presence","user_id":"u","online":true}"#),
            Some(Incoming::Other(ClientEvent::Presence { online: true, .. }))
        ));
    }
}
