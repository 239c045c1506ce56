//! The embedded backend: one SQLite file in WAL mode. `synchronous=FULL` makes every
//! acknowledged write durable; the busy timeout lets `sotto admin` write while the
//! server runs.

use super::batch::MessageWriter;
use super::cache::Caches;
use super::{StoreError, migrations};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

/// How long a writer waits for another (`sotto admin` while the server runs).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Every store in one SQLite file.
pub struct SqliteStore {
    pool: SqlitePool,
    /// Message inserts go through one writer that commits them in batches.
    messages: MessageWriter,
    caches: Caches,
}

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
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        migrations::migrator(migrations::SQLITE)
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            messages: MessageWriter::start(path, BUSY_TIMEOUT)?,
            pool,
            caches: Caches::default(),
        })
    }

    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub(super) fn caches(&self) -> &Caches {
        &self.caches
    }

    pub(super) fn messages_writer(&self) -> &MessageWriter {
        &self.messages
    }
}
