//! Scenario 5: key rotation in a large encrypted room. The owner declares a new epoch,
//! seals its key to every member and uploads the boxes; the server must accept them
//! quickly and push each member its box on the realtime socket.
//!
//! The room, its signed chain and its first epoch are made by the client library
//! (`sotto-client`), exactly as the product makes them. The measured rotations build the
//! same `NewEpoch` statement and the same boxes with the same `sotto-crypto` calls the
//! library's `rotate_key` makes, but step by step, so that sealing and uploading are
//! timed apart (the library does both in one call).

use crate::client::{Http, Socket, connect_all};
use crate::e2e_users::{E2eUser, publish_keys};
use crate::load::print_server;
use crate::report::{Latencies, ms};
use crate::scenarios::secs;
use crate::setup::{BenchUser, create_users};
use crate::target::Target;
use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use futures_util::StreamExt;
use serde::Deserialize;
use sotto_client::{Client, NewRoom, NewRoomKind, Profile};
use sotto_crypto::chain::{Action, RoomChain, Statement};
use sotto_crypto::roomkey::RoomKeyBox;
use sotto_crypto::{EpochKey, PublicBundle, RoomId, UserId, os_rng};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Most boxes one upload may carry (docs/api.md, Room keys).
const MAX_BOXES_PER_REQUEST: usize = sotto_api::ROOM_KEY_BOXES_MAX;

#[derive(Args, Debug)]
pub(crate) struct RotationArgs {
    /// Members of the encrypted room, the owner included; each has one open socket.
    #[arg(long, default_value_t = 1000)]
    members: usize,
    /// Rotations to measure.
    #[arg(long, default_value_t = 5)]
    rotations: usize,
    /// Seconds between the end of one rotation and the start of the next.
    #[arg(long, default_value = "3", value_parser = secs)]
    gap: Duration,
    /// Boxes per upload request (1–1000).
    #[arg(long, default_value_t = 1000)]
    per_request: usize,
    /// Send all upload requests at once instead of one after another (as the client
    /// library does).
    #[arg(long)]
    concurrent: bool,
    /// Threads sealing the boxes (1 is what the client library does).
    #[arg(long, default_value_t = 1)]
    seal_threads: usize,
    /// Seconds to wait for every member's box before counting the rest as missing.
    #[arg(long, default_value = "10", value_parser = secs)]
    timeout: Duration,
    /// Delivered boxes opened per rotation, after the timing, to check they hold the key.
    #[arg(long, default_value_t = 50)]
    check: usize,
}

/// The rotation the sockets are waiting for.
struct Round {
    room: String,
    epoch: String,
    /// When the first upload request was sent.
    start: Instant,
    /// Per member (by index): when its box arrived, after `start`, and the box.
    arrivals: Vec<Option<(Duration, String)>>,
}

/// What the socket readers share.
#[derive(Default)]
struct Watch {
    round: Mutex<Option<Round>>,
    /// Members whose box of the current round arrived.
    got: AtomicUsize,
    /// `room_key_request` notices received by any socket.
    requests: AtomicU64,
    /// Sockets that closed or failed.
    closed: AtomicU64,
}

impl Watch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Round>> {
        self.round.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fields of a notice the readers look at.
#[derive(Deserialize)]
struct Notice {
    #[serde(rename = "type")]
    kind: String,
    room_id: Option<String>,
    epoch_id: Option<String>,
    #[serde(rename = "box")]
    sealed: Option<String>,
}

/// Scenario 5.
pub(crate) async fn rotation(target: &Target, args: &RotationArgs) -> anyhow::Result<()> {
    if args.members < 2 || args.rotations == 0 {
        bail!("need at least 2 members and 1 rotation");
    }
    if !(1..=MAX_BOXES_PER_REQUEST).contains(&args.per_request) {
        bail!("--per-request must be 1 to {MAX_BOXES_PER_REQUEST}");
    }
    if args.seal_threads == 0 {
        bail!("--seal-threads must be at least 1");
    }
    let setup_started = std::time::Instant::now();
    let users = create_users(target, args.members).await?;
    let e2e = publish_keys(target, &users).await?;
    let profile_dir = tempfile::Builder::new()
        .prefix("sotto-bench-owner-")
        .tempdir()?;
    let owner = owner_client(target, &users[0], &e2e[0], profile_dir.path()).await?;
    let started = std::time::Instant::now();
    let room = owner
        .create_room(NewRoom {
            kind: NewRoomKind::Channel,
            name: format!("rotation-{}", target.tag),
            private: true,
            encrypted: true,
            members: e2e[1..].iter().map(|u| u.user.clone()).collect(),
        })
        .await
        .context("creating the encrypted room with the client library")?;
    let room_id = RoomId::new(room.id.clone()).context("room id")?;
    let chain = owner
        .room_chain(&room_id)
        .await?
        .context("the room has no chain")?;
    ensure!(
        chain.state().members().len() == args.members,
        "the room's chain lists {} members, not {}",
        chain.state().members().len(),
        args.members
    );
    eprintln!(
        "created the encrypted room (chain of {} members, first epoch sealed and uploaded by the client library) in {:.1} s",
        args.members,
        started.elapsed().as_secs_f64()
    );
    let recipients = checked_bundles(&owner, &e2e).await?;

    let watch = Arc::new(Watch::default());
    let (stop, stop_rx) = watch::channel(false);
    let started = std::time::Instant::now();
    let readers = open_sockets(target, &users, &watch, &stop_rx).await?;
    eprintln!(
        "opened {} sockets in {:.1} s; setting up took {:.1} s in all",
        users.len(),
        started.elapsed().as_secs_f64(),
        setup_started.elapsed().as_secs_f64()
    );
    // Everyone coming online sends presence to everyone else; let that settle first.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let http = Arc::new(Http::new(target.http.addr()));
    let mut totals = Totals::default();
    let before = target.sample()?;
    let window_start = Instant::now();
    println!(
        "rotation: {} members, {} rotations, {} boxes per request, uploads {}, sealing on {} thread(s)",
        args.members,
        args.rotations,
        args.per_request,
        if args.concurrent {
            "all at once"
        } else {
            "one after another"
        },
        args.seal_threads
    );
    for r in 0..args.rotations {
        if r > 0 {
            tokio::time::sleep(args.gap).await;
        }
        let one = rotate(
            target,
            &http,
            &owner,
            &room_id,
            &e2e,
            &recipients,
            &watch,
            args,
        )
        .await
        .with_context(|| format!("rotation {}", r + 1))?;
        println!("  rotation {}: {}", r + 1, one);
        totals.add(&one);
    }
    let after = target.sample()?;
    let window = window_start.elapsed();
    let _ = stop.send(true);
    for t in readers {
        let _ = t.await;
    }
    totals.print(args, watch.closed.load(Ordering::Relaxed));
    print_server(before, after, window);
    drop(profile_dir);
    if totals.bad_boxes > 0 {
        bail!(
            "{} delivered boxes did not open to the epoch key",
            totals.bad_boxes
        );
    }
    Ok(())
}

/// The owner as a client-library client on a fresh profile, holding the keys published
/// for them.
async fn owner_client(
    target: &Target,
    user: &BenchUser,
    keys: &E2eUser,
    dir: &std::path::Path,
) -> anyhow::Result<Client> {
    let server = format!("http://{}", target.http.addr());
    let profile = Profile::open(dir.join("owner"))?;
    // The login first: a new login clears the profile's keys.
    Client::with_token(profile.clone(), &server, &user.token).await?;
    profile.save_keys(&keys.keys)?;
    let client = Client::open(profile)?;
    ensure!(client.is_unlocked(), "the owner's keys did not load");
    Ok(client)
}

/// Every member's bundle as the directory serves it, checked by the owner's client
/// against the keys it pinned (as the library does before sealing), the owner's own
/// first (its self-copy). Fetched once: the rotations seal to these.
async fn checked_bundles(owner: &Client, e2e: &[E2eUser]) -> anyhow::Result<Vec<PublicBundle>> {
    let mut out = vec![e2e[0].bundle.clone()];
    let others: Vec<UserId> = e2e[1..].iter().map(|u| u.user.clone()).collect();
    for chunk in others.chunks(sotto_api::keys::KEYS_MAX_USERS) {
        let contacts = owner.contacts(chunk).await?;
        out.extend(contacts.into_iter().map(|c| c.bundle));
    }
    ensure!(
        out.len() == e2e.len(),
        "the directory served {} bundles for {} members",
        out.len() - 1,
        e2e.len() - 1
    );
    Ok(out)
}

/// One socket per member, each read by its own task until `stop`.
async fn open_sockets(
    target: &Target,
    users: &[BenchUser],
    watch: &Arc<Watch>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let sockets = connect_all(target.http.addr(), users, 64).await?;
    let mut tasks = Vec::with_capacity(users.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(read(socket, i, watch.clone(), stop.clone())));
    }
    Ok(tasks)
}

async fn read(
    mut socket: Socket,
    member: usize,
    watch: Arc<Watch>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            f = socket.next() => f,
            _ = stop.changed() => break,
        };
        match frame {
            Some(Ok(Ws::Text(text))) => {
                let now = Instant::now();
                if !text.contains("room_key") {
                    continue;
                }
                let Ok(notice) = serde_json::from_str::<Notice>(&text) else {
                    continue;
                };
                match notice.kind.as_str() {
                    "room_key_request" => {
                        watch.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    "room_key" => arrived(&watch, member, now, notice),
                    _ => {}
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                watch.closed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
    let _ = socket.close(None).await;
}

/// Records member `member`'s box of the current round, once.
fn arrived(watch: &Watch, member: usize, now: Instant, notice: Notice) {
    let mut round = watch.lock();
    let Some(r) = round.as_mut() else { return };
    if notice.room_id.as_deref() != Some(&r.room) || notice.epoch_id.as_deref() != Some(&r.epoch) {
        return;
    }
    let (Some(slot), Some(sealed)) = (r.arrivals.get_mut(member), notice.sealed) else {
        return;
    };
    if slot.is_none() {
        *slot = Some((now.saturating_duration_since(r.start), sealed));
        watch.got.fetch_add(1, Ordering::Relaxed);
    }
}

/// The figures of one rotation.
struct OneRotation {
    declare: Duration,
    seal: Duration,
    boxes: usize,
    /// First upload sent → last answer received.
    accept: Duration,
    /// Each upload request that succeeded, sent → answer.
    requests: Vec<Duration>,
    upload_errors: usize,
    /// First upload sent → each member's `room_key` notice.
    delivery: Vec<Duration>,
    missing: usize,
    key_requests: u64,
    checked: usize,
    bad_boxes: usize,
    server_cpu: Duration,
}

impl std::fmt::Display for OneRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut delivery = Latencies::default();
        self.delivery.iter().for_each(|d| delivery.record(*d));
        let d = delivery.summary();
        write!(
            f,
            "declare {} | seal {} boxes {} | upload {} requests accepted in {} ({} failed) | \
             delivery p50 {} p99 {} max {}, {} missing | {} key requests | {} of {} boxes checked open | server CPU {:.2} s",
            ms(self.declare),
            self.boxes,
            ms(self.seal),
            self.requests.len() + self.upload_errors,
            ms(self.accept),
            self.upload_errors,
            ms(d.p50),
            ms(d.p99),
            ms(d.max),
            self.missing,
            self.key_requests,
            self.checked - self.bad_boxes,
            self.checked,
            self.server_cpu.as_secs_f64(),
        )
    }
}

#[allow(clippy::too_many_arguments)]
async fn rotate(
    target: &Target,
    http: &Arc<Http>,
    owner: &Client,
    room: &RoomId,
    e2e: &[E2eUser],
    recipients: &[PublicBundle],
    watch: &Arc<Watch>,
    args: &RotationArgs,
) -> anyhow::Result<OneRotation> {
    let cpu_before = target.sample()?.cpu;
    let me = &e2e[0];
    let head = owner
        .room_chain(room)
        .await?
        .context("the room lost its chain")?;

    // Declare the epoch: the statement the library's `rotate_key` signs.
    let key = EpochKey::generate(&mut os_rng());
    let epoch = key.epoch();
    let stmt = Statement::next(head.head(), Action::NewEpoch(epoch), &me.user, &me.keys)?;
    let body = serde_json::to_vec(&sotto_api::e2ee::StatementRequest {
        statement: B64.encode(stmt.encode()),
    })?;
    let path = format!("/api/v1/rooms/{}/statements", room.as_str());
    let sent = Instant::now();
    let answer = http
        .call("POST", &path, Some(&users_token(owner)?), Some(body))
        .await?;
    let declare = sent.elapsed();
    if answer.status != 201 {
        bail!(
            "the NewEpoch statement was refused: HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)])
        );
    }
    let chain = Arc::new(owner.room_chain(room).await?.context("no chain")?);
    ensure!(
        chain.state().current_epoch() == Some(epoch),
        "the verified chain does not end with the new epoch"
    );

    // Seal to every member, the owner's self-copy first.
    let sealing = Instant::now();
    let boxes = seal(&key, &chain, me, recipients, args.seal_threads).await?;
    let seal_time = sealing.elapsed();
    let bodies = upload_bodies(&boxes, args.per_request)?;

    // Warm one keep-alive connection per concurrent request, as a client's pool would be.
    let token = users_token(owner)?;
    let lanes = if args.concurrent { bodies.len() } else { 1 };
    warm(http, &token, lanes).await?;

    let n = e2e.len();
    watch.got.store(0, Ordering::Relaxed);
    watch.requests.store(0, Ordering::Relaxed);
    let start = Instant::now();
    *watch.lock() = Some(Round {
        room: room.as_str().to_owned(),
        epoch: epoch.to_hex(),
        start,
        arrivals: vec![None; n],
    });
    let path = format!("/api/v1/rooms/{}/keys", room.as_str());
    let results = upload(http, &path, &token, bodies, args.concurrent).await;
    let mut requests = Vec::with_capacity(results.len());
    let mut upload_errors = 0;
    let mut stored = 0u64;
    let mut last = start;
    for (sent, done, outcome) in &results {
        match outcome {
            Ok(s) => {
                requests.push(*done - *sent);
                stored += u64::from(*s);
                last = last.max(*done);
            }
            Err(e) => {
                upload_errors += 1;
                eprintln!("  upload failed: {e:#}");
            }
        }
    }
    let accept = last - start;

    // Every member but the owner gets a `room_key` notice (the owner's self-copy is not
    // pushed to its own sockets).
    let want = n - 1;
    let deadline = start + args.timeout;
    while watch.got.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let key_requests = watch.requests.load(Ordering::Relaxed);
    let round = watch.lock().take().context("the round vanished")?;
    let server_cpu = target.sample()?.cpu.saturating_sub(cpu_before);
    let delivery: Vec<Duration> = round.arrivals[1..]
        .iter()
        .flatten()
        .map(|(latency, _)| *latency)
        .collect();
    let missing = round.arrivals[1..].iter().filter(|a| a.is_none()).count();
    if upload_errors == 0 && stored != boxes.len() as u64 {
        eprintln!(
            "  the server stored {stored} of {} boxes (a box for an epoch a member already has is not stored again)",
            boxes.len()
        );
    }

    let (checked, bad_boxes) = check_sample(&round, e2e, &chain, &key, args.check).await?;
    Ok(OneRotation {
        declare,
        seal: seal_time,
        boxes: boxes.len(),
        accept,
        requests,
        upload_errors,
        delivery,
        missing,
        key_requests,
        checked,
        bad_boxes,
        server_cpu,
    })
}

/// The owner's bearer token, from its profile.
fn users_token(owner: &Client) -> anyhow::Result<String> {
    Ok(owner
        .profile()
        .login()?
        .context("the owner's profile has no login")?
        .token)
}

/// Seals `key` to `recipients` with `seal_for_members` (which checks each recipient
/// against the chain), split over `threads` blocking threads, in recipient order.
async fn seal(
    key: &EpochKey,
    chain: &Arc<RoomChain>,
    me: &E2eUser,
    recipients: &[PublicBundle],
    threads: usize,
) -> anyhow::Result<Vec<RoomKeyBox>> {
    let mut tasks = Vec::new();
    for part in recipients.chunks(recipients.len().div_ceil(threads)) {
        let (key, chain, keys, user) =
            (key.clone(), chain.clone(), me.keys.clone(), me.user.clone());
        let part = part.to_vec();
        tasks.push(tokio::task::spawn_blocking(move || {
            RoomKeyBox::seal_for_members(
                &key,
                chain.state(),
                &keys,
                &user,
                part.iter(),
                &mut os_rng(),
            )
        }));
    }
    let mut boxes = Vec::with_capacity(recipients.len());
    for t in tasks {
        boxes.extend(t.await?.context("sealing room-key boxes")?);
    }
    Ok(boxes)
}

/// The JSON bodies of the upload requests, `per_request` boxes each.
fn upload_bodies(boxes: &[RoomKeyBox], per_request: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    boxes
        .chunks(per_request)
        .map(|chunk| {
            let req = sotto_api::e2ee::RoomKeyUpload {
                boxes: chunk.iter().map(|b| B64.encode(b.encode())).collect(),
            };
            Ok(serde_json::to_vec(&req)?)
        })
        .collect()
}

/// Opens `lanes` keep-alive connections (cheap authenticated requests, at once) so the
/// uploads do not pay for TCP handshakes.
async fn warm(http: &Arc<Http>, token: &str, lanes: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::with_capacity(lanes);
    for _ in 0..lanes {
        let (http, token) = (http.clone(), token.to_owned());
        tasks.push(tokio::spawn(async move {
            http.call("GET", "/api/v1/me", Some(&token), None).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

type Outcome = (Instant, Instant, anyhow::Result<u32>);

/// Sends the upload requests, in turn or all at once; each with its send time, answer
/// time and stored count.
async fn upload(
    http: &Arc<Http>,
    path: &str,
    token: &str,
    bodies: Vec<Vec<u8>>,
    concurrent: bool,
) -> Vec<Outcome> {
    if !concurrent {
        let mut out = Vec::with_capacity(bodies.len());
        for body in bodies {
            out.push(upload_one(http, path, token, body).await);
        }
        return out;
    }
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let (http, path, token) = (http.clone(), path.to_owned(), token.to_owned());
            tokio::spawn(async move { upload_one(&http, &path, &token, body).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(match t.await {
            Ok(o) => o,
            Err(e) => {
                let now = Instant::now();
                (now, now, Err(e.into()))
            }
        });
    }
    out
}

async fn upload_one(http: &Http, path: &str, token: &str, body: Vec<u8>) -> Outcome {
    let sent = Instant::now();
    let result = http.call("POST", path, Some(token), Some(body)).await;
    let done = Instant::now();
    let outcome = result.and_then(|a| {
        a.json::<sotto_api::e2ee::RoomKeyUploaded>()
            .map(|u| u.stored)
    });
    (sent, done, outcome)
}

/// Members whose delivered box is opened: `count` of them spread evenly over the
/// members other than the owner (index 0).
fn sample_members(members: usize, count: usize) -> Vec<usize> {
    let others = members.saturating_sub(1);
    let count = count.min(others);
    (0..count).map(|k| 1 + k * others / count).collect()
}

/// Opens the delivered boxes of a sample of members with their own private keys, as
/// their clients would (checks against the chain and the owner's key included), and
/// compares the key with the one sealed. Returns how many were checked and how many
/// failed; a sampled member without a box is counted in `missing`, not here.
async fn check_sample(
    round: &Round,
    e2e: &[E2eUser],
    chain: &Arc<RoomChain>,
    key: &EpochKey,
    count: usize,
) -> anyhow::Result<(usize, usize)> {
    let picked: Vec<(E2eUser, String)> = sample_members(e2e.len(), count)
        .into_iter()
        .filter_map(|i| {
            let (_, sealed) = round.arrivals[i].as_ref()?;
            Some((e2e[i].clone(), sealed.clone()))
        })
        .collect();
    let owner = (e2e[0].user.clone(), e2e[0].keys.identity_public());
    let (chain, key) = (chain.clone(), key.clone());
    let checked = picked.len();
    let bad = tokio::task::spawn_blocking(move || {
        picked
            .iter()
            .filter(|(member, sealed)| {
                let opened = B64
                    .decode(sealed)
                    .ok()
                    .and_then(|bytes| RoomKeyBox::decode(&bytes).ok())
                    .and_then(|b| {
                        b.open(&member.user, &member.keys, chain.state(), |u| {
                            (u == &owner.0).then_some(owner.1)
                        })
                        .ok()
                    });
                !opened
                    .is_some_and(|k| k.epoch() == key.epoch() && k.key_bytes() == key.key_bytes())
            })
            .count()
    })
    .await?;
    Ok((checked, bad))
}

/// Figures over all rotations.
#[derive(Default)]
struct Totals {
    accept: Latencies,
    requests: Latencies,
    seal: Latencies,
    declare: Latencies,
    delivery: Latencies,
    /// The slowest member of each rotation.
    slowest: Latencies,
    rotations: usize,
    members_each: usize,
    missing: usize,
    upload_errors: usize,
    key_requests: u64,
    checked: usize,
    bad_boxes: usize,
}

impl Totals {
    fn add(&mut self, one: &OneRotation) {
        self.rotations += 1;
        self.members_each = one.boxes.saturating_sub(1);
        self.accept.record(one.accept);
        self.seal.record(one.seal);
        self.declare.record(one.declare);
        one.requests.iter().for_each(|d| self.requests.record(*d));
        one.delivery.iter().for_each(|d| self.delivery.record(*d));
        if one.missing == 0
            && let Some(max) = one.delivery.iter().max()
        {
            self.slowest.record(*max);
        }
        self.missing += one.missing;
        self.upload_errors += one.upload_errors;
        self.key_requests += one.key_requests;
        self.checked += one.checked;
        self.bad_boxes += one.bad_boxes;
    }

    fn print(&self, args: &RotationArgs, closed: u64) {
        println!("  over {} rotations:", self.rotations);
        println!(
            "    declare (NewEpoch statement, sent → 201): {}",
            self.declare.summary()
        );
        println!(
            "    seal {} boxes (client side, {} thread(s)):  {}",
            self.members_each + 1,
            args.seal_threads,
            self.seal.summary()
        );
        println!(
            "    accept (first upload sent → last 200):     {}   goal ≤ 200 ms",
            self.accept.summary()
        );
        println!(
            "    each upload request (sent → 200):          {}",
            self.requests.summary()
        );
        println!(
            "    delivery (first upload sent → room_key), every member: {}",
            self.delivery.summary()
        );
        println!(
            "    slowest member per complete rotation:      {}   goal ≤ 1 s",
            self.slowest.summary()
        );
        println!(
            "    errors: {} uploads failed, {} member deliveries missing after {} s, {} sockets closed; {} of {} sampled boxes did not open to the key",
            self.upload_errors,
            self.missing,
            args.timeout.as_secs_f64(),
            closed,
            self.bad_boxes,
            self.checked
        );
        println!(
            "    room_key_request notices received by members during the rotations: {}",
            self.key_requests
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Server's limit on a JSON request body (sotto-server `MAX_JSON_BODY`).
    const SERVER_MAX_JSON_BODY: usize = 64 * 1024;

    #[test]
    fn upload_bodies_carry_real_boxes_that_open() {
        use sotto_crypto::IdentityKeys;
        use sotto_crypto::chain::{Create, RoomKind};
        let mut rng = os_rng();
        let people: Vec<(UserId, IdentityKeys)> = (0..101)
            .map(|i| {
                let id = UserId::new(format!("{i:032x}")).unwrap();
                (id, IdentityKeys::generate(&mut rng))
            })
            .collect();
        let (owner, owner_keys) = &people[0];
        let room = RoomId::new(format!("{:032x}", 7)).unwrap();
        let create = Create {
            kind: RoomKind::PrivateChannel,
            members: people.iter().map(|(u, _)| u.clone()).collect(),
            encrypted: true,
            history_shared: true,
        };
        let first = Statement::create(&room, create, owner, owner_keys).unwrap();
        let key = EpochKey::generate(&mut rng);
        let next =
            Statement::next(&first, Action::NewEpoch(key.epoch()), owner, owner_keys).unwrap();
        let mine = owner_keys.identity_public();
        let chain =
            RoomChain::verify(&room, [first, next], |u| (u == owner).then_some(mine)).unwrap();
        let bundles: Vec<PublicBundle> = people[1..].iter().map(|(u, k)| k.bundle(u)).collect();
        let boxes = RoomKeyBox::seal_for_members(
            &key,
            chain.state(),
            owner_keys,
            owner,
            bundles.iter(),
            &mut rng,
        )
        .unwrap();

        let bodies = upload_bodies(&boxes, MAX_BOXES_PER_REQUEST).unwrap();
        assert_eq!(bodies.len(), 1);
        assert_eq!(upload_bodies(&boxes, 30).unwrap().len(), 4);

        let sent: sotto_api::e2ee::RoomKeyUpload = serde_json::from_slice(&bodies[0]).unwrap();
        assert_eq!(sent.boxes.len(), 100);
        let (member, member_keys) = &people[42];
        let sealed = RoomKeyBox::decode(&B64.decode(&sent.boxes[41]).unwrap()).unwrap();
        let opened = sealed
            .open(member, member_keys, chain.state(), |u| {
                (u == owner).then_some(mine)
            })
            .unwrap();
        assert_eq!(opened.key_bytes(), key.key_bytes());
    }

    #[test]
    fn the_creation_statement_of_a_default_room_fits_the_server_limit() {
        use sotto_crypto::IdentityKeys;
        use sotto_crypto::chain::{Create, RoomKind};
        // The client library posts the Create statement of all members in one request.
        let keys = IdentityKeys::generate(&mut os_rng());
        let members: std::collections::BTreeSet<UserId> = (0..1000)
            .map(|i| UserId::new(format!("{i:032x}")).unwrap())
            .collect();
        let owner = members.first().unwrap().clone();
        let create = Create {
            kind: RoomKind::PrivateChannel,
            members,
            encrypted: true,
            history_shared: true,
        };
        let room = RoomId::new(format!("{:032x}", 7)).unwrap();
        let stmt = Statement::create(&room, create, &owner, &keys).unwrap();
        let body = serde_json::to_vec(&sotto_api::e2ee::StatementRequest {
            statement: B64.encode(stmt.encode()),
        })
        .unwrap();
        assert!(body.len() < SERVER_MAX_JSON_BODY, "{} bytes", body.len());
    }

    #[test]
    fn samples_spread_over_members_and_skip_the_owner() {
        assert_eq!(sample_members(1000, 4), vec![1, 250, 500, 750]);
        assert_eq!(sample_members(3, 10), vec![1, 2]);
        assert_eq!(sample_members(1, 10), Vec::<usize>::new());
        let all = sample_members(1000, 50);
        assert_eq!(all.len(), 50);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(all.iter().all(|&i| (1..1000).contains(&i)));
    }
}
