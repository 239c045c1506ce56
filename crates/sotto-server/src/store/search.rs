//! C9 full-text search over plaintext messages: SQLite FTS5 (`message_search`, kept in
//! step by triggers) and a PostgreSQL GIN index over `to_tsvector('simple', body_text)`.
//!
//! The user's text never becomes query syntax: FTS5 gets every term as a quoted string,
//! PostgreSQL gets the text through `plainto_tsquery`. Both require every term.

use super::rooms::MESSAGE_COLUMNS;
use super::{MessageRecord, PgStore, SqliteStore, StoreError};
use async_trait::async_trait;

/// Where a page of results ends: results are ordered newest first by
/// (`created_at`, `room_id`, `seq`), which is unique and never changes for a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchCursor {
    /// Unix milliseconds of the last message seen.
    pub created_at: i64,
    /// Its room.
    pub room_id: String,
    /// Its seq.
    pub seq: i64,
}

impl SearchCursor {
    /// The cursor just after `m`.
    pub fn after(m: &MessageRecord) -> Self {
        Self {
            created_at: m.created_at,
            room_id: m.room_id.clone(),
            seq: m.seq,
        }
    }
}

/// Message search.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// Up to `limit` live plaintext messages containing every word of `query`, in rooms
    /// `user_id` is a member of (only `room_id` if given), newest first, strictly after
    /// `cursor`. Words match whole and case-insensitively; nothing in `query` is syntax,
    /// and a query without words finds nothing.
    async fn search_messages(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        query: &str,
        cursor: Option<&SearchCursor>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError>;
}

/// The terms of a query: split at whitespace and control characters (so a NUL never
/// reaches the database).
fn terms(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|t| !t.is_empty())
}

/// The FTS5 expression: each term a string literal (inside one, FTS5 only tokenizes, so
/// `*`, `:`, `-`, `NEAR`, `AND`, parentheses are plain text), joined by the implicit AND.
fn fts5_expression(query: &str) -> Option<String> {
    let quoted: Vec<String> = terms(query)
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!quoted.is_empty()).then(|| quoted.join(" "))
}

/// Bind values for the cursor; no cursor means before everything.
fn cursor_binds(cursor: Option<&SearchCursor>) -> (i64, &str, i64) {
    match cursor {
        Some(c) => (c.created_at, c.room_id.as_str(), c.seq),
        None => (i64::MAX, "", 0),
    }
}

/// The conditions and order both backends share; `$2` user, `$3` room filter or '',
/// `$4..$6` the cursor, `$7` the limit.
const COMMON: &str = "m.body_text IS NOT NULL AND NOT m.deleted \
     AND m.room_id IN (SELECT room_id FROM room_members WHERE user_id = $2) \
     AND ($3 = '' OR m.room_id = $3) \
     AND (m.created_at, m.room_id, m.seq) < ($4, $5, $6) \
     ORDER BY m.created_at DESC, m.room_id DESC, m.seq DESC LIMIT $7";

#[async_trait]
impl SearchStore for SqliteStore {
    async fn search_messages(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        query: &str,
        cursor: Option<&SearchCursor>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let Some(expr) = fts5_expression(query) else {
            return Ok(Vec::new());
        };
        let (at, room, seq) = cursor_binds(cursor);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE (m.room_id, m.id) IN \
             (SELECT d.room_id, d.message_id FROM message_search s \
              JOIN message_search_docs d ON d.doc = s.rowid WHERE message_search MATCH $1) \
             AND {COMMON}"
        );
        sqlx::query(&sql)
            .bind(expr)
            .bind(user_id)
            .bind(room_id.unwrap_or(""))
            .bind(at)
            .bind(room)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(Self::message_row)
            .collect()
    }
}

#[async_trait]
impl SearchStore for PgStore {
    async fn search_messages(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        query: &str,
        cursor: Option<&SearchCursor>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let text = terms(query).collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let (at, room, seq) = cursor_binds(cursor);
        // The expression and predicate match the partial index `messages_search`.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m \
             WHERE to_tsvector('simple', m.body_text) @@ plainto_tsquery('simple', $1) \
             AND {COMMON}"
        );
        sqlx::query(&sql)
            .bind(text)
            .bind(user_id)
            .bind(room_id.unwrap_or(""))
            .bind(at)
            .bind(room)
            .bind(seq)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(Self::message_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_is_a_string_literal() {
        assert_eq!(fts5_expression("  "), None);
        assert_eq!(fts5_expression("\0\u{7}"), None);
        assert_eq!(
            fts5_expression("a \"b\" NEAR(c* d:e) -f"),
            Some(r#""a" """b""" "NEAR(c*" "d:e)" "-f""#.into())
        );
        assert_eq!(terms("x\0y\tz").collect::<Vec<_>>(), ["x", "y", "z"]);
    }
}
