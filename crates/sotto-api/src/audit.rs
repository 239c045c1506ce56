//! The admin audit (C10): every room, and the messages of any room with their metadata.
//! Content is shown only for plaintext messages of rooms that are not encrypted; the
//! others show as encrypted, with their metadata only.

use crate::RoomKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A room as the audit lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRoom {
    /// Room id.
    pub id: String,
    /// Channel, direct, team or discussion.
    pub kind: RoomKind,
    /// Visible to members only.
    pub private: bool,
    /// Name; absent for direct messages.
    pub name: Option<String>,
    /// Topic, possibly empty.
    pub topic: String,
    /// The channel or team a discussion belongs to.
    pub parent_id: Option<String>,
    /// Messages are end-to-end encrypted.
    pub encrypted: bool,
    /// Creator's user id.
    pub created_by: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The room's latest sequence number.
    pub seq: i64,
    /// How many members it has now.
    pub member_count: i64,
}

/// Every room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRoomList {
    /// Rooms, oldest first.
    pub rooms: Vec<AuditRoom>,
}

/// A message as the audit shows it: never ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditMessage {
    /// The client-chosen id.
    pub id: String,
    /// The room.
    pub room_id: String,
    /// Position in the room's history.
    pub seq: i64,
    /// The room sequence number of the latest change to this message.
    pub version_seq: i64,
    /// Sender's user id.
    pub sender_id: String,
    /// Plaintext; absent for encrypted and deleted messages, and for every message of an
    /// encrypted room.
    pub text: Option<String>,
    /// The message is end-to-end encrypted, or its room is: no content is shown.
    pub encrypted: bool,
    /// User ids mentioned.
    pub mentions: Vec<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last edit.
    pub edited_at: Option<i64>,
    /// A tombstone.
    pub deleted: bool,
}

/// A page of a room's messages for the audit, in increasing `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditMessagePage {
    /// The messages, oldest first.
    pub messages: Vec<AuditMessage>,
    /// More messages exist beyond this page in the direction asked.
    pub has_more: bool,
}
