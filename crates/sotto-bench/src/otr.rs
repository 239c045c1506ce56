//! Scenario 6: the off-the-record relay. Pairs of users, each pair in its own direct
//! message with a real OTR session (sotto-crypto's handshake through the relay), send
//! data frames at a fixed schedule; latency counts from each frame's due time to its
//! arrival on the peer's socket. The server must relay without writing to storage, so
//! `/proc/<pid>/io` is read before and after the measured run.
//!
//! During the run each side only seals (one symmetric chain step per frame) and reads
//! the clear ratchet header of what arrives: decrypting at once would step the Double
//! Ratchet at every change of direction (two X25519 agreements and a key generation per
//! frame, more than the generator's share of the machine at 10,000 frames/s). A
//! sender's chain never steps while it receives nothing, so the header's message number
//! is the frame's index in its direction, which gives its due time. After the run each
//! side decrypts the first frames it received and checks they carry what was sent.

use crate::client::{Http, Socket, connect_all};
use crate::e2e_users::{self, E2eUser};
use crate::load::print_server;
use crate::procfs::{IoSample, require_open_files};
use crate::report::{SharedLatencies, per_second};
use crate::scenarios::secs;
use crate::setup::{BenchUser, create_users, turn_on};
use crate::target::Target;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sotto_api::otr::OtrErrorCode;
use sotto_api::realtime::{ClientFrame, Notice};
use sotto_crypto::otr::{Body, Event, Frame};
use sotto_crypto::{IdentityKeys, OtrSession, PublicBundle, RoomId, UserId, os_rng};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Most frames one run may schedule (their send times are kept, 8 bytes each).
const MAX_FRAMES: u64 = 10_000_000;
/// Frames per second one connection may send after its burst (docs/api.md, Off the record).
const SERVER_FRAMES_PER_SEC: f64 = 10.0;
/// How long a handshake, or waiting for the start, may take.
const SETUP_LIMIT: Duration = Duration::from_secs(120);
/// How long frames still missing are waited for after the last one was due.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

#[derive(Args, Debug)]
pub(crate) struct OtrArgs {
    /// Pairs of users, each in its own direct message with one OTR session and one
    /// socket per user.
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Data frames per second in total, spread evenly over both sides of every pair.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value = "30", value_parser = secs)]
    duration: Duration,
    /// Frames each side decrypts after the run, to check they carry what was sent.
    #[arg(long, default_value_t = 16)]
    verify: usize,
}

/// The open-loop schedule over all sides: event `i` is due at `i / rate` and is sent by
/// side `i % sides`, as that side's frame number `i / sides`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    sides: u64,
    rate: f64,
    total: u64,
}

impl Plan {
    fn event(&self, side: u64, k: u64) -> u64 {
        k * self.sides + side
    }

    /// When frame `k` of `side` is due, after the start.
    fn due(&self, side: u64, k: u64) -> Duration {
        Duration::from_secs_f64(self.event(side, k) as f64 / self.rate)
    }

    /// When the last frame of all is due.
    fn last_due(&self) -> Duration {
        Duration::from_secs_f64(self.total.saturating_sub(1) as f64 / self.rate)
    }

    /// How many frames `side` sends.
    fn frames_of(&self, side: u64) -> u64 {
        if side >= self.total {
            0
        } else {
            (self.total - side - 1) / self.sides + 1
        }
    }
}

/// The text frame `k` of `side` carries.
fn frame_text(side: u64, k: u64, due: Duration) -> String {
    format!("bench frame {k} of side {side}, due {} us", due.as_micros())
}

/// What every side records during the measured run.
struct Run {
    plan: Plan,
    /// The start of the schedule, once known.
    start: watch::Receiver<Option<Instant>>,
    stop: watch::Receiver<bool>,
    /// When each event was written to its socket, in microseconds after the start plus
    /// one (zero: not yet).
    written: Vec<AtomicU64>,
    /// Due time → arrival on the peer's socket.
    due_to_arrival: SharedLatencies,
    /// Written to the socket → arrival on the peer's socket.
    write_to_arrival: SharedLatencies,
    sent: AtomicU64,
    received: AtomicU64,
    /// `otr_error` notices, by the position of their code in `OtrErrorCode::ALL`.
    refused: [AtomicU64; OtrErrorCode::ALL.len()],
    /// Data frames that came after a later one of the same direction, or twice.
    out_of_order: AtomicU64,
    /// Frames that were not data frames of the pair's session with the expected header.
    unexpected: AtomicU64,
    closed: AtomicU64,
    /// Sides that sent all their frames (or whose socket ended).
    done_sending: AtomicU64,
    /// Sides whose handshake completed, or failed.
    ready: AtomicU64,
    failed: AtomicU64,
    verified: AtomicU64,
    verify_failed: AtomicU64,
    /// Microseconds after the start of the latest arrival.
    last_micros: AtomicU64,
}

impl Run {
    fn refused_total(&self) -> u64 {
        self.refused.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One user's end of a pair.
struct Side {
    index: u64,
    peer_index: u64,
    initiator: bool,
    user: UserId,
    room: RoomId,
    keys: Arc<IdentityKeys>,
    peer: PublicBundle,
    socket: Socket,
}

/// Scenario 6: P pairs relay R OTR data frames a second in total for D seconds.
pub(crate) async fn otr(target: &Target, args: &OtrArgs) -> anyhow::Result<()> {
    if args.pairs == 0 || args.pairs > 50_000 {
        bail!("--pairs must be between 1 and 50,000");
    }
    if !(args.rate > 0.0 && args.rate <= 1_000_000.0) {
        bail!("--rate must be above 0 and at most 1,000,000 frames/s");
    }
    let sides = 2 * args.pairs as u64;
    let total = (args.rate * args.duration.as_secs_f64()).floor().max(1.0) as u64;
    if total > MAX_FRAMES {
        bail!(
            "{total} frames is more than one run sends ({MAX_FRAMES}): lower --rate or --duration"
        );
    }
    let need = sides + 200;
    require_open_files(need)?;
    let per_side = args.rate / sides as f64;
    if per_side > SERVER_FRAMES_PER_SEC {
        eprintln!(
            "note: {per_side:.1} frames/s per connection is above the server's limit of \
             {SERVER_FRAMES_PER_SEC}/s: expect rate_limited refusals"
        );
    }
    let plan = Plan {
        sides,
        rate: args.rate,
        total,
    };

    // Setup, not measured.
    let setup = Instant::now();
    // The relay is off by default; `e2e_users` turns on `e2e.enabled`.
    turn_on(target, "otr.enabled").await?;
    let users = create_users(target, sides as usize).await?;
    let keys = e2e_users::publish_keys(target, &users).await?;
    let keys_at = setup.elapsed();
    let bundles = fetch_bundles(&target.http, &users, &keys).await?;
    let rooms = create_direct_messages(&target.http, &users).await?;
    let rooms_at = setup.elapsed();
    let sockets = connect_all(target.http.addr(), &users, 64).await?;
    let sockets_at = setup.elapsed();

    let (start_tx, start_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let run = Arc::new(Run {
        plan,
        start: start_rx,
        stop: stop_rx,
        written: (0..total).map(|_| AtomicU64::new(0)).collect(),
        due_to_arrival: SharedLatencies::default(),
        write_to_arrival: SharedLatencies::default(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        refused: std::array::from_fn(|_| AtomicU64::new(0)),
        out_of_order: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        done_sending: AtomicU64::new(0),
        ready: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        verified: AtomicU64::new(0),
        verify_failed: AtomicU64::new(0),
        last_micros: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(sides as usize);
    for (i, ((socket, key), bundle)) in sockets.into_iter().zip(keys).zip(bundles).enumerate() {
        let i = i as u64;
        let side = Side {
            index: i,
            peer_index: i ^ 1,
            initiator: i.is_multiple_of(2),
            user: key.user,
            room: RoomId::new(rooms[i as usize / 2].clone())?,
            keys: key.keys,
            peer: bundle,
            socket,
        };
        tasks.push(tokio::spawn(run_side(side, run.clone(), args.verify)));
    }
    let deadline = Instant::now() + SETUP_LIMIT;
    while run.ready.load(Ordering::Relaxed) + run.failed.load(Ordering::Relaxed) < sides
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = run.ready.load(Ordering::Relaxed);
    if ready < sides {
        // Let the sides that are waiting for the start give up, then report the first
        // failure: its error says why.
        drop(start_tx);
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                return Err(e.context("OTR handshake"));
            }
        }
        bail!("only {ready} of {sides} sides completed the OTR handshake");
    }
    let handshakes_at = setup.elapsed();
    println!(
        "otr setup (not measured): {:.1} s in all: users and keys {:.1} s, bundles and \
         direct messages {:.1} s, sockets {:.1} s, {} handshakes {:.1} s",
        handshakes_at.as_secs_f64(),
        keys_at.as_secs_f64(),
        (rooms_at - keys_at).as_secs_f64(),
        (sockets_at - rooms_at).as_secs_f64(),
        args.pairs,
        (handshakes_at - sockets_at).as_secs_f64()
    );

    // The measured run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.sample()?;
    let sampled = Instant::now();
    let io_before = IoSample::read(target.pid)?;
    let start = Instant::now() + Duration::from_millis(100);
    let _ = start_tx.send(Some(start));
    tokio::time::sleep_until(start + plan.last_due()).await;
    let deadline = Instant::now() + DRAIN_LIMIT;
    while Instant::now() < deadline {
        let settled = run.received.load(Ordering::Relaxed) + run.refused_total();
        if run.done_sending.load(Ordering::Relaxed) >= sides
            && settled >= run.sent.load(Ordering::Relaxed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = target.sample()?;
    let io_after = IoSample::read(target.pid)?;
    let measured = sampled.elapsed();
    let _ = stop_tx.send(true);
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("  a side failed: {e:#}"),
            Err(e) => eprintln!("  a side panicked: {e}"),
        }
    }

    let window = Duration::from_micros(run.last_micros.load(Ordering::Relaxed));
    let sent = run.sent.load(Ordering::Relaxed);
    let received = run.received.load(Ordering::Relaxed);
    let refused = run.refused_total();
    println!(
        "otr: {} pairs ({} sockets), {} data frames/s offered for {:.0} s ({} frames, {:.2} \
         per side per second)",
        args.pairs,
        sides,
        args.rate,
        args.duration.as_secs_f64(),
        total,
        per_side
    );
    println!(
        "  due → relayed frame on the peer's socket: {}",
        run.due_to_arrival.take().summary()
    );
    println!(
        "  written → relayed frame:                  {}",
        run.write_to_arrival.take().summary()
    );
    println!(
        "  throughput: {:.0} frames/s relayed ({received} of {sent} sent) over {:.1} s",
        per_second(received, window),
        window.as_secs_f64()
    );
    let codes: Vec<String> = OtrErrorCode::ALL
        .iter()
        .zip(&run.refused)
        .filter(|(_, n)| n.load(Ordering::Relaxed) > 0)
        .map(|(code, n)| format!("{} {}", code_name(*code), n.load(Ordering::Relaxed)))
        .collect();
    println!(
        "  errors: {} refused ({}), {} never received, {} out of order, {} unexpected \
         frames, {} sockets closed, {} frames not sent",
        refused,
        if codes.is_empty() {
            "none".to_owned()
        } else {
            codes.join(", ")
        },
        sent.saturating_sub(received + refused),
        run.out_of_order.load(Ordering::Relaxed),
        run.unexpected.load(Ordering::Relaxed),
        run.closed.load(Ordering::Relaxed),
        total.saturating_sub(sent)
    );
    println!(
        "  decrypted after the run: {} frames carried what was sent, {} did not",
        run.verified.load(Ordering::Relaxed),
        run.verify_failed.load(Ordering::Relaxed)
    );
    print_server(before, after, measured);
    let io = io_after.since(&io_before);
    println!(
        "  server storage during the run (/proc/<pid>/io): write_bytes {} (goal 0), \
         cancelled_write_bytes {}; wchar {} (bytes given to write calls of any kind)",
        io.write_bytes, io.cancelled_write_bytes, io.wchar
    );
    Ok(())
}

fn code_name(code: OtrErrorCode) -> String {
    serde_json::to_value(code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{code:?}"))
}

/// Each user's peer's bundle, fetched from the key directory as a client does, checked
/// (self-signature, user id) and compared with the keys the bench published for them.
async fn fetch_bundles(
    http: &Http,
    users: &[BenchUser],
    keys: &[E2eUser],
) -> anyhow::Result<Vec<PublicBundle>> {
    let mut by_user: HashMap<String, PublicBundle> = HashMap::with_capacity(users.len());
    for chunk in users.chunks(100) {
        let ids: Vec<&str> = chunk.iter().map(|u| u.id.as_str()).collect();
        let list: sotto_api::keys::KeyBundleList = http
            .call(
                "GET",
                &format!("/api/v1/keys?user_ids={}", ids.join(",")),
                Some(&chunk[0].token),
                None,
            )
            .await?
            .json()
            .context("fetching key bundles")?;
        for b in list.bundles {
            let bytes = B64
                .decode(&b.bundle)
                .context("a bundle that is not base64")?;
            let bundle = PublicBundle::decode(&bytes)
                .map_err(|e| anyhow::anyhow!("bundle of {}: {e:?}", b.user_id))?;
            if bundle.user().as_str() != b.user_id {
                bail!(
                    "the directory's bundle for {} names another user",
                    b.user_id
                );
            }
            by_user.insert(b.user_id, bundle);
        }
    }
    users
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let peer = &users[i ^ 1];
            let bundle = by_user
                .remove(&peer.id)
                .with_context(|| format!("no published bundle for {}", peer.id))?;
            if bundle != keys[i ^ 1].bundle {
                bail!(
                    "the directory's bundle for {} is not the one published",
                    peer.id
                );
            }
            Ok(bundle)
        })
        .collect()
}

/// A direct message for each pair (users `2p` and `2p + 1`), made by the first.
async fn create_direct_messages(http: &Http, users: &[BenchUser]) -> anyhow::Result<Vec<String>> {
    let http = Arc::new(Http::new(http.addr()));
    let gate = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::with_capacity(users.len() / 2);
    for pair in users.chunks(2) {
        let (http, gate) = (http.clone(), gate.clone());
        let (owner, other) = (pair[0].clone(), pair[1].clone());
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let body = serde_json::to_vec(&json!({"kind": "direct", "members": [other.id]}))?;
            let room: sotto_api::Room = http
                .call("POST", "/api/v1/rooms", Some(&owner.token), Some(body))
                .await?
                .json()
                .context("creating a direct message")?;
            anyhow::Ok(room.id)
        }));
    }
    let mut rooms = Vec::with_capacity(tasks.len());
    for t in tasks {
        rooms.push(t.await??);
    }
    Ok(rooms)
}

/// Sends an OTR frame with the client id `id`.
async fn send_frame(
    socket: &mut Socket,
    id: &str,
    room: &RoomId,
    frame: &Frame,
) -> anyhow::Result<()> {
    let text = serde_json::to_string(&ClientFrame::Otr {
        id: id.to_owned(),
        room_id: room.as_str().to_owned(),
        frame: B64.encode(frame.encode()),
    })?;
    socket.send(Ws::Text(text.into())).await?;
    Ok(())
}

/// What a received socket frame was, for the OTR traffic of this scenario.
enum Incoming {
    Frame(Frame),
    Refused(OtrErrorCode, String),
    Other,
}

fn incoming(text: &str) -> Incoming {
    match serde_json::from_str::<Notice>(text) {
        Ok(Notice::Otr { frame, .. }) => match B64.decode(frame).ok().map(|b| Frame::decode(&b)) {
            Some(Ok(f)) => Incoming::Frame(f),
            // A relayed frame that does not decode: not what the peer sent.
            _ => Incoming::Other,
        },
        Ok(Notice::OtrError { code, message, .. }) => Incoming::Refused(code, message),
        _ => Incoming::Other,
    }
}

/// The next OTR frame from the peer, skipping other notices and events.
async fn next_frame(socket: &mut Socket) -> anyhow::Result<Frame> {
    loop {
        match socket.next().await {
            Some(Ok(Ws::Text(text))) => match incoming(&text) {
                Incoming::Frame(f) => return Ok(f),
                Incoming::Refused(code, message) => {
                    bail!(
                        "the server refused a handshake frame: {}: {message}",
                        code_name(code)
                    )
                }
                Incoming::Other => {}
            },
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("socket failed during the handshake: {e}"),
            None => bail!("socket closed during the handshake"),
        }
    }
}

/// Offer, accept, confirm through the relay; the established session.
async fn handshake(side: &mut Side) -> anyhow::Result<OtrSession> {
    let mut rng = os_rng();
    let err = |e: sotto_crypto::OtrError| anyhow::anyhow!("OTR: {e:?}");
    if side.initiator {
        let (mut session, offer) =
            OtrSession::offer(&side.keys, &side.user, &side.peer, &side.room, &mut rng)
                .map_err(err)?;
        send_frame(&mut side.socket, "offer", &side.room, &offer).await?;
        let accept = next_frame(&mut side.socket).await?;
        match session.handle(&accept, &mut rng).map_err(err)? {
            Event::Established {
                reply: Some(confirm),
            } => {
                send_frame(&mut side.socket, "confirm", &side.room, &confirm).await?;
                Ok(session)
            }
            other => bail!("expected the handshake to complete, got {other:?}"),
        }
    } else {
        let offer = next_frame(&mut side.socket).await?;
        let (mut session, accept) = OtrSession::accept(
            &offer, &side.keys, &side.user, &side.peer, &side.room, &mut rng,
        )
        .map_err(err)?;
        send_frame(&mut side.socket, "accept", &side.room, &accept).await?;
        let confirm = next_frame(&mut side.socket).await?;
        match session.handle(&confirm, &mut rng).map_err(err)? {
            Event::Established { reply: None } => Ok(session),
            other => bail!("expected the handshake to complete, got {other:?}"),
        }
    }
}

/// One side: the handshake, then sending its frames at their due times while timing
/// the peer's, then checking the first of them decrypt to what was sent.
async fn run_side(mut side: Side, run: Arc<Run>, verify: usize) -> anyhow::Result<()> {
    let session = tokio::time::timeout(SETUP_LIMIT, handshake(&mut side))
        .await
        .context("the handshake took too long")
        .and_then(|r| r);
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            run.failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    run.ready.fetch_add(1, Ordering::Relaxed);

    let mut start_rx = run.start.clone();
    let start = loop {
        if let Some(start) = *start_rx.borrow() {
            break start;
        }
        tokio::select! {
            changed = start_rx.changed() => changed.context("the run was abandoned")?,
            frame = side.socket.next() => match frame {
                Some(Ok(_)) => {}
                _ => {
                    run.closed.fetch_add(1, Ordering::Relaxed);
                    run.done_sending.fetch_add(1, Ordering::Relaxed);
                    bail!("socket closed before the run");
                }
            },
        }
    };

    let plan = run.plan;
    let mine = plan.frames_of(side.index);
    let mut next = 0u64;
    let mut stop = run.stop.clone();
    let mut expect = 0u64;
    let mut peer_key: Option<[u8; 32]> = None;
    let mut kept: Vec<(u64, Frame)> = Vec::with_capacity(verify);
    if mine == 0 {
        run.done_sending.fetch_add(1, Ordering::Relaxed);
    }
    loop {
        let due = start + plan.due(side.index, next);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(due), if next < mine => {
                let text = frame_text(side.index, next, plan.due(side.index, next));
                let frame = session
                    .send(&Body::Text(text))
                    .map_err(|e| anyhow::anyhow!("sealing: {e:?}"))?;
                let event = plan.event(side.index, next);
                let written = Instant::now().saturating_duration_since(start);
                run.written[event as usize]
                    .store(written.as_micros() as u64 + 1, Ordering::Release);
                let sent = send_frame(&mut side.socket, &format!("f{next}"), &side.room, &frame).await;
                next += 1;
                if next == mine {
                    run.done_sending.fetch_add(1, Ordering::Relaxed);
                }
                if sent.is_err() {
                    run.closed.fetch_add(1, Ordering::Relaxed);
                    if next < mine {
                        run.done_sending.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                run.sent.fetch_add(1, Ordering::Relaxed);
            }
            frame = side.socket.next() => {
                let text = match frame {
                    Some(Ok(Ws::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    _ => {
                        run.closed.fetch_add(1, Ordering::Relaxed);
                        if next < mine {
                            run.done_sending.fetch_add(1, Ordering::Relaxed);
                        }
                        return Ok(());
                    }
                };
                let now = Instant::now();
                match incoming(&text) {
                    Incoming::Frame(Frame::Data(d)) if d.session == session.id() => {
                        let k = u64::from(d.header.number);
                        // The peer's chain never steps during the run (it receives
                        // nothing), so one ratchet key, PN 0, and N in range.
                        let key = *peer_key.get_or_insert(d.header.ratchet_key);
                        if key != d.header.ratchet_key
                            || d.header.previous_chain_len != 0
                            || k >= plan.frames_of(side.peer_index)
                        {
                            run.unexpected.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let event = plan.event(side.peer_index, k);
                        let since = now.saturating_duration_since(start);
                        run.due_to_arrival.record(since.saturating_sub(plan.due(side.peer_index, k)));
                        let written = run.written[event as usize].load(Ordering::Acquire);
                        if written > 0 {
                            run.write_to_arrival
                                .record(since.saturating_sub(Duration::from_micros(written - 1)));
                        }
                        if k != expect {
                            run.out_of_order.fetch_add(1, Ordering::Relaxed);
                        }
                        expect = expect.max(k + 1);
                        if kept.len() < verify {
                            kept.push((k, Frame::Data(d)));
                        }
                        run.received.fetch_add(1, Ordering::Relaxed);
                        run.last_micros.fetch_max(since.as_micros() as u64, Ordering::Relaxed);
                    }
                    Incoming::Refused(code, message) => {
                        let at = OtrErrorCode::ALL.iter().position(|c| *c == code).unwrap_or(0);
                        if run.refused[at].fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("  refused: {}: {message}", code_name(code));
                        }
                    }
                    Incoming::Frame(_) => {
                        run.unexpected.fetch_add(1, Ordering::Relaxed);
                    }
                    Incoming::Other => {}
                }
            }
        }
    }

    // Off the clock: the kept frames, in the order they came, through the session.
    let mut rng = os_rng();
    for (k, frame) in kept {
        let want = frame_text(side.peer_index, k, plan.due(side.peer_index, k));
        match session.handle(&frame, &mut rng) {
            Ok(Event::Message(Body::Text(text))) if text == want => {
                run.verified.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                run.verify_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let end = session.end();
    let _ = send_frame(&mut side.socket, "end", &side.room, &end).await;
    let _ = side.socket.close(None).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_one_side_and_number() {
        let plan = Plan {
            sides: 4,
            rate: 8.0,
            total: 10,
        };
        // Events 0..10 over 4 sides: sides 0 and 1 send 3, sides 2 and 3 send 2.
        let counts: Vec<u64> = (0..4).map(|s| plan.frames_of(s)).collect();
        assert_eq!(counts, [3, 3, 2, 2]);
        let mut events: Vec<u64> = (0..4)
            .flat_map(|s| (0..plan.frames_of(s)).map(move |k| plan.event(s, k)))
            .collect();
        events.sort_unstable();
        assert_eq!(events, (0..10).collect::<Vec<_>>());
        assert_eq!(plan.due(1, 2), Duration::from_secs_f64(9.0 / 8.0));
        assert_eq!(plan.due(0, 0), Duration::ZERO);
        assert_eq!(plan.last_due(), Duration::from_secs_f64(9.0 / 8.0));
        let few = Plan {
            sides: 6,
            rate: 1.0,
            total: 4,
        };
        assert_eq!((0..6).map(|s| few.frames_of(s)).sum::<u64>(), 4);
        assert_eq!(few.frames_of(5), 0);
    }

    #[test]
    fn relayed_notices_are_told_apart() {
        let mut rng = os_rng();
        let alice = IdentityKeys::generate(&mut rng);
        let bob = IdentityKeys::generate(&mut rng);
        let (a, b) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let room = RoomId::new("dm-1").unwrap();
        let (_, offer) = OtrSession::offer(&alice, &a, &bob.bundle(&b), &room, &mut rng).unwrap();
        let relayed = serde_json::to_string(&Notice::Otr {
            room_id: "dm-1".into(),
            sender_id: "alice".into(),
            frame: B64.encode(offer.encode()),
        })
        .unwrap();
        assert!(matches!(incoming(&relayed), Incoming::Frame(f) if f == offer));
        let refused = r#"{"type":"otr_error","id":"f3","code":"peer_busy","message":"busy"}"#;
        assert!(matches!(
            incoming(refused),
            Incoming::Refused(OtrErrorCode::PeerBusy, _)
        ));
        let garbled = serde_json::to_string(&Notice::Otr {
            room_id: "dm-1".into(),
            sender_id: "alice".into(),
            frame: "AQ==".into(),
        })
        .unwrap();
        assert!(matches!(incoming(&garbled), Incoming::Other));
        assert!(matches!(
            incoming(r#"{"type":"presence","user_id":"bob","online":true}"#),
            Incoming::Other
        ));
        assert_eq!(code_name(OtrErrorCode::PeerOffline), "peer_offline");
    }

    fn exchange(from: &mut OtrSession, to: &mut OtrSession, side: u64) {
        let mut rng = os_rng();
        let frames: Vec<Frame> = (0..5)
            .map(|k| {
                from.send(&Body::Text(frame_text(side, k, Duration::ZERO)))
                    .unwrap()
            })
            .collect();
        let mut key = None;
        for (k, f) in frames.iter().enumerate() {
            let Frame::Data(d) = f else {
                panic!("not data")
            };
            assert_eq!(d.header.number as usize, k);
            assert_eq!(d.header.previous_chain_len, 0);
            assert_eq!(
                *key.get_or_insert(d.header.ratchet_key),
                d.header.ratchet_key
            );
        }
        for (k, f) in frames.iter().enumerate() {
            let want = frame_text(side, k as u64, Duration::ZERO);
            assert_eq!(
                to.handle(f, &mut rng).unwrap(),
                Event::Message(Body::Text(want))
            );
        }
    }

    #[test]
    fn a_sender_that_receives_nothing_numbers_its_frames_in_order() {
        // What the timing relies on: without receiving, a side's data frames carry the
        // same ratchet key, PN 0 and N = 0, 1, 2, …, and the peer opens them afterwards.
        let mut rng = os_rng();
        let alice = IdentityKeys::generate(&mut rng);
        let bob = IdentityKeys::generate(&mut rng);
        let (a, b) = (UserId::new("alice").unwrap(), UserId::new("bob").unwrap());
        let room = RoomId::new("dm-1").unwrap();
        let (mut ia, offer) =
            OtrSession::offer(&alice, &a, &bob.bundle(&b), &room, &mut rng).unwrap();
        let (mut rb, accept) =
            OtrSession::accept(&offer, &bob, &b, &alice.bundle(&a), &room, &mut rng).unwrap();
        let Event::Established {
            reply: Some(confirm),
        } = ia.handle(&accept, &mut rng).unwrap()
        else {
            panic!("no confirm");
        };
        rb.handle(&confirm, &mut rng).unwrap();
        exchange(&mut ia, &mut rb, 0);
        exchange(&mut rb, &mut ia, 1);
    }
}
