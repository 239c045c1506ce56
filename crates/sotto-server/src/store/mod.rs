//! Persistence: one trait per aggregate, implemented for SQLite and PostgreSQL.
//!
//! Services depend on the traits only. Both backends run the same conformance suite
//! (`conformance.rs`), so a behaviour one backend has, the other has too.

mod accounts;
mod audit;
mod batch;
mod blobs;
mod cache;
mod e2ee;
mod files;
mod keys;
mod migrations;
mod pg_batch;
mod postgres;
mod rooms;
mod search;
mod sqlite;

#[cfg(test)]
pub(crate) mod conformance;

use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

pub use audit::AuditStore;
pub use blobs::{BlobStore, ByteStream, LocalBlobStore, PG_CHUNK, PgBlobStore, PutError};
pub use e2ee::{E2eeStore, NewStatement, RoomKeyRecord, SignedChange};
pub use files::{FileRecord, FileStore};
pub use keys::{KeyRecord, KeyStore};
pub use postgres::PgStore;
pub use rooms::{
    Inserted, MemberRecord, MessageRecord, MessageStore, RoomAccess, RoomRecord, RoomStore,
    RoomUnread, message_view, room_view,
};
pub use search::{SearchCursor, SearchStore};
pub use sqlite::SqliteStore;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (for example a taken username).
    #[error("a record with the same unique key already exists")]
    Conflict,
    /// The database failed or could not be reached.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The SQLite message writer's own connection failed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// Migrations could not be applied.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("creating {}", path.display())]
    CreateDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing blob files failed.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// A stored value could not be understood.
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A group commit failed (SQLite); nothing of its batch was stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),
    /// The message writer task is gone (the store is shutting down).
    #[error("the message writer has stopped")]
    WriterGone,
    /// The change would leave a room with members but no owner; nothing was written.
    #[error("the room would have no owner")]
    LastOwner,
}

impl StoreError {
    /// Maps unique violations to [`StoreError::Conflict`].
    fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            _ => Self::Database(e),
        }
    }
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Random id, protocol id alphabet.
    pub id: String,
    /// As the user typed it.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Workspace admin.
    pub admin: bool,
    /// Cannot log in; tokens refused.
    pub deactivated: bool,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// What a session row stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Password login.
    Login,
    /// Personal access token.
    PersonalAccess,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::PersonalAccess => "personal_access",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "login" => Ok(Self::Login),
            "personal_access" => Ok(Self::PersonalAccess),
            other => Err(StoreError::Corrupt(format!("session kind {other:?}"))),
        }
    }
}

/// A stored session or personal access token. Only the token's SHA-256 is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Random id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Login or personal access.
    pub kind: SessionKind,
    /// Label.
    pub name: Option<String>,
    /// Hex SHA-256 of the bearer token.
    pub token_hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds.
    pub last_used_at: i64,
    /// Unix milliseconds; `None` never expires.
    pub expires_at: Option<i64>,
}

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user; [`StoreError::Conflict`] if the username is taken in any case.
    async fn insert_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// Inserts `user` (an admin) only if no admin exists yet, atomically; false if one does.
    async fn insert_first_admin(&self, user: &UserRecord) -> Result<bool, StoreError>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// The user with this username, compared case-insensitively.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Every user in creation order.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Sets the deactivated flag; false if there is no such user.
    async fn set_deactivated(&self, id: &str, deactivated: bool) -> Result<bool, StoreError>;
    /// Replaces the password hash; false if there is no such user.
    async fn set_password_hash(&self, id: &str, hash: &str) -> Result<bool, StoreError>;
    /// Whether any admin exists (active or not).
    async fn has_admin(&self) -> Result<bool, StoreError>;
}

/// Sessions, personal access tokens and the first-admin setup token.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Inserts a session; its user must exist.
    async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// The session whose token hashes to `token_hash`.
    async fn session_by_token_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<SessionRecord>, StoreError>;
    /// A user's sessions of one kind, newest first.
    async fn sessions_of_user(
        &self,
        user_id: &str,
        kind: SessionKind,
    ) -> Result<Vec<SessionRecord>, StoreError>;
    /// Records a use of the session whose token hashes to `token_hash`.
    async fn touch_session(&self, token_hash: &str, at: i64) -> Result<(), StoreError>;
    /// Deletes one session of `user_id` of `kind`; false if there was none.
    async fn delete_session(
        &self,
        user_id: &str,
        id: &str,
        kind: SessionKind,
    ) -> Result<bool, StoreError>;
    /// Deletes a user's sessions of `kind`, or all of them; returns how many.
    async fn delete_sessions_of_user(
        &self,
        user_id: &str,
        kind: Option<SessionKind>,
    ) -> Result<u64, StoreError>;
    /// Deletes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError>;
    /// Replaces any setup token by this one.
    async fn replace_setup_token(
        &self,
        token_hash: &str,
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// Whether a setup token with this hash exists and has not expired at `now`.
    async fn setup_token_valid(&self, token_hash: &str, now: i64) -> Result<bool, StoreError>;
    /// Removes every setup token.
    async fn clear_setup_tokens(&self) -> Result<(), StoreError>;
}

/// Workspace settings as key → JSON text. Keys the code no longer knows are ignored above.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Every stored entry.
    async fn load_settings(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Inserts or replaces these entries in one transaction.
    async fn save_settings(&self, entries: &[(String, String)]) -> Result<(), StoreError>;
}

/// Every store, behind its trait, plus a way to close the pool.
#[derive(Clone)]
pub struct Stores {
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions and tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// Settings.
    pub settings: Arc<dyn SettingsStore>,
    /// Rooms and members.
    pub rooms: Arc<dyn RoomStore>,
    /// Messages.
    pub messages: Arc<dyn MessageStore>,
    /// File metadata.
    pub files: Arc<dyn FileStore>,
    /// Public key bundles and key backups.
    pub keys: Arc<dyn KeyStore>,
    /// Room state chains and room keys of encrypted rooms.
    pub e2ee: Arc<dyn E2eeStore>,
    /// File contents.
    pub blobs: Arc<dyn BlobStore>,
    /// Message search.
    pub search: Arc<dyn SearchStore>,
    /// Admin audit listings.
    pub audit: Arc<dyn AuditStore>,
    pool: Pool,
}

#[derive(Clone)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Stores {
    /// Opens (creating if needed) `<data_dir>/sotto.db`, migrated, and the blob
    /// directory `<data_dir>/blobs`.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        let store = SqliteStore::open(&data_dir.join("sotto.db")).await?;
        let blobs = LocalBlobStore::open(&data_dir.join("blobs"))?;
        Ok(Self::from_sqlite(store, blobs))
    }

    /// Connects to PostgreSQL at `url` and migrates it.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        Ok(Self::from_postgres(PgStore::connect(url).await?))
    }

    /// Opens PostgreSQL if `database_url` is given, else SQLite under `data_dir`.
    pub async fn open(data_dir: &Path, database_url: Option<&str>) -> Result<Self, StoreError> {
        match database_url {
            Some(url) => Self::open_postgres(url).await,
            None => Self::open_sqlite(data_dir).await,
        }
    }

    /// Wraps an opened SQLite store and a blob directory.
    pub fn from_sqlite(store: SqliteStore, blobs: LocalBlobStore) -> Self {
        let pool = Pool::Sqlite(store.pool().clone());
        let store = Arc::new(store);
        Self {
            files: store.clone(),
            keys: store.clone(),
            e2ee: store.clone(),
            blobs: Arc::new(blobs),
            users: store.clone(),
            sessions: store.clone(),
            rooms: store.clone(),
            messages: store.clone(),
            search: store.clone(),
            audit: store.clone(),
            settings: store,
            pool,
        }
    }

    /// Wraps an opened PostgreSQL store; blobs go to the same database.
    pub fn from_postgres(store: PgStore) -> Self {
        let pool = Pool::Postgres(store.pool().clone());
        let blobs = Arc::new(PgBlobStore::new(store.pool().clone()));
        let store = Arc::new(store);
        Self {
            files: store.clone(),
            keys: store.clone(),
            e2ee: store.clone(),
            blobs,
            users: store.clone(),
            sessions: store.clone(),
            rooms: store.clone(),
            messages: store.clone(),
            search: store.clone(),
            audit: store.clone(),
            settings: store,
            pool,
        }
    }

    /// Waits for open connections to be returned, then closes them.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}
