//! Blob storage: the bytes of uploaded files, streamed in and out, never whole in memory.
//!
//! Embedded mode keeps each blob as a file in a local directory; PostgreSQL mode keeps
//! blobs in the database in fixed-size chunks, so several nodes can share them. Either way
//! an acknowledged `put` is durable and a failed or abandoned one leaves nothing readable.

use super::StoreError;
use async_trait::async_trait;
use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use sqlx::{PgPool, Row};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A stream of bytes in pieces of any size.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// Size of the pieces a local blob is read in.
const READ_PIECE: usize = 64 * 1024;
/// Size of every PostgreSQL chunk but a blob's last.
pub const PG_CHUNK: usize = 256 * 1024;

/// Why a [`BlobStore::put`] failed; in every case nothing of the blob is kept.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// The data went over the byte cap.
    #[error("the data exceeds {0} bytes")]
    TooLarge(u64),
    /// The source stream failed (for example the client went away).
    #[error("reading the data: {0}")]
    Source(#[source] io::Error),
    /// Storing failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Blobs by id.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `data` under `id` (a fresh id), refusing more than `max_bytes`; returns the
    /// size. When it returns `Ok` the blob is durable; when it fails, or the future is
    /// dropped, nothing of it remains readable.
    async fn put(&self, id: &str, data: ByteStream, max_bytes: u64) -> Result<u64, PutError>;
    /// The blob's bytes as a stream, or `None` if there is no such blob.
    async fn open(&self, id: &str) -> Result<Option<ByteStream>, StoreError>;
    /// Deletes a blob; false if there was none.
    async fn delete(&self, id: &str) -> Result<bool, StoreError>;
}

/// Blob ids become file names: only `A-Za-z0-9_-`, so no path can be formed from one.
fn safe_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Blobs as files in one directory: `<dir>/<id>`, written as `<dir>/<id>.part`, fsynced
/// and renamed, so a blob is either complete or absent.
pub struct LocalBlobStore {
    dir: PathBuf,
}

impl LocalBlobStore {
    /// Uses `dir`, creating it if needed. A crash during an upload can leave a
    /// `*.part` file there; it is never served and may be removed while the server is
    /// stopped.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: &str) -> Option<PathBuf> {
        safe_id(id).then(|| self.dir.join(id))
    }
}

/// Removes a partly written file unless disarmed, also when the upload is abandoned.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = std::fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "removing a partial blob");
        }
    }
}

fn blob_io(e: io::Error) -> PutError {
    PutError::Store(StoreError::Io(e))
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn put(&self, id: &str, mut data: ByteStream, max_bytes: u64) -> Result<u64, PutError> {
        use tokio::io::AsyncWriteExt;
        let path = self
            .path(id)
            .ok_or_else(|| StoreError::Corrupt(format!("blob id {id:?}")))?;
        let part = self.dir.join(format!("{id}.part"));
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .await
            .map_err(blob_io)?;
        let mut guard = RemoveOnDrop(Some(part.clone()));
        let mut size = 0u64;
        while let Some(piece) = data.next().await {
            let piece = piece.map_err(PutError::Source)?;
            size += piece.len() as u64;
            if size > max_bytes {
                return Err(PutError::TooLarge(max_bytes));
            }
            file.write_all(&piece).await.map_err(blob_io)?;
        }
        file.flush().await.map_err(blob_io)?;
        file.sync_all().await.map_err(blob_io)?;
        drop(file);
        tokio::fs::rename(&part, &path).await.map_err(blob_io)?;
        guard.0 = None;
        // The rename is durable only once the directory is synced.
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
            .await
            .map_err(|e| blob_io(io::Error::other(e)))?
            .map_err(blob_io)?;
        Ok(size)
    }

    async fn open(&self, id: &str) -> Result<Option<ByteStream>, StoreError> {
        use tokio::io::AsyncReadExt;
        let Some(path) = self.path(id) else {
            return Ok(None);
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Io(e)),
        };
        let stream = futures_util::stream::unfold(Some(file), |file| async move {
            let mut file = file?;
            let mut buf = vec![0u8; READ_PIECE];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        let Some(path) = self.path(id) else {
            return Ok(false);
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io(e)),
        }
    }
}

/// Blobs in PostgreSQL: a `blobs` row, readable once marked complete, and its bytes in
/// `blob_chunks` of [`PG_CHUNK`] bytes. Each chunk is its own short statement, so an
/// upload holds no connection or transaction while it waits for the client.
pub struct PgBlobStore {
    pool: PgPool,
}

impl PgBlobStore {
    /// Over a migrated pool.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn insert_chunk(&self, id: &str, idx: i32, data: &[u8]) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blob_chunks (blob_id, idx, data) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(idx)
            .bind(data)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn fill(&self, id: &str, mut data: ByteStream, max_bytes: u64) -> Result<u64, PutError> {
        let mut buf = Vec::with_capacity(PG_CHUNK);
        let mut idx = 0i32;
        let mut size = 0u64;
        while let Some(piece) = data.next().await {
            let piece = piece.map_err(PutError::Source)?;
            size += piece.len() as u64;
            if size > max_bytes {
                return Err(PutError::TooLarge(max_bytes));
            }
            let mut rest = &piece[..];
            while !rest.is_empty() {
                let take = (PG_CHUNK - buf.len()).min(rest.len());
                buf.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if buf.len() == PG_CHUNK {
                    self.insert_chunk(id, idx, &buf).await?;
                    idx = idx
                        .checked_add(1)
                        .ok_or_else(|| StoreError::Corrupt("blob has too many chunks".into()))?;
                    buf.clear();
                }
            }
        }
        if !buf.is_empty() {
            self.insert_chunk(id, idx, &buf).await?;
        }
        let size_col = i64::try_from(size).map_err(|_| PutError::TooLarge(max_bytes))?;
        sqlx::query("UPDATE blobs SET complete = TRUE, size = $2 WHERE id = $1")
            .bind(id)
            .bind(size_col)
            .execute(&self.pool)
            .await
            .map_err(StoreError::from)?;
        Ok(size)
    }
}

/// Deletes an abandoned upload's rows (in a task: `Drop` cannot wait) unless disarmed.
struct DeleteOnDrop {
    pool: PgPool,
    id: Option<String>,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        let pool = self.pool.clone();
        rt.spawn(async move {
            if let Err(e) = delete_pg(&pool, &id).await {
                tracing::warn!(error = %e, "removing an abandoned blob");
            }
        });
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn delete_pg(pool: &PgPool, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM blobs WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl BlobStore for PgBlobStore {
    async fn put(&self, id: &str, data: ByteStream, max_bytes: u64) -> Result<u64, PutError> {
        if !safe_id(id) {
            return Err(StoreError::Corrupt(format!("blob id {id:?}")).into());
        }
        sqlx::query("INSERT INTO blobs (id, created_at) VALUES ($1, $2)")
            .bind(id)
            .bind(unix_ms())
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_write)?;
        let mut guard = DeleteOnDrop {
            pool: self.pool.clone(),
            id: Some(id.to_owned()),
        };
        let result = self.fill(id, data, max_bytes).await;
        guard.id = None;
        if result.is_err()
            && let Err(e) = delete_pg(&self.pool, id).await
        {
            tracing::warn!(error = %e, "removing a failed blob");
        }
        result
    }

    async fn open(&self, id: &str) -> Result<Option<ByteStream>, StoreError> {
        let row = sqlx::query("SELECT size FROM blobs WHERE id = $1 AND complete")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let size: i64 = row.try_get("size")?;
        let (pool, id) = (self.pool.clone(), id.to_owned());
        // One chunk per query: no cursor or connection is held between pieces.
        let stream = futures_util::stream::unfold(Some((0i32, 0i64)), move |state| {
            let (pool, id) = (pool.clone(), id.clone());
            async move {
                let (idx, read) = state?;
                let row =
                    sqlx::query("SELECT data FROM blob_chunks WHERE blob_id = $1 AND idx = $2")
                        .bind(&id)
                        .bind(idx)
                        .fetch_optional(&pool)
                        .await;
                match row {
                    Ok(Some(row)) => match row.try_get::<Vec<u8>, _>("data") {
                        Ok(data) => {
                            let read = read + data.len() as i64;
                            Some((Ok(Bytes::from(data)), Some((idx + 1, read))))
                        }
                        Err(e) => Some((Err(io::Error::other(e)), None)),
                    },
                    Ok(None) if read == size => None,
                    Ok(None) => Some((
                        Err(io::Error::other(format!(
                            "blob {id} is missing chunk {idx}"
                        ))),
                        None,
                    )),
                    Err(e) => Some((Err(io::Error::other(e)), None)),
                }
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    async fn delete(&self, id: &str) -> Result<bool, StoreError> {
        delete_pg(&self.pool, id).await
    }
}
