//! Users, sessions and settings: one implementation of their traits for both backends.
//!
//! As in `rooms.rs`, the SQL is portable (`$n` parameters), so a macro implements the
//! traits for [`SqliteStore`] and [`PgStore`] from the same text. The one difference,
//! how concurrent first-admin inserts are serialised, is each backend's
//! `serialise_first_admin`.

use super::{
    PgStore, SessionKind, SessionRecord, SessionStore, SettingsStore, SqliteStore, StoreError,
    UserRecord, UserStore,
};
use async_trait::async_trait;
use sqlx::Row;

const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, is_admin, deactivated, created_at";
const SESSION_COLUMNS: &str =
    "id, user_id, kind, name, token_hash, created_at, last_used_at, expires_at";

macro_rules! account_stores {
    ($store:ty, $row:ty) => {
        impl $store {
            fn user_row(row: &$row) -> Result<UserRecord, StoreError> {
                Ok(UserRecord {
                    id: row.try_get("id")?,
                    username: row.try_get("username")?,
                    display_name: row.try_get("display_name")?,
                    password_hash: row.try_get("password_hash")?,
                    admin: row.try_get("is_admin")?,
                    deactivated: row.try_get("deactivated")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn session_row(row: &$row) -> Result<SessionRecord, StoreError> {
                Ok(SessionRecord {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    kind: SessionKind::parse(row.try_get("kind")?)?,
                    name: row.try_get("name")?,
                    token_hash: row.try_get("token_hash")?,
                    created_at: row.try_get("created_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO users (id, username, username_key, display_name, password_hash, \
                     is_admin, deactivated, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(u.username.to_lowercase())
                .bind(&u.display_name)
                .bind(&u.password_hash)
                .bind(u.admin)
                .bind(u.deactivated)
                .bind(u.created_at)
                .execute(self.pool())
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn insert_first_admin(&self, u: &UserRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool().begin().await?;
                Self::serialise_first_admin(&mut tx).await?;
                let done = sqlx::query(
                    "INSERT INTO users (id, username, username_key, display_name, password_hash, \
                     is_admin, deactivated, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM users WHERE is_admin)",
                )
                .bind(&u.id)
                .bind(&u.username)
                .bind(u.username.to_lowercase())
                .bind(&u.display_name)
                .bind(&u.password_hash)
                .bind(true)
                .bind(false)
                .bind(u.created_at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
                let ticket = match self.caches().users.get(id) {
                    Ok(user) => return Ok(Some(user)),
                    Err(ticket) => ticket,
                };
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?;
                let user = row.as_ref().map(Self::user_row).transpose()?;
                if let Some(u) = &user {
                    self.caches().users.keep(ticket, u.id.clone(), u.clone());
                }
                Ok(user)
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = $1");
                let row = sqlx::query(&sql)
                    .bind(username.to_lowercase())
                    .fetch_optional(self.pool())
                    .await?;
                row.as_ref().map(Self::user_row).transpose()
            }

            async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
                let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id");
                sqlx::query(&sql)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(Self::user_row)
                    .collect()
            }

            async fn set_deactivated(&self, id: &str, deactivated: bool) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE users SET deactivated = $1 WHERE id = $2")
                    .bind(deactivated)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                self.caches().users.drop_where(|k, _| k == id);
                Ok(done.rows_affected() == 1)
            }

            async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(hash)
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                self.caches().users.drop_where(|k, _| k == id);
                Ok(done.rows_affected() == 1)
            }

            async fn has_admin(&self) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM users WHERE is_admin) AS found")
                    .fetch_one(self.pool())
                    .await?;
                Ok(row.try_get::<bool, _>("found")?)
            }
        }

        #[async_trait]
        impl SessionStore for $store {
            async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO sessions (id, user_id, kind, name, token_hash, created_at, \
                     last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&s.id)
                .bind(&s.user_id)
                .bind(s.kind.as_str())
                .bind(&s.name)
                .bind(&s.token_hash)
                .bind(s.created_at)
                .bind(s.last_used_at)
                .bind(s.expires_at)
                .execute(self.pool())
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn session_by_token_hash(
                &self,
                token_hash: &str,
            ) -> Result<Option<SessionRecord>, StoreError> {
                let ticket = match self.caches().sessions.get(token_hash) {
                    Ok(session) => return Ok(Some(session)),
                    Err(ticket) => ticket,
                };
                let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = $1");
                let row = sqlx::query(&sql)
                    .bind(token_hash)
                    .fetch_optional(self.pool())
                    .await?;
                let session = row.as_ref().map(Self::session_row).transpose()?;
                if let Some(s) = &session {
                    self.caches().sessions.keep(ticket, s.token_hash.clone(), s.clone());
                }
                Ok(session)
            }

            async fn sessions_of_user(
                &self,
                user_id: &str,
                kind: SessionKind,
            ) -> Result<Vec<SessionRecord>, StoreError> {
                let sql = format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND kind = $2 \
                     ORDER BY created_at DESC, id"
                );
                let rows = sqlx::query(&sql)
                    .bind(user_id)
                    .bind(kind.as_str())
                    .fetch_all(self.pool());
                rows.await?.iter().map(Self::session_row).collect()
            }

            async fn touch_session(&self, token_hash: &str, at: i64) -> Result<(), StoreError> {
                self.write_last_used(token_hash, at).await?;
                self.caches().sessions.update(token_hash, |s| s.last_used_at = at);
                Ok(())
            }

            async fn delete_session(
                &self,
                user_id: &str,
                id: &str,
                kind: SessionKind,
            ) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM sessions WHERE id = $1 AND user_id = $2 AND kind = $3")
                    .bind(id)
                    .bind(user_id)
                    .bind(kind.as_str())
                    .execute(self.pool())
                    .await?;
                self.caches().sessions.drop_where(|_, s| s.id == id);
                Ok(done.rows_affected() == 1)
            }

            async fn delete_sessions_of_user(
                &self,
                user_id: &str,
                kind: Option<SessionKind>,
            ) -> Result<u64, StoreError> {
                let done = match kind {
                    Some(kind) => {
                        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND kind = $2")
                            .bind(user_id)
                            .bind(kind.as_str())
                            .execute(self.pool())
                            .await?
                    }
                    None => {
                        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                            .bind(user_id)
                            .execute(self.pool())
                            .await?
                    }
                };
                self.caches()
                    .sessions
                    .drop_where(|_, s| s.user_id == user_id && kind.is_none_or(|k| k == s.kind));
                Ok(done.rows_affected())
            }

            async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
                let done =
                    sqlx::query("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at < $1")
                        .bind(now)
                        .execute(self.pool())
                        .await?;
                self.caches()
                    .sessions
                    .drop_where(|_, s| s.expires_at.is_some_and(|at| at < now));
                Ok(done.rows_affected())
            }

            async fn replace_setup_token(
                &self,
                token_hash: &str,
                expires_at: i64,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool().begin().await?;
                sqlx::query("DELETE FROM setup_tokens")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, $2)")
                    .bind(token_hash)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn setup_token_valid(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
                let row = sqlx::query(
                    "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > $2) \
                     AS valid",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_one(self.pool())
                .await?;
                Ok(row.try_get::<bool, _>("valid")?)
            }

            async fn clear_setup_tokens(&self) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM setup_tokens")
                    .execute(self.pool())
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl SettingsStore for $store {
            async fn load_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
                let rows = sqlx::query("SELECT key, value FROM settings")
                    .fetch_all(self.pool())
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
                    .collect()
            }

            async fn save_settings(&self, entries: &[(String, String)]) -> Result<(), StoreError> {
                let mut tx = self.pool().begin().await?;
                for (key, value) in entries {
                    sqlx::query(
                        "INSERT INTO settings (key, value) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    )
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

account_stores!(SqliteStore, sqlx::sqlite::SqliteRow);
account_stores!(PgStore, sqlx::postgres::PgRow);

impl SqliteStore {
    /// Through the message writer, which holds SQLite's write lock most of the time
    /// under load (see `batch.rs`).
    async fn write_last_used(&self, token_hash: &str, at: i64) -> Result<(), StoreError> {
        self.messages_writer().touch(token_hash, at).await
    }
}

impl PgStore {
    async fn write_last_used(&self, token_hash: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_hash = $2")
            .bind(at)
            .bind(token_hash)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

impl SqliteStore {
    /// Nothing to do: SQLite runs one writer at a time, so the conditional insert is atomic.
    async fn serialise_first_admin(
        _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

impl PgStore {
    /// Under READ COMMITTED two conditional inserts could both see no admin; a
    /// transaction-scoped advisory lock serialises them.
    async fn serialise_first_admin(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(727001)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
