//! Group commit for SQLite message inserts, on a thread that owns its connection.
//!
//! SQLite syncs the log once per commit and lets one writer in at a time, so one commit
//! per message caps throughput at the disk's sync rate. The writer instead takes every
//! send waiting in its queue (up to [`MAX_BATCH`]), inserts each under its own
//! savepoint, commits once, and only then answers each caller: every acknowledged
//! message is as durable as with a commit each (`synchronous=FULL`), and under load many
//! share one sync. With a single send waiting, a batch is that one send.
//!
//! The writer also records when a session was last used (once a minute per session, on
//! the request path) and members' read markers. Written through the pool instead, each
//! would wait for SQLite's write lock, which the writer holds most of the time under
//! load, in the busy handler's sleeps of up to 100 ms each: sends stalled for seconds.
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

/// What the writer is asked to do, and where its answer goes.
struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Done, StoreError>>,
}

enum Work {
    Insert(MessageRecord),
    /// A session's `last_used_at`, by token hash.
    Touch(String, i64),
    /// A member's read marker: room, user, seq.
    MarkRead(String, String, i64),
}

// Mostly `Inserted`: boxing it would allocate once more per message.
#[allow(clippy::large_enum_variant)]
enum Done {
    Inserted(Inserted),
    Touched,
    /// The member's read marker now, if they are a member.
    Marked(Option<i64>),
}

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
        match self.submit(Work::Insert(m)).await? {
            Done::Inserted(inserted) => Ok(inserted),
            _ => Err(StoreError::Corrupt(
                "an insert answered as another job".into(),
            )),
        }
    }

    /// Sets the `last_used_at` of the session behind `token_hash`, answering once its
    /// batch is committed.
    pub(super) async fn touch(&self, token_hash: &str, at: i64) -> Result<(), StoreError> {
        self.submit(Work::Touch(token_hash.to_owned(), at)).await?;
        Ok(())
    }

    /// [`super::RoomStore::mark_read`], answering once its batch is committed.
    pub(super) async fn mark_read(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> Result<Option<i64>, StoreError> {
        match self
            .submit(Work::MarkRead(room_id.to_owned(), user_id.to_owned(), seq))
            .await?
        {
            Done::Marked(marker) => Ok(marker),
            _ => Err(StoreError::Corrupt(
                "a read marker answered as another job".into(),
            )),
        }
    }

    async fn submit(&self, work: Work) -> Result<Done, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { work, reply })
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
        for (job, result) in batch.drain(..).zip(results) {
            // The caller may have gone (a dropped request); what it asked stays written.
            let _ = job.reply.send(result);
        }
    }
}

/// One result per job, in order. If the commit fails, nothing of the batch is written
/// and every job gets the error.
fn write(conn: &mut Connection, batch: &[Job]) -> Vec<Result<Done, StoreError>> {
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
    let results = batch
        .iter()
        .map(|job| match &job.work {
            Work::Insert(m) => insert_one(&mut tx, m).map(Done::Inserted),
            Work::Touch(token_hash, at) => touch(&tx, token_hash, *at).map(|()| Done::Touched),
            Work::MarkRead(room_id, user_id, seq) => {
                mark_read(&tx, room_id, user_id, *seq).map(Done::Marked)
            }
        })
        .collect();
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}

/// Only forward, and never past the room's last seq, so concurrent marks from several
/// devices settle on the furthest.
fn mark_read(
    conn: &Connection,
    room_id: &str,
    user_id: &str,
    seq: i64,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        "UPDATE room_members SET last_read_seq = ?3 \
         WHERE room_id = ?1 AND user_id = ?2 AND last_read_seq < ?3",
    )?
    .execute(params![room_id, user_id, seq.min(room_seq(conn, room_id)?)])?;
    Ok(conn
        .prepare_cached(
            "SELECT last_read_seq FROM room_members WHERE room_id = ?1 AND user_id = ?2",
        )?
        .query_row([room_id, user_id], |r| r.get(0))
        .optional()?)
}

fn room_seq(conn: &Connection, room_id: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM rooms WHERE id = ?1")?
        .query_row([room_id], |r| r.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

fn touch(conn: &Connection, token_hash: &str, at: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE sessions SET last_used_at = ?1 WHERE token_hash = ?2")?
        .execute(params![at, token_hash])?;
    Ok(())
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
