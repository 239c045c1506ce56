//! Messages (C4, E4–E6, E13; docs/protocol.md §7): sending text or sealed envelopes as
//! the room's verified chain says, and reading history and events with every envelope
//! checked and attributed. A message that cannot be opened carries the reason and is
//! never shown as a normal message.

use crate::api::seg;
use crate::client::{Client, base64, unbase64};
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::roomkeys::parse_room;
use reqwest::Method;
use sha2::{Digest, Sha256};
use sotto_api::rooms::{
    EditMessageRequest, HistoryQuery, Message, MessagePage, Room, SendMessageRequest,
};
use sotto_crypto::chain::{Action, RoomChain};
use sotto_crypto::envelope::{self, EnvelopeError};
use sotto_crypto::{
    Attachment, EnvelopeHeader, EpochId, MessageBody, MessageId, PinState, RoomId, UserId, os_rng,
};
use std::collections::{BTreeMap, BTreeSet};

/// The profile file holding a digest of every accepted envelope.
const ACCEPTED_FILE: &str = "accepted.json";

/// Why a message could not be opened. Front ends show the message as "could not be
/// opened" with this reason, never as a normal message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecryptable {
    /// No key of the message's epoch is open here yet: a state to show ("waiting for the
    /// room key"), not an error. It resolves once a member hands the key on.
    WaitingForKey,
    /// The encryption keys are locked on this device.
    Locked,
    /// The room's state chain could not be verified (the reason says why).
    NoChain(String),
    /// The chain does not let the sender hold the message's epoch.
    NotAuthorized,
    /// No identity key is known for the sender.
    UnknownSender,
    /// The envelope's sender is not the sender the server's record names (§7.6): the
    /// message is not attributed to either.
    InvalidSender,
    /// The envelope belongs to another room than the one it was delivered in (§7.6 step 2).
    WrongRoom,
    /// The envelope names an epoch the room's verified chain never declared.
    WrongEpoch,
    /// The sender's identity key changed and the change is not accepted yet.
    KeyChanged,
    /// The sender's signature does not verify.
    BadSignature,
    /// The message id was accepted before with other content: a replay.
    Replayed,
    /// The envelope is malformed or does not match where the server put it.
    Malformed(String),
    /// A message without encryption in a room whose verified chain has been encrypted
    /// since its creation, placed after encrypted ones: the server put it there.
    PlaintextInEncryptedRoom,
    /// Sealed under an epoch the room had already left behind by someone who may not
    /// hold the newer one (a former member): the server put it after the rotation.
    SupersededEpoch,
}

impl std::fmt::Display for Undecryptable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WaitingForKey => f.write_str("waiting for the room key"),
            Self::Locked => f.write_str("encryption keys are locked on this device"),
            Self::NoChain(why) => write!(f, "the room's state chain is not valid: {why}"),
            Self::NotAuthorized => f.write_str("the sender is not authorized by the room"),
            Self::UnknownSender => f.write_str("no key known for the sender"),
            Self::InvalidSender => f.write_str("invalid sender"),
            Self::WrongRoom => f.write_str("the message belongs to another room"),
            Self::WrongEpoch => f.write_str("the message is for a key epoch this room never had"),
            Self::KeyChanged => f.write_str("the sender's key changed"),
            Self::BadSignature => f.write_str("bad signature"),
            Self::Replayed => f.write_str("replayed message"),
            Self::Malformed(why) => write!(f, "malformed message: {why}"),
            Self::PlaintextInEncryptedRoom => {
                f.write_str("not encrypted, in a room that is: not from a member")
            }
            Self::SupersededEpoch => f.write_str(
                "sealed under an old room key by someone who no longer holds the room's key",
            ),
        }
    }
}

/// A file attached to an encrypted message. `Debug` shows only what the server sees.
#[derive(Clone, PartialEq, Eq)]
pub struct AttachmentView {
    /// The file's name.
    pub name: String,
    /// Its media type.
    pub media_type: String,
    /// Its plaintext size in bytes.
    pub size: u64,
    /// The server's id of the encrypted blob.
    pub file_id: String,
    /// What a download needs (key and checks).
    pub attachment: Attachment,
}

/// A message as the user sees it. `Debug` leaves the text out.
#[derive(Clone, PartialEq, Eq)]
pub struct MessageView {
    /// The message id.
    pub id: String,
    /// Its room.
    pub room_id: String,
    /// Its place in the room's history.
    pub seq: i64,
    /// The sender's user id.
    pub sender_id: String,
    /// The sender's name, when known.
    pub sender_name: Option<String>,
    /// The text (empty when deleted or not opened).
    pub text: String,
    /// The message this one answers, if any.
    pub reply_to: Option<String>,
    /// When it was sent (Unix ms).
    pub created_at: i64,
    /// When it was last edited.
    pub edited_at: Option<i64>,
    /// A tombstone.
    pub deleted: bool,
    /// Sent as an end-to-end encrypted envelope.
    pub encrypted: bool,
    /// The envelope's signature is the sender's pinned key, and that key is verified
    /// (safety numbers compared), or it is this user's own.
    pub verified: bool,
    /// Attached files.
    pub attachments: Vec<AttachmentView>,
    /// Why the message could not be opened; `None` for a message that opened (or is
    /// plaintext or deleted).
    pub problem: Option<Undecryptable>,
}

/// A message to send with [`Client::send_message`]. `Debug` leaves the text out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// The text.
    pub text: String,
    /// Files already uploaded (encrypted rooms only).
    pub attachments: Vec<Attachment>,
    /// The message this one answers (encrypted rooms only).
    pub reply_to: Option<String>,
    /// The message this one replaces: an edit of an own message.
    pub edit_of: Option<String>,
}

impl std::fmt::Debug for MessageView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Message text is the room's, never a log's.
        f.debug_struct("MessageView")
            .field("id", &self.id)
            .field("room_id", &self.room_id)
            .field("seq", &self.seq)
            .field("sender_id", &self.sender_id)
            .field("text_len", &self.text.len())
            .field("deleted", &self.deleted)
            .field("encrypted", &self.encrypted)
            .field("verified", &self.verified)
            .field("attachments", &self.attachments.len())
            .field("problem", &self.problem)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AttachmentView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentView")
            .field("file_id", &self.file_id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Draft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Draft")
            .field("text_len", &self.text.len())
            .field("attachments", &self.attachments)
            .field("reply_to", &self.reply_to)
            .field("edit_of", &self.edit_of)
            .finish()
    }
}

/// Digests of the accepted envelopes, per room and message id (lowercase hex), so a
/// message read again is recognised and only a different envelope under a seen id is a
/// replay. Kept in the profile next to the seen ids.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    rooms: BTreeMap<String, BTreeMap<String, String>>,
}

impl Accepted {
    pub(crate) fn load(profile: &Profile) -> Result<Self> {
        let Some(bytes) = profile.read(ACCEPTED_FILE)? else {
            return Ok(Self::default());
        };
        let rooms = serde_json::from_slice(&bytes).map_err(|e| Error::Storage {
            what: format!("reading {ACCEPTED_FILE}"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        Ok(Self { rooms })
    }

    fn save(&self, profile: &Profile) -> Result<()> {
        let json = serde_json::to_vec(&self.rooms).map_err(|e| Error::Storage {
            what: format!("writing {ACCEPTED_FILE}"),
            source: std::io::Error::other(e.to_string()),
        })?;
        profile.write(ACCEPTED_FILE, &json)
    }

    fn get(&self, room: &RoomId, id: &MessageId) -> Option<&str> {
        self.rooms
            .get(room.as_str())
            .and_then(|m| m.get(&id.to_hex()))
            .map(String::as_str)
    }

    fn insert(&mut self, room: &RoomId, id: &MessageId, digest: String) {
        self.rooms
            .entry(room.to_string())
            .or_default()
            .insert(id.to_hex(), digest);
    }
}

/// An envelope that passed every check but the replay check.
struct Opened {
    room: RoomId,
    header: EnvelopeHeader,
    body: MessageBody,
    verified: bool,
    digest: String,
}

/// What one read of several messages has fetched already, so a page of history costs
/// at most one chain and one key fetch.
#[derive(Default)]
struct Reading {
    chain_fetched: BTreeSet<RoomId>,
    keys_fetched: BTreeSet<RoomId>,
}

impl Client {
    /// Sends `text` to `room`: plaintext in a room that is not encrypted, an envelope
    /// in one whose chain says encrypted.
    pub async fn send_text(&self, room: &RoomId, text: &str) -> Result<MessageView> {
        self.send_message(
            room,
            Draft {
                text: text.to_owned(),
                ..Draft::default()
            },
        )
        .await
    }

    /// Sends a message. In a room whose verified chain says encrypted it is sealed
    /// under the current epoch (a new epoch is declared first when one is due); in a
    /// room without a chain that the server calls encrypted it is refused, as is
    /// anything but text in a plaintext room. Plaintext never goes into a room whose
    /// chain says encrypted, whatever the server's record says (B12).
    pub async fn send_message(&self, room: &RoomId, draft: Draft) -> Result<MessageView> {
        if self.room_encrypted(room).await? {
            return self.send_sealed(room, &draft).await;
        }
        if !draft.attachments.is_empty() || draft.reply_to.is_some() {
            return Err(Error::Invalid(
                "attachments and replies in a message need an encrypted room".into(),
            ));
        }
        let message: Message = match &draft.edit_of {
            Some(id) => {
                let req = EditMessageRequest {
                    text: Some(draft.text.clone()),
                    ciphertext: None,
                };
                self.api()
                    .send(Method::PATCH, &message_path(room, id), &req)
                    .await?
            }
            None => {
                let req = SendMessageRequest {
                    id: MessageId::random(&mut os_rng()).to_hex(),
                    text: Some(draft.text.clone()),
                    ciphertext: None,
                };
                self.api()
                    .send(Method::POST, &messages_path(room), &req)
                    .await?
            }
        };
        self.open_message(&message).await
    }

    /// Replaces the text of an own message.
    pub async fn edit_text(
        &self,
        room: &RoomId,
        message_id: &str,
        text: &str,
    ) -> Result<MessageView> {
        self.send_message(
            room,
            Draft {
                text: text.to_owned(),
                edit_of: Some(message_id.to_owned()),
                ..Draft::default()
            },
        )
        .await
    }

    /// Deletes a message (own, or any as an owner), leaving a tombstone.
    pub async fn delete(&self, room: &RoomId, message_id: &str) -> Result<()> {
        self.api()
            .send_empty::<()>(Method::DELETE, &message_path(room, message_id), None)
            .await
    }

    /// A page of history, oldest first: up to `limit` messages before `before` (a seq),
    /// or the newest when `before` is `None`. Each envelope is opened and checked.
    pub async fn history(
        &self,
        room: &RoomId,
        before: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Vec<MessageView>> {
        let query = HistoryQuery {
            before,
            after: None,
            limit,
        };
        let page: MessagePage = self.api().get_query(&messages_path(room), &query).await?;
        // Names for the senders; a former member's stays unknown.
        let _ = self.member_list(room).await;
        let mut reading = Reading::default();
        let mut opened = Vec::with_capacity(page.messages.len());
        for m in &page.messages {
            opened.push(self.open_one(m, &mut reading).await);
        }
        self.flag_out_of_place(&page.messages, &mut opened, false)
            .await;
        self.finish(&page.messages, opened)
    }

    /// Opens one message, from history or a realtime event, with every check of
    /// §7.6; a message that fails carries the reason in `problem`.
    pub async fn open_message(&self, message: &Message) -> Result<MessageView> {
        let mut opened = vec![self.open_one(message, &mut Reading::default()).await];
        let one = std::slice::from_ref(message);
        self.flag_out_of_place(one, &mut opened, true).await;
        let mut views = self.finish(one, opened)?;
        views
            .pop()
            .ok_or_else(|| Error::Invalid("no message".into()))
    }

    /// Whether messages to `room` must be sealed: the chain's flag when there is a
    /// chain. A room the server calls encrypted but that has no chain yet cannot take
    /// messages.
    async fn room_encrypted(&self, room: &RoomId) -> Result<bool> {
        if let Some(chain) = self.room_chain(room).await? {
            return Ok(chain.state().encrypted());
        }
        let record: Room = self
            .api()
            .get(&format!("/api/v1/rooms/{}", seg(room.as_str())))
            .await?;
        if record.encrypted {
            return Err(Error::Invalid(format!(
                "room {room} is encrypted but has no state chain yet; nothing was sent"
            )));
        }
        Ok(false)
    }

    async fn send_sealed(&self, room: &RoomId, draft: &Draft) -> Result<MessageView> {
        let keys = self.keys()?;
        let me = self.user_id().clone();
        let reply_to = draft
            .reply_to
            .as_deref()
            .map(parse_message_id)
            .transpose()?;
        let edit_of = draft.edit_of.as_deref().map(parse_message_id).transpose()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let key = self.sending_key(room, false).await?;
            let mut rng = os_rng();
            let header = EnvelopeHeader::new(room.clone(), key.epoch(), me.clone(), &mut rng);
            let body = MessageBody {
                room: room.clone(),
                sender: me.clone(),
                text: draft.text.clone(),
                reply_to,
                edit_of,
                mentions: BTreeSet::new(),
                attachments: draft.attachments.clone(),
            };
            let sealed = envelope::seal(&body, &header, &key, &keys, &mut rng)
                .map_err(|e| Error::Invalid(format!("cannot seal the message: {e}")))?;
            let ciphertext = Some(base64(&sealed));
            let sent: Result<Message> = match &draft.edit_of {
                Some(id) => {
                    let req = EditMessageRequest {
                        text: None,
                        ciphertext,
                    };
                    self.api()
                        .send(Method::PATCH, &message_path(room, id), &req)
                        .await
                }
                None => {
                    let req = SendMessageRequest {
                        id: header.message.to_hex(),
                        text: None,
                        ciphertext,
                    };
                    self.api()
                        .send(Method::POST, &messages_path(room), &req)
                        .await
                }
            };
            match sent {
                Ok(message) => {
                    // Our own envelope is accepted as sent, so reading it back is no replay.
                    let opened = Opened {
                        room: room.clone(),
                        digest: digest(&sealed),
                        header,
                        body,
                        verified: true,
                    };
                    let mut views =
                        self.finish(std::slice::from_ref(&message), vec![Some(Ok(opened))])?;
                    return views
                        .pop()
                        .ok_or_else(|| Error::Invalid("no message".into()));
                }
                // A new epoch became due (or was declared) meanwhile: once more on a
                // fresh look at the chain and keys.
                Err(e) if e.code() == Some("conflict") && attempt < 2 => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens an envelope up to (not including) the replay check.
    async fn open_one(
        &self,
        m: &Message,
        reading: &mut Reading,
    ) -> Option<std::result::Result<Opened, Undecryptable>> {
        if m.deleted {
            return None;
        }
        let text = m.ciphertext.as_deref()?;
        Some(self.open_envelope(m, text, reading).await)
    }

    async fn open_envelope(
        &self,
        m: &Message,
        text: &str,
        reading: &mut Reading,
    ) -> std::result::Result<Opened, Undecryptable> {
        let malformed = |why: &str| Undecryptable::Malformed(why.to_owned());
        let bytes = unbase64("ciphertext", text).map_err(|_| malformed("not base64"))?;
        let header =
            EnvelopeHeader::peek(&bytes).map_err(|e| Undecryptable::Malformed(e.to_string()))?;
        let room = parse_room(&m.room_id).map_err(|_| malformed("invalid room id"))?;
        if header.room != room {
            return Err(Undecryptable::WrongRoom);
        }
        if header.sender.as_str() != m.sender_id {
            return Err(Undecryptable::InvalidSender);
        }
        if !self.is_unlocked() {
            return Err(Undecryptable::Locked);
        }
        let chain = self.chain_for(&room, &header, reading, false).await?;
        // No key of an epoch the chain never declared can be had: not "waiting".
        if chain.state().members_at_epoch(&header.epoch).is_none() {
            return Err(Undecryptable::WrongEpoch);
        }
        let key = match self.epoch_key(&room, &header.epoch) {
            Some(k) => k,
            None => {
                if reading.keys_fetched.insert(room.clone()) {
                    let _ = self.load_room_keys(&room, &chain).await;
                }
                self.epoch_key(&room, &header.epoch)
                    .ok_or(Undecryptable::WaitingForKey)?
            }
        };
        let sender = header.sender.clone();
        if self.pinned_key(&sender).is_none() {
            let _ = self.observe_keys(&BTreeSet::from([sender.clone()])).await;
        }
        let pin = self.state().pins.get(&sender).cloned();
        let pin = pin.ok_or(Undecryptable::UnknownSender)?;
        let mut chain = chain;
        // Whether the pinned key (not a replaced one) signed it.
        let mut by_pinned = true;
        let body = loop {
            let authorized = authorized_senders(&chain, &header);
            match envelope::open(&bytes, &room, &key, &pin.key, &authorized) {
                Ok(body) => break body,
                Err(EnvelopeError::SenderNotAuthorized)
                    if !reading.chain_fetched.contains(&room) =>
                {
                    chain = self.chain_for(&room, &header, reading, true).await?;
                }
                Err(EnvelopeError::SenderNotAuthorized) => {
                    return Err(Undecryptable::NotAuthorized);
                }
                Err(EnvelopeError::BadSignature) if pin.pending.is_some() => {
                    return Err(Undecryptable::KeyChanged);
                }
                Err(EnvelopeError::BadSignature) => {
                    // Sent before the sender's accepted key change, under the key pinned
                    // then: it opens, but is not shown as verified.
                    let authorized = authorized_senders(&chain, &header);
                    let former = self
                        .former_keys_for(&chain, &sender, &header.epoch)
                        .into_iter()
                        .find_map(|k| envelope::open(&bytes, &room, &key, &k, &authorized).ok());
                    by_pinned = false;
                    break former.ok_or(Undecryptable::BadSignature)?;
                }
                Err(EnvelopeError::WrongRoom) => return Err(Undecryptable::WrongRoom),
                Err(EnvelopeError::WrongEpoch) => return Err(Undecryptable::WrongEpoch),
                Err(EnvelopeError::InnerMismatch) => return Err(Undecryptable::InvalidSender),
                Err(e) => return Err(Undecryptable::Malformed(e.to_string())),
            }
        };
        // An edit lives only under the message it replaces, anything else under its own
        // id: an edit stored again as a message of its own would show its text twice.
        if body.edit_of.unwrap_or(header.message).to_hex() != m.id {
            return Err(malformed(
                "the envelope is not this message or an edit of it",
            ));
        }
        let own =
            sender == *self.user_id() && self.keys().is_ok_and(|k| k.identity_public() == pin.key);
        Ok(Opened {
            room,
            header,
            body,
            verified: by_pinned && (own || pin.state == PinState::Verified),
            digest: digest(&bytes),
        })
    }

    /// The verified chain for an envelope: the cached one if it declares the envelope's
    /// epoch, else fetched (once per read).
    async fn chain_for(
        &self,
        room: &RoomId,
        header: &EnvelopeHeader,
        reading: &mut Reading,
        refresh: bool,
    ) -> std::result::Result<RoomChain, Undecryptable> {
        if !refresh
            && let Some(c) = self.cached_chain(room)
            && c.state().members_at_epoch(&header.epoch).is_some()
        {
            return Ok(c);
        }
        if !reading.chain_fetched.insert(room.clone()) {
            return self
                .cached_chain(room)
                .ok_or_else(|| Undecryptable::NoChain("the room has no state chain".into()));
        }
        match self.room_chain(room).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(Undecryptable::NoChain("the room has no state chain".into())),
            Err(Error::KeyChanged { .. }) => Err(Undecryptable::KeyChanged),
            Err(e) => Err(Undecryptable::NoChain(e.to_string())),
        }
    }

    /// The replay check (§7.7) over opened envelopes, recording the new ones in one
    /// write of the seen ids and digests, then the views.
    fn finish(
        &self,
        messages: &[Message],
        opened: Vec<Option<std::result::Result<Opened, Undecryptable>>>,
    ) -> Result<Vec<MessageView>> {
        let mut fresh = Vec::new();
        let mut results = Vec::with_capacity(opened.len());
        {
            let state = self.state();
            for o in opened {
                results.push(match o {
                    Some(Ok(o)) => {
                        if state.seen.contains(&o.room, &o.header.message) {
                            if state.accepted.get(&o.room, &o.header.message)
                                == Some(o.digest.as_str())
                            {
                                Some(Ok(o))
                            } else {
                                Some(Err(Undecryptable::Replayed))
                            }
                        } else if fresh
                            .iter()
                            .any(|(r, id, _): &(RoomId, MessageId, String)| {
                                r == &o.room && id == &o.header.message
                            })
                        {
                            Some(Err(Undecryptable::Replayed))
                        } else {
                            fresh.push((o.room.clone(), o.header.message, o.digest.clone()));
                            Some(Ok(o))
                        }
                    }
                    other => other,
                });
            }
        }
        if !fresh.is_empty() {
            self.with_seen(|seen| {
                for (room, id, _) in &fresh {
                    let _ = seen.check_and_insert(room, *id);
                }
            })?;
            let mut state = self.state();
            for (room, id, d) in fresh {
                state.accepted.insert(&room, &id, d);
            }
            state.accepted.save(self.profile())?;
        }
        Ok(messages
            .iter()
            .zip(results)
            .map(|(m, r)| self.view(m, r))
            .collect())
    }

    fn view(
        &self,
        m: &Message,
        opened: Option<std::result::Result<Opened, Undecryptable>>,
    ) -> MessageView {
        let mut v = MessageView {
            id: m.id.clone(),
            room_id: m.room_id.clone(),
            seq: m.seq,
            sender_id: m.sender_id.clone(),
            sender_name: self.state().names.get(&m.sender_id).cloned(),
            text: String::new(),
            reply_to: None,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted: m.deleted,
            encrypted: m.ciphertext.is_some(),
            verified: false,
            attachments: Vec::new(),
            problem: None,
        };
        match opened {
            None => v.text = m.text.clone().unwrap_or_default(),
            Some(Err(problem)) => v.problem = Some(problem),
            Some(Ok(o)) => {
                v.text = o.body.text;
                v.reply_to = o.body.reply_to.map(|r| r.to_hex());
                v.verified = o.verified;
                v.attachments = o
                    .body
                    .attachments
                    .into_iter()
                    .map(|a| AttachmentView {
                        name: a.name.clone(),
                        media_type: a.media_type.clone(),
                        size: a.size,
                        file_id: a.file_id.clone(),
                        attachment: a,
                    })
                    .collect();
            }
        }
        v
    }
}

impl Client {
    /// Flags what only the server can have put where it is, by the room's own order
    /// (`messages` are one room's, oldest first; `live` for a message arriving now):
    /// plaintext after envelopes in a room whose chain was never unencrypted, and an
    /// envelope under an epoch that a later one had replaced, from a sender who may not
    /// hold that later one. An honest server stores envelopes only under the current
    /// epoch, and plaintext only while its record says unencrypted.
    async fn flag_out_of_place(
        &self,
        messages: &[Message],
        opened: &mut [Option<std::result::Result<Opened, Undecryptable>>],
        live: bool,
    ) {
        let Some(room) = messages.first().and_then(|m| parse_room(&m.room_id).ok()) else {
            return;
        };
        let has_plaintext = messages
            .iter()
            .any(|m| !m.deleted && m.ciphertext.is_none());
        let has_envelope = opened.iter().any(|o| matches!(o, Some(Ok(_))));
        if !has_plaintext && !has_envelope {
            return;
        }
        let chain = match self.cached_chain(&room) {
            Some(c) => c,
            None => match self.room_chain(&room).await {
                Ok(Some(c)) => c,
                _ => return,
            },
        };
        let state = chain.state();
        let always_encrypted = chain.statements().all(|s| match s.action() {
            Action::Create(c) => c.encrypted,
            Action::SetEncryption(on) => *on,
            _ => true,
        });
        let order = |e: &EpochId| state.epochs().iter().position(|x| x == e);
        // The epochs of opened envelopes by place in the room (`version_seq`: an edit is
        // sealed under the epoch current when it was made).
        let sealed: Vec<(i64, usize)> = messages
            .iter()
            .zip(opened.iter())
            .filter_map(|(m, o)| match o {
                Some(Ok(o)) => Some((m.version_seq, order(&o.header.epoch)?)),
                _ => None,
            })
            .collect();
        for (m, o) in messages.iter().zip(opened.iter_mut()) {
            match o {
                None if !m.deleted && m.ciphertext.is_none() => {
                    let after_envelopes = live
                        || messages
                            .iter()
                            .any(|n| n.ciphertext.is_some() && n.seq < m.seq);
                    if state.encrypted() && always_encrypted && after_envelopes {
                        *o = Some(Err(Undecryptable::PlaintextInEncryptedRoom));
                    }
                }
                Some(Ok(opened)) => {
                    let epoch = opened.header.epoch;
                    let sender = &opened.header.sender;
                    let Some(mine) = order(&epoch) else { continue };
                    let superseded = if live {
                        state.epochs()[mine + 1..]
                            .iter()
                            .any(|e| !state.may_hold_epoch(e, sender))
                    } else {
                        sealed.iter().any(|(at, later)| {
                            *at < m.version_seq
                                && *later > mine
                                && !state.may_hold_epoch(&state.epochs()[*later], sender)
                        })
                    };
                    if superseded {
                        *o = Some(Err(Undecryptable::SupersededEpoch));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Who may send under the envelope's epoch: its holders (§5.6).
fn authorized_senders(chain: &RoomChain, header: &EnvelopeHeader) -> BTreeSet<UserId> {
    let state = chain.state();
    let mut set = state
        .members_at_epoch(&header.epoch)
        .cloned()
        .unwrap_or_default();
    if state.history_shared() {
        set.extend(state.members().iter().cloned());
    }
    set
}

fn digest(envelope: &[u8]) -> String {
    hex::encode(Sha256::digest(envelope))
}

fn parse_message_id(id: &str) -> Result<MessageId> {
    MessageId::from_hex(id)
        .map_err(|_| Error::Invalid(format!("not a message id of an encrypted room: {id}")))
}

fn messages_path(room: &RoomId) -> String {
    format!("/api/v1/rooms/{}/messages", seg(room.as_str()))
}

fn message_path(room: &RoomId, id: &str) -> String {
    format!("/api/v1/rooms/{}/messages/{}", seg(room.as_str()), seg(id))
}
