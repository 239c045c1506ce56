//! The chat session both front ends share: it follows the room live, takes input lines
//! (a message or a slash command) and turns everything into [`Output`] events.
//!
//! The follower runs in its own task and hands its updates over a channel, so an
//! update is never lost to a front end that waits on input and updates at once.

use super::room::{self, ChatMessage};
use sotto_client::api::seg;
use sotto_client::sotto_api::realtime::EventKind;
use sotto_client::sotto_api::{MemberList, Room};
use sotto_client::sotto_crypto::otr::{Body, SessionState};
use sotto_client::{Client, ClientEvent, Otr, OtrBroken, OtrEvent, Update};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// Overrides how long an OTR offer waits for an answer, in milliseconds (tests set it).
pub(crate) const OFFER_TIMEOUT_ENV: &str = "SOTTO_OTR_OFFER_TIMEOUT_MS";

/// One thing for the front end to show.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// The socket is connected (the first time).
    Ready,
    /// The socket reconnected, or is about to try.
    Connection {
        /// `connected` or `reconnecting`.
        state: &'static str,
    },
    /// A message of the room or of its OTR session.
    Message(ChatMessage),
    /// A change in the room's OTR session.
    Otr {
        /// `offering`, `offered`, `established`, `refreshing`, `refreshed`, `ended`,
        /// `broken`, `declined` or `timeout`.
        state: &'static str,
        /// Caused by the other person.
        by_peer: bool,
        /// Why, for `broken` and for a session the server's refusal ended.
        reason: Option<String>,
    },
    /// Something failed; the session goes on.
    Error {
        /// A stable code (`usage` for a bad slash command).
        code: String,
        /// For people.
        message: String,
    },
}

impl Output {
    fn otr(state: &'static str, by_peer: bool) -> Self {
        Self::Otr {
            state,
            by_peer,
            reason: None,
        }
    }

    fn error(code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    fn failed(e: &sotto_client::Error) -> Self {
        Self::error(e.code().unwrap_or("error"), e.to_string())
    }
}

/// What handling one input line decided.
pub(crate) struct Handled {
    /// Events to show.
    pub(crate) outputs: Vec<Output>,
    /// The user asked to quit.
    pub(crate) quit: bool,
}

/// One user chatting in one room.
pub(crate) struct Session {
    client: Client,
    room: Room,
    otr: Otr,
    updates: mpsc::Receiver<sotto_client::Result<Update>>,
    follower: tokio::task::JoinHandle<()>,
    names: HashMap<String, String>,
    /// Whether a user's key is verified, as last looked up (dropped when their keys
    /// change).
    verified: HashMap<String, bool>,
    ready: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        // The follower owns the socket: stopping it closes the socket and every OTR
        // session with it.
        self.follower.abort();
    }
}

impl Session {
    /// Starts following `room_id` live.
    pub(crate) async fn open(client: Client, room_id: &str) -> anyhow::Result<Self> {
        let path = format!("/api/v1/rooms/{}", seg(room_id));
        let room: Room = client.api().get(&path).await?;
        let members: MemberList = client.api().get(&format!("{path}/members")).await?;
        let names = members
            .members
            .into_iter()
            .map(|m| (m.user_id, m.username))
            .collect();
        let mut follower = client.follow();
        let otr = follower.otr();
        if let Some(ms) = offer_timeout()? {
            otr.set_offer_timeout(ms);
        }
        let (tx, updates) = mpsc::channel(64);
        let follower = tokio::spawn(async move {
            loop {
                let update = follower.next().await;
                let last = update.is_err();
                if tx.send(update).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Self {
            client,
            room,
            otr,
            updates,
            follower,
            names,
            verified: HashMap::new(),
            ready: false,
        })
    }

    /// Ends this room's OTR session, if one runs, so the other person sees it end
    /// rather than break. Called on every orderly exit.
    pub(crate) async fn close(&mut self) {
        if self
            .otr
            .state(&self.room.id)
            .is_some_and(|s| s != SessionState::Ended)
        {
            // Leaving anyway: the session dies with the socket if this fails.
            let _ = self.otr.end(&self.room.id).await;
        }
    }

    /// Whether the socket has been connected once.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    /// The room.
    pub(crate) fn room(&self) -> &Room {
        &self.room
    }

    /// The name of `user_id` (its id when unknown).
    pub(crate) fn name_of<'a>(&'a self, user_id: &'a str) -> &'a str {
        self.names.get(user_id).map_or(user_id, String::as_str)
    }

    /// The OTR session's state in this room, for a status line.
    pub(crate) fn otr_state(&self) -> &'static str {
        match self.otr.state(&self.room.id) {
            None if self.otr.has_offer(&self.room.id) => "offered",
            None => "off",
            Some(SessionState::AwaitingAccept | SessionState::AwaitingConfirm) => "starting",
            Some(SessionState::Established) => "established",
            Some(SessionState::Ended) => "ended",
        }
    }

    /// The latest `limit` messages of the room, oldest first.
    pub(crate) async fn history(&self, limit: u32) -> anyhow::Result<Vec<ChatMessage>> {
        let path = format!("/api/v1/rooms/{}/messages", seg(&self.room.id));
        let page: sotto_client::sotto_api::MessagePage = self
            .client
            .api()
            .get_query(&path, &[("limit", limit)])
            .await?;
        let mut out = Vec::new();
        for m in page.messages.iter().filter(|m| !m.deleted) {
            out.push(room::show(&self.client, m).await);
        }
        Ok(out)
    }

    /// The next update from the server; cancel-safe (nothing is lost when a `select!`
    /// drops it), so front ends wait on it and on their input at once, then hand the
    /// update to [`Session::apply`]. An error is final (the stream gave up).
    pub(crate) async fn recv(&mut self) -> anyhow::Result<Update> {
        match self.updates.recv().await {
            Some(update) => Ok(update?),
            None => anyhow::bail!("the realtime connection ended"),
        }
    }

    /// What `update` means for this room.
    pub(crate) async fn apply(&mut self, update: Update) -> Vec<Output> {
        match update {
            Update::Event(e) => self.event(e).await,
            Update::Otr(e) => self.otr_event(e).await,
        }
    }

    async fn event(&mut self, event: ClientEvent) -> Vec<Output> {
        match event {
            ClientEvent::Connected if !self.ready => {
                self.ready = true;
                vec![Output::Ready]
            }
            ClientEvent::Connected => vec![Output::Connection { state: "connected" }],
            ClientEvent::Reconnecting { .. } => vec![Output::Connection {
                state: "reconnecting",
            }],
            ClientEvent::Room(e) if e.room_id == self.room.id => match e.kind {
                EventKind::MessageCreated { message } => {
                    vec![Output::Message(room::show(&self.client, &message).await)]
                }
                EventKind::MemberAdded { member } => {
                    self.names.insert(member.user_id, member.username);
                    Vec::new()
                }
                EventKind::RoomUpdated { room } => {
                    self.room = room;
                    Vec::new()
                }
                _ => Vec::new(),
            },
            ClientEvent::KeysChanged { user_id } => {
                self.verified.remove(&user_id);
                Vec::new()
            }
            e @ (ClientEvent::RoomKeyRequest { .. } | ClientEvent::RoomKey { .. }) => {
                room::on_room_key_event(&self.client, &e).await;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    async fn otr_event(&mut self, event: OtrEvent) -> Vec<Output> {
        let here = |room_id: &str| room_id == self.room.id;
        match event {
            OtrEvent::Offered { room_id, .. } if here(&room_id) => {
                vec![Output::otr("offered", true)]
            }
            OtrEvent::Established { room_id } if here(&room_id) => {
                vec![Output::otr("established", false)]
            }
            OtrEvent::RefreshStarted { room_id } if here(&room_id) => {
                vec![Output::otr("refreshing", true)]
            }
            OtrEvent::Refreshed { room_id } if here(&room_id) => {
                vec![Output::otr("refreshed", false)]
            }
            OtrEvent::Declined { room_id } if here(&room_id) => {
                vec![Output::otr("declined", true)]
            }
            OtrEvent::Ended { room_id, by_peer } if here(&room_id) => {
                vec![Output::otr("ended", by_peer)]
            }
            OtrEvent::Timeout { room_id } if here(&room_id) => {
                vec![Output::otr("timeout", false)]
            }
            OtrEvent::Broken { room_id, reason } if here(&room_id) => {
                let reason = match reason {
                    OtrBroken::PeerOffline => "peer_offline".to_owned(),
                    OtrBroken::Disconnected => "disconnected".to_owned(),
                    OtrBroken::Frame(e) => e.to_string(),
                };
                vec![Output::Otr {
                    state: "broken",
                    by_peer: false,
                    reason: Some(reason),
                }]
            }
            OtrEvent::Refused {
                room_id,
                code,
                message,
                ended,
                ..
            } if here(&room_id) => {
                let code = serde_json::to_value(code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "refused".to_owned());
                let mut out = vec![Output::error(&code, message)];
                if ended {
                    out.push(Output::Otr {
                        state: "ended",
                        by_peer: false,
                        reason: Some(code),
                    });
                }
                out
            }
            OtrEvent::Message(m) if here(&m.room_id) => vec![self.otr_message(m).await],
            _ => Vec::new(),
        }
    }

    async fn otr_message(&mut self, m: sotto_client::OtrMessage) -> Output {
        let text = match m.body {
            Body::Text(t) => t,
            Body::File { name, bytes, .. } => {
                format!("[file {name}, {} bytes, not saved]", bytes.len())
            }
        };
        // One's own messages need no check; the other person's key is the pinned one
        // the session was set up with.
        let verified = m.outgoing || self.is_verified(&m.sender_id).await;
        Output::Message(ChatMessage {
            id: m.id.to_string(),
            sender_id: m.sender_id,
            text,
            encrypted: true,
            otr: true,
            verified,
            time: now_ms(),
            problem: None,
            attachments: Vec::new(),
        })
    }

    /// Whether `user_id`'s pinned key is verified (false when it cannot be checked).
    async fn is_verified(&mut self, user_id: &str) -> bool {
        if let Some(v) = self.verified.get(user_id) {
            return *v;
        }
        let Ok(id) = sotto_client::sotto_crypto::UserId::new(user_id.to_owned()) else {
            return false;
        };
        let Ok(contact) = self.client.contact(&id).await else {
            return false;
        };
        self.verified.insert(user_id.to_owned(), contact.verified);
        contact.verified
    }

    /// Handles one input line: a message, or a slash command.
    pub(crate) async fn input(&mut self, line: &str) -> Handled {
        let line = line.trim_end_matches(['\r', '\n']);
        let mut handled = Handled {
            outputs: Vec::new(),
            quit: false,
        };
        let command: Vec<&str> = line.split_whitespace().collect();
        let out = &mut handled.outputs;
        let room_id = self.room.id.clone();
        if line.trim().is_empty() {
            return handled;
        }
        // `//text` sends `/text`.
        if let Some(text) = line.strip_prefix("//") {
            let text = format!("/{text}");
            self.send(&text, out).await;
            return handled;
        }
        if !line.starts_with('/') {
            self.send(line, out).await;
            return handled;
        }
        let result = match command.as_slice() {
            ["/quit"] => {
                handled.quit = true;
                return handled;
            }
            ["/otr", "start"] => self
                .otr
                .start(&room_id)
                .await
                .map(|()| Some(Output::otr("offering", false))),
            ["/otr", "accept"] => self.otr.accept(&room_id).await.map(|()| None),
            ["/otr", "decline"] => self
                .otr
                .decline(&room_id)
                .await
                .map(|()| Some(Output::otr("declined", false))),
            ["/otr", "refresh"] => self
                .otr
                .refresh(&room_id)
                .await
                .map(|()| Some(Output::otr("refreshing", false))),
            ["/otr", "end"] => self.otr.end(&room_id).await.map(|()| None),
            _ => {
                out.push(Output::error(
                    "usage",
                    "commands: /otr start|accept|decline|refresh|end, /quit (start a message with // to send a slash)",
                ));
                return handled;
            }
        };
        match result {
            Ok(Some(o)) => out.push(o),
            Ok(None) => {}
            Err(e) => out.push(Output::failed(&e)),
        }
        handled
    }

    /// Sends `text` off the record when a session is established here, into the room
    /// when none runs, and not at all while one is being set up (the user means it to
    /// be off the record; the room would keep it).
    async fn send(&mut self, text: &str, out: &mut Vec<Output>) {
        match self.otr.state(&self.room.id) {
            Some(SessionState::Established) => {
                match self.otr.send_text(&self.room.id, text).await {
                    Ok(m) => out.push(self.otr_message(m).await),
                    Err(e) => out.push(Output::failed(&e)),
                }
            }
            Some(SessionState::AwaitingAccept | SessionState::AwaitingConfirm) => {
                out.push(Output::error(
                    "otr_pending",
                    "the off-the-record session is being set up: not sent",
                ));
            }
            None | Some(SessionState::Ended) => {
                if let Err(e) = room::send(&self.client, &self.room.id, text).await {
                    out.push(Output::failed(&e));
                }
            }
        }
    }
}

/// The offer timeout from [`OFFER_TIMEOUT_ENV`], if set.
fn offer_timeout() -> anyhow::Result<Option<Duration>> {
    match std::env::var(OFFER_TIMEOUT_ENV) {
        Ok(v) => {
            let ms: u64 = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("{OFFER_TIMEOUT_ENV} must be a number of milliseconds")
            })?;
            Ok(Some(Duration::from_millis(ms.max(1))))
        }
        Err(_) => Ok(None),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
