//! `GET /api/v1/ws`: the realtime socket. Authentication happens before the upgrade; after
//! it the connection forwards bus events for the rooms the user is a member of at the
//! moment each event is delivered. The rules about who sees what stay in `RoomService`.

use super::error::ApiError;
use super::extract::Auth;
use crate::AppState;
use crate::bus::{Event, EventKind, Subscription};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use sotto_api::{ErrorBody, ErrorCode};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest frame or message a client may send; the server expects none yet.
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Close code for a client that fell behind: reconnect and fetch missed history.
pub const CLOSE_LAGGED: u16 = 4000;
/// Close code for a client that did not answer a ping in time.
pub const CLOSE_HEARTBEAT: u16 = 4001;

/// Realtime tuning.
#[derive(Clone, Copy, Debug)]
pub struct RealtimeConfig {
    /// The server pings this often; a client that has not answered the previous ping (or
    /// sent anything) by the next one is disconnected. Sending one frame may also take at
    /// most this long before the client counts as too slow.
    pub heartbeat: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(30),
        }
    }
}

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(connect))
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

/// Open the realtime socket: room events as JSON text frames (see `Event`).
#[utoipa::path(get, path = "/api/v1/ws", tag = "realtime", security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching to WebSocket; the server then sends `Event` frames"),
        (status = 400, description = "`invalid_input`: not a WebSocket upgrade request", body = ErrorBody),
        (status = 401, description = "`unauthorized`", body = ErrorBody),
        (status = 403, description = "`account_deactivated`", body = ErrorBody),
    ))]
async fn connect(State(state): State<AppState>, auth: Auth, Upgrade(upgrade): Upgrade) -> Response {
    // Subscribe before answering, so nothing published after the 101 is missed.
    let subscription = state.services.bus.subscribe();
    let user_id = auth.0.user.id.clone();
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(state, user_id, subscription, socket))
}

/// Why a connection ends.
enum End {
    /// The client closed, or the socket failed: nothing more to send.
    Gone,
    /// The server closes with this code and reason.
    Close(u16, &'static str),
}

async fn run(state: AppState, user_id: String, mut events: Subscription, mut socket: WebSocket) {
    let heartbeat = state.realtime.heartbeat;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    let mut answered = true;
    let end = loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                // Any frame shows the client is alive; their content is not used yet.
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break End::Gone,
                Some(Ok(_)) => answered = true,
            },
            event = events.next() => match event {
                Ok(Some(event)) => {
                    if !deliverable(&state, &user_id, &event).await {
                        continue;
                    }
                    let Ok(text) = serde_json::to_string(&event) else { continue };
                    match tokio::time::timeout(heartbeat, socket.send(WsMessage::Text(text.into()))).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break End::Gone,
                        Err(_) => break End::Close(CLOSE_LAGGED, "too slow: reconnect and resume"),
                    }
                }
                Ok(None) => break End::Close(1001, "server shutting down"),
                Err(_) => break End::Close(CLOSE_LAGGED, "too slow: reconnect and resume"),
            },
            _ = ticks.tick() => {
                if !answered {
                    break End::Close(CLOSE_HEARTBEAT, "no answer to ping");
                }
                answered = false;
                match tokio::time::timeout(heartbeat, socket.send(WsMessage::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break End::Gone,
                    Err(_) => break End::Close(CLOSE_LAGGED, "too slow: reconnect and resume"),
                }
            }
        }
    };
    if let End::Close(code, reason) = end {
        tracing::debug!(user_id, code, "closing realtime connection");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(heartbeat, socket.send(WsMessage::Close(Some(frame)))).await;
    }
}

/// Whether `user_id` may see `event` now: members get their rooms' events, and a removed
/// member still gets the event that removed them (then nothing more from that room).
async fn deliverable(state: &AppState, user_id: &str, event: &Event) -> bool {
    if let EventKind::MemberRemoved { user_id: removed } = &event.kind
        && removed == user_id
    {
        return true;
    }
    match state
        .services
        .rooms
        .is_member(user_id, &event.room_id)
        .await
    {
        Ok(member) => member,
        Err(e) => {
            tracing::warn!(error = %e, "realtime membership check failed");
            false
        }
    }
}
