//! `GET /api/v1/ws`: the realtime socket, and `GET /api/v1/presence`. Authentication
//! happens before the upgrade; after it the connection delivers what the user's
//! [`Feed`] lets through, presence and key changes addressed to the user, OTR frames
//! relayed to them, and answers `resume` and `otr` frames. The rules about who sees what
//! stay in the service layer.

use super::error::ApiError;
use super::extract::{Auth, SocketAuth, WS_PROTOCOL};
use crate::AppState;
use crate::bus::fanout::{Delivery, Ended, Inbox};
use crate::bus::{Event, EventKind};
use crate::service::otr::{OtrLimits, OtrLink, RelayError};
use crate::service::rate_limit::{SlotRefused, Slots};
use crate::service::realtime::{Feed, Step};
use axum::Json;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use sotto_api::{
    ClientFrame, ErrorBody, ErrorCode, Notice, OTR_FRAME_ID_MAX, PresenceList, RESUME_MAX_ROOMS,
};
use std::sync::Arc;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest frame or message a client may send other than `otr`: a `resume` of 1,000
/// rooms (ids of 32 characters, seqs of up to 19 digits) takes under 60 KiB.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Room for the JSON around an `otr` frame's base64 (type, id, room id), and some more
/// so that a frame just over the OTR limit is answered `frame_too_large` rather than
/// ending the connection.
const OTR_ENVELOPE_SLACK: usize = 64 * 1024;

/// Initial read buffer and write batching size of a socket.
const SOCKET_BUFFER: usize = 4 * 1024;

/// Close code for a client that fell behind: reconnect and fetch missed history.
pub const CLOSE_LAGGED: u16 = 4000;
/// Close code for a client that did not answer a ping in time.
pub const CLOSE_HEARTBEAT: u16 = 4001;
/// Close code for a message over the socket's limit (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Realtime connections one user may hold open (every device and tab counts).
pub const MAX_CONNECTIONS_PER_USER: usize = 32;
/// Realtime connections the server holds open in all.
pub const MAX_CONNECTIONS_TOTAL: usize = 20_000;

/// Realtime tuning, and the count of open connections.
#[derive(Clone)]
pub struct RealtimeConfig {
    /// The server pings this often; a client that has not answered the previous ping (or
    /// sent anything) by the next one is disconnected.
    pub heartbeat: Duration,
    /// Sending one frame may take at most this long before the client counts as too
    /// slow and is closed with [`CLOSE_LAGGED`].
    pub send_timeout: Duration,
    /// Limits of the OTR relay per connection.
    pub otr: OtrLimits,
    /// Open connections, capped per user and in total.
    pub connections: Arc<Slots>,
}

impl RealtimeConfig {
    /// The largest message the socket reads; anything longer ends the connection.
    pub fn max_message(&self) -> usize {
        MAX_CLIENT_MESSAGE.max(self.otr.max_frame_text() + OTR_ENVELOPE_SLACK)
    }
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            otr: OtrLimits::default(),
            connections: Arc::new(Slots::new(MAX_CONNECTIONS_PER_USER, MAX_CONNECTIONS_TOTAL)),
        }
    }
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(connect))
        .routes(routes!(presence))
}

/// Who among the people you share a room with is online now. The socket then pushes
/// each change as a `presence` notice.
#[utoipa::path(get, path = "/api/v1/presence", tag = "realtime", security(("bearer" = [])),
    responses(
        (status = 200, body = PresenceList),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn presence(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<PresenceList>, ApiError> {
    Ok(Json(
        state.services.presence.online_peers(&auth.actor()).await?,
    ))
}

/// The upgrade request, with rejections in the error shape.
struct Upgrade(WebSocketUpgrade);

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        WebSocketUpgrade::from_request_parts(parts, state)
            .await
            .map(Self)
            .map_err(|e| ApiError::new(ErrorCode::InvalidInput, e.body_text()))
    }
}

/// Open the realtime socket: room events (`Event`) and notices (`Notice`) as JSON text
/// frames; the client may send `ClientFrame`s.
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to WebSocket; the server then sends `Event` and `Notice` frames"),
        (status = 400, description = "`invalid_input`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
        (status = 429, description = "`too_many_connections`: you have as many realtime connections open as allowed", body = ErrorBody),
        (status = 503, description = "`server_busy`: the server has as many realtime connections open as it allows", body = ErrorBody),
    ))]
async fn connect(
    State(state): State<AppState>,
    auth: SocketAuth,
    Upgrade(upgrade): Upgrade,
) -> Result<Response, ApiError> {
    // Register, then load the user's rooms, then index them: whatever commits after the
    // load is either routed to the inbox (which gets every room event until indexed) or
    // in the store above the loaded seqs. The user is online from the 101 on.
    let user_id = auth.0.user.id.clone();
    // Counted before anything is registered; held until the socket ends.
    let slot = state
        .realtime
        .connections
        .take(&user_id)
        .map_err(|refused| match refused {
            SlotRefused::PerKey => ApiError::new(
                ErrorCode::TooManyConnections,
                "you have as many realtime connections open as allowed; close one first",
            ),
            SlotRefused::Total => ApiError::new(
                ErrorCode::ServerBusy,
                "the server has as many realtime connections open as it allows; retry later",
            ),
        })?;
    let inbox = state.services.fanout.register(&user_id);
    let feed = Feed::open(state.services.rooms.store().clone(), &user_id).await?;
    inbox.install(feed.rooms());
    let online = state.services.presence.connect(&user_id, feed.room_ids());
    let otr = state.services.otr.link(&user_id, state.realtime.otr);
    let max_message = state.realtime.max_message();
    Ok(upgrade
        .protocols([WS_PROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        // Most sockets sit idle: small buffers (they grow for a large message) keep the
        // memory per connection low; the library's defaults are 128 KiB each.
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .on_upgrade(move |socket| async move {
            let mut conn = Connection {
                state,
                user_id,
                feed,
                socket,
                otr,
                inbox,
            };
            let end = conn.run().await;
            // Nothing more is routed to it.
            drop(conn.inbox);
            let mut online = online;
            online.set_rooms(conn.feed.room_ids());
            if let End::Close(code, _) = &end {
                tracing::debug!(user_id = conn.user_id, code, "closing realtime connection");
            }
            let timeout = conn.state.realtime.heartbeat;
            // No more OTR frames for this connection; what was queued for it is dropped.
            drop(conn.otr);
            close(&mut conn.socket, timeout, end).await;
            drop(online);
            drop(slot);
        }))
}

/// Why a connection ends.
enum End {
    /// The client closed, or the socket failed: nothing more to send.
    Gone,
    /// The server closes with this code and reason.
    Close(u16, &'static str),
}

const TOO_SLOW: End = End::Close(CLOSE_LAGGED, "too slow: reconnect and resume");
const TOO_BIG: End = End::Close(CLOSE_TOO_BIG, "message too big: over the socket's limit");

/// Whether a read failed on a frame or message over the socket's limit. The library
/// refuses it from the frame's header, before reading or buffering its payload.
fn too_big(e: &axum::Error) -> bool {
    use std::error::Error as _;
    matches!(
        e.source()
            .and_then(|s| s.downcast_ref::<tungstenite::Error>()),
        Some(tungstenite::Error::Capacity(_))
    )
}
const FAILED: End = End::Close(1011, "internal error: reconnect and resume");

/// Queues one JSON frame within the send timeout (see [`feed_text`]).
async fn send<T: Serialize>(
    socket: &mut WebSocket,
    timeout: Duration,
    frame: &T,
) -> Result<(), End> {
    let text = serde_json::to_string(frame).map_err(|_| FAILED)?;
    feed_text(socket, timeout, text.into()).await
}

/// Queues one text frame, already JSON, within the send timeout. Frames reach the
/// client when the write buffer fills or at [`flush`], which the connection's loop
/// calls after each step: a burst of deliveries costs one write to the socket, not one
/// each.
async fn feed_text(socket: &mut WebSocket, timeout: Duration, text: Utf8Bytes) -> Result<(), End> {
    within(timeout, socket.feed(WsMessage::Text(text))).await
}

/// Writes every queued frame within the send timeout.
async fn flush(socket: &mut WebSocket, timeout: Duration) -> Result<(), End> {
    within(timeout, socket.flush()).await
}

async fn within(
    timeout: Duration,
    io: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), End> {
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => Err(TOO_SLOW),
    }
}

/// One connection: its feed, the user's socket and its end of the OTR relay.
struct Connection {
    state: AppState,
    user_id: String,
    feed: Feed,
    socket: WebSocket,
    otr: OtrLink,
    inbox: Inbox,
}

/// Just enough of a client frame to answer one that did not parse: its type and id.
/// Other fields are skipped unread (not buffered), so a long frame costs no copy.
#[derive(Deserialize)]
struct FrameHead {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
}

/// A client's OTR frame id: 1–64 characters of `A-Z a-z 0-9 . _ : -`.
fn valid_frame_id(id: &str) -> bool {
    (1..=OTR_FRAME_ID_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

const BAD_OTR_ID: End = End::Close(
    1008,
    "bad frame: an otr id is 1-64 characters of A-Z a-z 0-9 . _ : -",
);

impl Connection {
    async fn send<T: Serialize>(&mut self, frame: &T) -> Result<(), End> {
        send(&mut self.socket, self.state.realtime.send_timeout, frame).await
    }

    /// Sends `events`, then every page of the catch-up they may have started.
    async fn deliver(&mut self, mut events: Vec<Event>) -> Result<(), End> {
        loop {
            for e in &events {
                self.note_membership(e);
                self.send(e).await?;
            }
            match self.feed.more().await {
                Ok(Some(page)) => events = page,
                Ok(None) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "realtime catch-up failed");
                    return Err(FAILED);
                }
            }
        }
    }

    async fn on_delivery(&mut self, delivery: Delivery) -> Result<(), End> {
        let timeout = self.state.realtime.send_timeout;
        match delivery {
            Delivery::Room(e, text) => {
                self.note_membership(&e);
                match self.feed.step(&e).await {
                    Ok(Step::Skip) => Ok(()),
                    Ok(Step::Send) => {
                        feed_text(&mut self.socket, timeout, text).await?;
                        // A join starts a catch-up.
                        self.deliver(Vec::new()).await
                    }
                    Ok(Step::Pages(page)) => self.deliver(page).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "realtime catch-up failed");
                        Err(FAILED)
                    }
                }
            }
            Delivery::Notice(text) => feed_text(&mut self.socket, timeout, text).await,
            Delivery::KeysChanged(user_id, text) => {
                self.otr.forget_user(&user_id);
                feed_text(&mut self.socket, timeout, text).await
            }
        }
    }

    /// Who is in a room changed: the OTR relay checks the room again before its next frame.
    fn note_membership(&mut self, e: &Event) {
        if matches!(
            e.kind,
            EventKind::MemberAdded { .. } | EventKind::MemberRemoved { .. }
        ) {
            self.otr.forget_room(&e.room_id);
        }
    }

    async fn on_text(&mut self, text: &str) -> Result<(), End> {
        // Only `otr` frames may be long; parse nothing else of that size.
        let long = text.len() > MAX_CLIENT_MESSAGE;
        if long && !matches!(serde_json::from_str::<FrameHead>(text), Ok(h) if h.kind == "otr") {
            return Err(End::Close(1008, "bad frame: over 64 KiB"));
        }
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(ClientFrame::Resume { rooms }) => self.on_resume(rooms).await,
            Ok(ClientFrame::Otr { id, room_id, frame }) => self.on_otr(id, &room_id, &frame).await,
            Err(_) => match serde_json::from_str::<FrameHead>(text) {
                Ok(FrameHead {
                    kind, id: Some(id), ..
                }) if kind == "otr" => {
                    if !valid_frame_id(&id) {
                        return Err(BAD_OTR_ID);
                    }
                    self.send(&Notice::OtrError {
                        id,
                        code: sotto_api::OtrErrorCode::InvalidFrame,
                        message: "an otr frame has exactly id, room_id and frame, all strings"
                            .into(),
                        retry_after_secs: None,
                    })
                    .await
                }
                _ => Err(End::Close(
                    1008,
                    "bad frame: expected a resume or otr frame",
                )),
            },
        }
    }

    /// Relays an OTR frame, or tells the client at once why not. Nothing of it is
    /// logged or kept.
    async fn on_otr(&mut self, id: String, room_id: &str, frame: &str) -> Result<(), End> {
        if !valid_frame_id(&id) {
            return Err(BAD_OTR_ID);
        }
        match self.otr.relay(room_id, frame).await {
            Ok(()) => Ok(()),
            Err(RelayError::Refused(r)) => {
                self.send(&Notice::OtrError {
                    id,
                    code: r.code,
                    message: r.message,
                    retry_after_secs: r.retry_after_secs,
                })
                .await
            }
            Err(RelayError::Internal(e)) => {
                tracing::warn!(error = %e, "otr relay failed");
                Err(FAILED)
            }
        }
    }

    async fn on_resume(
        &mut self,
        rooms: std::collections::BTreeMap<String, i64>,
    ) -> Result<(), End> {
        if rooms.len() > RESUME_MAX_ROOMS {
            return Err(End::Close(1008, "bad frame: at most 1000 rooms per resume"));
        }
        if rooms.values().any(|&seq| seq < 0) {
            return Err(End::Close(1008, "bad frame: a seq is negative"));
        }
        for (room_id, after) in rooms {
            // A room the feed does not know is indexed before the resume reads it.
            if !self.feed.has_room(&room_id) {
                match self.feed.is_member(&room_id).await {
                    Ok(true) => self.inbox.watch(&room_id),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "realtime resume failed");
                        return Err(FAILED);
                    }
                }
            }
            let out = self.feed.resume(&room_id, after).await.map_err(|e| {
                tracing::warn!(error = %e, "realtime resume failed");
                FAILED
            })?;
            self.deliver(out).await?;
        }
        self.send(&Notice::Resumed).await
    }

    /// An OTR frame relayed to this connection.
    async fn send_otr(&mut self, text: Arc<str>) -> Result<(), End> {
        feed_text(
            &mut self.socket,
            self.state.realtime.send_timeout,
            text.as_ref().into(),
        )
        .await
    }

    /// The current presence of the user's room peers, once.
    async fn send_presence(&mut self) -> Result<(), End> {
        let online = self
            .state
            .services
            .presence
            .online_peers_of(&self.user_id)
            .await
            .map_err(|_| FAILED)?;
        for user_id in online {
            self.send(&Notice::Presence {
                user_id,
                online: true,
            })
            .await?;
        }
        Ok(())
    }

    async fn run(&mut self) -> End {
        let heartbeat = self.state.realtime.heartbeat;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        let mut answered = true;
        if let Err(end) = self.send_presence().await {
            return end;
        }
        if let Err(end) = flush(&mut self.socket, self.state.realtime.send_timeout).await {
            return end;
        }
        loop {
            let step = tokio::select! {
                incoming = self.socket.recv() => {
                    answered = true;
                    match incoming {
                        Some(Err(e)) if too_big(&e) => Err(TOO_BIG),
                        Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => Err(End::Gone),
                        Some(Ok(WsMessage::Text(text))) => self.on_text(text.as_str()).await,
                        Some(Ok(WsMessage::Binary(_))) => {
                            Err(End::Close(1008, "bad frame: frames are JSON text"))
                        }
                        Some(Ok(_)) => Ok(()),
                    }
                },
                text = self.otr.next() => self.send_otr(text).await,
                delivery = self.inbox.next() => match delivery {
                    Ok(delivery) => self.on_delivery(delivery).await,
                    Err(ended) => Err(inbox_end(ended)),
                },
                _ = ticks.tick() => {
                    if !answered {
                        Err(End::Close(CLOSE_HEARTBEAT, "no answer to ping"))
                    } else {
                        answered = false;
                        let timeout = self.state.realtime.send_timeout;
                        match tokio::time::timeout(timeout, self.socket.send(WsMessage::Ping(Default::default()))).await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(_)) => Err(End::Gone),
                            Err(_) => Err(TOO_SLOW),
                        }
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
            if let Err(end) = self.drain().await {
                return end;
            }
        }
    }

    /// Handles the deliveries already waiting (a few, so reading the client is not
    /// held up), then writes everything queued in one go.
    async fn drain(&mut self) -> Result<(), End> {
        for _ in 0..DRAIN_MAX {
            match self.inbox.try_next() {
                None => break,
                Some(Ok(delivery)) => self.on_delivery(delivery).await?,
                Some(Err(ended)) => return Err(inbox_end(ended)),
            }
        }
        flush(&mut self.socket, self.state.realtime.send_timeout).await
    }
}

fn inbox_end(ended: Ended) -> End {
    match ended {
        Ended::Closed => End::Close(1001, "server shutting down"),
        Ended::Lagged => TOO_SLOW,
    }
}

/// Most waiting deliveries handled between two looks at the client's side.
const DRAIN_MAX: usize = 64;

/// Sends the close frame, waiting at most `timeout` for a slow client to take it.
async fn close(socket: &mut WebSocket, timeout: Duration, end: End) {
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(timeout, socket.send(WsMessage::Close(Some(frame)))).await;
    }
}
