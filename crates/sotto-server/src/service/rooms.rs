//! C3/C4 rooms and membership, C5 messages. Access rules live here:
//!
//! - A private room (DMs included) does not exist for non-members: every call answers
//!   `NotFound`, admins included.
//! - A public room can be read (`get`) and joined by anyone; its members and messages are
//!   for members only (`Forbidden` otherwise), and any member may invite.
//! - Owners (the creator first) invite to private rooms, remove members, set owners and
//!   rename. A room keeps at least one owner while it has members.
//! - A direct message has exactly its people: no join, invite, remove, leave, owners or
//!   name; opening one with the same people again returns the same room.

use super::{Actor, ServiceError, now_ms, tokens, validate};
use crate::bus::{Bus, BusEvent, Event, EventKind};
use crate::service::SettingsService;
use crate::store::{
    E2eeStore, Inserted, KeyStore, MemberRecord, MessageRecord, MessageStore, RoomAccess,
    RoomRecord, RoomStore, StoreError, UserStore, message_view, room_view,
};
use base64::Engine;
use sha2::{Digest, Sha256};
use sotto_api::{
    CreateRoomRequest, EditMessageRequest, HistoryQuery, MarkReadRequest, Member, MemberList,
    Message, MessagePage, ReadMarker, Room, RoomKind, RoomList, SendMessageRequest,
    SetEncryptionRequest, UNREAD_CAP, UpdateRoomRequest,
};
use sotto_crypto::EnvelopeHeader;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest topic, in characters.
pub const TOPIC_MAX_CHARS: usize = 250;
/// Longest message text, in bytes.
pub const TEXT_MAX_BYTES: usize = 16 * 1024;
/// Longest message envelope (base64 text), in bytes.
pub const CIPHERTEXT_MAX_BYTES: usize = 48 * 1024;
/// Default and largest history page.
pub const PAGE_DEFAULT: u32 = 50;
/// Largest history page.
pub const PAGE_MAX: u32 = 200;
/// Messages a user may send at once (a bot posting a backlog) ...
pub const SEND_BURST: u32 = 300;
/// ... and then one more every this long (20 a second): far above anyone typing, well
/// below a flood that would slow every member's client.
pub const SEND_EVERY: Duration = Duration::from_millis(50);

mod chain;
mod forced;
mod keys;

/// Rooms, members and messages, and the state chains and keys of encrypted rooms.
pub struct RoomService {
    users: Arc<dyn UserStore>,
    rooms: Arc<dyn RoomStore>,
    messages: Arc<dyn MessageStore>,
    keys: Arc<dyn KeyStore>,
    e2ee: Arc<dyn E2eeStore>,
    settings: Arc<SettingsService>,
    bus: Arc<dyn Bus>,
    /// Message sends per user.
    send_rate: super::rate_limit::RateLimiter,
}

/// A room and whether this call created it.
pub struct Opened {
    /// The room.
    pub room: Room,
    /// False when an existing DM with the same people was returned.
    pub created: bool,
}

/// A message and whether this call stored it.
pub struct Sent {
    /// The message.
    pub message: Message,
    /// False for a retry of an already stored message.
    pub created: bool,
}

/// Ids of the protocol alphabet: 1–64 bytes of `A-Za-z0-9._:-`.
pub fn protocol_id(field: &str, id: &str) -> Result<(), ServiceError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "{field}: 1–64 characters of A-Z, a-z, 0-9, '.', '_', ':' or '-'"
        )))
    }
}

fn topic(t: &str) -> Result<String, ServiceError> {
    let t = t.trim();
    if t.chars().count() > TOPIC_MAX_CHARS || t.chars().any(char::is_control) {
        return Err(ServiceError::InvalidInput(format!(
            "topic: at most {TOPIC_MAX_CHARS} characters, no control characters"
        )));
    }
    Ok(t.to_owned())
}

pub(crate) fn user_of(actor: &Actor) -> Result<&str, ServiceError> {
    match actor {
        Actor::User(p) => Ok(&p.user.id),
        Actor::Operator => Err(ServiceError::Forbidden("rooms are for users")),
    }
}

fn member_view(m: &MemberRecord) -> Member {
    Member {
        user_id: m.user_id.clone(),
        username: m.username.clone(),
        owner: m.owner,
        joined_at: m.joined_at,
        forced_by: None,
    }
}

/// Whether a room of this kind and visibility may be end-to-end encrypted: direct
/// messages, and private channels, teams and discussions.
fn encryptable(kind: RoomKind, private: bool) -> bool {
    kind == RoomKind::Direct || private
}

/// The key-free checks of an envelope (protocol.md §7.5): it parses, it is for this
/// room, and its sender is the caller. Returns its header.
pub(crate) fn peek_envelope(
    room_id: &str,
    sender: &str,
    ciphertext: &str,
) -> Result<EnvelopeHeader, ServiceError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(ciphertext.as_bytes())
        .map_err(|_| ServiceError::InvalidInput("ciphertext: non-empty standard base64".into()))?;
    let header = EnvelopeHeader::peek(&bytes)
        .map_err(|e| ServiceError::InvalidInput(format!("ciphertext: not an envelope: {e}")))?;
    if header.room.as_str() != room_id {
        return Err(ServiceError::InvalidInput(
            "ciphertext: the envelope is for another room".into(),
        ));
    }
    if header.sender.as_str() != sender {
        return Err(ServiceError::InvalidInput(
            "ciphertext: the envelope's sender is not you".into(),
        ));
    }
    Ok(header)
}

/// A public room's member-only action by someone not in it.
fn not_joined() -> ServiceError {
    ServiceError::Forbidden("join the room first")
}

/// The content of a send or edit, checked against the room's encryption.
fn content(
    encrypted: bool,
    text: Option<String>,
    ciphertext: Option<String>,
) -> Result<(Option<String>, Option<String>), ServiceError> {
    match (text, ciphertext) {
        (Some(t), None) => {
            if encrypted {
                return Err(ServiceError::InvalidInput(
                    "text: this room is end-to-end encrypted; plaintext is refused, send a \
                     ciphertext envelope"
                        .into(),
                ));
            }
            if t.len() > TEXT_MAX_BYTES {
                return Err(ServiceError::TooLarge(format!(
                    "text: at most {TEXT_MAX_BYTES} bytes"
                )));
            }
            if t.trim().is_empty() {
                return Err(ServiceError::InvalidInput("text: must not be empty".into()));
            }
            Ok((Some(t), None))
        }
        (None, Some(c)) => {
            if !encrypted {
                return Err(ServiceError::InvalidInput(
                    "ciphertext: this room is not encrypted; send text".into(),
                ));
            }
            if c.len() > CIPHERTEXT_MAX_BYTES {
                return Err(ServiceError::TooLarge(format!(
                    "ciphertext: at most {CIPHERTEXT_MAX_BYTES} bytes"
                )));
            }
            if c.is_empty()
                || base64::engine::general_purpose::STANDARD
                    .decode(c.as_bytes())
                    .is_err()
            {
                return Err(ServiceError::InvalidInput(
                    "ciphertext: non-empty standard base64".into(),
                ));
            }
            Ok((None, Some(c)))
        }
        _ => Err(ServiceError::InvalidInput(
            "give exactly one of text and ciphertext".into(),
        )),
    }
}

/// The hash a message's content is stored with, to tell a retry from a reused id (public
/// for tools that load messages straight into the store).
pub fn content_hash(text: Option<&str>, ciphertext: Option<&str>) -> String {
    let mut h = Sha256::new();
    match (text, ciphertext) {
        (Some(t), _) => {
            h.update(b"text\0");
            h.update(t.as_bytes());
        }
        (None, Some(c)) => {
            h.update(b"ciphertext\0");
            h.update(c.as_bytes());
        }
        (None, None) => {}
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Usernames written as `@name` in `text` (username characters after an `@` that starts
/// the text or follows a non-username character), lowercased, without duplicates.
pub fn mentioned_usernames(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut out = BTreeSet::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !prev.is_some_and(is_name) {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
            let name = rest[..end].trim_end_matches('.');
            if validate::username(name).is_ok() {
                out.insert(name.to_lowercase());
            }
        }
        prev = Some(c);
        if out.len() > 64 {
            break;
        }
    }
    out
}

impl RoomService {
    /// Over the stores, the settings (for the group DM limit and `e2e.enabled`) and the
    /// bus.
    pub fn new(
        stores: &crate::store::Stores,
        settings: Arc<SettingsService>,
        bus: Arc<dyn Bus>,
    ) -> Self {
        Self {
            users: stores.users.clone(),
            rooms: stores.rooms.clone(),
            messages: stores.messages.clone(),
            keys: stores.keys.clone(),
            e2ee: stores.e2ee.clone(),
            settings,
            bus,
            send_rate: super::rate_limit::RateLimiter::new(SEND_BURST, SEND_EVERY, 100_000),
        }
    }

    /// The per-user limit of message sends (the server's builder changes it for tests).
    pub fn send_rate(&self) -> &super::rate_limit::RateLimiter {
        &self.send_rate
    }

    /// Publishes a committed change; the realtime layer orders by seq and fills gaps
    /// from the store, so publishing after the commit may race without losing anything.
    fn publish(&self, room_id: &str, seq: i64, kind: EventKind) {
        self.publish_event(Event {
            room_id: room_id.to_owned(),
            seq,
            kind,
        });
    }

    fn publish_event(&self, event: Event) {
        self.bus.publish(BusEvent::Room(event));
    }

    /// The store, for the realtime layer's catch-up reads.
    pub fn store(&self) -> &Arc<dyn RoomStore> {
        &self.rooms
    }

    /// `user`'s access to the room, from the store's cache; `NotFound` for a room that
    /// does not exist for them (none, or a private one they are not in).
    async fn seen_access(&self, user: &str, room_id: &str) -> Result<RoomAccess, ServiceError> {
        match self.rooms.access(room_id, user).await? {
            Some(a) if !a.private || a.member.is_some() => Ok(a),
            _ => Err(ServiceError::NotFound("room")),
        }
    }

    /// The room as `user` may see it, and their membership.
    async fn visible(
        &self,
        user: &str,
        room_id: &str,
    ) -> Result<(RoomRecord, Option<MemberRecord>), ServiceError> {
        let access = self.seen_access(user, room_id).await?;
        let room = self
            .rooms
            .room_by_id(room_id)
            .await?
            .ok_or(ServiceError::NotFound("room"))?;
        Ok((room, access.member))
    }

    async fn as_member(
        &self,
        user: &str,
        room_id: &str,
    ) -> Result<(RoomRecord, MemberRecord), ServiceError> {
        match self.visible(user, room_id).await? {
            (room, Some(m)) => Ok((room, m)),
            (_, None) => Err(not_joined()),
        }
    }

    /// [`Self::as_member`]'s check alone, without reading the room.
    async fn check_member(&self, user: &str, room_id: &str) -> Result<RoomAccess, ServiceError> {
        let access = self.seen_access(user, room_id).await?;
        match access.member {
            Some(_) => Ok(access),
            None => Err(not_joined()),
        }
    }

    /// The room and the caller's membership, under the same rules as history: `NotFound`
    /// for a private room the caller is not in, `Forbidden` for a public one.
    pub(crate) async fn member_of(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> Result<(RoomRecord, MemberRecord), ServiceError> {
        self.as_member(user_of(actor)?, room_id).await
    }

    async fn as_owner(&self, user: &str, room_id: &str) -> Result<RoomRecord, ServiceError> {
        let (room, me) = self.as_member(user, room_id).await?;
        if room.kind == RoomKind::Direct {
            return Err(ServiceError::Forbidden(
                "a direct message has exactly its people and no owners",
            ));
        }
        if !me.owner {
            return Err(ServiceError::Forbidden("only room owners may do this"));
        }
        Ok(room)
    }

    async fn existing_user(&self, id: &str) -> Result<MemberRecord, ServiceError> {
        let u = self
            .users
            .user_by_id(id)
            .await?
            .filter(|u| !u.deactivated)
            .ok_or(ServiceError::NotFound("user"))?;
        Ok(MemberRecord {
            user_id: u.id,
            username: u.username,
            owner: false,
            joined_at: now_ms(),
        })
    }

    /// Creates a room, or opens the direct message with exactly these people.
    pub async fn create(
        &self,
        actor: &Actor,
        req: CreateRoomRequest,
    ) -> Result<Opened, ServiceError> {
        let me = user_of(actor)?;
        let now = now_ms();
        let mut people: BTreeSet<String> = req.members.iter().cloned().collect();
        people.insert(me.to_owned());
        if req.kind == RoomKind::Direct {
            return self.open_direct(me, &req, people, now).await;
        }
        let name = validate::name(
            "name",
            req.name
                .as_deref()
                .ok_or_else(|| ServiceError::InvalidInput("name: required".into()))?,
        )?;
        let topic = topic(req.topic.as_deref().unwrap_or(""))?;
        let (parent_id, private) = match req.kind {
            RoomKind::Discussion => {
                let parent_id = req.parent_id.clone().ok_or_else(|| {
                    ServiceError::InvalidInput("parent_id: required for a discussion".into())
                })?;
                let (parent, _) = self.as_member(me, &parent_id).await?;
                if !matches!(parent.kind, RoomKind::Channel | RoomKind::Team) {
                    return Err(ServiceError::InvalidInput(
                        "parent_id: a discussion belongs to a channel or team".into(),
                    ));
                }
                (Some(parent_id), req.private.unwrap_or(parent.private))
            }
            _ => {
                if req.parent_id.is_some() {
                    return Err(ServiceError::InvalidInput(
                        "parent_id: only discussions have a parent".into(),
                    ));
                }
                (None, req.private.unwrap_or(false))
            }
        };
        let encrypted = req.encrypted.unwrap_or(false);
        let private = if encrypted {
            self.e2e_enabled().await?;
            match (req.kind, req.private) {
                // An encrypted discussion is members-only, whatever its parent.
                (RoomKind::Discussion, Some(false)) | (RoomKind::Channel | RoomKind::Team, _)
                    if !private =>
                {
                    return Err(ServiceError::InvalidInput(
                        "encrypted: public channels, teams and discussions cannot be encrypted"
                            .into(),
                    ));
                }
                _ => true,
            }
        } else {
            private
        };
        let mut members = Vec::with_capacity(people.len());
        for id in &people {
            let mut m = self.existing_user(id).await?;
            m.owner = id == me;
            m.joined_at = now;
            members.push(m);
        }
        let room = RoomRecord {
            id: tokens::new_id()?,
            kind: req.kind,
            private,
            name: Some(name),
            topic,
            parent_id,
            encrypted,
            created_by: me.to_owned(),
            created_at: now,
            seq: 1,
            dm_key: None,
        };
        let event = self.rooms.insert_room(&room, &members).await?;
        tracing::info!(room_id = %room.id, kind = ?room.kind, "room created");
        Ok(self.created(&room, event))
    }

    fn created(&self, room: &RoomRecord, event: Event) -> Opened {
        self.publish_event(event);
        Opened {
            room: room_view(room, true),
            created: true,
        }
    }

    async fn open_direct(
        &self,
        me: &str,
        req: &CreateRoomRequest,
        people: BTreeSet<String>,
        now: i64,
    ) -> Result<Opened, ServiceError> {
        if req.name.is_some() || req.parent_id.is_some() || req.private == Some(false) {
            return Err(ServiceError::InvalidInput(
                "a direct message has no name or parent and is always private".into(),
            ));
        }
        let max = self
            .settings
            .get(&Actor::Operator)
            .await?
            .rooms_max_group_dm_members as usize;
        if people.len() < 2 || people.len() > max {
            return Err(ServiceError::InvalidInput(format!(
                "members: a direct message has 2 to {max} people, you included"
            )));
        }
        let encrypted = req.encrypted.unwrap_or(false);
        if encrypted {
            self.e2e_enabled().await?;
        }
        let key = people.iter().cloned().collect::<Vec<_>>().join(",");
        if let Some(room) = self.rooms.room_by_dm_key(&key).await? {
            return Ok(Opened {
                room: room_view(&room, true),
                created: false,
            });
        }
        let mut members = Vec::with_capacity(people.len());
        for id in &people {
            let mut m = self.existing_user(id).await?;
            m.joined_at = now;
            members.push(m);
        }
        let room = RoomRecord {
            id: tokens::new_id()?,
            kind: RoomKind::Direct,
            private: true,
            name: None,
            topic: topic(req.topic.as_deref().unwrap_or(""))?,
            parent_id: None,
            encrypted,
            created_by: me.to_owned(),
            created_at: now,
            seq: 1,
            dm_key: Some(key.clone()),
        };
        match self.rooms.insert_room(&room, &members).await {
            Ok(event) => Ok(self.created(&room, event)),
            // Opened concurrently by someone else: the same people, the same room.
            Err(StoreError::Conflict) => {
                let room = self
                    .rooms
                    .room_by_dm_key(&key)
                    .await?
                    .ok_or_else(|| ServiceError::Internal("dm vanished".into()))?;
                Ok(Opened {
                    room: room_view(&room, true),
                    created: false,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// One room.
    pub async fn get(&self, actor: &Actor, room_id: &str) -> Result<Room, ServiceError> {
        let (room, me) = self.visible(user_of(actor)?, room_id).await?;
        Ok(room_view(&room, me.is_some()))
    }

    /// The caller's rooms.
    pub async fn mine(&self, actor: &Actor) -> Result<RoomList, ServiceError> {
        let rooms = self
            .rooms
            .rooms_with_unread(user_of(actor)?, UNREAD_CAP)
            .await?;
        Ok(RoomList {
            rooms: rooms
                .iter()
                .map(|r| Room {
                    last_read_seq: Some(r.last_read_seq),
                    unread: Some(r.unread),
                    ..room_view(&r.room, true)
                })
                .collect(),
        })
    }

    /// Moves the caller's read marker forward (members only); a seq beyond the room's
    /// latest is taken as the latest.
    pub async fn mark_read(
        &self,
        actor: &Actor,
        room_id: &str,
        req: MarkReadRequest,
    ) -> Result<ReadMarker, ServiceError> {
        let me = user_of(actor)?;
        if req.seq < 0 {
            return Err(ServiceError::InvalidInput("seq: 0 or more".into()));
        }
        self.check_member(me, room_id).await?;
        let last_read_seq = self
            .rooms
            .mark_read(room_id, me, req.seq)
            .await?
            .ok_or_else(not_joined)?;
        Ok(ReadMarker {
            room_id: room_id.to_owned(),
            last_read_seq,
        })
    }

    /// Public channels and teams.
    pub async fn public(&self, actor: &Actor) -> Result<RoomList, ServiceError> {
        let me = user_of(actor)?;
        let mine: BTreeSet<String> = self
            .rooms
            .rooms_of_user(me)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let rooms = self.rooms.public_rooms().await?;
        Ok(RoomList {
            rooms: rooms
                .iter()
                .map(|r| room_view(r, mine.contains(&r.id)))
                .collect(),
        })
    }

    /// The members of a room (members only).
    pub async fn members(&self, actor: &Actor, room_id: &str) -> Result<MemberList, ServiceError> {
        self.check_member(user_of(actor)?, room_id).await?;
        self.member_list(room_id).await
    }

    async fn add(&self, room_id: &str, m: MemberRecord) -> Result<(), ServiceError> {
        if let Some(event) = self.rooms.add_member(room_id, &m).await? {
            self.publish_event(event);
        }
        Ok(())
    }

    /// Joins a public room (not a DM); joining twice is harmless.
    pub async fn join(&self, actor: &Actor, room_id: &str) -> Result<Room, ServiceError> {
        let me = user_of(actor)?;
        let (room, member) = self.visible(me, room_id).await?;
        if member.is_none() {
            // `visible` hides private rooms, DMs included, from non-members.
            let m = self.existing_user(me).await?;
            self.add(room_id, m).await?;
        }
        self.get(actor, &room.id).await
    }

    /// Adds someone: any member of a public room, owners of a private one.
    pub async fn invite(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> Result<MemberList, ServiceError> {
        let me = user_of(actor)?;
        let (room, mine) = self.as_member(me, room_id).await?;
        if room.kind == RoomKind::Direct {
            return Err(ServiceError::Forbidden(
                "a direct message has exactly its people; open another one",
            ));
        }
        if room.private && !mine.owner {
            return Err(ServiceError::Forbidden(
                "only owners may invite to a private room",
            ));
        }
        self.unsigned_allowed(room_id).await?;
        let m = self.existing_user(user_id).await?;
        self.add(room_id, m).await?;
        self.members(actor, room_id).await
    }

    async fn drop_member(&self, room_id: &str, user_id: &str) -> Result<(), ServiceError> {
        self.unsigned_allowed(room_id).await?;
        match self.rooms.remove_member(room_id, user_id).await? {
            Some(event) => {
                self.publish_event(event);
                Ok(())
            }
            None => Err(ServiceError::NotFound("member")),
        }
    }

    /// Removes a member (owners only; not from a DM).
    pub async fn remove(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> Result<(), ServiceError> {
        self.as_owner(user_of(actor)?, room_id).await?;
        self.drop_member(room_id, user_id).await
    }

    /// Leaves a room (not a DM).
    pub async fn leave(&self, actor: &Actor, room_id: &str) -> Result<(), ServiceError> {
        let me = user_of(actor)?;
        let (room, _) = self.as_member(me, room_id).await?;
        if room.kind == RoomKind::Direct {
            return Err(ServiceError::Forbidden(
                "a direct message has exactly its people",
            ));
        }
        self.drop_member(room_id, me).await
    }

    /// Makes a member an owner or not (owners only).
    pub async fn set_owner(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
        owner: bool,
    ) -> Result<MemberList, ServiceError> {
        self.as_owner(user_of(actor)?, room_id).await?;
        self.unsigned_allowed(room_id).await?;
        let event = self
            .rooms
            .set_owner(room_id, user_id, owner)
            .await?
            .ok_or(ServiceError::NotFound("member"))?;
        self.publish_event(event);
        self.members(actor, room_id).await
    }

    /// Refuses with `Forbidden` when the workspace has end-to-end encryption turned off.
    async fn e2e_enabled(&self) -> Result<(), ServiceError> {
        if self.settings.get(&Actor::Operator).await?.e2e_enabled {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(
                "end-to-end encryption is turned off in this workspace (e2e.enabled)",
            ))
        }
    }

    /// Turns end-to-end encryption on or off (E6): owners, or any member of a DM; only
    /// direct messages and private rooms. Turning it on needs `e2e.enabled`. Setting the
    /// value it already has changes nothing. Stored messages stay as they are.
    pub async fn set_encryption(
        &self,
        actor: &Actor,
        room_id: &str,
        req: SetEncryptionRequest,
    ) -> Result<Room, ServiceError> {
        let me = user_of(actor)?;
        let (room, mine) = self.as_member(me, room_id).await?;
        if room.kind != RoomKind::Direct && !mine.owner {
            return Err(ServiceError::Forbidden("only room owners may do this"));
        }
        if !encryptable(room.kind, room.private) {
            return Err(ServiceError::InvalidInput(
                "public channels, teams and discussions cannot be encrypted".into(),
            ));
        }
        if let Some(statement) = &req.statement {
            // The statement must sign exactly this change: turning it on or off, or
            // (no chain yet) starting the chain with that flag.
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(statement.as_bytes())
                .map_err(|_| ServiceError::InvalidInput("statement: standard base64".into()))?;
            let parsed = sotto_crypto::chain::Statement::decode(&bytes)
                .map_err(|e| ServiceError::InvalidInput(format!("statement: {e}")))?;
            let matches = match parsed.action() {
                sotto_crypto::chain::Action::SetEncryption(on) => *on == req.on,
                sotto_crypto::chain::Action::Create(c) => c.encrypted == req.on,
                _ => false,
            };
            if !matches {
                return Err(ServiceError::InvalidInput(
                    "statement: it does not sign this change".into(),
                ));
            }
            return self.add_statement(actor, room_id, statement).await;
        }
        self.unsigned_allowed(room_id).await?;
        if req.on {
            self.e2e_enabled().await?;
        }
        if let Some(event) = self.rooms.set_encrypted(room_id, req.on, me).await? {
            tracing::info!(room_id, encrypted = req.on, "room encryption changed");
            self.publish_event(event);
        }
        self.get(actor, room_id).await
    }

    /// Renames and/or sets the topic (owners only).
    pub async fn update(
        &self,
        actor: &Actor,
        room_id: &str,
        req: UpdateRoomRequest,
    ) -> Result<Room, ServiceError> {
        self.as_owner(user_of(actor)?, room_id).await?;
        let name = req
            .name
            .as_deref()
            .map(|n| validate::name("name", n))
            .transpose()?;
        let topic = req.topic.as_deref().map(topic).transpose()?;
        if name.is_none() && topic.is_none() {
            return Err(ServiceError::InvalidInput("give name and/or topic".into()));
        }
        let event = self
            .rooms
            .update_room(room_id, name.as_deref(), topic.as_deref())
            .await?
            .ok_or(ServiceError::NotFound("room"))?;
        self.publish_event(event);
        self.get(actor, room_id).await
    }

    async fn mentions(
        &self,
        room_id: &str,
        text: Option<&str>,
    ) -> Result<Vec<String>, ServiceError> {
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        let names = mentioned_usernames(text);
        if names.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .rooms
            .members(room_id)
            .await?
            .into_iter()
            .filter(|m| names.contains(&m.username.to_lowercase()))
            .map(|m| m.user_id)
            .collect())
    }

    /// Sends a message (members only). A retry with the same id and content returns the
    /// stored message; the same id with other content, or by someone else, is `Conflict`.
    pub async fn send(
        &self,
        actor: &Actor,
        room_id: &str,
        req: SendMessageRequest,
    ) -> Result<Sent, ServiceError> {
        let me = user_of(actor)?;
        self.send_rate
            .attempt(me, Instant::now())
            .map_err(super::rate_limit::limited)?;
        let room = self.check_member(me, room_id).await?;
        protocol_id("id", &req.id)?;
        let (text, ciphertext) = content(room.encrypted, req.text, req.ciphertext)?;
        if let Some(c) = &ciphertext {
            let header = peek_envelope(room_id, me, c)?;
            self.check_epoch(room_id, &header).await?;
            // The stored id is the envelope's, so the server cannot re-file a message.
            if header.message.to_hex() != req.id {
                return Err(ServiceError::InvalidInput(
                    "id: must be the envelope's message id in lowercase hex".into(),
                ));
            }
        }
        let hash = content_hash(text.as_deref(), ciphertext.as_deref());
        let mentions = self.mentions(room_id, text.as_deref()).await?;
        let record = MessageRecord {
            room_id: room_id.to_owned(),
            id: req.id,
            seq: 0,
            version_seq: 0,
            sender_id: me.to_owned(),
            text,
            ciphertext,
            mentions,
            content_hash: hash,
            created_at: now_ms(),
            edited_at: None,
            deleted: false,
        };
        match self.messages.insert_message(&record).await? {
            Inserted::New(m) => {
                let message = message_view(&m);
                self.publish(
                    room_id,
                    m.seq,
                    EventKind::MessageCreated {
                        message: message.clone(),
                    },
                );
                Ok(Sent {
                    message,
                    created: true,
                })
            }
            Inserted::Existing(m)
                if m.sender_id == record.sender_id && m.content_hash == record.content_hash =>
            {
                Ok(Sent {
                    message: message_view(&m),
                    created: false,
                })
            }
            Inserted::Existing(_) => Err(ServiceError::Conflict(
                "id: this room already has a different message with this id".into(),
            )),
        }
    }

    /// A page of history (members only).
    pub async fn history(
        &self,
        actor: &Actor,
        room_id: &str,
        q: HistoryQuery,
    ) -> Result<MessagePage, ServiceError> {
        self.check_member(user_of(actor)?, room_id).await?;
        let (page, has_more) = self.page(room_id, &q).await?;
        Ok(MessagePage {
            messages: page.iter().map(message_view).collect(),
            has_more,
        })
    }

    /// A page of a room's messages by the history rules, and whether there are more; no
    /// access check (callers make theirs: history, the admin audit).
    pub(crate) async fn page(
        &self,
        room_id: &str,
        q: &HistoryQuery,
    ) -> Result<(Vec<MessageRecord>, bool), ServiceError> {
        if q.before.is_some() && q.after.is_some() {
            return Err(ServiceError::InvalidInput(
                "give at most one of before and after".into(),
            ));
        }
        let limit = q.limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(ServiceError::InvalidInput(format!(
                "limit: 1 to {PAGE_MAX}"
            )));
        }
        let mut page = self
            .messages
            .messages(room_id, q.before, q.after, limit + 1)
            .await?;
        let has_more = page.len() > limit as usize;
        if has_more {
            if q.after.is_some() {
                page.pop();
            } else {
                page.remove(0);
            }
        }
        Ok((page, has_more))
    }

    /// Succeeds when `actor` may read the messages of `room_id`, exactly as for history:
    /// members only; `NotFound` for a private room they are not in, `Forbidden` for a
    /// public one.
    pub(crate) async fn require_reader(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> Result<(), ServiceError> {
        self.check_member(user_of(actor)?, room_id).await?;
        Ok(())
    }

    async fn own_message(
        &self,
        me: &str,
        room_id: &str,
        message_id: &str,
    ) -> Result<(RoomRecord, MemberRecord, MessageRecord), ServiceError> {
        let (room, member) = self.as_member(me, room_id).await?;
        let m = self
            .messages
            .message(room_id, message_id)
            .await?
            .filter(|m| !m.deleted)
            .ok_or(ServiceError::NotFound("message"))?;
        Ok((room, member, m))
    }

    /// Edits one's own message.
    pub async fn edit(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
        req: EditMessageRequest,
    ) -> Result<Message, ServiceError> {
        let me = user_of(actor)?;
        let (room, _, old) = self.own_message(me, room_id, message_id).await?;
        if old.sender_id != me {
            return Err(ServiceError::Forbidden(
                "only the sender may edit a message",
            ));
        }
        let (text, ciphertext) = content(room.encrypted, req.text, req.ciphertext)?;
        if let Some(c) = &ciphertext {
            let header = peek_envelope(room_id, me, c)?;
            self.check_epoch(room_id, &header).await?;
        }
        let mentions = self.mentions(room_id, text.as_deref()).await?;
        let m = self
            .messages
            .edit_message(
                room_id,
                message_id,
                text.as_deref(),
                ciphertext.as_deref(),
                &mentions,
                now_ms(),
            )
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        let message = message_view(&m);
        self.publish(
            room_id,
            m.version_seq,
            EventKind::MessageEdited {
                message: message.clone(),
            },
        );
        Ok(message)
    }

    /// Deletes a message (its sender, or a room owner), leaving a tombstone.
    pub async fn delete(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
    ) -> Result<Message, ServiceError> {
        let me = user_of(actor)?;
        let (_, member, old) = self.own_message(me, room_id, message_id).await?;
        if old.sender_id != me && !member.owner {
            return Err(ServiceError::Forbidden(
                "only the sender or a room owner may delete a message",
            ));
        }
        let m = self
            .messages
            .delete_message(room_id, message_id)
            .await?
            .ok_or(ServiceError::NotFound("message"))?;
        let message = message_view(&m);
        self.publish(
            room_id,
            m.version_seq,
            EventKind::MessageDeleted {
                message: message.clone(),
            },
        );
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_mentions() {
        assert!(protocol_id("id", "a.b_c:d-1").is_ok());
        for bad in ["", "a b", "é", "a/b", &"x".repeat(65)] {
            assert!(protocol_id("id", bad).is_err(), "{bad}");
        }
        let m = mentioned_usernames("hi @Bob, @carol. mail x@dave @bob @x @éva");
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            vec!["bob".to_owned(), "carol".to_owned()]
        );
        assert!(mentioned_usernames(&"@".repeat(20_000)).is_empty());
    }
}
