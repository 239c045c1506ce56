//! Rooms, membership and messages (C3–C5).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What a room is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// A named channel, public or private.
    Channel,
    /// A direct message between two people, or a group of up to
    /// `rooms.max_group_dm_members`; it has exactly its people.
    Direct,
    /// A team: a named room with its own member list, public or private.
    Team,
    /// A sub-room of a channel or team.
    Discussion,
}

/// A room as its members (or, for public rooms, anyone) see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// Random id in the protocol id alphabet.
    pub id: String,
    /// Channel, direct, team or discussion.
    pub kind: RoomKind,
    /// Private rooms are visible only to their members; direct messages are always private.
    pub private: bool,
    /// Name; absent for direct messages.
    pub name: Option<String>,
    /// Topic, possibly empty.
    pub topic: String,
    /// The channel or team a discussion belongs to.
    pub parent_id: Option<String>,
    /// New messages must be end-to-end encrypted envelopes.
    pub encrypted: bool,
    /// Creator's user id.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The room's latest sequence number: every message, edit, delete, membership or room
    /// change takes the next one.
    pub seq: i64,
    /// Whether the caller is a member.
    pub member: bool,
    /// In the caller's room list only: the seq of the last message they have read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    /// In the caller's room list only: messages after `last_read_seq` that are neither
    /// deleted nor the caller's own, counted up to [`UNREAD_CAP`]: `UNREAD_CAP` means
    /// that many or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<u32>,
}

/// The most unread messages a room list counts per room: a badge says "100+" past it.
/// Counting costs one index entry per unread message, for every room in the list, so a
/// cap of 1,000 made a list of a hundred busy rooms cost about 10 ms of CPU.
pub const UNREAD_CAP: u32 = 100;

/// `POST /api/v1/rooms/{id}/read`: the caller has read the room up to `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    /// A message seq (0 or more). A seq beyond the room's latest is taken as the latest.
    pub seq: i64,
}

/// The caller's read marker in a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadMarker {
    /// The room.
    pub room_id: String,
    /// The seq of the last message read; it only moves forward.
    pub last_read_seq: i64,
}

/// Rooms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomList {
    /// Rooms, oldest first.
    pub rooms: Vec<Room>,
}

/// `POST /api/v1/rooms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomRequest {
    /// What to create.
    pub kind: RoomKind,
    /// Channels, teams, discussions: 1–64 characters. Not for direct messages.
    #[serde(default)]
    pub name: Option<String>,
    /// Up to 250 characters.
    #[serde(default)]
    pub topic: Option<String>,
    /// Channels and teams: default false. Discussions: default as their parent.
    /// Direct messages are always private.
    #[serde(default)]
    pub private: Option<bool>,
    /// Discussions only: the channel or team it belongs to.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// User ids to add besides the creator. For a direct message: the other people.
    #[serde(default)]
    pub members: Vec<String>,
    /// Create it end-to-end encrypted (default false): direct messages, private
    /// channels and teams, and discussions (an encrypted discussion is always private).
    /// Needs `e2e.enabled`.
    #[serde(default)]
    pub encrypted: Option<bool>,
}

/// `PUT /api/v1/rooms/{id}/encryption`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEncryptionRequest {
    /// Encrypt new messages (true) or not.
    pub on: bool,
    /// The signed room state statement for the change, base64 (see `docs/api.md`):
    /// required once the room has a state chain.
    #[serde(default)]
    pub statement: Option<String>,
}

/// `PATCH /api/v1/rooms/{id}`: absent fields are unchanged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoomRequest {
    /// New name, 1–64 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// New topic, up to 250 characters (empty clears it).
    #[serde(default)]
    pub topic: Option<String>,
}

/// A member of a room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// User id.
    pub user_id: String,
    /// Username.
    pub username: String,
    /// Owners invite to private rooms, remove members, set owners, rename.
    pub owner: bool,
    /// Unix milliseconds.
    pub joined_at: i64,
    /// The administrator who added this member without the room's say (`POST
    /// /api/v1/admin/rooms/{id}/members`); absent for anyone who joined or was invited. In
    /// an encrypted room such a member is not in the signed state chain and gets no key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_by: Option<String>,
}

/// A room's members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberList {
    /// Members in joining order.
    pub members: Vec<Member>,
}

/// `POST /api/v1/rooms/{id}/members`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// The user to add.
    pub user_id: String,
}

/// A message. Deleted messages keep their place as tombstones without content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// The client-chosen id (protocol id alphabet), unique within the room.
    pub id: String,
    /// The room.
    pub room_id: String,
    /// Position in the room's history; increasing, with gaps.
    pub seq: i64,
    /// The room sequence number of the latest change to this message (send, edit, delete).
    pub version_seq: i64,
    /// Sender's user id.
    pub sender_id: String,
    /// Plaintext, in rooms that are not encrypted; absent when deleted.
    pub text: Option<String>,
    /// Opaque base64 envelope, in encrypted rooms; absent when deleted.
    pub ciphertext: Option<String>,
    /// User ids mentioned (`@username` in the text, members of the room only).
    pub mentions: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last edit.
    pub edited_at: Option<i64>,
    /// A tombstone.
    pub deleted: bool,
}

/// `POST /api/v1/rooms/{id}/messages`: exactly one of `text` and `ciphertext`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Client-chosen id: 1–64 bytes of `A-Z a-z 0-9 . _ : -`. Resending the same id with the
    /// same content returns the stored message.
    pub id: String,
    /// Plaintext, 1 byte to 16 KiB.
    #[serde(default)]
    pub text: Option<String>,
    /// Base64 envelope, up to 48 KiB (encrypted rooms only).
    #[serde(default)]
    pub ciphertext: Option<String>,
}

/// `PATCH /api/v1/rooms/{id}/messages/{message_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessageRequest {
    /// The new plaintext, 1 byte to 16 KiB.
    #[serde(default)]
    pub text: Option<String>,
    /// The new envelope (encrypted rooms only).
    #[serde(default)]
    pub ciphertext: Option<String>,
}

/// History paging: give at most one of `before` and `after`; neither means the latest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Messages with a smaller `seq` (the newest of them).
    pub before: Option<i64>,
    /// Messages with a larger `seq` (the oldest of them).
    pub after: Option<i64>,
    /// How many, 1–200; default 50.
    pub limit: Option<u32>,
}

/// A page of history, in increasing `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// More messages exist beyond this page in the direction asked.
    pub has_more: bool,
}
