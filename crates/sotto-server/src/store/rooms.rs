//! Rooms, members and messages: the traits, and one implementation for both backends.
//!
//! The SQL is portable (`$n` parameters, `RETURNING`), so a macro implements the traits
//! for [`SqliteStore`] and [`PgStore`] from the same text. Every change to a room takes the
//! next value of `rooms.seq` in the same transaction as the change itself.
//!
//! Every seq is also a change a client can catch up on ([`RoomStore::changes_since`]):
//! room and membership changes are logged in `room_events` in the same transaction;
//! message changes are derived from `messages` by `version_seq`, so nothing keeps the
//! content of a deleted message.

use super::{PgStore, SqliteStore, StoreError};
use async_trait::async_trait;
use sotto_api::{Event, EventKind, Member, Message, Room, RoomKind};

/// A stored room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomRecord {
    /// Random id.
    pub id: String,
    /// Kind.
    pub kind: RoomKind,
    /// Visible to members only.
    pub private: bool,
    /// Name; `None` for direct messages.
    pub name: Option<String>,
    /// Topic.
    pub topic: String,
    /// Parent of a discussion.
    pub parent_id: Option<String>,
    /// End-to-end encrypted.
    pub encrypted: bool,
    /// Creator.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Latest room sequence number.
    pub seq: i64,
    /// Direct messages: sorted member ids joined by `,`.
    pub dm_key: Option<String>,
}

/// A stored membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The user.
    pub user_id: String,
    /// The user's username (read from `users`; ignored on insert).
    pub username: String,
    /// Owner of the room.
    pub owner: bool,
    /// Unix milliseconds.
    pub joined_at: i64,
}

/// What access checks need of a room, and one user's membership in it. Unlike
/// [`RoomRecord`] nothing here changes with each message, so stores may cache it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomAccess {
    /// Kind.
    pub kind: RoomKind,
    /// Visible to members only.
    pub private: bool,
    /// End-to-end encrypted.
    pub encrypted: bool,
    /// The user's membership, if any.
    pub member: Option<MemberRecord>,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRecord {
    /// Room.
    pub room_id: String,
    /// Client-chosen id.
    pub id: String,
    /// Position (assigned on insert).
    pub seq: i64,
    /// Sequence number of the latest change (assigned on insert, edit, delete).
    pub version_seq: i64,
    /// Sender.
    pub sender_id: String,
    /// Plaintext.
    pub text: Option<String>,
    /// Base64 envelope.
    pub ciphertext: Option<String>,
    /// Mentioned user ids.
    pub mentions: Vec<String>,
    /// Hex SHA-256 of the content as first sent.
    pub content_hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub edited_at: Option<i64>,
    /// A tombstone.
    pub deleted: bool,
}

/// A room in a member's room list, with their read marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomUnread {
    /// The room.
    pub room: RoomRecord,
    /// The seq of the last message the member has read.
    pub last_read_seq: i64,
    /// Live messages from others after the marker, counted up to the cap asked for.
    pub unread: u32,
}

/// What [`MessageStore::insert_message`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored now, with its sequence numbers.
    New(MessageRecord),
    /// A message with this id was already in the room; it is returned unchanged.
    Existing(MessageRecord),
}

/// Rooms and their members.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Inserts a room (its `seq` is taken as given) and its first members; returns the
    /// logged `room_created`. [`StoreError::Conflict`] if the id or the DM key exists.
    async fn insert_room(
        &self,
        room: &RoomRecord,
        members: &[MemberRecord],
    ) -> Result<Event, StoreError>;
    /// The room with this id.
    async fn room_by_id(&self, id: &str) -> Result<Option<RoomRecord>, StoreError>;
    /// The direct message with this key.
    async fn room_by_dm_key(&self, dm_key: &str) -> Result<Option<RoomRecord>, StoreError>;
    /// Rooms `user_id` is a member of, oldest first.
    async fn rooms_of_user(&self, user_id: &str) -> Result<Vec<RoomRecord>, StoreError>;
    /// Rooms `user_id` is a member of, oldest first, each with the member's read marker
    /// and how many messages after it are neither deleted nor sent by `user_id`, counted
    /// up to `cap` (so a room of a million unread messages costs `cap` index entries).
    async fn rooms_with_unread(
        &self,
        user_id: &str,
        cap: u32,
    ) -> Result<Vec<RoomUnread>, StoreError>;
    /// Moves the member's read marker forward to `seq`, clamped to the room's seq; it never
    /// moves back. The marker after the call, or `None` if not a member.
    async fn mark_read(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> Result<Option<i64>, StoreError>;
    /// Public channels and teams, oldest first.
    async fn public_rooms(&self) -> Result<Vec<RoomRecord>, StoreError>;
    /// One membership.
    async fn member(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<MemberRecord>, StoreError>;
    /// The room's kind, privacy and encryption with `user_id`'s membership; `None` if
    /// there is no such room. Cached: the methods that change a membership or the
    /// encryption flag drop the room's entries.
    async fn access(&self, room_id: &str, user_id: &str) -> Result<Option<RoomAccess>, StoreError>;
    /// A room's members in joining order.
    async fn members(&self, room_id: &str) -> Result<Vec<MemberRecord>, StoreError>;
    /// Adds a member; the logged `member_added` (with the new room seq), or `None` if
    /// already a member (or no such room).
    async fn add_member(
        &self,
        room_id: &str,
        member: &MemberRecord,
    ) -> Result<Option<Event>, StoreError>;
    /// Removes a member; the logged `member_removed`, or `None` if not a member.
    /// [`StoreError::LastOwner`] if they are the only owner and others remain.
    async fn remove_member(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> Result<Option<Event>, StoreError>;
    /// [`RoomStore::add_member`] forced by an administrator, `by`: kept on the membership
    /// and carried by the logged `member_added`.
    async fn force_add_member(
        &self,
        room_id: &str,
        member: &MemberRecord,
        by: &str,
    ) -> Result<Option<Event>, StoreError>;
    /// [`RoomStore::remove_member`] forced by an administrator, `by`: carried by the
    /// logged `member_removed`. The same last-owner rule.
    async fn force_remove_member(
        &self,
        room_id: &str,
        user_id: &str,
        by: &str,
    ) -> Result<Option<Event>, StoreError>;
    /// The room's members an administrator added, with who did: (user id, forced by).
    async fn forced_members(&self, room_id: &str) -> Result<Vec<(String, String)>, StoreError>;
    /// Sets or clears the owner flag; the logged `owner_changed`, or `None` if not a member.
    /// [`StoreError::LastOwner`] if clearing it would leave others without an owner.
    async fn set_owner(
        &self,
        room_id: &str,
        user_id: &str,
        owner: bool,
    ) -> Result<Option<Event>, StoreError>;
    /// Changes name and/or topic; the logged `room_updated`, or `None` if no such room.
    async fn update_room(
        &self,
        room_id: &str,
        name: Option<&str>,
        topic: Option<&str>,
    ) -> Result<Option<Event>, StoreError>;
    /// Up to `limit` changes of the room with a seq above `after`, in increasing seq, read
    /// in one snapshot. Room and membership changes are returned as logged. A message
    /// gives one event at its `version_seq` with its current state: `message_deleted` (a
    /// tombstone) if deleted, else `message_created` if its `seq` is above `after`, else
    /// `message_edited`. Earlier versions of a message are not kept, so the seqs
    /// returned may have holes.
    async fn changes_since(
        &self,
        room_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;
    /// The latest `member_removed` of `user_id` from the room with a seq above `after`.
    async fn last_removal(
        &self,
        room_id: &str,
        user_id: &str,
        after: i64,
    ) -> Result<Option<Event>, StoreError>;
    /// Everyone who shares at least one room with `user_id`, the user excluded, sorted.
    async fn room_peers(&self, user_id: &str) -> Result<Vec<String>, StoreError>;
    /// Turns encryption on or off; the logged `encryption_changed`, or `None` if there is
    /// no such room or the flag already has that value.
    async fn set_encrypted(
        &self,
        room_id: &str,
        on: bool,
        by: &str,
    ) -> Result<Option<Event>, StoreError>;
}

/// Messages.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Inserts a message under the next room seq (`seq`, `version_seq` are assigned), or
    /// returns the message already stored under its id in the room. Atomic, also when
    /// the same id is sent concurrently. The room must exist.
    async fn insert_message(&self, message: &MessageRecord) -> Result<Inserted, StoreError>;
    /// Inserts messages as [`Self::insert_message`] does, each under the next seq of its
    /// room, all in one transaction (so, unlike live sends, without a commit each): for
    /// loading history in bulk. An id already stored in its room fails the whole call
    /// with [`StoreError::Conflict`] and stores nothing.
    async fn import_messages(
        &self,
        messages: &[MessageRecord],
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// One message.
    async fn message(&self, room_id: &str, id: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// Up to `limit` messages with `seq < before` (the newest of them) or `seq > after` (the
    /// oldest of them); neither means the newest. Always returned in increasing `seq`.
    async fn messages(
        &self,
        room_id: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// Replaces the content of a live message under the next room seq; `None` if there is
    /// no such live message.
    async fn edit_message(
        &self,
        room_id: &str,
        id: &str,
        text: Option<&str>,
        ciphertext: Option<&str>,
        mentions: &[String],
        at: i64,
    ) -> Result<Option<MessageRecord>, StoreError>;
    /// Turns a live message into a tombstone under the next room seq; `None` if there is
    /// no such live message.
    async fn delete_message(
        &self,
        room_id: &str,
        id: &str,
    ) -> Result<Option<MessageRecord>, StoreError>;
}

fn kind_str(k: RoomKind) -> &'static str {
    match k {
        RoomKind::Channel => "channel",
        RoomKind::Direct => "direct",
        RoomKind::Team => "team",
        RoomKind::Discussion => "discussion",
    }
}

fn parse_kind(s: &str) -> Result<RoomKind, StoreError> {
    match s {
        "channel" => Ok(RoomKind::Channel),
        "direct" => Ok(RoomKind::Direct),
        "team" => Ok(RoomKind::Team),
        "discussion" => Ok(RoomKind::Discussion),
        other => Err(StoreError::Corrupt(format!("room kind {other:?}"))),
    }
}

/// The wire form of a stored room; `member` says whether the viewer is in it (events
/// go to members, so they carry `true`).
pub fn room_view(r: &RoomRecord, member: bool) -> Room {
    Room {
        id: r.id.clone(),
        kind: r.kind,
        private: r.private,
        name: r.name.clone(),
        topic: r.topic.clone(),
        parent_id: r.parent_id.clone(),
        encrypted: r.encrypted,
        created_by: r.created_by.clone(),
        created_at: r.created_at,
        seq: r.seq,
        member,
        last_read_seq: None,
        unread: None,
    }
}

/// The wire form of a stored message.
pub fn message_view(m: &MessageRecord) -> Message {
    Message {
        id: m.id.clone(),
        room_id: m.room_id.clone(),
        seq: m.seq,
        version_seq: m.version_seq,
        sender_id: m.sender_id.clone(),
        text: m.text.clone(),
        ciphertext: m.ciphertext.clone(),
        mentions: m.mentions.clone(),
        created_at: m.created_at,
        edited_at: m.edited_at,
        deleted: m.deleted,
    }
}

/// The event a message's latest version stands for, seen from `after`.
fn message_event(m: &MessageRecord, after: i64) -> Event {
    let message = message_view(m);
    let kind = if m.deleted {
        EventKind::MessageDeleted { message }
    } else if m.seq > after {
        EventKind::MessageCreated { message }
    } else {
        EventKind::MessageEdited { message }
    };
    Event {
        room_id: m.room_id.clone(),
        seq: m.version_seq,
        kind,
    }
}

/// The `room_events` columns of an event: type, subject user and JSON payload.
fn event_columns(kind: &EventKind) -> Result<(String, Option<String>, String), StoreError> {
    let value = serde_json::to_value(kind).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let ty = value["type"].as_str().unwrap_or_default().to_owned();
    let subject = match kind {
        EventKind::MemberAdded { member } => Some(member.user_id.clone()),
        EventKind::MemberRemoved { user_id, .. } | EventKind::OwnerChanged { user_id, .. } => {
            Some(user_id.clone())
        }
        _ => None,
    };
    Ok((ty, subject, value.to_string()))
}

fn parse_event(room_id: String, seq: i64, payload: &str) -> Result<Event, StoreError> {
    let kind = serde_json::from_str(payload)
        .map_err(|e| StoreError::Corrupt(format!("room event {room_id}/{seq}: {e}")))?;
    Ok(Event { room_id, seq, kind })
}

pub(super) fn parse_mentions(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("mentions: {e}")))
}

pub(super) fn mentions_json(m: &[String]) -> String {
    serde_json::Value::from(m.to_vec()).to_string()
}

pub(super) const ROOM_COLUMNS: &str = "id, kind, private, name, topic, parent_id, encrypted, created_by, \
                            created_at, seq, dm_key";
pub(super) const MESSAGE_COLUMNS: &str = "room_id, id, seq, version_seq, sender_id, body_text, ciphertext, \
                               mentions, content_hash, created_at, edited_at, deleted";
const MEMBER_SELECT: &str = "SELECT m.user_id, u.username, m.owner, m.joined_at \
                             FROM room_members m JOIN users u ON u.id = m.user_id";

macro_rules! room_stores {
    ($store:ty, $row:ty, $db:ty) => {
        impl $store {
            /// [`MessageStore::insert_message`] inside `tx`, which the caller commits for
            /// `Inserted::New` and rolls back otherwise (to return the seq taken).
            pub(super) async fn insert_message_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                m: &MessageRecord,
            ) -> Result<Inserted, StoreError> {
                // Taking the seq first locks the room row (PostgreSQL) or the database
                // (SQLite), so concurrent sends of one id see each other.
                let Some(seq) = bump(tx, &m.room_id).await? else {
                    return Err(StoreError::Corrupt(format!("no room {}", m.room_id)));
                };
                let existing = sqlx::query(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2"
                ))
                .bind(&m.room_id)
                .bind(&m.id)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(row) = existing {
                    return Ok(Inserted::Existing(Self::message_row(&row)?));
                }
                let row = sqlx::query(&format!(
                    "INSERT INTO messages ({MESSAGE_COLUMNS}) \
                     VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, NULL, $10) \
                     RETURNING {MESSAGE_COLUMNS}"
                ))
                .bind(&m.room_id)
                .bind(&m.id)
                .bind(seq)
                .bind(&m.sender_id)
                .bind(&m.text)
                .bind(&m.ciphertext)
                .bind(mentions_json(&m.mentions))
                .bind(&m.content_hash)
                .bind(m.created_at)
                .bind(false)
                .fetch_one(&mut **tx)
                .await
                .map_err(StoreError::from_write)?;
                // Whoever writes has read the room up to their own message.
                sqlx::query(
                    "UPDATE room_members SET last_read_seq = $3 \
                     WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
                )
                .bind(&m.room_id)
                .bind(&m.sender_id)
                .bind(seq)
                .execute(&mut **tx)
                .await?;
                Ok(Inserted::New(Self::message_row(&row)?))
            }

            /// Adds a member, forced by `forced_by` or not.
            async fn add_member_by(
                &self,
                room_id: &str,
                m: &MemberRecord,
                forced_by: Option<&str>,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                // A new member starts with what came before them read.
                let done = sqlx::query(
                    "INSERT INTO room_members \
                     (room_id, user_id, owner, joined_at, last_read_seq, forced_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(room_id)
                .bind(&m.user_id)
                .bind(m.owner)
                .bind(m.joined_at)
                .bind(seq)
                .bind(forced_by)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let row = sqlx::query(&format!(
                    "{MEMBER_SELECT} WHERE m.room_id = $1 AND m.user_id = $2"
                ))
                .bind(room_id)
                .bind(&m.user_id)
                .fetch_one(&mut *tx)
                .await?;
                let added = Self::member_row(&row)?;
                let member = Member {
                    user_id: added.user_id,
                    username: added.username,
                    owner: added.owner,
                    joined_at: added.joined_at,
                    forced_by: forced_by.map(str::to_owned),
                };
                let event =
                    log_event(&mut tx, room_id, seq, EventKind::MemberAdded { member }).await?;
                tx.commit().await?;
                self.access_changed(room_id);
                Ok(Some(event))
            }

            /// Removes a member, forced by `forced_by` or not.
            async fn remove_member_by(
                &self,
                room_id: &str,
                user_id: &str,
                forced_by: Option<&str>,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                an_owner_remains(&mut tx, room_id, user_id).await?;
                let done =
                    sqlx::query("DELETE FROM room_members WHERE room_id = $1 AND user_id = $2")
                        .bind(room_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let kind = EventKind::MemberRemoved {
                    user_id: user_id.to_owned(),
                    forced_by: forced_by.map(str::to_owned),
                };
                let event = log_event(&mut tx, room_id, seq, kind).await?;
                tx.commit().await?;
                self.access_changed(room_id);
                Ok(Some(event))
            }

            /// Drops the cached access to the room (after a committed change of a
            /// membership or the encryption flag).
            pub(super) fn access_changed(&self, room_id: &str) {
                self.caches().access.drop_where(|(room, _), _| room == room_id);
            }

            pub(super) fn room_row(row: &$row) -> Result<RoomRecord, StoreError> {
                use sqlx::Row;
                Ok(RoomRecord {
                    id: row.try_get("id")?,
                    kind: parse_kind(row.try_get("kind")?)?,
                    private: row.try_get("private")?,
                    name: row.try_get("name")?,
                    topic: row.try_get("topic")?,
                    parent_id: row.try_get("parent_id")?,
                    encrypted: row.try_get("encrypted")?,
                    created_by: row.try_get("created_by")?,
                    created_at: row.try_get("created_at")?,
                    seq: row.try_get("seq")?,
                    dm_key: row.try_get("dm_key")?,
                })
            }

            fn member_row(row: &$row) -> Result<MemberRecord, StoreError> {
                use sqlx::Row;
                Ok(MemberRecord {
                    user_id: row.try_get("user_id")?,
                    username: row.try_get("username")?,
                    owner: row.try_get("owner")?,
                    joined_at: row.try_get("joined_at")?,
                })
            }

            pub(super) fn message_row(row: &$row) -> Result<MessageRecord, StoreError> {
                use sqlx::Row;
                Ok(MessageRecord {
                    room_id: row.try_get("room_id")?,
                    id: row.try_get("id")?,
                    seq: row.try_get("seq")?,
                    version_seq: row.try_get("version_seq")?,
                    sender_id: row.try_get("sender_id")?,
                    text: row.try_get("body_text")?,
                    ciphertext: row.try_get("ciphertext")?,
                    mentions: parse_mentions(row.try_get("mentions")?)?,
                    content_hash: row.try_get("content_hash")?,
                    created_at: row.try_get("created_at")?,
                    edited_at: row.try_get("edited_at")?,
                    deleted: row.try_get("deleted")?,
                })
            }

            async fn rooms_where(
                &self,
                clause: &str,
                arg: Option<&str>,
            ) -> Result<Vec<RoomRecord>, StoreError> {
                let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms {clause} ORDER BY created_at, id");
                let mut q = sqlx::query(&sql);
                if let Some(a) = arg {
                    q = q.bind(a);
                }
                q.fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(Self::room_row)
                    .collect()
            }
        }

        #[async_trait]
        impl RoomStore for $store {
            async fn insert_room(
                &self,
                r: &RoomRecord,
                members: &[MemberRecord],
            ) -> Result<Event, StoreError> {
                let mut tx = self.pool().begin().await?;
                sqlx::query(
                    "INSERT INTO rooms (id, kind, private, name, topic, parent_id, encrypted, \
                     created_by, created_at, seq, dm_key) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(&r.id)
                .bind(kind_str(r.kind))
                .bind(r.private)
                .bind(&r.name)
                .bind(&r.topic)
                .bind(&r.parent_id)
                .bind(r.encrypted)
                .bind(&r.created_by)
                .bind(r.created_at)
                .bind(r.seq)
                .bind(&r.dm_key)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                for m in members {
                    sqlx::query(
                        "INSERT INTO room_members \
                         (room_id, user_id, owner, joined_at, last_read_seq) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(&r.id)
                    .bind(&m.user_id)
                    .bind(m.owner)
                    .bind(m.joined_at)
                    .bind(r.seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_write)?;
                }
                let kind = EventKind::RoomCreated {
                    room: room_view(r, true),
                    member_ids: members.iter().map(|m| m.user_id.clone()).collect(),
                };
                let event = log_event(&mut tx, &r.id, r.seq, kind).await?;
                tx.commit().await?;
                Ok(event)
            }

            async fn room_by_id(&self, id: &str) -> Result<Option<RoomRecord>, StoreError> {
                Ok(self.rooms_where("WHERE id = $1", Some(id)).await?.pop())
            }

            async fn room_by_dm_key(&self, key: &str) -> Result<Option<RoomRecord>, StoreError> {
                Ok(self.rooms_where("WHERE dm_key = $1", Some(key)).await?.pop())
            }

            async fn rooms_of_user(&self, user_id: &str) -> Result<Vec<RoomRecord>, StoreError> {
                self.rooms_where(
                    "WHERE id IN (SELECT room_id FROM room_members WHERE user_id = $1)",
                    Some(user_id),
                )
                .await
            }

            async fn rooms_with_unread(
                &self,
                user_id: &str,
                cap: u32,
            ) -> Result<Vec<RoomUnread>, StoreError> {
                use sqlx::Row;
                let columns = ROOM_COLUMNS
                    .split(", ")
                    .map(|c| format!("r.{c}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                // The inner LIMIT caps the scan, not only the answer.
                let sql = format!(
                    "SELECT {columns}, m.last_read_seq, \
                       (SELECT COUNT(*) FROM ( \
                          SELECT 1 FROM messages x \
                          WHERE x.room_id = r.id AND x.seq > m.last_read_seq \
                            AND NOT x.deleted AND x.sender_id <> $1 \
                          ORDER BY x.seq LIMIT $2) AS u) AS unread \
                     FROM room_members m JOIN rooms r ON r.id = m.room_id \
                     WHERE m.user_id = $1 ORDER BY r.created_at, r.id"
                );
                sqlx::query(&sql)
                    .bind(user_id)
                    .bind(i64::from(cap))
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|row| {
                        let unread: i64 = row.try_get("unread")?;
                        Ok(RoomUnread {
                            room: Self::room_row(row)?,
                            last_read_seq: row.try_get("last_read_seq")?,
                            unread: u32::try_from(unread).unwrap_or(u32::MAX),
                        })
                    })
                    .collect()
            }

            async fn mark_read(
                &self,
                room_id: &str,
                user_id: &str,
                seq: i64,
            ) -> Result<Option<i64>, StoreError> {
                self.write_read_marker(room_id, user_id, seq).await
            }

            async fn public_rooms(&self) -> Result<Vec<RoomRecord>, StoreError> {
                self.rooms_where(
                    "WHERE NOT private AND kind IN ('channel', 'team')",
                    None,
                )
                .await
            }

            async fn member(
                &self,
                room_id: &str,
                user_id: &str,
            ) -> Result<Option<MemberRecord>, StoreError> {
                sqlx::query(&format!(
                    "{MEMBER_SELECT} WHERE m.room_id = $1 AND m.user_id = $2"
                ))
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(Self::member_row)
                .transpose()
            }

            async fn access(
                &self,
                room_id: &str,
                user_id: &str,
            ) -> Result<Option<RoomAccess>, StoreError> {
                use sqlx::Row;
                let key = (room_id.to_owned(), user_id.to_owned());
                let ticket = match self.caches().access.get(&key) {
                    Ok(access) => return Ok(Some(access)),
                    Err(ticket) => ticket,
                };
                let Some(row) = sqlx::query(
                    "SELECT r.kind, r.private, r.encrypted, m.user_id, u.username, m.owner, \
                            m.joined_at \
                     FROM rooms r \
                     LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2 \
                     LEFT JOIN users u ON u.id = m.user_id \
                     WHERE r.id = $1",
                )
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                else {
                    return Ok(None);
                };
                let member = match row.try_get::<Option<String>, _>("user_id")? {
                    Some(_) => Some(Self::member_row(&row)?),
                    None => None,
                };
                let access = RoomAccess {
                    kind: parse_kind(row.try_get("kind")?)?,
                    private: row.try_get("private")?,
                    encrypted: row.try_get("encrypted")?,
                    member,
                };
                self.caches().access.keep(ticket, key, access.clone());
                Ok(Some(access))
            }

            async fn members(&self, room_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
                sqlx::query(&format!(
                    "{MEMBER_SELECT} WHERE m.room_id = $1 ORDER BY m.joined_at, m.user_id"
                ))
                .bind(room_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(Self::member_row)
                .collect()
            }

            async fn add_member(
                &self,
                room_id: &str,
                m: &MemberRecord,
            ) -> Result<Option<Event>, StoreError> {
                self.add_member_by(room_id, m, None).await
            }

            async fn force_add_member(
                &self,
                room_id: &str,
                m: &MemberRecord,
                by: &str,
            ) -> Result<Option<Event>, StoreError> {
                self.add_member_by(room_id, m, Some(by)).await
            }

            async fn remove_member(
                &self,
                room_id: &str,
                user_id: &str,
            ) -> Result<Option<Event>, StoreError> {
                self.remove_member_by(room_id, user_id, None).await
            }

            async fn force_remove_member(
                &self,
                room_id: &str,
                user_id: &str,
                by: &str,
            ) -> Result<Option<Event>, StoreError> {
                self.remove_member_by(room_id, user_id, Some(by)).await
            }

            async fn forced_members(
                &self,
                room_id: &str,
            ) -> Result<Vec<(String, String)>, StoreError> {
                use sqlx::Row;
                sqlx::query(
                    "SELECT user_id, forced_by FROM room_members \
                     WHERE room_id = $1 AND forced_by IS NOT NULL ORDER BY user_id",
                )
                .bind(room_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
            }
            async fn set_owner(
                &self,
                room_id: &str,
                user_id: &str,
                owner: bool,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                if !owner {
                    an_owner_remains(&mut tx, room_id, user_id).await?;
                }
                let done = sqlx::query(
                    "UPDATE room_members SET owner = $3 WHERE room_id = $1 AND user_id = $2",
                )
                .bind(room_id)
                .bind(user_id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let kind = EventKind::OwnerChanged {
                    user_id: user_id.to_owned(),
                    owner,
                };
                let event = log_event(&mut tx, room_id, seq, kind).await?;
                tx.commit().await?;
                self.access_changed(room_id);
                Ok(Some(event))
            }

            async fn update_room(
                &self,
                room_id: &str,
                name: Option<&str>,
                topic: Option<&str>,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                let row = sqlx::query(&format!(
                    "UPDATE rooms SET name = COALESCE($2, name), topic = COALESCE($3, topic) \
                     WHERE id = $1 RETURNING {ROOM_COLUMNS}"
                ))
                .bind(room_id)
                .bind(name)
                .bind(topic)
                .fetch_one(&mut *tx)
                .await?;
                let room = room_view(&Self::room_row(&row)?, true);
                let event =
                    log_event(&mut tx, room_id, seq, EventKind::RoomUpdated { room }).await?;
                tx.commit().await?;
                Ok(Some(event))
            }

            async fn changes_since(
                &self,
                room_id: &str,
                after: i64,
                limit: u32,
            ) -> Result<Vec<Event>, StoreError> {
                use sqlx::Row;
                // One statement, so both sources come from one snapshot: a seq is read
                // only with every smaller one (a room's seqs commit in order, as taking
                // one locks the room row until commit).
                let sql = format!(
                    "SELECT * FROM ( \
                       SELECT version_seq AS ev_seq, NULL AS payload, {MESSAGE_COLUMNS} \
                       FROM messages WHERE room_id = $1 AND version_seq > $2 \
                       UNION ALL \
                       SELECT seq, payload, room_id, NULL, NULL, NULL, NULL, NULL, NULL, \
                              NULL, NULL, NULL, NULL, NULL \
                       FROM room_events WHERE room_id = $1 AND seq > $2 \
                     ) AS changes ORDER BY ev_seq LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(room_id)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|row| {
                        let seq: i64 = row.try_get("ev_seq")?;
                        match row.try_get::<Option<String>, _>("payload")? {
                            Some(p) => parse_event(room_id.to_owned(), seq, &p),
                            None => Ok(message_event(&Self::message_row(row)?, after)),
                        }
                    })
                    .collect()
            }

            async fn last_removal(
                &self,
                room_id: &str,
                user_id: &str,
                after: i64,
            ) -> Result<Option<Event>, StoreError> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT seq, payload FROM room_events WHERE room_id = $1 AND subject = $2 \
                     AND kind = 'member_removed' AND seq > $3 ORDER BY seq DESC LIMIT 1",
                )
                .bind(room_id)
                .bind(user_id)
                .bind(after)
                .fetch_optional(self.pool())
                .await?;
                row.map(|r| parse_event(room_id.to_owned(), r.try_get("seq")?, r.try_get("payload")?))
                    .transpose()
            }

            async fn set_encrypted(
                &self,
                room_id: &str,
                on: bool,
                by: &str,
            ) -> Result<Option<Event>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                let done = sqlx::query(
                    "UPDATE rooms SET encrypted = $2 WHERE id = $1 AND encrypted <> $2",
                )
                .bind(room_id)
                .bind(on)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(None);
                }
                let kind = EventKind::EncryptionChanged {
                    encrypted: on,
                    by: by.to_owned(),
                };
                let event = log_event(&mut tx, room_id, seq, kind).await?;
                tx.commit().await?;
                self.access_changed(room_id);
                Ok(Some(event))
            }

            async fn room_peers(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
                use sqlx::Row;
                sqlx::query(
                    "SELECT DISTINCT o.user_id FROM room_members me \
                     JOIN room_members o ON o.room_id = me.room_id \
                     WHERE me.user_id = $1 AND o.user_id <> $1 ORDER BY o.user_id",
                )
                .bind(user_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
            }
        }

        #[async_trait]
        impl MessageStore for $store {
            async fn insert_message(&self, m: &MessageRecord) -> Result<Inserted, StoreError> {
                self.insert_message_durably(m).await
            }

            async fn import_messages(
                &self,
                messages: &[MessageRecord],
            ) -> Result<Vec<MessageRecord>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let mut stored = Vec::with_capacity(messages.len());
                for m in messages {
                    match Self::insert_message_in(&mut tx, m).await? {
                        Inserted::New(m) => stored.push(m),
                        // Dropping the transaction rolls back the seqs already taken.
                        Inserted::Existing(_) => return Err(StoreError::Conflict),
                    }
                }
                tx.commit().await?;
                Ok(stored)
            }

            async fn message(
                &self,
                room_id: &str,
                id: &str,
            ) -> Result<Option<MessageRecord>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND id = $2"
                ))
                .bind(room_id)
                .bind(id)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(Self::message_row)
                .transpose()
            }

            async fn messages(
                &self,
                room_id: &str,
                before: Option<i64>,
                after: Option<i64>,
                limit: u32,
            ) -> Result<Vec<MessageRecord>, StoreError> {
                let (cond, order, bound) = match (before, after) {
                    (_, Some(a)) => ("seq > $2", "ASC", a),
                    (Some(b), None) => ("seq < $2", "DESC", b),
                    (None, None) => ("seq < $2", "DESC", i64::MAX),
                };
                let sql = format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = $1 AND {cond} \
                     ORDER BY seq {order} LIMIT $3"
                );
                let mut out = sqlx::query(&sql)
                    .bind(room_id)
                    .bind(bound)
                    .bind(i64::from(limit))
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(Self::message_row)
                    .collect::<Result<Vec<_>, _>>()?;
                out.sort_by_key(|m| m.seq);
                Ok(out)
            }

            async fn edit_message(
                &self,
                room_id: &str,
                id: &str,
                text: Option<&str>,
                ciphertext: Option<&str>,
                mentions: &[String],
                at: i64,
            ) -> Result<Option<MessageRecord>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                let row = sqlx::query(&format!(
                    "UPDATE messages SET body_text = $3, ciphertext = $4, mentions = $5, \
                     edited_at = $6, version_seq = $7 \
                     WHERE room_id = $1 AND id = $2 AND NOT deleted RETURNING {MESSAGE_COLUMNS}"
                ))
                .bind(room_id)
                .bind(id)
                .bind(text)
                .bind(ciphertext)
                .bind(mentions_json(mentions))
                .bind(at)
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let stored = Self::message_row(&row)?;
                tx.commit().await?;
                Ok(Some(stored))
            }

            async fn delete_message(
                &self,
                room_id: &str,
                id: &str,
            ) -> Result<Option<MessageRecord>, StoreError> {
                let mut tx = self.pool().begin().await?;
                let Some(seq) = bump(&mut tx, room_id).await? else {
                    return Ok(None);
                };
                let row = sqlx::query(&format!(
                    "UPDATE messages SET body_text = NULL, ciphertext = NULL, mentions = '[]', \
                     deleted = $3, version_seq = $4 \
                     WHERE room_id = $1 AND id = $2 AND NOT deleted RETURNING {MESSAGE_COLUMNS}"
                ))
                .bind(room_id)
                .bind(id)
                .bind(true)
                .bind(seq)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let stored = Self::message_row(&row)?;
                tx.commit().await?;
                Ok(Some(stored))
            }
        }
    };
}

/// Takes the next room seq inside `tx`; `None` if there is no such room.
pub(super) async fn bump<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    room_id: &str,
) -> Result<Option<i64>, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row;
    let row = sqlx::query("UPDATE rooms SET seq = seq + 1 WHERE id = $1 RETURNING seq")
        .bind(room_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get::<i64, _>(0)?),
        None => None,
    })
}

/// Fails with [`StoreError::LastOwner`] if `user_id` is the room's only owner and others
/// remain. Called after [`bump`] has locked the room row, so two owners stepping down at
/// once cannot both pass (PostgreSQL re-reads after the lock; SQLite has one writer).
pub(super) async fn an_owner_remains<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    room_id: &str,
    user_id: &str,
) -> Result<(), StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: for<'r> sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM room_members \
                        WHERE room_id = $1 AND user_id = $2 AND owner) \
            AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id <> $2) \
            AND NOT EXISTS (SELECT 1 FROM room_members \
                            WHERE room_id = $1 AND user_id <> $2 AND owner)",
    )
    .bind(room_id)
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    if row.try_get::<bool, _>(0)? {
        return Err(StoreError::LastOwner);
    }
    Ok(())
}

/// Logs a room or membership change inside `tx`, and returns it as an event.
pub(super) async fn log_event<'c, DB>(
    tx: &mut sqlx::Transaction<'c, DB>,
    room_id: &str,
    seq: i64,
    kind: EventKind,
) -> Result<Event, StoreError>
where
    DB: sqlx::Database,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let (ty, subject, payload) = event_columns(&kind)?;
    sqlx::query(
        "INSERT INTO room_events (room_id, seq, kind, subject, payload) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(room_id)
    .bind(seq)
    .bind(ty)
    .bind(subject)
    .bind(payload)
    .execute(&mut **tx)
    .await?;
    Ok(Event {
        room_id: room_id.to_owned(),
        seq,
        kind,
    })
}

room_stores!(SqliteStore, sqlx::sqlite::SqliteRow, sqlx::Sqlite);
room_stores!(PgStore, sqlx::postgres::PgRow, sqlx::Postgres);

impl PgStore {
    /// Through the group-commit writer: under load, sends share a transaction of a few
    /// statements instead of six round trips and a commit each (see `pg_batch.rs`).
    async fn insert_message_durably(&self, m: &MessageRecord) -> Result<Inserted, StoreError> {
        self.messages_writer().insert(m.clone()).await
    }

    async fn write_read_marker(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> Result<Option<i64>, StoreError> {
        use sqlx::Row;
        // Only forward, and never past the room's last seq, so concurrent marks from
        // several devices settle on the furthest.
        sqlx::query(
            "UPDATE room_members m SET last_read_seq = LEAST($3, r.seq) FROM rooms r \
             WHERE r.id = $1 AND m.room_id = $1 AND m.user_id = $2 \
               AND m.last_read_seq < LEAST($3, r.seq)",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(seq)
        .execute(self.pool())
        .await?;
        sqlx::query("SELECT last_read_seq FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .map(|r| Ok(r.try_get(0)?))
            .transpose()
    }
}

impl SqliteStore {
    /// Through the message writer, which holds SQLite's write lock most of the time
    /// under load (see `batch.rs`).
    async fn write_read_marker(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.messages_writer()
            .mark_read(room_id, user_id, seq)
            .await
    }

    /// Through the group-commit writer: SQLite syncs every commit on its own, so under
    /// load sends share commits instead (see `batch.rs`).
    async fn insert_message_durably(&self, m: &MessageRecord) -> Result<Inserted, StoreError> {
        self.messages_writer().insert(m.clone()).await
    }
}
