//! Full-text search over the plaintext messages of one's rooms (C9).

use crate::Message;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /api/v1/search`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find, 1–256 characters: a message matches when it contains every word
    /// (whole words, case-insensitively). No character is query syntax.
    pub q: String,
    /// Only this room (one the caller is a member of).
    pub room_id: Option<String>,
    /// How many, 1–100; default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of search results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SearchPage {
    /// Matching messages, newest first.
    pub messages: Vec<Message>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}
