//! The PostgreSQL backend, for larger installations and (later) several server nodes.

use super::cache::Caches;
use super::pg_batch::MessageWriter;
use super::{StoreError, migrations};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// Every store in one PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
    /// Message inserts go through one writer that commits them in batches.
    messages: MessageWriter,
    caches: Caches,
}

impl PgStore {
    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrations::migrator(migrations::POSTGRES)
            .await?
            .run(&pool)
            .await?;
        Ok(Self {
            messages: MessageWriter::start(pool.clone()),
            pool,
            caches: Caches::default(),
        })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) fn caches(&self) -> &Caches {
        &self.caches
    }

    pub(super) fn messages_writer(&self) -> &MessageWriter {
        &self.messages
    }
}
