//! C9 search: the plaintext messages of the rooms the caller may read, which are exactly
//! the rooms whose history they may page (their own rooms), newest first.

use super::rooms::{RoomService, user_of};
use super::{Actor, ServiceError};
use crate::store::message_view;
use crate::store::{SearchCursor, SearchStore};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sotto_api::{SearchPage, SearchQuery};
use std::sync::Arc;

/// Longest query, in characters.
pub const QUERY_MAX_CHARS: usize = 256;
/// Default page.
pub const SEARCH_PAGE_DEFAULT: u32 = 20;
/// Largest page.
pub const SEARCH_PAGE_MAX: u32 = 100;

/// Message search.
pub struct SearchService {
    rooms: Arc<RoomService>,
    search: Arc<dyn SearchStore>,
}

/// The wire form of a cursor: opaque to clients, `created_at.seq.room_id` inside.
fn encode_cursor(c: &SearchCursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}.{}.{}", c.created_at, c.seq, c.room_id))
}

fn decode_cursor(s: &str) -> Result<SearchCursor, ServiceError> {
    let bad = || ServiceError::InvalidInput("cursor: not one this server gave".into());
    let bytes = URL_SAFE_NO_PAD.decode(s.as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '.');
    let (Some(at), Some(seq), Some(room_id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let cursor = SearchCursor {
        created_at: at.parse().map_err(|_| bad())?,
        seq: seq.parse().map_err(|_| bad())?,
        room_id: room_id.to_owned(),
    };
    if cursor.room_id.is_empty() {
        return Err(bad());
    }
    Ok(cursor)
}

impl SearchService {
    /// Over the room service (for its read rule) and the search store.
    pub fn new(rooms: Arc<RoomService>, search: Arc<dyn SearchStore>) -> Self {
        Self { rooms, search }
    }

    /// Messages containing every word of `q.q`, in the caller's rooms (or only
    /// `q.room_id`, which the caller must be able to read as for history).
    pub async fn search(&self, actor: &Actor, q: SearchQuery) -> Result<SearchPage, ServiceError> {
        let me = user_of(actor)?;
        let text = q.q.trim();
        if text.is_empty() || text.chars().count() > QUERY_MAX_CHARS {
            return Err(ServiceError::InvalidInput(format!(
                "q: 1 to {QUERY_MAX_CHARS} characters"
            )));
        }
        let limit = q.limit.unwrap_or(SEARCH_PAGE_DEFAULT);
        if !(1..=SEARCH_PAGE_MAX).contains(&limit) {
            return Err(ServiceError::InvalidInput(format!(
                "limit: 1 to {SEARCH_PAGE_MAX}"
            )));
        }
        let cursor = q.cursor.as_deref().map(decode_cursor).transpose()?;
        if let Some(room_id) = q.room_id.as_deref() {
            self.rooms.require_reader(actor, room_id).await?;
        }
        let mut found = self
            .search
            .search_messages(me, q.room_id.as_deref(), text, cursor.as_ref(), limit + 1)
            .await?;
        let next_cursor = if found.len() > limit as usize {
            found.truncate(limit as usize);
            found.last().map(|m| encode_cursor(&SearchCursor::after(m)))
        } else {
            None
        };
        Ok(SearchPage {
            messages: found.iter().map(message_view).collect(),
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = SearchCursor {
            created_at: 1_700_000_000_123,
            room_id: "a.b:c".into(),
            seq: 42,
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        for bad in [
            "",
            "!!",
            "eA",
            &URL_SAFE_NO_PAD.encode("1.2."),
            &URL_SAFE_NO_PAD.encode("x.2.r"),
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(ServiceError::InvalidInput(_))),
                "{bad}"
            );
        }
    }
}
