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
