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
/// reaches the database), without terms that have no letter or digit (they cannot match
/// a word, and PostgreSQL would log a notice for each).
fn terms(query: &str) -> impl Iterator<Item = &str> {
    query
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|t| t.chars().any(char::is_alphanumeric))
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
        assert_eq!(fts5_expression("* \"\" - :"), None);
        assert_eq!(fts5_expression("* x*"), Some(r#""x*""#.into()));
        assert_eq!(
            fts5_expression("a \"b\" NEAR(c* d:e) -f"),
            Some(r#""a" """b""" "NEAR(c*" "d:e)" "-f""#.into())
        );
        assert_eq!(terms("x\0y\tz").collect::<Vec<_>>(), ["x", "y", "z"]);
    }

    /// Messages stored before the search migration are indexed by it; tombstones and
    /// ciphertext are not.
    #[tokio::test]
    async fn sqlite_migration_indexes_existing_messages() {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        let all = super::super::migrations::SQLITE;
        let before = &all[..all.iter().position(|m| m.0 == 4).unwrap()];
        super::super::migrations::migrator(before)
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO users (id, username, username_key, display_name, password_hash, \
             is_admin, deactivated, created_at) VALUES ('u', 'u', 'u', 'u', 'x', 0, 0, 1)",
            "INSERT INTO rooms (id, kind, private, name, created_by, created_at, seq) \
             VALUES ('r', 'channel', 0, 'r', 'u', 1, 3)",
            "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ('r', 'u', 1)",
            "INSERT INTO messages (room_id, id, seq, version_seq, sender_id, body_text, \
             ciphertext, content_hash, created_at, deleted) VALUES \
             ('r', 'live', 1, 1, 'u', 'older words', NULL, 'h', 1, 0), \
             ('r', 'gone', 2, 2, 'u', NULL, NULL, 'h', 2, 1), \
             ('r', 'sealed', 3, 3, 'u', NULL, 'b2xkZXI=', 'h', 3, 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        let found = store
            .search_messages("u", None, "older", None, 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, "live");
        assert!(
            store
                .search_messages("u", None, "b2xkZXI", None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        store.pool().close().await;
    }
}
