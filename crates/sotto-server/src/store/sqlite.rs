//! The embedded backend: one SQLite file in WAL mode. `synchronous=FULL` makes every
//! acknowledged write durable; the busy timeout lets `sotto admin` write while the
//! server runs.

use super::{
    SessionKind, SessionRecord, SessionStore, SettingsStore, StoreError, UserRecord, UserStore,
    migrations,
};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::Duration;

/// Users, sessions and settings in SQLite.
pub struct SqliteStore {
    pool: SqlitePool,
}

const USER_COLUMNS: &str =
    "id, username, display_name, password_hash, is_admin, deactivated, created_at";
const SESSION_COLUMNS: &str =
    "id, user_id, kind, name, token_hash, created_at, last_used_at, expires_at";

impl SqliteStore {
    /// Opens or creates the database file at `path` (and its directory) and migrates it.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        migrations::migrator(migrations::SQLITE)
            .await?
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

fn user(row: &SqliteRow) -> Result<UserRecord, StoreError> {
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

fn session(row: &SqliteRow) -> Result<SessionRecord, StoreError> {
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

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &UserRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, password_hash, \
             is_admin, deactivated, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(u.username.to_lowercase())
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.admin)
        .bind(u.deactivated)
        .bind(u.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn insert_first_admin(&self, u: &UserRecord) -> Result<bool, StoreError> {
        // One statement is atomic in SQLite: writers are serialised.
        let done = sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, password_hash, \
             is_admin, deactivated, created_at) \
             SELECT ?, ?, ?, ?, ?, 1, 0, ? WHERE NOT EXISTS (SELECT 1 FROM users WHERE is_admin)",
        )
        .bind(&u.id)
        .bind(&u.username)
        .bind(u.username.to_lowercase())
        .bind(&u.display_name)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(done.rows_affected() == 1)
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username_key = ?");
        let row = sqlx::query(&sql)
            .bind(username.to_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user).transpose()
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY created_at, id");
        sqlx::query(&sql)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user)
            .collect()
    }

    async fn set_deactivated(&self, id: &str, deactivated: bool) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET deactivated = ? WHERE id = ?")
            .bind(deactivated)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_admin(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM users WHERE is_admin) AS found")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<bool, _>("found")?)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, kind, name, token_hash, created_at, \
             last_used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.kind.as_str())
        .bind(&s.name)
        .bind(&s.token_hash)
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    async fn session_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE token_hash = ?");
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session).transpose()
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        kind: SessionKind,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = ? AND kind = ? \
             ORDER BY created_at DESC, id"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(kind.as_str())
            .fetch_all(&self.pool);
        rows.await?.iter().map(session).collect()
    }

    async fn touch_session(&self, id: &str, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_used_at = ? WHERE id = ?")
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(
        &self,
        user_id: &str,
        id: &str,
        kind: SessionKind,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id = ? AND user_id = ? AND kind = ?")
            .bind(id)
            .bind(user_id)
            .bind(kind.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        kind: Option<SessionKind>,
    ) -> Result<u64, StoreError> {
        let done = match kind {
            Some(kind) => {
                sqlx::query("DELETE FROM sessions WHERE user_id = ? AND kind = ?")
                    .bind(user_id)
                    .bind(kind.as_str())
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at < ?")
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    async fn replace_setup_token(
        &self,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO setup_tokens (token_hash, expires_at) VALUES (?, ?)")
            .bind(token_hash)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn setup_token_valid(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = ? AND expires_at > ?) \
             AS valid",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<bool, _>("valid")?)
    }

    async fn clear_setup_tokens(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM setup_tokens")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl SettingsStore for SqliteStore {
    async fn load_settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT key, value FROM settings")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    async fn save_settings(&self, entries: &[(String, String)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (key, value) in entries {
            sqlx::query(
                "INSERT INTO settings (key, value) VALUES (?, ?) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
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
