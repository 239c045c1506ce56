//! Hooks for tests that play a compromised server: what an operator with the database
//! and the process in hand could serve instead of what clients stored. Each hook changes
//! the real server's storage (or pushes on its real event bus) and leaves the HTTP and
//! realtime paths untouched, so clients meet the attack exactly as they would in use.

use super::TestServer;
use crate::bus::{BusEvent, UserNotice};
use crate::store::{MessageRecord, RoomKeyRecord};
use sotto_api::{Event, EventKind, Notice};
use sqlx::Row;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A value bound to a raw SQL statement of [`TestServer::sql`].
#[derive(Clone, Copy, Debug)]
pub enum SqlValue<'a> {
    /// Text.
    Text(&'a str),
    /// Bytes (a `BLOB` / `BYTEA` column).
    Bytes(&'a [u8]),
    /// An integer (`BIGINT`).
    Int(i64),
}

/// A connection pool of our own on the server's database, beside the server's.
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match *b {
                SqlValue::Text(t) => q.bind(t),
                SqlValue::Bytes(b) => q.bind(b),
                SqlValue::Int(i) => q.bind(i),
            };
        }
        q
    }};
}

impl TestServer {
    async fn db(&self) -> Db {
        match self.pg.as_ref() {
            Some(pg) => Db::Postgres(sqlx::PgPool::connect(pg.url()).await.expect("connect")),
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.data_dir().join("sotto.db"))
                    .busy_timeout(std::time::Duration::from_secs(10));
                Db::Sqlite(
                    sqlx::SqlitePool::connect_with(options)
                        .await
                        .expect("open sqlite"),
                )
            }
        }
    }

    /// Runs one raw SQL statement on the server's database (placeholders `$1`, `$2`, …
    /// on both backends); how many rows it changed. For changes no store method makes.
    pub async fn sql(&self, query: &str, binds: &[SqlValue<'_>]) -> u64 {
        match self.db().await {
            Db::Sqlite(pool) => {
                let done = bind_all!(sqlx::query(query), binds)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{query}: {e}"));
                pool.close().await;
                done.rows_affected()
            }
            Db::Postgres(pool) => {
                let done = bind_all!(sqlx::query(query), binds)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{query}: {e}"));
                pool.close().await;
                done.rows_affected()
            }
        }
    }

    /// Serves `bundle` (any bytes) as `user_id`'s published key bundle: a key-directory
    /// MITM. Clients must report the identity change and seal nothing to the new key
    /// until the user accepts it.
    pub async fn replace_bundle_behind_the_users_back(&self, user_id: &str, bundle: &[u8]) {
        let n = self
            .sql(
                "UPDATE key_bundles SET bundle = $1 WHERE user_id = $2",
                &[SqlValue::Bytes(bundle), SqlValue::Text(user_id)],
            )
            .await;
        assert_eq!(n, 1, "no bundle to replace");
    }

    /// Serves `backup` (any bytes) as `user_id`'s key backup.
    pub async fn replace_backup_behind_the_users_back(&self, user_id: &str, backup: &[u8]) {
        let n = self
            .sql(
                "UPDATE key_backups SET backup = $1 WHERE user_id = $2",
                &[SqlValue::Bytes(backup), SqlValue::Text(user_id)],
            )
            .await;
        assert_eq!(n, 1, "no backup to replace");
    }

    /// The key backup stored for `user_id`.
    pub async fn stored_backup(&self, user_id: &str) -> Vec<u8> {
        let stores = self.stores().await;
        let backup = stores.keys.backup(user_id).await;
        stores.close().await;
        backup.expect("read the backup").expect("a backup").bytes
    }

    /// Every room-key box stored in the room, for every recipient.
    pub async fn stored_room_keys(&self, room_id: &str) -> Vec<RoomKeyRecord> {
        const Q: &str = "SELECT room_id, epoch_id, recipient_id, distributor_id, sealed, \
                         created_at FROM room_keys WHERE room_id = $1 ORDER BY created_at";
        macro_rules! rows {
            ($pool:expr) => {{
                let rows = sqlx::query(Q)
                    .bind(room_id)
                    .fetch_all(&$pool)
                    .await
                    .expect("read room keys");
                $pool.close().await;
                rows.iter()
                    .map(|r| RoomKeyRecord {
                        room_id: r.get("room_id"),
                        epoch_id: r.get("epoch_id"),
                        recipient_id: r.get("recipient_id"),
                        distributor_id: r.get("distributor_id"),
                        sealed: r.get("sealed"),
                        created_at: r.get("created_at"),
                    })
                    .collect()
            }};
        }
        match self.db().await {
            Db::Sqlite(pool) => rows!(pool),
            Db::Postgres(pool) => rows!(pool),
        }
    }

    /// Stores `sealed` as the box of `recipient_id` for that epoch, replacing any other,
    /// with none of the checks the service makes (signature, distributor, epoch). The
    /// routing columns are taken as given, so they may disagree with the box's header.
    pub async fn put_room_key_behind_the_rooms_back(&self, key: &RoomKeyRecord) {
        self.sql(
            "DELETE FROM room_keys WHERE room_id = $1 AND epoch_id = $2 AND recipient_id = $3",
            &[
                SqlValue::Text(&key.room_id),
                SqlValue::Text(&key.epoch_id),
                SqlValue::Text(&key.recipient_id),
            ],
        )
        .await;
        self.sql(
            "INSERT INTO room_keys (room_id, epoch_id, recipient_id, distributor_id, sealed, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                SqlValue::Text(&key.room_id),
                SqlValue::Text(&key.epoch_id),
                SqlValue::Text(&key.recipient_id),
                SqlValue::Text(&key.distributor_id),
                SqlValue::Bytes(&key.sealed),
                SqlValue::Int(key.created_at),
            ],
        )
        .await;
    }

    /// Forgets every box sealed to `recipient_id` in the room; how many there were.
    pub async fn drop_room_keys_behind_the_rooms_back(
        &self,
        room_id: &str,
        recipient_id: &str,
    ) -> u64 {
        self.sql(
            "DELETE FROM room_keys WHERE room_id = $1 AND recipient_id = $2",
            &[SqlValue::Text(room_id), SqlValue::Text(recipient_id)],
        )
        .await
    }

    /// The room's stored chain statements, first to last.
    pub async fn stored_statements(&self, room_id: &str) -> Vec<Vec<u8>> {
        let stores = self.stores().await;
        let statements = stores.e2ee.statements(room_id).await;
        stores.close().await;
        statements.expect("read the chain")
    }

    /// Serves only the first `keep` statements of the room's chain from now on (an older
    /// prefix of its history); how many were dropped.
    pub async fn truncate_chain_behind_the_rooms_back(&self, room_id: &str, keep: u64) -> u64 {
        let keep = i64::try_from(keep).expect("a statement count");
        self.sql(
            "DELETE FROM room_statements WHERE room_id = $1 AND seq >= $2",
            &[SqlValue::Text(room_id), SqlValue::Int(keep)],
        )
        .await
    }

    /// Stores a message in the room as `sender_id` with no check at all (the sender need
    /// not be a member, the envelope need not be under the current epoch, a plaintext
    /// message may go into an encrypted room) and pushes it to the room's live sockets
    /// like any new message. The stored record.
    pub async fn insert_message_behind_the_rooms_back(
        &self,
        room_id: &str,
        sender_id: &str,
        text: Option<&str>,
        ciphertext: Option<&str>,
        message_id: &str,
    ) -> MessageRecord {
        let record = MessageRecord {
            room_id: room_id.to_owned(),
            id: message_id.to_owned(),
            seq: 0,
            version_seq: 0,
            sender_id: sender_id.to_owned(),
            text: text.map(str::to_owned),
            ciphertext: ciphertext.map(str::to_owned),
            mentions: Vec::new(),
            content_hash: crate::service::rooms::content_hash(text, ciphertext),
            created_at: now_ms(),
            edited_at: None,
            deleted: false,
        };
        let stores = self.stores().await;
        let inserted = stores.messages.insert_message(&record).await;
        stores.close().await;
        let stored = match inserted.expect("insert the message") {
            crate::store::Inserted::New(m) => m,
            crate::store::Inserted::Existing(_) => panic!("a message with this id exists"),
        };
        self.bus.publish(BusEvent::Room(Event {
            room_id: room_id.to_owned(),
            seq: stored.seq,
            kind: EventKind::MessageCreated {
                message: crate::store::message_view(&stored),
            },
        }));
        stored
    }

    /// Pushes `notice` to the live sockets of `to`, as the server pushes room-key
    /// requests, room keys and OTR frames, with none of the checks it makes first.
    pub fn push_notice(&self, to: &[&str], notice: Notice) {
        let to: BTreeSet<String> = to.iter().map(|u| (*u).to_owned()).collect();
        self.bus.publish(BusEvent::Notice(UserNotice {
            to: Arc::new(to),
            notice,
        }));
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
