//! Group commit for SQLite message inserts, on a thread that owns its connection.
//!
//! SQLite syncs the log once per commit and lets one writer in at a time, so one commit
//! per message caps throughput at the disk's sync rate. The writer instead takes every
//! send waiting in its queue (up to [`MAX_BATCH`]), inserts each under its own
//! savepoint, commits once, and only then answers each caller: every acknowledged
//! message is as durable as with a commit each (`synchronous=FULL`), and under load many
//! share one sync. With a single send waiting, a batch is that one send.
//!
//! The writer calls SQLite directly (`rusqlite`, prepared statements kept across
//! batches) rather than through the async pool, whose driver hands every statement and
//! every row to a worker thread and back: a send's four statements cost microseconds
//! here instead of several thread wake-ups each.

use super::StoreError;
use super::rooms::{Inserted, MESSAGE_COLUMNS, MessageRecord, mentions_json, parse_mentions};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most sends in one commit, so one commit stays short.
pub(super) const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before callers wait to queue (backpressure).
const QUEUE: usize = 1024;

type Job = (MessageRecord, oneshot::Sender<Result<Inserted, StoreError>>);

/// The handle to the writer thread; the thread ends when the last handle is dropped.
pub(super) struct MessageWriter {
    queue: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Opens a connection of its own to the (migrated) database at `path` and starts
    /// the writer thread.
    pub(super) fn start(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(busy_timeout)?;
        // Per connection, as the pool's: durable commits, enforced references.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        let (queue, jobs) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, jobs))?;
        Ok(Self { queue })
    }

    /// Inserts `m` as [`super::MessageStore::insert_message`] does, answering once its
    /// batch is committed.
    pub(super) async fn insert(&self, m: MessageRecord) -> Result<Inserted, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((m, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}

fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = write(&mut conn, &batch);
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // The caller may have gone (a dropped request); the message stays stored.
            let _ = reply.send(result);
        }
    }
}

/// One result per job, in order. If the commit fails, nothing of the batch is stored and
/// every job gets the error.
fn write(conn: &mut Connection, batch: &[Job]) -> Vec<Result<Inserted, StoreError>> {
    let failed = |e: &rusqlite::Error| {
        batch
            .iter()
            .map(|_| Err(StoreError::CommitFailed(e.to_string())))
            .collect()
    };
    // Immediate: take the write lock now, waiting out other writers (`sotto admin`,
    // the pool) by the busy timeout, rather than fail on upgrading a read.
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let results = batch.iter().map(|(m, _)| insert_one(&mut tx, m)).collect();
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}

/// One insert under its own savepoint, so a retry (which takes no seq) or a failure
/// leaves the rest of the batch untouched.
fn insert_one(tx: &mut Transaction<'_>, m: &MessageRecord) -> Result<Inserted, StoreError> {
    let savepoint = tx.savepoint()?;
    let result = insert(&savepoint, m);
    if let Ok(Inserted::New(_)) = result {
        savepoint.commit()?;
    }
    // Otherwise dropping the savepoint rolls it back.
    result
}

/// The statements of `insert_message_in` (rooms.rs), for this connection.
fn insert(conn: &Connection, m: &MessageRecord) -> Result<Inserted, StoreError> {
    // Taking the seq first makes a send of an id already stored take none.
    let seq: Option<i64> = conn
        .prepare_cached("UPDATE rooms SET seq = seq + 1 WHERE id = ?1 RETURNING seq")?
        .query_row([&m.room_id], |r| r.get(0))
        .optional()?;
    let Some(seq) = seq else {
        return Err(StoreError::Corrupt(format!("no room {}", m.room_id)));
    };
    let existing = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id = ?2"
        ))?
        .query_row([&m.room_id, &m.id], stored_message)
        .optional()?;
    if let Some((mut stored, mentions)) = existing {
        stored.mentions = parse_mentions(&mentions)?;
        return Ok(Inserted::Existing(stored));
    }
    conn.prepare_cached(&format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, 0)"
    ))?
    .execute(params![
        m.room_id,
        m.id,
        seq,
        m.sender_id,
        m.text,
        m.ciphertext,
        mentions_json(&m.mentions),
        m.content_hash,
        m.created_at,
    ])?;
    // Whoever writes has read the room up to their own message.
    conn.prepare_cached(
        "UPDATE room_members SET last_read_seq = ?3 \
         WHERE room_id = ?1 AND user_id = ?2 AND last_read_seq < ?3",
    )?
    .execute(params![m.room_id, m.sender_id, seq])?;
    Ok(Inserted::New(MessageRecord {
        seq,
        version_seq: seq,
        edited_at: None,
        deleted: false,
        ..m.clone()
    }))
}

/// A row of `MESSAGE_COLUMNS`, and its mentions as stored (JSON) to parse.
fn stored_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<(MessageRecord, String)> {
    let record = MessageRecord {
        room_id: r.get(0)?,
        id: r.get(1)?,
        seq: r.get(2)?,
        version_seq: r.get(3)?,
        sender_id: r.get(4)?,
        text: r.get(5)?,
        ciphertext: r.get(6)?,
        mentions: Vec::new(),
        content_hash: r.get(8)?,
        created_at: r.get(9)?,
        edited_at: r.get(10)?,
        deleted: r.get(11)?,
    };
    Ok((record, r.get(7)?))
}
