//! The key directory and key backups: the trait, and one implementation for both backends
//! from the same portable SQL. Bundles and backups are stored as the bytes clients sent,
//! after the service has checked them.

use super::{PgStore, SqliteStore, StoreError};
use async_trait::async_trait;

/// A stored public key bundle or key backup: its encoding and when it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The owner.
    pub user_id: String,
    /// The encoding (`PublicBundle` or `KeyBackup`, docs/protocol.md §2 and §3.3).
    pub bytes: Vec<u8>,
    /// Unix milliseconds.
    pub at: i64,
}

/// Public key bundles and encrypted key backups, at most one of each per user.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a user's first bundle together with their backup, atomically; false (and
    /// nothing written) if the user has a bundle already.
    async fn publish_keys(
        &self,
        user_id: &str,
        bundle: &[u8],
        backup: &[u8],
        at: i64,
    ) -> Result<bool, StoreError>;
    /// The user's bundle.
    async fn bundle(&self, user_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// The bundles of those of `user_ids` who have one.
    async fn bundles(&self, user_ids: &[String]) -> Result<Vec<KeyRecord>, StoreError>;
    /// The user's backup.
    async fn backup(&self, user_id: &str) -> Result<Option<KeyRecord>, StoreError>;
    /// Replaces the backup only while the stored bundle is still `bundle` (a password
    /// change keeps the keys) and the stored backup is still `current` (the one the
    /// replacement was signed over); false otherwise.
    async fn replace_backup(
        &self,
        user_id: &str,
        bundle: &[u8],
        current: &[u8],
        backup: &[u8],
        at: i64,
    ) -> Result<bool, StoreError>;
    /// Removes the user's bundle and backup (a key reset); false if there was no bundle.
    async fn remove_keys(&self, user_id: &str) -> Result<bool, StoreError>;
}

macro_rules! key_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn key_row(row: &$row) -> Result<KeyRecord, StoreError> {
                use sqlx::Row;
                Ok(KeyRecord {
                    user_id: row.try_get("user_id")?,
                    bytes: row.try_get("bytes")?,
                    at: row.try_get("at")?,
                })
            }
        }

        #[async_trait]
        impl KeyStore for $store {
            async fn publish_keys(
                &self,
                user_id: &str,
                bundle: &[u8],
                backup: &[u8],
                at: i64,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool().begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO key_bundles (user_id, bundle, published_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id)
                .bind(bundle)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if inserted.rows_affected() == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO key_backups (user_id, backup, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id) DO UPDATE SET backup = $2, updated_at = $3",
                )
                .bind(user_id)
                .bind(backup)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn bundle(&self, user_id: &str) -> Result<Option<KeyRecord>, StoreError> {
                sqlx::query(
                    "SELECT user_id, bundle AS bytes, published_at AS at FROM key_bundles \
                     WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(Self::key_row)
                .transpose()
            }

            async fn bundles(&self, user_ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
                let mut out = Vec::with_capacity(user_ids.len());
                // One query per user keeps the SQL portable; callers ask for a room's
                // members, a bounded number.
                for id in user_ids {
                    if let Some(r) = self.bundle(id).await? {
                        out.push(r);
                    }
                }
                Ok(out)
            }

            async fn backup(&self, user_id: &str) -> Result<Option<KeyRecord>, StoreError> {
                sqlx::query(
                    "SELECT user_id, backup AS bytes, updated_at AS at FROM key_backups \
                     WHERE user_id = $1",
                )
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?
                .as_ref()
                .map(Self::key_row)
                .transpose()
            }

            async fn replace_backup(
                &self,
                user_id: &str,
                bundle: &[u8],
                current: &[u8],
                backup: &[u8],
                at: i64,
            ) -> Result<bool, StoreError> {
                // One statement: both conditions and the write are atomic on either backend.
                let done = sqlx::query(
                    "UPDATE key_backups SET backup = $1, updated_at = $2 WHERE user_id = $3 \
                     AND backup = $5 \
                     AND EXISTS (SELECT 1 FROM key_bundles WHERE user_id = $3 AND bundle = $4)",
                )
                .bind(backup)
                .bind(at)
                .bind(user_id)
                .bind(bundle)
                .bind(current)
                .execute(self.pool())
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn remove_keys(&self, user_id: &str) -> Result<bool, StoreError> {
                let mut tx = self.pool().begin().await?;
                sqlx::query("DELETE FROM key_backups WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM key_bundles WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

key_store!(SqliteStore, sqlx::sqlite::SqliteRow);
key_store!(PgStore, sqlx::postgres::PgRow);
