//! Group commit for SQLite message inserts. SQLite syncs the log once per commit and lets
//! one writer in at a time, so one commit per message caps throughput at the disk's sync
//! rate. One writer task instead takes every send waiting in its queue (up to
//! [`MAX_BATCH`]), inserts each under its own savepoint, commits once, and only then
//! answers each caller: every acknowledged message is as durable as before, and under load
//! many share one sync. With a single send waiting, a batch is that one send.

use super::rooms::{Inserted, MessageRecord};
use super::{SqliteStore, StoreError};
use sqlx::{Acquire, SqlitePool};
use tokio::sync::{mpsc, oneshot};

/// Most sends in one commit, so one commit stays short.
pub(super) const MAX_BATCH: usize = 256;
/// Sends waiting for the writer before callers wait to queue (backpressure).
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Inserted, StoreError>>;

/// The handle to the writer task; the task ends when the last handle is dropped.
pub(super) struct MessageWriter {
    queue: mpsc::Sender<(MessageRecord, Reply)>,
}

impl MessageWriter {
    /// Starts the writer over `pool` (on the current Tokio runtime).
    pub(super) fn start(pool: SqlitePool) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, jobs));
        Self { queue }
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

async fn run(pool: SqlitePool, mut jobs: mpsc::Receiver<(MessageRecord, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let results = write(&pool, &batch).await;
        for ((_, reply), result) in batch.drain(..).zip(results) {
            // The caller may have gone (a dropped request); the message stays stored.
            let _ = reply.send(result);
        }
    }
}

/// One result per job, in order. If the commit fails, nothing of the batch is stored and
/// every job gets the error.
async fn write(
    pool: &SqlitePool,
    batch: &[(MessageRecord, Reply)],
) -> Vec<Result<Inserted, StoreError>> {
    let failed = |e: &dyn std::fmt::Display| {
        batch
            .iter()
            .map(|_| Err(StoreError::CommitFailed(e.to_string())))
            .collect()
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => return failed(&e),
    };
    let mut results = Vec::with_capacity(batch.len());
    for (m, _) in batch {
        results.push(insert_one(&mut tx, m).await);
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(e) => failed(&e),
    }
}

/// One insert under its own savepoint, so a retry (which takes no seq) or a failure
/// leaves the rest of the batch untouched.
async fn insert_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    m: &MessageRecord,
) -> Result<Inserted, StoreError> {
    let mut savepoint = tx.begin().await?;
    let result = SqliteStore::insert_message_in(&mut savepoint, m).await;
    match &result {
        Ok(Inserted::New(_)) => savepoint.commit().await?,
        _ => savepoint.rollback().await?,
    }
    result
}
