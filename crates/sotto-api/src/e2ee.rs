//! Encrypted rooms: the room state chain and room keys (docs/protocol.md §5, §6). Binary
//! values are standard base64 strings; epoch ids are 32 lowercase hex digits.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/rooms/{id}/statements`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementRequest {
    /// One signed statement, base64.
    pub statement: String,
}

/// A room's state chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatementList {
    /// Every statement, first (the creation) to last, base64.
    pub statements: Vec<String>,
}

/// Most boxes in one `POST /api/v1/rooms/{id}/keys`.
pub const ROOM_KEY_BOXES_MAX: usize = 1000;

/// `POST /api/v1/rooms/{id}/keys`: room-key boxes sealed and signed by the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomKeyUpload {
    /// 1 to [`ROOM_KEY_BOXES_MAX`] boxes (docs/protocol.md §6.1), base64.
    pub boxes: Vec<String>,
}

/// What `POST /api/v1/rooms/{id}/keys` stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomKeyUploaded {
    /// Boxes stored now; a recipient's box for an epoch they already have is skipped.
    pub stored: u32,
}

/// One room-key box sealed to the caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomKeyItem {
    /// The epoch, 32 lowercase hex digits.
    pub epoch_id: String,
    /// Who sealed and signed it.
    pub distributor_id: String,
    /// The box, base64.
    #[serde(rename = "box")]
    pub sealed: String,
}

/// `GET /api/v1/rooms/{id}/keys`: the caller's room keys and the room's key state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomKeyState {
    /// The epoch new messages use (the chain's latest), if any.
    pub current_epoch: Option<String>,
    /// A new epoch must be declared before the next message: none yet, a member left or
    /// was removed, or a member's keys were reset, since the current one.
    pub rotation_due: bool,
    /// The caller has no key of the current epoch yet: a member who holds it will hand
    /// it on. A state to show, not an error.
    pub waiting: bool,
    /// Members the chain authorizes for the current epoch who have published keys but
    /// have no key of it yet (for members who can hand it on).
    pub lacking: Vec<String>,
    /// Every box sealed to the caller in this room, oldest first.
    pub keys: Vec<RoomKeyItem>,
}
