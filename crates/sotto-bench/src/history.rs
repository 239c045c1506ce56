//! Scenario 4: pages of 50 from a room with a long history, and the room list (with
//! unread counts) of a user in many rooms.
//!
//! A million messages through the REST API would take most of an hour, so when the bench
//! started the server itself it loads them straight into the server's store, through the
//! store's own insert (`MessageStore::import_messages`: the same rows, seqs, search index
//! entries and read markers a send makes), in large transactions, while the server runs.
//! A server given with `--addr` is filled through the REST API instead.

use crate::client::Http;
use crate::load::{Req, Sender, print_server};
use crate::report::per_second;
use crate::schedule::Schedule;
use crate::setup::{BenchUser, create_room, create_users};
use crate::target::Target;
use anyhow::{Context, bail};
use clap::Args;
use sotto_server::service::rooms::content_hash;
use sotto_server::store::{MessageRecord, Stores};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Args, Debug)]
pub(crate) struct HistoryArgs {
    /// Messages in the history room.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages per transaction when loading them into the store. Every message of a
    /// transaction updates the room's row again, and PostgreSQL keeps each version until
    /// commit, so much larger batches get slower there.
    #[arg(long, default_value_t = 1_000)]
    fill_batch: usize,
    /// Sends in flight at once when filling through the REST API (a server given with
    /// --addr).
    #[arg(long, default_value_t = 64)]
    fill_parallel: usize,
    /// Requests per second while measuring.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Seconds of measuring, for each of the two measurements.
    #[arg(long, default_value = "20", value_parser = crate::scenarios::secs)]
    duration: Duration,
    /// Rooms of the user whose room list is measured, the history room included.
    #[arg(long, default_value_t = 100)]
    rooms: usize,
    /// Messages from others in each of that user's other rooms.
    #[arg(long, default_value_t = 2_000)]
    room_messages: u64,
}

fn full_page(body: &[u8]) -> bool {
    serde_json::from_slice::<sotto_api::MessagePage>(body).is_ok_and(|p| p.messages.len() == 50)
}

/// Room id → the unread count the room list must show.
static EXPECTED: OnceLock<HashMap<String, u32>> = OnceLock::new();

/// Every room listed, each with the unread count its marker implies.
fn listed_as_expected(body: &[u8]) -> bool {
    let (Ok(list), Some(want)) = (
        serde_json::from_slice::<sotto_api::RoomList>(body),
        EXPECTED.get(),
    ) else {
        return false;
    };
    list.rooms.len() == want.len()
        && list
            .rooms
            .iter()
            .all(|r| r.unread.is_some() && want.get(&r.id) == r.unread.as_ref())
}

/// How the scenario puts messages into rooms.
enum Filler {
    /// Straight into the server's store.
    Store(Stores),
    /// Through `POST …/messages`.
    Rest { http: Arc<Http>, parallel: usize },
}

impl Filler {
    async fn open(target: &Target, http: &Arc<Http>, args: &HistoryArgs) -> anyhow::Result<Self> {
        Ok(match &target.data {
            Some((dir, url)) => Self::Store(open_store(dir, url.as_deref()).await?),
            None => Self::Rest {
                http: http.clone(),
                parallel: args.fill_parallel.max(1),
            },
        })
    }

    /// Stores `count` messages from `from` in `room`, in order; the seq of each.
    async fn fill(
        &self,
        room: &str,
        from: &BenchUser,
        count: u64,
        prefix: &str,
        batch: usize,
    ) -> anyhow::Result<Vec<i64>> {
        match self {
            Self::Store(stores) => {
                let mut seqs = Vec::with_capacity(count as usize);
                let mut next = 0u64;
                while next < count {
                    let end = (next + batch.max(1) as u64).min(count);
                    let records: Vec<MessageRecord> = (next..end)
                        .map(|i| record(room, &from.id, &format!("{prefix}-{i}")))
                        .collect();
                    let stored = stores.messages.import_messages(&records).await?;
                    seqs.extend(stored.iter().map(|m| m.seq));
                    next = end;
                    if count >= 200_000 && next % 100_000 < batch as u64 {
                        eprintln!("  {next} messages");
                    }
                }
                Ok(seqs)
            }
            Self::Rest { http, parallel } => {
                rest_fill(http, room, from, count, prefix, *parallel).await
            }
        }
    }

    async fn close(self) {
        if let Self::Store(stores) = self {
            stores.close().await;
        }
    }
}

async fn open_store(dir: &Path, url: Option<&str>) -> anyhow::Result<Stores> {
    Stores::open(dir, url)
        .await
        .context("opening the server's store to load messages")
}

/// A plaintext message as the server stores a send of it (seqs are assigned on insert).
fn record(room: &str, sender: &str, id: &str) -> MessageRecord {
    let text = format!("benchmark message {id}");
    MessageRecord {
        room_id: room.to_owned(),
        id: id.to_owned(),
        seq: 0,
        version_seq: 0,
        sender_id: sender.to_owned(),
        content_hash: content_hash(Some(&text), None),
        text: Some(text),
        ciphertext: None,
        mentions: Vec::new(),
        created_at: now_ms(),
        edited_at: None,
        deleted: false,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Closed-loop sends through the API, `parallel` in flight: setup, not a measurement.
async fn rest_fill(
    http: &Arc<Http>,
    room: &str,
    from: &BenchUser,
    count: u64,
    prefix: &str,
    parallel: usize,
) -> anyhow::Result<Vec<i64>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..parallel {
        let (http, next, room, token, prefix) = (
            http.clone(),
            next.clone(),
            room.to_owned(),
            from.token.clone(),
            prefix.to_owned(),
        );
        workers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return anyhow::Ok(seqs);
                }
                let body = crate::scenarios::send_body(&format!("{prefix}-{i}"));
                let path = format!("/api/v1/rooms/{room}/messages");
                let a = http.call("POST", &path, Some(&token), Some(body)).await?;
                if a.status != 201 {
                    bail!("fill send {i}: HTTP {}", a.status);
                }
                seqs.push(a.json::<sotto_api::Message>()?.seq);
                if i > 0 && i % 100_000 == 0 {
                    eprintln!("  {i} messages");
                }
            }
        }));
    }
    let mut seqs = Vec::with_capacity(count as usize);
    for w in workers {
        seqs.extend(w.await??);
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Scenario 4.
pub(crate) async fn history(target: &Target, args: &HistoryArgs) -> anyhow::Result<()> {
    if args.messages < 51 {
        bail!("--messages must be at least 51");
    }
    if args.rooms == 0 || args.room_messages == 0 {
        bail!("--rooms and --room-messages must be at least 1");
    }
    let users = create_users(target, 2).await?;
    let http = Arc::new(Http::new(target.http.addr()));
    let (owner, reader) = (&users[0], &users[1]);
    let room = create_room(&http, owner, std::slice::from_ref(reader), "history").await?;
    let filler = Filler::open(target, &http, args).await?;
    let how = match filler {
        Filler::Store(_) => "loaded into the store",
        Filler::Rest { .. } => "sent through the REST API",
    };

    let filled = Instant::now();
    let tag = &target.tag;
    filler
        .fill(
            &room,
            owner,
            args.messages,
            &format!("{tag}-h"),
            args.fill_batch,
        )
        .await?;
    let fill_time = filled.elapsed();
    let top: sotto_api::Room = http
        .call(
            "GET",
            &format!("/api/v1/rooms/{room}"),
            Some(&owner.token),
            None,
        )
        .await?
        .json()?;
    println!(
        "history: {} messages {how} in {:.1} s ({:.0} msg/s); room seq {}",
        args.messages,
        fill_time.as_secs_f64(),
        per_second(args.messages, fill_time),
        top.seq
    );

    // The reader's other rooms: `room_messages` from the owner in each, and the reader's
    // marker at a different point in each, from none read to all but one.
    let mut expected = HashMap::new();
    // The reader has read nothing of the history room: the count stops at the cap.
    let history_unread = u32::try_from(args.messages)
        .unwrap_or(u32::MAX)
        .min(sotto_api::UNREAD_CAP);
    expected.insert(room.clone(), history_unread);
    let others = args.rooms - 1;
    let filled = Instant::now();
    for k in 0..others {
        let id = create_room(
            &http,
            reader,
            std::slice::from_ref(owner),
            &format!("mine-{k}"),
        )
        .await?;
        let seqs = filler
            .fill(
                &id,
                owner,
                args.room_messages,
                &format!("{tag}-r{k}"),
                args.fill_batch,
            )
            .await?;
        // Read up to message `read` (none when 0).
        let read = (k as u64 * args.room_messages) / others as u64;
        if read > 0 {
            let seq = seqs[read as usize - 1];
            let body = serde_json::to_vec(&serde_json::json!({ "seq": seq }))?;
            let path = format!("/api/v1/rooms/{id}/read");
            let a = http
                .call("POST", &path, Some(&reader.token), Some(body))
                .await?;
            let marker: sotto_api::ReadMarker = a.json().context("marking read")?;
            if marker.last_read_seq != seq {
                bail!("marker of {id} at {}, not {seq}", marker.last_read_seq);
            }
        }
        let unread = u32::try_from(args.room_messages - read).unwrap_or(u32::MAX);
        expected.insert(id, unread.min(sotto_api::UNREAD_CAP));
    }
    filler.close().await;
    println!(
        "  {others} more rooms of {} messages each {how}, read markers set, in {:.1} s",
        args.room_messages,
        filled.elapsed().as_secs_f64()
    );
    let _ = EXPECTED.set(expected);

    // Pages of 50 ending at random points of the history.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let pages = format!(
        "page of 50 at a random point, {} req/s for {:.0} s",
        args.rate,
        args.duration.as_secs_f64()
    );
    measure(target, &http, args, &pages, || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Seqs of messages start after the room's own events; stay clear of them.
        let before_seq = 100 + state % (top.seq as u64 - 99).max(1);
        Req {
            method: "GET",
            path: format!("/api/v1/rooms/{room}/messages?before={before_seq}&limit=50"),
            token: owner.token.clone(),
            body: None,
            expect: 200,
            check: Some(full_page),
        }
    })
    .await?;

    // The reader lists their rooms; each answer must hold every room with its count.
    let lists = format!(
        "room list with unread counts of a user in {} rooms, {} req/s for {:.0} s",
        args.rooms,
        args.rate,
        args.duration.as_secs_f64()
    );
    measure(target, &http, args, &lists, || Req {
        method: "GET",
        path: "/api/v1/rooms".to_owned(),
        token: reader.token.clone(),
        body: None,
        expect: 200,
        check: Some(listed_as_expected),
    })
    .await
}

/// Sends `next()`'s request open-loop at `--rate` for `--duration`, then prints its
/// latencies and errors under `what`, and the server's use.
async fn measure(
    target: &Target,
    http: &Arc<Http>,
    args: &HistoryArgs,
    what: &str,
    mut next: impl FnMut() -> Req,
) -> anyhow::Result<()> {
    let schedule = Schedule::for_duration(args.rate, args.duration);
    let sender = Sender::new(http.clone());
    let before = target.sample()?;
    let epoch = Instant::now();
    schedule
        .run(epoch, |_, due| sender.fire(epoch, due, next()))
        .await;
    sender.drain().await;
    let after = target.sample()?;
    println!(
        "  {what}: {}; errors {}",
        sender.done.latency.take().summary(),
        sender.done.errors.load(Ordering::Relaxed)
    );
    print_server(before, after, epoch.elapsed());
    Ok(())
}
