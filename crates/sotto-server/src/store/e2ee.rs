//! Encrypted rooms: the signed room state chains, the members' sealed room keys and the
//! rooms due a new epoch. The trait, and one implementation for both backends.
//!
//! A statement is stored together with the change it signs (a member added, encryption
//! turned on…) in one transaction, each taking the next room seq like every room change.

use super::rooms::{an_owner_remains, bump, log_event};
use super::{MemberRecord, PgStore, SqliteStore, StoreError};
use async_trait::async_trait;
use sotto_api::{Event, EventKind, Member};

/// What a statement changes on the server besides the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedChange {
    /// Nothing else (a creation of a room already encrypted, a new epoch).
    None,
    /// Adds a member (nothing if already one).
    AddMember(MemberRecord),
    /// Removes a member (nothing if not one).
    RemoveMember(String),
    /// Sets a member's owner flag.
    SetOwner(String, bool),
    /// Turns encryption on or off.
    SetEncrypted(bool),
}

/// A statement to append, as the service checked it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewStatement<'a> {
    /// Its own sequence number in the chain.
    pub seq: u64,
    /// Who signed it.
    pub actor: &'a str,
    /// Its encoding.
    pub bytes: &'a [u8],
    /// It declares a new epoch (clears the room's rotation mark).
    pub new_epoch: bool,
    /// Unix milliseconds.
    pub at: i64,
}

/// A member's sealed copy of one epoch key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomKeyRecord {
    /// The room.
    pub room_id: String,
    /// The epoch, 32 lowercase hex digits.
    pub epoch_id: String,
    /// Who can open it.
    pub recipient_id: String,
    /// Who sealed and signed it.
    pub distributor_id: String,
    /// The encoded box (docs/protocol.md §6.1).
    pub sealed: Vec<u8>,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// Room state chains and room keys.
#[async_trait]
pub trait E2eeStore: Send + Sync {
    /// The room's statements, first to last.
    async fn statements(&self, room_id: &str) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Appends the statement and makes `change`, in one transaction: the logged
    /// `statement_added` and then the change's event. A new epoch clears the room's
    /// rotation mark. [`StoreError::Conflict`] if a statement with its seq exists already
    /// (someone else extended the head first); `Ok(vec![])` if there is no such room.
    async fn append_statement(
        &self,
        room_id: &str,
        statement: NewStatement<'_>,
        change: &SignedChange,
    ) -> Result<Vec<Event>, StoreError>;
    /// Stores sealed room keys, all or none; for each, false (nothing written) if the
    /// recipient already has one for that epoch, unless this one is the recipient's own
    /// copy and the stored one was handed on by someone else: the own copy replaces it,
    /// so a later session of the recipient does not depend on a distributor who may
    /// leave the room (a box from a former member is refused, docs/protocol.md §6.3).
    async fn put_room_keys(&self, keys: &[RoomKeyRecord]) -> Result<Vec<bool>, StoreError>;
    /// The room keys sealed to `recipient_id` in the room, oldest first.
    async fn room_keys(
        &self,
        room_id: &str,
        recipient_id: &str,
    ) -> Result<Vec<RoomKeyRecord>, StoreError>;
    /// Who holds a sealed key of the epoch in the room, sorted.
    async fn epoch_holders(&self, room_id: &str, epoch_id: &str)
    -> Result<Vec<String>, StoreError>;
    /// Deletes every room key sealed to the user (a key reset); the rooms they were in.
    async fn drop_room_keys(&self, user_id: &str) -> Result<Vec<String>, StoreError>;
    /// Marks the room as due a new epoch.
    async fn mark_rotation(&self, room_id: &str) -> Result<(), StoreError>;
    /// Whether the room is marked as due a new epoch.
    async fn rotation_marked(&self, room_id: &str) -> Result<bool, StoreError>;
}

const KEY_COLUMNS: &str = "room_id, epoch_id, recipient_id, distributor_id, sealed, created_at";

macro_rules! e2ee_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn room_key_row(row: &$row) -> Result<RoomKeyRecord, StoreError> {
                use sqlx::Row;
                Ok(RoomKeyRecord {
                    room_id: row.try_get("room_id")?,
                    epoch_id: row.try_get("epoch_id")?,
                    recipient_id: row.try_get("recipient_id")?,
                    distributor_id: row.try_get("distributor_id")?,
                    sealed: row.try_get("sealed")?,
                    created_at: row.try_get("created_at")?,
                })
            }
        }

        #[async_trait]
        impl E2eeStore for $store {
            async fn statements(&self, room_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
                use sqlx::Row;
                sqlx::query("SELECT statement FROM room_statements WHERE room_id = $1 ORDER BY seq")
                    .bind(room_id)
                    .fetch_all(self.pool())
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get(0)?))
                    .collect()
            }

            async fn append_statement(
                &self,
                room_id: &str,
                st: NewStatement<'_>,
                change: &SignedChange,
            ) -> Result<Vec<Event>, StoreError> {
                use base64::Engine;
                let NewStatement {
                    seq,
                    actor,
                    bytes: statement,
                    new_epoch,
                    at,
                } = st;
                let chain_seq =
                    i64::try_from(seq).map_err(|_| StoreError::Corrupt("statement seq".into()))?;
                let mut tx = self.pool().begin().await?;
                // Taking the room seq first locks the room, so concurrent statements
                // queue here and the later one meets the primary key.
                let Some(room_seq) = bump(&mut tx, room_id).await? else {
                    return Ok(Vec::new());
                };
                sqlx::query(
                    "INSERT INTO room_statements (room_id, seq, actor, statement, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(room_id)
                .bind(chain_seq)
                .bind(actor)
                .bind(statement)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                let kind = EventKind::StatementAdded {
                    chain_seq: seq,
                    statement: base64::engine::general_purpose::STANDARD.encode(statement),
                };
                let mut events = vec![log_event(&mut tx, room_id, room_seq, kind).await?];
                if new_epoch {
                    sqlx::query("DELETE FROM room_rotations WHERE room_id = $1")
                        .bind(room_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let kind = match change {
                    SignedChange::None => None,
                    SignedChange::AddMember(m) => {
                        let done = sqlx::query(
                            "INSERT INTO room_members (room_id, user_id, owner, joined_at) \
                             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(room_id)
                        .bind(&m.user_id)
                        .bind(m.owner)
                        .bind(m.joined_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_write)?;
                        (done.rows_affected() > 0).then(|| EventKind::MemberAdded {
                            member: Member {
                                user_id: m.user_id.clone(),
                                username: m.username.clone(),
                                owner: m.owner,
                                joined_at: m.joined_at,
                                forced_by: None,
                            },
                        })
                    }
                    SignedChange::RemoveMember(user_id) => {
                        an_owner_remains(&mut tx, room_id, user_id).await?;
                        let done = sqlx::query(
                            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
                        )
                        .bind(room_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                        (done.rows_affected() > 0).then(|| EventKind::MemberRemoved {
                            user_id: user_id.clone(),
                            forced_by: None,
                        })
                    }
                    SignedChange::SetOwner(user_id, owner) => {
                        if !owner {
                            an_owner_remains(&mut tx, room_id, user_id).await?;
                        }
                        let done = sqlx::query(
                            "UPDATE room_members SET owner = $3 \
                             WHERE room_id = $1 AND user_id = $2 AND owner <> $3",
                        )
                        .bind(room_id)
                        .bind(user_id)
                        .bind(*owner)
                        .execute(&mut *tx)
                        .await?;
                        (done.rows_affected() > 0).then(|| EventKind::OwnerChanged {
                            user_id: user_id.clone(),
                            owner: *owner,
                        })
                    }
                    SignedChange::SetEncrypted(on) => {
                        let done = sqlx::query(
                            "UPDATE rooms SET encrypted = $2 WHERE id = $1 AND encrypted <> $2",
                        )
                        .bind(room_id)
                        .bind(*on)
                        .execute(&mut *tx)
                        .await?;
                        (done.rows_affected() > 0).then(|| EventKind::EncryptionChanged {
                            encrypted: *on,
                            by: actor.to_owned(),
                        })
                    }
                };
                if let Some(kind) = kind {
                    let Some(seq) = bump(&mut tx, room_id).await? else {
                        return Ok(Vec::new());
                    };
                    events.push(log_event(&mut tx, room_id, seq, kind).await?);
                }
                tx.commit().await?;
                if events.len() > 1 {
                    self.access_changed(room_id);
                }
                Ok(events)
            }

            async fn put_room_keys(&self, keys: &[RoomKeyRecord]) -> Result<Vec<bool>, StoreError> {
                // One transaction: a rotation's thousand boxes are one commit, not a thousand.
                let sql = format!(
                    "INSERT INTO room_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (room_id, epoch_id, recipient_id) DO UPDATE SET \
                     distributor_id = excluded.distributor_id, sealed = excluded.sealed, \
                     created_at = excluded.created_at \
                     WHERE excluded.distributor_id = excluded.recipient_id \
                     AND room_keys.distributor_id <> room_keys.recipient_id"
                );
                let mut tx = self.pool().begin().await?;
                let mut stored = Vec::with_capacity(keys.len());
                for k in keys {
                    let done = sqlx::query(&sql)
                        .bind(&k.room_id)
                        .bind(&k.epoch_id)
                        .bind(&k.recipient_id)
                        .bind(&k.distributor_id)
                        .bind(&k.sealed)
                        .bind(k.created_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_write)?;
                    stored.push(done.rows_affected() > 0);
                }
                tx.commit().await.map_err(StoreError::from_write)?;
                Ok(stored)
            }

            async fn room_keys(
                &self,
                room_id: &str,
                recipient_id: &str,
            ) -> Result<Vec<RoomKeyRecord>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {KEY_COLUMNS} FROM room_keys WHERE room_id = $1 AND recipient_id = $2 \
                     ORDER BY created_at, epoch_id"
                ))
                .bind(room_id)
                .bind(recipient_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(Self::room_key_row)
                .collect()
            }

            async fn epoch_holders(
                &self,
                room_id: &str,
                epoch_id: &str,
            ) -> Result<Vec<String>, StoreError> {
                use sqlx::Row;
                sqlx::query(
                    "SELECT recipient_id FROM room_keys WHERE room_id = $1 AND epoch_id = $2 \
                     ORDER BY recipient_id",
                )
                .bind(room_id)
                .bind(epoch_id)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect()
            }

            async fn drop_room_keys(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
                use sqlx::Row;
                let mut tx = self.pool().begin().await?;
                let rooms = sqlx::query(
                    "SELECT DISTINCT room_id FROM room_keys WHERE recipient_id = $1 \
                     ORDER BY room_id",
                )
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok(r.try_get(0)?))
                .collect::<Result<Vec<String>, StoreError>>()?;
                sqlx::query("DELETE FROM room_keys WHERE recipient_id = $1")
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(rooms)
            }

            async fn mark_rotation(&self, room_id: &str) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO room_rotations (room_id) SELECT id FROM rooms WHERE id = $1 \
                     ON CONFLICT DO NOTHING",
                )
                .bind(room_id)
                .execute(self.pool())
                .await?;
                Ok(())
            }

            async fn rotation_marked(&self, room_id: &str) -> Result<bool, StoreError> {
                let row = sqlx::query("SELECT room_id FROM room_rotations WHERE room_id = $1")
                    .bind(room_id)
                    .fetch_optional(self.pool())
                    .await?;
                Ok(row.is_some())
            }
        }
    };
}

e2ee_store!(SqliteStore, sqlx::sqlite::SqliteRow);
e2ee_store!(PgStore, sqlx::postgres::PgRow);
