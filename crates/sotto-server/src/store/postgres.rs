//! The PostgreSQL backend, for larger installations and (later) several server nodes.

use super::cache::Caches;
use super::{StoreError, migrations};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

/// Every store in one PostgreSQL database.
pub struct PgStore {
    pool: PgPool,
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
}
