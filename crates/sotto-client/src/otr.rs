//! Off-the-record conversations (O2–O9) over the realtime socket.
//!
//! A [`Follower`] is an [`EventStream`] with the OTR sessions of this user on top: it
//! consumes the raw `otr` frames, runs them through sotto-crypto's [`OtrSession`], and
//! yields [`Update::Otr`] events (offered, established, messages, refreshed, ended,
//! declined, timeout, broken, refused) among the ordinary [`Update::Event`]s. An [`Otr`]
//! handle (cheap to clone, usable from another task) starts, accepts, declines,
//! refreshes and ends sessions and sends messages.
//!
//! OTR messages live only in this process's memory (O6): nothing is written to the
//! profile, logged, or sent anywhere but to the peer's live connections. Their ids are
//! [`OtrMessageId`]s (`otr/<session>/<n>`), which are not server message ids: the `/`
//! is outside the server's id alphabet, and [`refuse_otr_message_id`] lets every edit or
//! resend path refuse them (O8). Files during OTR go through the relay inside the
//! session ([`Otr::send_file`], at most [`MAX_OTR_FILE_BYTES`]), never to the files
//! endpoint (O9).
//!
//! ```no_run
//! # async fn f(client: sotto_client::Client, dm: &str) -> sotto_client::Result<()> {
//! use sotto_client::{OtrEvent, Update};
//! let mut follower = client.follow();
//! let otr = follower.otr(); // usable from another task
//! otr.start(dm).await?; // checks O2, then sends the offer
//! loop {
//!     match follower.next().await? {
//!         Update::Otr(OtrEvent::Established { room_id }) => {
//!             otr.send_text(&room_id, "hello").await?;
//!         }
//!         Update::Otr(OtrEvent::Message(m)) => { /* show m.body, marked off the record */ }
//!         Update::Otr(OtrEvent::Ended { .. } | OtrEvent::Timeout { .. }) => break,
//!         Update::Otr(_) | Update::Event(_) => {}
//!     }
//! }
//! # Ok(()) }
//! ```

use crate::api::seg;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::events::{ClientEvent, EventStream, Outbox, Positions};
use sotto_api::otr::OtrErrorCode;
use sotto_api::realtime::PresenceList;
use sotto_api::rooms::{MemberList, Room, RoomKind};
use sotto_crypto::otr::{Body, Event as SessionEvent, Frame, SessionState};
use sotto_crypto::{OtrError, OtrSession, OtrSessionId, PublicBundle, RoomId, UserId, os_rng};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long an offer (or a refresh, or an accept waiting for its confirmation) may go
/// unanswered before the session ends as [`OtrEvent::Timeout`]. See
/// [`Otr::set_offer_timeout`].
pub const OTR_OFFER_TIMEOUT: Duration = Duration::from_secs(30);

/// How many sent frame ids are remembered for attributing refusals.
const SENT_REMEMBERED: usize = 256;

/// How many session ids of offers (sent or received) are remembered, so an old offer
/// replayed is refused rather than shown as a new invitation.
const OFFERS_REMEMBERED: usize = 1024;

/// Largest file content [`Otr::send_file`] takes (the OTR body limit minus the room for
/// the longest name and media type and the body's framing).
pub const MAX_OTR_FILE_BYTES: usize = sotto_crypto::otr::MAX_BODY_LEN - 2 * 255 - 8;

/// Why an OTR call was refused ([`Error::Otr`]); `as_str` is a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtrCode {
    /// The room is not a direct message (O2).
    NotDirect,
    /// The direct message is not between exactly this user and one other person (O2).
    NotTwoPeople,
    /// This user's encryption keys are not unlocked on this device (O2).
    KeysLocked,
    /// The other person has no encryption keys (O2).
    PeerNoKeys,
    /// The other person is not online (O2).
    PeerOffline,
    /// An OTR session in this room is already running or being set up.
    AlreadyActive,
    /// No OTR session runs in this room.
    NoSession,
    /// No invitation waits in this room.
    NoOffer,
    /// The session's handshake has not completed; nothing can be sent yet.
    NotEstablished,
    /// The session failed a protocol check (the message says which).
    Protocol,
    /// The id is an OTR message's: it can never be edited, resent or deleted outside
    /// OTR (O8).
    OtrMessage,
    /// The file is larger than an OTR message can carry (O9).
    FileTooLarge,
}

impl OtrCode {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotDirect => "not_direct",
            Self::NotTwoPeople => "not_two_people",
            Self::KeysLocked => "keys_locked",
            Self::PeerNoKeys => "peer_no_keys",
            Self::PeerOffline => "peer_offline",
            Self::AlreadyActive => "already_active",
            Self::NoSession => "no_session",
            Self::NoOffer => "no_offer",
            Self::NotEstablished => "not_established",
            Self::Protocol => "protocol",
            Self::OtrMessage => "otr_message",
            Self::FileTooLarge => "file_too_large",
        }
    }
}

fn otr_error(code: OtrCode, message: impl Into<String>) -> Error {
    Error::Otr {
        code,
        message: message.into(),
    }
}

/// The id of an OTR message: local to this process, never a server message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OtrMessageId {
    session: OtrSessionId,
    number: u64,
}

impl fmt::Display for OtrMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "otr/{}/{}", self.session.to_hex(), self.number)
    }
}

/// Whether `id` is the text form of an [`OtrMessageId`].
pub fn is_otr_message_id(id: &str) -> bool {
    id.starts_with("otr/")
}

/// Refuses an OTR message id given to an edit, resend or delete of room messages (O8):
/// every such path calls this first.
pub fn refuse_otr_message_id(id: &str) -> Result<()> {
    if is_otr_message_id(id) {
        return Err(otr_error(
            OtrCode::OtrMessage,
            "an off-the-record message can never be edited, resent or deleted outside off the record",
        ));
    }
    Ok(())
}

/// One OTR message, sent or received; held in memory only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtrMessage {
    /// Its local id (not a server message id).
    pub id: OtrMessageId,
    /// The direct message.
    pub room_id: String,
    /// Who wrote it.
    pub sender_id: String,
    /// Sent by this user.
    pub outgoing: bool,
    /// Text or a small file (its `Debug` shows only the size).
    pub body: Body,
}

/// Why a session is broken (O7): messages may be lost until it is refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrBroken {
    /// The other person went offline (their session may be gone).
    PeerOffline,
    /// This client's connection dropped; frames in flight are lost.
    Disconnected,
    /// A frame from the other person failed a check (an unknown session after they
    /// lost theirs, a failed decryption, …). The session is unchanged.
    Frame(OtrError),
}

/// A change in an OTR conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtrEvent {
    /// The other person invites this user (accept with [`Otr::accept`] or decline with
    /// [`Otr::decline`]).
    Offered {
        /// The direct message.
        room_id: String,
        /// Who invites.
        peer_id: String,
    },
    /// The handshake completed: messages flow both ways.
    Established {
        /// The direct message.
        room_id: String,
    },
    /// The other person asked for fresh keys; this side answered.
    RefreshStarted {
        /// The direct message.
        room_id: String,
    },
    /// Fresh keys are in place.
    Refreshed {
        /// The direct message.
        room_id: String,
    },
    /// A message arrived.
    Message(OtrMessage),
    /// The other person declined this user's offer.
    Declined {
        /// The direct message.
        room_id: String,
    },
    /// The session ended (its messages are wiped); later messages in the room follow
    /// its normal settings.
    Ended {
        /// The direct message.
        room_id: String,
        /// Ended by the other person (else by this side).
        by_peer: bool,
    },
    /// Nobody answered the offer (or the handshake did not finish) in time; the session
    /// ended.
    Timeout {
        /// The direct message.
        room_id: String,
    },
    /// The session may be losing messages; [`Otr::refresh`] re-establishes it.
    Broken {
        /// The direct message.
        room_id: String,
        /// Why.
        reason: OtrBroken,
    },
    /// The server did not relay a frame (`otr_disabled`, `peer_offline`, …). A refused
    /// handshake frame ends the session (`ended`); a refused message was not delivered.
    Refused {
        /// The direct message.
        room_id: String,
        /// The server's code.
        code: OtrErrorCode,
        /// The server's explanation.
        message: String,
        /// The message that was not delivered, if it was one.
        message_id: Option<OtrMessageId>,
        /// The session ended because of it.
        ended: bool,
    },
}

/// What a [`Follower`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A realtime event (room events, presence, keys, room keys, connection markers).
    /// OTR frames are not among them: they become [`Update::Otr`].
    Event(ClientEvent),
    /// A change in an OTR conversation.
    Otr(OtrEvent),
}

/// Realtime events with OTR sessions on top. Drop it to close the socket (and with it
/// every OTR session: they exist only while connected).
pub struct Follower {
    events: EventStream,
    otr: Otr,
}

impl fmt::Debug for Follower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

impl Client {
    /// Follows this user's realtime events from now on, with OTR.
    pub fn follow(&self) -> Follower {
        Follower::new(self, self.events())
    }

    /// Follows from `positions` (see [`Client::events_from`]), with OTR.
    pub fn follow_from(&self, positions: Positions) -> Follower {
        Follower::new(self, self.events_from(positions))
    }
}

impl Follower {
    /// OTR on top of `events`.
    pub fn new(client: &Client, events: EventStream) -> Self {
        let otr = Otr {
            shared: Arc::new(Shared {
                client: client.clone(),
                outbox: events.outbox(),
                sessions: Mutex::new(Sessions {
                    by_room: HashMap::new(),
                    offers: HashMap::new(),
                    offered: VecDeque::new(),
                    frames: VecDeque::new(),
                    queued: VecDeque::new(),
                    timeout: OTR_OFFER_TIMEOUT,
                }),
                wake: Notify::new(),
            }),
        };
        Self { events, otr }
    }

    /// The handle that runs OTR sessions.
    pub fn otr(&self) -> Otr {
        self.otr.clone()
    }

    /// See [`EventStream::positions`].
    pub fn positions(&self) -> Positions {
        self.events.positions()
    }

    /// See [`EventStream::outbox`].
    pub fn outbox(&self) -> Outbox {
        self.events.outbox()
    }

    /// The next update. An error is final, as for [`EventStream::next`].
    pub async fn next(&mut self) -> Result<Update> {
        loop {
            if let Some(e) = self.otr.lock().queued.pop_front() {
                return Ok(Update::Otr(e));
            }
            let deadline = self.otr.lock().next_deadline();
            let shared = self.otr.shared.clone();
            let event = tokio::select! {
                event = self.events.next() => event?,
                () = sleep_until(deadline) => {
                    self.otr.expire().await;
                    continue;
                }
                () = shared.wake.notified() => continue,
            };
            if let Some(update) = self.otr.take(event).await {
                return Ok(update);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs this user's OTR sessions (one per direct message). Cheap to clone.
#[derive(Clone)]
pub struct Otr {
    shared: Arc<Shared>,
}

impl fmt::Debug for Otr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otr").finish_non_exhaustive()
    }
}

struct Shared {
    client: Client,
    outbox: Outbox,
    sessions: Mutex<Sessions>,
    /// Wakes [`Follower::next`] when a deadline or a queued event appears.
    wake: Notify,
}

struct Sessions {
    by_room: HashMap<String, Conversation>,
    /// Invitations waiting for an answer, by room.
    offers: HashMap<String, Invitation>,
    /// Session ids of every offer sent or received lately: a second offer under one is
    /// a replay (§9.5).
    offered: VecDeque<OtrSessionId>,
    /// What the latest sent frame ids were, to attribute the server's refusals (which
    /// come at once, so only the latest [`SENT_REMEMBERED`] are kept).
    frames: VecDeque<(String, Sent)>,
    /// Events made by this side's own calls, delivered before the next socket event.
    queued: VecDeque<OtrEvent>,
    timeout: Duration,
}

struct Conversation {
    session: OtrSession,
    /// Until when the current handshake may wait.
    deadline: Option<Instant>,
    /// Messages of this session, sent and received (O6: memory only).
    messages: Vec<OtrMessage>,
    numbers: u64,
}

struct Invitation {
    frame: Frame,
    peer_id: String,
}

#[derive(Clone, Copy)]
struct Sent {
    session: OtrSessionId,
    message: Option<OtrMessageId>,
}

impl Sessions {
    /// Remembers an offer's session id; false if it was offered before.
    fn first_offer(&mut self, session: OtrSessionId) -> bool {
        if self.offered.contains(&session) {
            return false;
        }
        if self.offered.len() == OFFERS_REMEMBERED {
            self.offered.pop_front();
        }
        self.offered.push_back(session);
        true
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.by_room.values().filter_map(|c| c.deadline).min()
    }

    fn conversation(&mut self, room_id: &str) -> Result<&mut Conversation> {
        self.by_room.get_mut(room_id).ok_or_else(|| {
            otr_error(
                OtrCode::NoSession,
                "no off-the-record session runs in this room",
            )
        })
    }

    fn push_message(
        &mut self,
        room_id: &str,
        sender: &str,
        outgoing: bool,
        body: Body,
    ) -> Option<OtrMessage> {
        let conv = self.by_room.get_mut(room_id)?;
        conv.numbers += 1;
        let message = OtrMessage {
            id: OtrMessageId {
                session: conv.session.id(),
                number: conv.numbers,
            },
            room_id: room_id.to_owned(),
            sender_id: sender.to_owned(),
            outgoing,
            body,
        };
        conv.messages.push(message.clone());
        Some(message)
    }
}

/// The checked parties of a direct message.
struct Parties {
    room: RoomId,
    peer: PublicBundle,
}

impl Otr {
    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Sets how long offers and handshakes may wait (default [`OTR_OFFER_TIMEOUT`]).
    pub fn set_offer_timeout(&self, timeout: Duration) {
        self.lock().timeout = timeout;
    }

    /// Where the session in `room_id` stands, if there is one.
    pub fn state(&self, room_id: &str) -> Option<SessionState> {
        self.lock().by_room.get(room_id).map(|c| c.session.state())
    }

    /// Whether an invitation from the other person waits in `room_id`.
    pub fn has_offer(&self, room_id: &str) -> bool {
        self.lock().offers.contains_key(room_id)
    }

    /// The messages of the running session in `room_id`, oldest first (memory only;
    /// gone when the session ends).
    pub fn messages(&self, room_id: &str) -> Vec<OtrMessage> {
        self.lock()
            .by_room
            .get(room_id)
            .map(|c| c.messages.clone())
            .unwrap_or_default()
    }

    /// Checks the preconditions of O2 (a direct message with exactly one other person,
    /// both with keys, this user's unlocked, the other person's matching their pin, the
    /// other person online) and returns the other person's checked bundle.
    async fn parties(&self, room_id: &str) -> Result<Parties> {
        let client = self.client();
        let path = format!("/api/v1/rooms/{}", seg(room_id));
        let room: Room = client.api().get(&path).await?;
        if room.kind != RoomKind::Direct {
            return Err(otr_error(
                OtrCode::NotDirect,
                "off the record works only in a direct message",
            ));
        }
        let members: MemberList = client.api().get(&format!("{path}/members")).await?;
        let me = client.user_id().as_str();
        let others: Vec<&str> = members
            .members
            .iter()
            .map(|m| m.user_id.as_str())
            .filter(|id| *id != me)
            .collect();
        let [peer] = others.as_slice() else {
            return Err(otr_error(
                OtrCode::NotTwoPeople,
                "off the record needs a direct message with exactly one other person",
            ));
        };
        if members.members.len() != 2 {
            return Err(otr_error(
                OtrCode::NotTwoPeople,
                "off the record needs a direct message with exactly one other person",
            ));
        }
        let peer = UserId::new((*peer).to_owned())
            .map_err(|_| Error::protocol("the server gave an invalid user id"))?;
        if !client.is_unlocked() {
            return Err(otr_error(
                OtrCode::KeysLocked,
                "your encryption keys are not unlocked here: run `sotto e2e unlock` (or `sotto e2e setup`)",
            ));
        }
        let contact = match client.contact(&peer).await {
            Ok(c) => c,
            Err(Error::Api { status: 404, .. }) => {
                return Err(otr_error(
                    OtrCode::PeerNoKeys,
                    format!("{peer} has not set up encryption keys"),
                ));
            }
            Err(e) => return Err(e),
        };
        let presence: PresenceList = client.api().get("/api/v1/presence").await?;
        if !presence.online.iter().any(|u| u == peer.as_str()) {
            return Err(otr_error(
                OtrCode::PeerOffline,
                format!("{peer} is not online"),
            ));
        }
        let room = RoomId::new(room_id.to_owned())
            .map_err(|_| Error::Invalid("not a valid room id".into()))?;
        Ok(Parties {
            room,
            peer: contact.bundle,
        })
    }

    /// Starts OTR in the direct message `room_id` (O3): checks the preconditions, then
    /// sends an offer. The answer comes as [`OtrEvent::Established`],
    /// [`OtrEvent::Declined`], [`OtrEvent::Timeout`] or [`OtrEvent::Refused`] (for
    /// example `otr_disabled`).
    pub async fn start(&self, room_id: &str) -> Result<()> {
        self.ensure_idle(room_id)?;
        let parties = self.parties(room_id).await?;
        let keys = self.client().keys()?;
        let (session, frame) = OtrSession::offer(
            &keys,
            self.client().user_id(),
            &parties.peer,
            &parties.room,
            &mut os_rng(),
        )
        .map_err(protocol)?;
        self.lock().first_offer(session.id());
        self.install_and_send(room_id, session, &frame, true).await
    }

    /// Keeps `session` as the room's conversation, with the handshake's deadline, and
    /// sends its first `frame`; a send that fails forgets the session again. With
    /// `only_if_idle`, a session that became active meanwhile is left alone.
    async fn install_and_send(
        &self,
        room_id: &str,
        session: OtrSession,
        frame: &Frame,
        only_if_idle: bool,
    ) -> Result<()> {
        {
            let mut s = self.lock();
            if only_if_idle
                && s.by_room
                    .get(room_id)
                    .is_some_and(|c| c.session.state() != SessionState::Ended)
            {
                return Err(already_active());
            }
            let deadline = Some(Instant::now() + s.timeout);
            s.by_room.insert(
                room_id.to_owned(),
                Conversation {
                    session,
                    deadline,
                    messages: Vec::new(),
                    numbers: 0,
                },
            );
        }
        self.shared.wake.notify_one();
        if let Err(e) = self.send(room_id, frame, None).await {
            self.lock().by_room.remove(room_id);
            return Err(e);
        }
        Ok(())
    }

    fn ensure_idle(&self, room_id: &str) -> Result<()> {
        match self.lock().by_room.get(room_id) {
            Some(c) if c.session.state() != SessionState::Ended => Err(already_active()),
            _ => Ok(()),
        }
    }

    /// Accepts the invitation waiting in `room_id` (after the same checks as
    /// [`Otr::start`]); [`OtrEvent::Established`] follows.
    pub async fn accept(&self, room_id: &str) -> Result<()> {
        let Some(invitation) = self.lock().offers.remove(room_id) else {
            return Err(no_offer());
        };
        let parties = match self.parties(room_id).await {
            Ok(p) => p,
            Err(e) => {
                // The invitation stays: the user may fix the cause (unlock keys) and retry.
                self.lock().offers.insert(room_id.to_owned(), invitation);
                return Err(e);
            }
        };
        self.answer(room_id, &invitation.frame, &parties).await
    }

    /// Answers an offer or a refresh as responder and sends the accept.
    async fn answer(&self, room_id: &str, offer: &Frame, parties: &Parties) -> Result<()> {
        let keys = self.client().keys()?;
        let (session, reply) = OtrSession::accept(
            offer,
            &keys,
            self.client().user_id(),
            &parties.peer,
            &parties.room,
            &mut os_rng(),
        )
        .map_err(protocol)?;
        // Answering replaces any session in the room (the peer restarted and offered anew).
        self.install_and_send(room_id, session, &reply, false).await
    }

    /// Declines the invitation waiting in `room_id`.
    pub async fn decline(&self, room_id: &str) -> Result<()> {
        let Some(invitation) = self.lock().offers.remove(room_id) else {
            return Err(no_offer());
        };
        let frame = OtrSession::decline(&invitation.frame).map_err(protocol)?;
        self.shared
            .outbox
            .send_otr(&self.shared.outbox.frame_id(), room_id, &frame.encode())
            .await
    }

    /// Sends a text message in the session of `room_id`; it is returned for display.
    pub async fn send_text(&self, room_id: &str, text: &str) -> Result<OtrMessage> {
        self.send_body(room_id, Body::Text(text.to_owned())).await
    }

    /// Sends a small file inside the session of `room_id`, through the live connection
    /// only (O9): at most [`MAX_OTR_FILE_BYTES`], and never through the files endpoint.
    pub async fn send_file(
        &self,
        room_id: &str,
        name: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<OtrMessage> {
        if bytes.len() > MAX_OTR_FILE_BYTES {
            return Err(otr_error(
                OtrCode::FileTooLarge,
                format!(
                    "a file sent off the record is at most {} bytes; this one is not sent",
                    MAX_OTR_FILE_BYTES
                ),
            ));
        }
        self.send_body(
            room_id,
            Body::File {
                name: name.to_owned(),
                media_type: media_type.to_owned(),
                bytes: bytes.to_vec(),
            },
        )
        .await
    }

    async fn send_body(&self, room_id: &str, body: Body) -> Result<OtrMessage> {
        let (frame, message) = {
            let mut s = self.lock();
            let conv = s.conversation(room_id)?;
            let frame = conv.session.send(&body).map_err(|e| match e {
                OtrError::NotEstablished => otr_error(
                    OtrCode::NotEstablished,
                    "the off-the-record session is not established yet",
                ),
                OtrError::Ended => {
                    otr_error(OtrCode::NoSession, "the off-the-record session has ended")
                }
                OtrError::BodyTooLarge => otr_error(
                    OtrCode::FileTooLarge,
                    "too large for an off-the-record message",
                ),
                other => protocol(other),
            })?;
            let me = self.client().user_id().as_str().to_owned();
            let message = s
                .push_message(room_id, &me, true, body)
                .ok_or_else(|| otr_error(OtrCode::NoSession, "the session is gone"))?;
            (frame, message)
        };
        self.send(room_id, &frame, Some(message.id)).await?;
        Ok(message)
    }

    /// Refreshes the keys of the session in `room_id` (O7): also how a session is
    /// re-established after either side lost it. [`OtrEvent::Refreshed`] follows (or
    /// [`OtrEvent::Timeout`]).
    pub async fn refresh(&self, room_id: &str) -> Result<()> {
        let frame = {
            let mut s = self.lock();
            let timeout = s.timeout;
            let conv = s.conversation(room_id)?;
            let frame = conv.session.refresh(&mut os_rng()).map_err(|e| match e {
                OtrError::NotEstablished => otr_error(
                    OtrCode::NotEstablished,
                    "the off-the-record session is not established yet",
                ),
                other => protocol(other),
            })?;
            conv.deadline = Some(Instant::now() + timeout);
            frame
        };
        self.shared.wake.notify_one();
        self.send(room_id, &frame, None).await
    }

    /// Ends the session in `room_id` for both sides (O8): its keys and messages are wiped
    /// here at once, then the other side is told. [`OtrEvent::Ended`] follows.
    pub async fn end(&self, room_id: &str) -> Result<()> {
        let frame = {
            let mut s = self.lock();
            let mut conv = s.by_room.remove(room_id).ok_or_else(|| {
                otr_error(
                    OtrCode::NoSession,
                    "no off-the-record session runs in this room",
                )
            })?;
            s.queued.push_back(OtrEvent::Ended {
                room_id: room_id.to_owned(),
                by_peer: false,
            });
            conv.session.end()
        };
        self.shared.wake.notify_one();
        // The session is gone here whatever happens to the frame.
        self.send(room_id, &frame, None).await
    }

    /// Sends one frame and remembers its id for the server's refusals.
    async fn send(
        &self,
        room_id: &str,
        frame: &Frame,
        message: Option<OtrMessageId>,
    ) -> Result<()> {
        let id = self.shared.outbox.frame_id();
        {
            let mut s = self.lock();
            if s.frames.len() == SENT_REMEMBERED {
                s.frames.pop_front();
            }
            let sent = Sent {
                session: frame.session(),
                message,
            };
            s.frames.push_back((id.clone(), sent));
        }
        let sent = self
            .shared
            .outbox
            .send_otr(&id, room_id, &frame.encode())
            .await;
        if sent.is_err() {
            self.lock().frames.retain(|(i, _)| *i != id);
        }
        sent
    }

    /// Ends every handshake past its deadline.
    async fn expire(&self) {
        let now = Instant::now();
        let expired: Vec<(String, Frame)> = {
            let mut s = self.lock();
            let rooms: Vec<String> = s
                .by_room
                .iter()
                .filter(|(_, c)| c.deadline.is_some_and(|d| d <= now))
                .map(|(r, _)| r.clone())
                .collect();
            let mut out = Vec::new();
            for room in rooms {
                if let Some(mut conv) = s.by_room.remove(&room) {
                    out.push((room.clone(), conv.session.end()));
                    s.queued.push_back(OtrEvent::Timeout { room_id: room });
                }
            }
            out
        };
        for (room, frame) in expired {
            // Withdraw the invitation; the other side may be gone, so failures are moot.
            let _ = self.send(&room, &frame, None).await;
        }
    }

    /// Handles one event of the stream: OTR frames and refusals are consumed (and may
    /// produce an OTR event), the rest passes through.
    async fn take(&self, event: ClientEvent) -> Option<Update> {
        match event {
            ClientEvent::Otr {
                room_id,
                sender_id,
                frame,
            } => self
                .incoming(room_id, sender_id, &frame)
                .await
                .map(Update::Otr),
            ClientEvent::OtrError {
                id,
                code,
                message,
                retry_after_secs,
            } => {
                let sent = {
                    let mut s = self.lock();
                    let at = s.frames.iter().position(|(i, _)| *i == id);
                    at.and_then(|at| s.frames.remove(at)).map(|(_, sent)| sent)
                };
                match sent {
                    Some(sent) => self.refused(sent, code, message).map(Update::Otr),
                    None => Some(Update::Event(ClientEvent::OtrError {
                        id,
                        code,
                        message,
                        retry_after_secs,
                    })),
                }
            }
            ClientEvent::Presence { user_id, online } => {
                if !online {
                    let mut s = self.lock();
                    let rooms: Vec<String> = s
                        .by_room
                        .iter()
                        .filter(|(_, c)| c.session.peer().as_str() == user_id)
                        .map(|(r, _)| r.clone())
                        .collect();
                    for room_id in rooms {
                        s.queued.push_back(OtrEvent::Broken {
                            room_id,
                            reason: OtrBroken::PeerOffline,
                        });
                    }
                }
                Some(Update::Event(ClientEvent::Presence { user_id, online }))
            }
            ClientEvent::Reconnecting { .. } => {
                let mut s = self.lock();
                let rooms: Vec<String> = s.by_room.keys().cloned().collect();
                for room_id in rooms {
                    s.queued.push_back(OtrEvent::Broken {
                        room_id,
                        reason: OtrBroken::Disconnected,
                    });
                }
                Some(Update::Event(event))
            }
            other => Some(Update::Event(other)),
        }
    }

    /// A refused frame: a handshake frame ends its session, a message was not delivered.
    fn refused(&self, sent: Sent, code: OtrErrorCode, message: String) -> Option<OtrEvent> {
        let mut s = self.lock();
        let room_id = s
            .by_room
            .iter()
            .find(|(_, c)| c.session.id() == sent.session)
            .map(|(r, _)| r.clone())?;
        let ended = sent.message.is_none()
            && s.by_room
                .get(&room_id)
                .is_some_and(|c| c.session.state() != SessionState::Established);
        if ended {
            s.by_room.remove(&room_id);
        }
        Some(OtrEvent::Refused {
            room_id,
            code,
            message,
            message_id: sent.message,
            ended,
        })
    }

    /// One frame from the other person.
    async fn incoming(&self, room_id: String, sender_id: String, bytes: &[u8]) -> Option<OtrEvent> {
        let broken = |room_id: String, e: OtrError| OtrEvent::Broken {
            room_id,
            reason: OtrBroken::Frame(e),
        };
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => return Some(broken(room_id, OtrError::Decode(e))),
        };
        let known = self
            .lock()
            .by_room
            .get(&room_id)
            .is_some_and(|c| c.session.id() == frame.session());
        if !known {
            return self.unknown_session(room_id, sender_id, frame).await;
        }
        let (result, reply) = {
            let mut s = self.lock();
            let timeout = s.timeout;
            let conv = s.by_room.get_mut(&room_id)?;
            if conv.session.peer().as_str() != sender_id {
                return Some(broken(room_id, OtrError::WrongParticipants));
            }
            let result = match conv.session.handle(&frame, &mut os_rng()) {
                Ok(r) => r,
                Err(e) => return Some(broken(room_id, e)),
            };
            let room = room_id.clone();
            match result {
                SessionEvent::Established { reply } => {
                    conv.deadline = None;
                    (Some(OtrEvent::Established { room_id: room }), reply)
                }
                SessionEvent::Refreshed { reply } => {
                    conv.deadline = None;
                    (Some(OtrEvent::Refreshed { room_id: room }), reply)
                }
                SessionEvent::RefreshStarted { reply } => {
                    conv.deadline = Some(Instant::now() + timeout);
                    (
                        Some(OtrEvent::RefreshStarted { room_id: room }),
                        Some(reply),
                    )
                }
                SessionEvent::Message(body) => {
                    let m = s.push_message(&room_id, &sender_id, false, body);
                    (m.map(OtrEvent::Message), None)
                }
                SessionEvent::Declined => {
                    s.by_room.remove(&room_id);
                    (Some(OtrEvent::Declined { room_id: room }), None)
                }
                SessionEvent::Ended => {
                    s.by_room.remove(&room_id);
                    (
                        Some(OtrEvent::Ended {
                            room_id: room,
                            by_peer: true,
                        }),
                        None,
                    )
                }
                SessionEvent::Ignored => (None, None),
            }
        };
        self.shared.wake.notify_one();
        if let Some(reply) = reply
            && self.send(&room_id, &reply, None).await.is_err()
        {
            return Some(OtrEvent::Broken {
                room_id,
                reason: OtrBroken::Disconnected,
            });
        }
        result
    }

    /// A frame for a session this side does not run: an invitation, the withdrawal of
    /// one, or a refresh of a session this side lost (answered like an offer, O7).
    async fn unknown_session(
        &self,
        room_id: String,
        sender_id: String,
        frame: Frame,
    ) -> Option<OtrEvent> {
        match &frame {
            Frame::Offer(offer) => {
                if !self.lock().first_offer(offer.session) {
                    return Some(OtrEvent::Broken {
                        room_id,
                        reason: OtrBroken::Frame(OtrError::UnexpectedFrame),
                    });
                }
                self.lock().offers.insert(
                    room_id.clone(),
                    Invitation {
                        frame,
                        peer_id: sender_id.clone(),
                    },
                );
                Some(OtrEvent::Offered {
                    room_id,
                    peer_id: sender_id,
                })
            }
            Frame::End(id) | Frame::Decline(id) => {
                let mut s = self.lock();
                let withdrawn = s
                    .offers
                    .get(&room_id)
                    .is_some_and(|o| o.frame.session() == *id && o.peer_id == sender_id);
                if withdrawn {
                    s.offers.remove(&room_id);
                    return Some(OtrEvent::Ended {
                        room_id,
                        by_peer: true,
                    });
                }
                None
            }
            Frame::Refresh(_) => {
                if self
                    .lock()
                    .by_room
                    .get(&room_id)
                    .is_some_and(|c| c.session.state() != SessionState::Ended)
                {
                    // Another session runs here: the refresh is for an old one.
                    return Some(OtrEvent::Broken {
                        room_id,
                        reason: OtrBroken::Frame(OtrError::UnknownSession),
                    });
                }
                let parties = match self.parties(&room_id).await {
                    Ok(p) => p,
                    Err(_) => {
                        return Some(OtrEvent::Broken {
                            room_id,
                            reason: OtrBroken::Frame(OtrError::WrongParticipants),
                        });
                    }
                };
                match self.answer(&room_id, &frame, &parties).await {
                    Ok(()) => Some(OtrEvent::RefreshStarted { room_id }),
                    Err(_) => Some(OtrEvent::Broken {
                        room_id,
                        reason: OtrBroken::Frame(OtrError::UnexpectedFrame),
                    }),
                }
            }
            _ => Some(OtrEvent::Broken {
                room_id,
                reason: OtrBroken::Frame(OtrError::UnknownSession),
            }),
        }
    }
}

fn protocol(e: OtrError) -> Error {
    otr_error(OtrCode::Protocol, format!("off the record: {e}"))
}

fn already_active() -> Error {
    otr_error(
        OtrCode::AlreadyActive,
        "an off-the-record session already runs in this room",
    )
}

fn no_offer() -> Error {
    otr_error(
        OtrCode::NoOffer,
        "no off-the-record invitation waits in this room",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otr_message_ids_are_not_server_ids() {
        let id = OtrMessageId {
            session: OtrSessionId::random(&mut os_rng()),
            number: 3,
        };
        let text = id.to_string();
        assert!(is_otr_message_id(&text));
        assert!(text.contains('/'), "outside the server's id alphabet");
        assert_eq!(
            refuse_otr_message_id(&text).unwrap_err().code(),
            Some("otr_message")
        );
        assert!(refuse_otr_message_id("0123456789abcdef0123456789abcdef").is_ok());
    }
}
