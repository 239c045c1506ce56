//! The realtime wire types: what `GET /api/v1/ws` sends ([`Event`], [`Notice`]) and what a
//! client may send ([`ClientFrame`]). Every frame is one JSON object with a `type` field.

use crate::otr::OtrErrorCode;
use crate::rooms::{Member, Message, Room};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Most rooms one `resume` frame may name; send several frames for more.
pub const RESUME_MAX_ROOMS: usize = 1000;

/// A frame the client sends on the realtime socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Catch up: for each room, every change after the given seq (the largest seq seen),
    /// then a `resumed` notice. At most 1,000 rooms per frame.
    Resume {
        /// Room id → largest seq seen in that room (0 for none).
        rooms: BTreeMap<String, i64>,
    },
    /// An off-the-record frame for the other person of a two-person direct message. The
    /// server relays it to that person's live connections and stores nothing; when it
    /// cannot, it answers an `otr_error` notice with the same `id` at once.
    Otr {
        /// Chosen by the client (1–64 characters of `A-Z a-z 0-9 . _ : -`), echoed in
        /// an `otr_error`.
        id: String,
        /// The direct message.
        room_id: String,
        /// The sotto-crypto OTR frame (protocol §9.1), standard base64 with padding.
        frame: String,
    },
}

/// A frame the server sends that is not a room event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// Someone who shares a room with you came online or went offline.
    Presence {
        /// The user.
        user_id: String,
        /// Online now (some session of theirs has the socket open).
        online: bool,
    },
    /// Every room of the `resume` frame before it is caught up; live events follow.
    Resumed,
    /// The user (you, or someone who shares a room with you) published new keys or had
    /// them reset: fetch their bundle again, and check it against the pinned key.
    KeysChanged {
        /// The user.
        user_id: String,
    },
    /// To members who hold a room's current epoch key: these members lack it and have
    /// published keys; seal it to them (`POST /api/v1/rooms/{id}/keys`).
    RoomKeyRequest {
        /// The room.
        room_id: String,
        /// The current epoch, 32 lowercase hex digits.
        epoch_id: String,
        /// Who lacks it.
        user_ids: Vec<String>,
    },
    /// A room-key box was just stored for you.
    RoomKey {
        /// The room.
        room_id: String,
        /// Its epoch, 32 lowercase hex digits.
        epoch_id: String,
        /// Who sealed and signed it.
        distributor_id: String,
        /// The box, base64.
        #[serde(rename = "box")]
        sealed: String,
    },
    /// An off-the-record frame from the other person of a direct message, as they sent
    /// it. Never stored: only connections open when it arrives receive it.
    Otr {
        /// The direct message.
        room_id: String,
        /// The sender.
        sender_id: String,
        /// The sotto-crypto OTR frame, standard base64 with padding.
        frame: String,
    },
    /// The `otr` frame with this `id` was not relayed.
    OtrError {
        /// The client's frame id.
        id: String,
        /// Why.
        code: OtrErrorCode,
        /// Explanation for people.
        message: String,
        /// With `rate_limited`: seconds until the connection may send again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_secs: Option<u64>,
    },
}

/// `GET /api/v1/presence`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PresenceList {
    /// Ids of the users sharing a room with you who are online now, sorted.
    pub online: Vec<String>,
}

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
        /// The administrator who removed them without the room's say; absent when they
        /// left or an owner removed them. An encrypted room's signed state chain still
        /// lists them until an owner signs their removal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forced_by: Option<String>,
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
    /// A signed statement was added to the room's state chain (docs/protocol.md §5).
    StatementAdded {
        /// The statement's own sequence number in the chain.
        chain_seq: u64,
        /// The statement, standard base64.
        statement: String,
    },
    /// End-to-end encryption was turned on or off.
    EncryptionChanged {
        /// Encrypted now.
        encrypted: bool,
        /// The member who changed it.
        by: String,
    },
}
