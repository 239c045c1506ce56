//! Group commit for PostgreSQL message inserts, on a task that owns one connection.
//!
//! PostgreSQL already flushes the WAL of concurrent commits together, but a send written
//! on its own still costs six round trips (BEGIN, the room's next seq, the lookup of its
//! id, the insert, the sender's read marker, COMMIT), a commit record of its own, and a
//! pool connection for all that time. The writer instead takes every send waiting in its
//! queue (up to [`MAX_BATCH`]) and writes them in one transaction of a constant number of
//! statements, whatever the batch's size, then answers each caller only after COMMIT:
//! every acknowledged message is committed, as before. With a single send waiting, a
//! batch is that one send.
//!
//! A batch first locks its rooms, in id order so two batches (or several nodes) cannot
//! deadlock. Every message insert takes its room's lock first, so the statements after
//! the lock (each with a new snapshot, in READ COMMITTED) see every message of those
//! rooms: one statement then drops ids already stored (and repeats within the batch, the
//! first one winning), numbers the rest per room in arrival order from the room's seq,
//! inserts them and moves their senders' read markers, as [`PgStore::insert_message_in`]
//! does one at a time. The statements take arrays, so their text never changes and the
//! connection prepares each once (sqlx keeps prepared statements per connection).
//!
//! If the batch fails (a deadlock with other writes, a constraint a message breaks, the
//! connection), its messages are written again one at a time, each in its own
//! transaction through the pool, so one bad message fails alone and every caller gets
//! its own answer. Should a lost answer to COMMIT hide a batch that was stored, those
//! writes find each message stored and answer `Existing` with it, as for a client's
//! retry. A broken connection is replaced on the next batch.

use super::rooms::{Inserted, MESSAGE_COLUMNS, MessageRecord, mentions_json};
use super::{PgStore, StoreError};
use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::collections::{HashMap, HashSet};
use tokio::sync::{mpsc, oneshot};

/// Most sends in one transaction, so one stays short.
pub(super) const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before callers wait to queue (backpressure).
const QUEUE: usize = 1024;
/// How the writer's connection shows in `pg_stat_activity`.
pub(super) const APPLICATION_NAME: &str = "sotto-message-writer";

type Reply = oneshot::Sender<Result<Inserted, StoreError>>;
type Job = (MessageRecord, Reply);

/// The handle to the writer task; the task ends when the last handle is dropped.
pub(super) struct MessageWriter {
    queue: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Starts the writer task. It opens its own connection with the pool's options on
    /// its first batch, and falls back on the pool when a batch fails.
    pub(super) fn start(pool: PgPool) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, jobs));
        Self { queue }
    }

    /// Inserts `m` as [`super::MessageStore::insert_message`] does, answering once it is
    /// committed.
    pub(super) async fn insert(&self, m: MessageRecord) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((m, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

async fn run(pool: PgPool, mut jobs: mpsc::Receiver<Job>) {
    let mut conn = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages: Vec<&MessageRecord> = batch.iter().map(|(m, _)| m).collect();
        let results = match write_batch(&pool, &mut conn, &messages).await {
            Ok(results) => results,
            Err(e) => {
                // A refused statement leaves the connection usable (the failed
                // transaction is rolled back on its next use); a broken one is replaced.
                if let Some(c) = conn.as_mut()
                    && c.ping().await.is_err()
                {
                    conn = None;
                }
                tracing::warn!(error = %e, size = messages.len(),
                    "message batch failed; writing its messages one at a time");
                let mut results = Vec::with_capacity(messages.len());
                for m in &messages {
                    results.push(insert_alone(&pool, m).await);
                }
                results
            }
        };
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // The caller may have gone (a dropped request); the message stays stored.
            let _ = reply.send(result);
        }
    }
}

/// One message in a transaction of its own, through the pool (the path of every send
/// before batching): for the messages of a failed batch.
async fn insert_alone(pool: &PgPool, m: &MessageRecord) -> Result<Inserted, StoreError> {
    let mut tx = pool.begin().await?;
    let inserted = PgStore::insert_message_in(&mut tx, m).await?;
    if let Inserted::New(_) = inserted {
        tx.commit().await?;
    }
    Ok(inserted)
}

/// The batch in one transaction on the writer's connection (opened if there is none):
/// one result per message, in order, or the error that failed the whole batch.
async fn write_batch(
    pool: &PgPool,
    conn: &mut Option<PgConnection>,
    batch: &[&MessageRecord],
) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
    let conn = match conn {
        Some(conn) => conn,
        slot => {
            let options = pool.connect_options().as_ref().clone();
            let options = options.application_name(APPLICATION_NAME);
            slot.insert(PgConnection::connect_with(&options).await?)
        }
    };
    let mut tx = conn.begin().await?;
    let results = write(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(results)
}

/// Locks the batch's rooms (those that exist), in the order every batch takes them.
/// `NO KEY UPDATE` is the lock a seq update takes, so references to the rooms being
/// checked elsewhere (a new member, say) do not wait for the batch.
const LOCK_ROOMS: &str = "SELECT id FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE";

/// Inserts the new messages of the batch, given as one array per column (a message's
/// position in them is its `ord`, from 1) and answers the `ord` and seq of each inserted.
/// Written as `insert_message_in` writes one: `version_seq` = `seq`, not edited, not
/// deleted, the mentions as JSON text; the sender's read marker moves up to their last
/// new message.
fn insert_new_sql() -> String {
    format!(
        "WITH input AS ( \
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                $6::text[], $7::text[], $8::int8[]) \
             WITH ORDINALITY AS i (room_id, id, sender_id, body_text, ciphertext, mentions, \
                                   content_hash, created_at, ord) \
         ), \
         fresh AS ( \
           SELECT DISTINCT ON (room_id, id) * FROM input i \
           WHERE NOT EXISTS (SELECT 1 FROM messages m \
                             WHERE m.room_id = i.room_id AND m.id = i.id) \
           ORDER BY room_id, id, ord \
         ), \
         bumped AS ( \
           UPDATE rooms r SET seq = r.seq + f.n \
           FROM (SELECT room_id, count(*) AS n FROM fresh GROUP BY room_id) f \
           WHERE r.id = f.room_id \
           RETURNING r.id, r.seq - f.n AS base \
         ), \
         inserted AS ( \
           INSERT INTO messages ({MESSAGE_COLUMNS}) \
           SELECT f.room_id, f.id, b.base + f.pos, b.base + f.pos, f.sender_id, f.body_text, \
                  f.ciphertext, f.mentions, f.content_hash, f.created_at, NULL, FALSE \
           FROM (SELECT *, row_number() OVER (PARTITION BY room_id ORDER BY ord) AS pos \
                 FROM fresh) f \
           JOIN bumped b ON b.id = f.room_id \
           RETURNING room_id, id, sender_id, seq \
         ), \
         marked AS ( \
           UPDATE room_members rm SET last_read_seq = s.seq \
           FROM (SELECT room_id, sender_id, max(seq) AS seq FROM inserted \
                 GROUP BY room_id, sender_id) s \
           WHERE rm.room_id = s.room_id AND rm.user_id = s.sender_id \
             AND rm.last_read_seq < s.seq \
         ) \
         SELECT f.ord, i.seq FROM inserted i \
         JOIN fresh f ON f.room_id = i.room_id AND f.id = i.id"
    )
}

/// The stored messages of these (room, id) pairs.
fn stored_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages \
         WHERE (room_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
    )
}

/// The statements of one batch inside its transaction.
async fn write(
    tx: &mut PgConnection,
    batch: &[&MessageRecord],
) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
    let mut rooms: Vec<&str> = batch.iter().map(|m| m.room_id.as_str()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let locked: HashSet<String> = sqlx::query_scalar::<_, String>(LOCK_ROOMS)
        .bind(&rooms)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();

    let mut results: Vec<Option<Result<Inserted, StoreError>>> =
        batch.iter().map(|_| None).collect();
    // The batch positions of the messages sent on, in order.
    let mut sent = Vec::with_capacity(batch.len());
    for (i, m) in batch.iter().enumerate() {
        if locked.contains(&m.room_id) {
            sent.push(i);
        } else {
            results[i] = Some(Err(StoreError::Corrupt(format!("no room {}", m.room_id))));
        }
    }
    if sent.is_empty() {
        return Ok(answers(results));
    }

    let column = |f: fn(&MessageRecord) -> String| -> Vec<String> {
        sent.iter().map(|&i| f(batch[i])).collect()
    };
    let rows = sqlx::query(&insert_new_sql())
        .bind(column(|m| m.room_id.clone()))
        .bind(column(|m| m.id.clone()))
        .bind(column(|m| m.sender_id.clone()))
        .bind(
            sent.iter()
                .map(|&i| batch[i].text.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            sent.iter()
                .map(|&i| batch[i].ciphertext.clone())
                .collect::<Vec<_>>(),
        )
        .bind(column(|m| mentions_json(&m.mentions)))
        .bind(column(|m| m.content_hash.clone()))
        .bind(
            sent.iter()
                .map(|&i| batch[i].created_at)
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    for row in &rows {
        let ord: i64 = row.try_get(0)?;
        let seq: i64 = row.try_get(1)?;
        let i = usize::try_from(ord - 1)
            .ok()
            .and_then(|k| sent.get(k).copied())
            .ok_or_else(|| StoreError::Corrupt(format!("batch position {ord}")))?;
        results[i] = Some(Ok(Inserted::New(MessageRecord {
            seq,
            version_seq: seq,
            edited_at: None,
            deleted: false,
            ..batch[i].clone()
        })));
    }

    // The others were stored before, or earlier in this batch: answer the stored row.
    let others: Vec<usize> = sent.into_iter().filter(|&i| results[i].is_none()).collect();
    if !others.is_empty() {
        let stored = sqlx::query(&stored_sql())
            .bind(
                others
                    .iter()
                    .map(|&i| batch[i].room_id.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                others
                    .iter()
                    .map(|&i| batch[i].id.as_str())
                    .collect::<Vec<_>>(),
            )
            .fetch_all(&mut *tx)
            .await?;
        let stored: HashMap<(String, String), MessageRecord> = stored
            .iter()
            .map(|row: &PgRow| {
                let m = PgStore::message_row(row)?;
                Ok(((m.room_id.clone(), m.id.clone()), m))
            })
            .collect::<Result<_, StoreError>>()?;
        for i in others {
            let key = (batch[i].room_id.clone(), batch[i].id.clone());
            // Cannot happen with the rooms locked; failing the batch writes it again.
            let Some(m) = stored.get(&key) else {
                return Err(StoreError::Corrupt("a batched message went missing".into()));
            };
            results[i] = Some(Ok(Inserted::Existing(m.clone())));
        }
    }
    Ok(answers(results))
}

/// The results, every message having one by now.
fn answers(
    results: Vec<Option<Result<Inserted, StoreError>>>,
) -> Vec<Result<Inserted, StoreError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(StoreError::Corrupt("unanswered send".into()))))
        .collect()
}
