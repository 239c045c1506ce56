//! C10 audit: what admins may list beyond the rooms they are in.

use super::rooms::ROOM_COLUMNS;
use super::{PgStore, RoomRecord, SqliteStore, StoreError};
use async_trait::async_trait;

/// Every room, for the audit.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Every room with its member count, oldest first.
    async fn all_rooms(&self) -> Result<Vec<(RoomRecord, i64)>, StoreError>;
}

macro_rules! audit_store {
    ($store:ty) => {
        #[async_trait]
        impl AuditStore for $store {
            async fn all_rooms(&self) -> Result<Vec<(RoomRecord, i64)>, StoreError> {
                use sqlx::Row;
                let sql = format!(
                    "SELECT {ROOM_COLUMNS}, \
                     (SELECT COUNT(*) FROM room_members m WHERE m.room_id = rooms.id) \
                     AS member_count \
                     FROM rooms ORDER BY created_at, id"
                );
                sqlx::query(&sql)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|row| Ok((Self::room_row(row)?, row.try_get("member_count")?)))
                    .collect()
            }
        }
    };
}

audit_store!(SqliteStore);
audit_store!(PgStore);
