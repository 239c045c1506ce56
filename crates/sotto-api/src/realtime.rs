//! The realtime wire types: what `GET /api/v1/ws` sends. Every frame is one JSON object
//! with a `type` field.

use crate::rooms::{Member, Message, Room};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One change in one room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// The room.
    pub room_id: String,
    /// The room sequence number this change took.
    pub seq: i64,
    /// What changed.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A room was created (or a DM opened for the first time).
    RoomCreated {
        /// The room.
        room: Room,
        /// Its first members.
        member_ids: Vec<String>,
    },
    /// Name or topic changed.
    RoomUpdated {
        /// The room after the change.
        room: Room,
    },
    /// Someone joined or was invited.
    MemberAdded {
        /// The new member.
        member: Member,
    },
    /// Someone left or was removed.
    MemberRemoved {
        /// The former member.
        user_id: String,
    },
    /// An owner flag changed.
    OwnerChanged {
        /// The member.
        user_id: String,
        /// Owner now.
        owner: bool,
    },
    /// A new message.
    MessageCreated {
        /// The message.
        message: Message,
    },
    /// A message was edited.
    MessageEdited {
        /// The message after the edit.
        message: Message,
    },
    /// A message became a tombstone.
    MessageDeleted {
        /// The tombstone.
        message: Message,
    },
}
