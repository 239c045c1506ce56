//! File metadata: the trait, and one implementation for both backends from the same
//! portable SQL. The bytes are in a [`super::BlobStore`] under the same id.

use super::{PgStore, SqliteStore, StoreError};
use async_trait::async_trait;

/// A stored file's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRecord {
    /// Random id; also the blob's id.
    pub id: String,
    /// The room it was posted in.
    pub room_id: String,
    /// Uploader.
    pub uploader_id: String,
    /// Name given on upload.
    pub name: Option<String>,
    /// Media type.
    pub content_type: String,
    /// Size in bytes.
    pub size: i64,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// File metadata.
#[async_trait]
pub trait FileStore: Send + Sync {
    /// Inserts a file; its room and uploader must exist. [`StoreError::Conflict`] if the
    /// id is taken.
    async fn insert_file(&self, file: &FileRecord) -> Result<(), StoreError>;
    /// The file with this id.
    async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError>;
    /// Deletes a file's metadata; false if there was none.
    async fn delete_file(&self, id: &str) -> Result<bool, StoreError>;
}

const FILE_COLUMNS: &str = "id, room_id, uploader_id, name, content_type, size, created_at";

macro_rules! file_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn file_row(row: &$row) -> Result<FileRecord, StoreError> {
                use sqlx::Row;
                Ok(FileRecord {
                    id: row.try_get("id")?,
                    room_id: row.try_get("room_id")?,
                    uploader_id: row.try_get("uploader_id")?,
                    name: row.try_get("name")?,
                    content_type: row.try_get("content_type")?,
                    size: row.try_get("size")?,
                    created_at: row.try_get("created_at")?,
                })
            }
        }

        #[async_trait]
        impl FileStore for $store {
            async fn insert_file(&self, f: &FileRecord) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO files ({FILE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ))
                .bind(&f.id)
                .bind(&f.room_id)
                .bind(&f.uploader_id)
                .bind(&f.name)
                .bind(&f.content_type)
                .bind(f.size)
                .bind(f.created_at)
                .execute(self.pool())
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
                sqlx::query(&format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.pool())
                    .await?
                    .as_ref()
                    .map(Self::file_row)
                    .transpose()
            }

            async fn delete_file(&self, id: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("DELETE FROM files WHERE id = $1")
                    .bind(id)
                    .execute(self.pool())
                    .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

file_store!(SqliteStore, sqlx::sqlite::SqliteRow);
file_store!(PgStore, sqlx::postgres::PgRow);
